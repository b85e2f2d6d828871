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
from torch import nn

from skillforge.core.config import PretrainConfig
from skillforge.core.errors import CheckpointError, TrainingDiverged
from skillforge.core.versions import __version__
from skillforge.rl.metric_window import MetricWindow
from skillforge.rl.replay import ReplayBuffer
from skillforge.rl.spec import LibrarySpec


@dataclass
class Episode:
    """An episode in progress: its index (which fixes its reset seed), its skill, and the
    actions taken so far (a resumed run replays them to reach the same state)."""

    index: int = -1
    skill: int = 0
    actions: list[np.ndarray] = field(default_factory=list)
    extrinsic_return: float = 0.0

    def start(self, index: int, sampler: torch.Generator, n_skills: int) -> None:
        """Start episode `index` with z ~ Uniform(N)."""
        self.index = index
        self.skill = int(torch.randint(n_skills, (1,), generator=sampler))
        self.actions = []
        self.extrinsic_return = 0.0

    def state_dict(self, action_dim: int) -> dict:
        actions = np.array(self.actions, dtype=np.float32)
        return {
            "index": self.index,
            "skill": self.skill,
            "actions": torch.as_tensor(actions).reshape(len(actions), action_dim),
        }

    def load_state_dict(self, state: dict) -> None:
        self.index = int(state["index"])
        self.skill = int(state["skill"])
        self.actions = list(state["actions"].numpy())


@dataclass
class TrainingState:
    """One run's networks, optimiser, replay, generators and counters."""

    config: PretrainConfig
    spec: LibrarySpec
    agent: nn.Module  # an objective's agent (skillforge.rl.objectives)
    optimizer: torch.optim.Optimizer
    buffer: ReplayBuffer
    sampler: torch.Generator  # replay indices, skills, warm-up actions
    window: MetricWindow
    device: torch.device
    step: int = 0
    episodes: list[Episode] = field(default_factory=list)
    """The episode in progress in each env copy."""
    next_episode: int = 0
    """The index the next episode gets; those finished are this minus the ones in progress."""
    update_credit: float = 0.0
    """Gradient steps owed (updates_per_step per env step, taken whole)."""
    gradient_steps: int = 0
    seconds: float = 0.0
    """Wall-clock seconds of training so far, over every session of the run."""

    @property
    def finished_episodes(self) -> int:
        return self.next_episode - len(self.episodes)

    def start_episode(self, episode: Episode) -> None:
        """Give `episode` the next index and a fresh skill."""
        episode.start(self.next_episode, self.sampler, self.spec.n_skills)
        self.next_episode += 1

    def state_dict(self) -> dict:
        """The checkpoint contents (tensors and plain values only: loads with weights_only)."""
        state = {
            "skillforge_version": __version__,
            "config": self.config.to_dict(),
            "spec": self.spec.to_dict(),
            "step": self.step,
            "episodes": [episode.state_dict(self.spec.action_dim) for episode in self.episodes],
            "next_episode": self.next_episode,
            "update_credit": self.update_credit,
            "gradient_steps": self.gradient_steps,
            "seconds": self.seconds,
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
            if "episodes" in state:
                episodes, self.next_episode = state["episodes"], int(state["next_episode"])
                self.update_credit = float(state["update_credit"])
            else:  # one env, written before --envs: its episode index counts those finished
                episodes, self.next_episode = [state["episode"]], int(state["episode"]["index"]) + 1
            if len(episodes) != self.config.envs:
                raise ValueError(
                    f"{len(episodes)} envs in the checkpoint, {self.config.envs} asked"
                )
            self.episodes = [Episode() for _ in episodes]
            for episode, episode_state in zip(self.episodes, episodes, strict=True):
                episode.load_state_dict(episode_state)
            self.step = int(state["step"])
            self.gradient_steps = int(state.get("gradient_steps", 0))
            self.seconds = float(state.get("seconds", 0.0))
        except (KeyError, RuntimeError, ValueError, TypeError) as error:
            raise CheckpointError(f"checkpoint does not fit this configuration ({error})") from None
        if "metric_window" in state:
            self.window.load_state_dict(state["metric_window"], self.step)

    def assert_finite(self) -> None:
        """Refuse NaN or inf weights (so the previous checkpoint stays the last good one)."""
        for name, tensor in self.agent.state_dict().items():
            if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
                raise TrainingDiverged(f"weights {name} became non-finite by step {self.step:,}")
