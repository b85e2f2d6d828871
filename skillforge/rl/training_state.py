"""Everything a pretraining run needs to continue exactly where it stopped, as one object.

`TrainingState.state_dict()` is what a checkpoint holds: format metadata, config, spec,
the step, the episode in progress (its skill and the actions so far, replayed on resume),
the networks, the optimiser, the replay buffer, every random generator and the metric
window. `load_state_dict` restores it strictly: a checkpoint that does not fit is a
`CheckpointError`, never a half-restored run.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from skillforge.core.config import PretrainConfig
from skillforge.core.errors import CheckpointError, TrainingDiverged
from skillforge.core.versions import __version__
from skillforge.rl.diayn import DIAYN
from skillforge.rl.metric_window import MetricWindow
from skillforge.rl.replay import ReplayBuffer
from skillforge.rl.spec import LibrarySpec


@dataclass
class Episode:
    """The episode in progress: its index (which fixes its reset seed), its skill, and the
    actions taken so far (a resumed run replays them to reach the same state)."""

    index: int = -1
    skill: int = 0
    actions: list[np.ndarray] = field(default_factory=list)
    extrinsic_return: float = 0.0

    def next(self, sampler: torch.Generator, n_skills: int) -> None:
        """Start the next episode with z ~ Uniform(N)."""
        self.index += 1
        self.skill = int(torch.randint(n_skills, (1,), generator=sampler))
        self.actions = []
        self.extrinsic_return = 0.0


@dataclass
class TrainingState:
    """One run's networks, optimiser, replay, generators and counters."""

    config: PretrainConfig
    spec: LibrarySpec
    agent: DIAYN
    optimizer: torch.optim.Optimizer
    buffer: ReplayBuffer
    sampler: torch.Generator  # replay indices, skills, warm-up actions
    window: MetricWindow
    device: torch.device
    step: int = 0
    episode: Episode = field(default_factory=Episode)

    def state_dict(self) -> dict:
        """The checkpoint contents (tensors and plain values only: loads with weights_only)."""
        actions = np.array(self.episode.actions, dtype=np.float32)
        state = {
            "skillforge_version": __version__,
            "config": self.config.to_dict(),
            "spec": self.spec.to_dict(),
            "step": self.step,
            "episode": {
                "index": self.episode.index,
                "skill": self.episode.skill,
                "actions": torch.as_tensor(actions).reshape(len(actions), self.spec.action_dim),
            },
            "agent": self.agent.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "replay": self.buffer.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "sampler_rng": self.sampler.get_state(),
            "metric_window": self.window.state_dict(),  # the next report averages the same steps
        }
        if torch.cuda.is_available():
            state["cuda_rng"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state: dict) -> None:
        """Restore a `state_dict` (strict: every network and buffer must fit this config)."""
        try:
            self.agent.load_state_dict(state["agent"])
            self.optimizer.load_state_dict(state["optimizer"])
            self.buffer.load_state_dict(state["replay"])
            torch.set_rng_state(state["torch_rng"])
            self.sampler.set_state(state["sampler_rng"])
            if "cuda_rng" in state and self.device.type == "cuda":
                torch.cuda.set_rng_state_all(state["cuda_rng"])
            self.episode.index = int(state["episode"]["index"])
            self.episode.skill = int(state["episode"]["skill"])
            self.episode.actions = list(state["episode"]["actions"].numpy())
            self.step = int(state["step"])
        except (KeyError, RuntimeError, ValueError, TypeError) as error:
            raise CheckpointError(f"checkpoint does not fit this configuration ({error})") from None
        if "metric_window" in state:
            self.window.load_state_dict(state["metric_window"], self.step)

    def assert_finite(self) -> None:
        """Refuse NaN or inf weights (so the previous checkpoint stays the last good one)."""
        for name, tensor in self.agent.state_dict().items():
            if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
                raise TrainingDiverged(f"weights {name} became non-finite by step {self.step:,}")
