"""A skill library: N frozen, deterministic skills of one environment, plus their discriminator."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from skillforge.checkpoint import load_checkpoint
from skillforge.errors import CheckpointError
from skillforge.nets import Discriminator, TanhGaussianPolicy


@dataclass(frozen=True)
class LibrarySpec:
    """What every artefact of a library says about itself."""

    env_id: str
    obs_dim: int
    action_dim: int
    action_low: tuple[float, ...]
    action_high: tuple[float, ...]
    n_skills: int
    hidden: int

    @classmethod
    def from_env(cls, env_id: str, env, n_skills: int, hidden: int) -> LibrarySpec:
        space = env.action_space
        return cls(
            env_id=env_id,
            obs_dim=int(env.observation_space.shape[0]),
            action_dim=int(space.shape[0]),
            action_low=tuple(float(x) for x in space.low),
            action_high=tuple(float(x) for x in space.high),
            n_skills=n_skills,
            hidden=hidden,
        )

    @property
    def action_low_array(self) -> np.ndarray:
        return np.asarray(self.action_low, dtype=np.float32)

    @property
    def action_high_array(self) -> np.ndarray:
        return np.asarray(self.action_high, dtype=np.float32)

    def to_dict(self) -> dict:
        values = asdict(self)
        values["action_low"] = list(self.action_low)
        values["action_high"] = list(self.action_high)
        return values

    @classmethod
    def from_dict(cls, values: dict) -> LibrarySpec:
        return cls(
            env_id=str(values["env_id"]),
            obs_dim=int(values["obs_dim"]),
            action_dim=int(values["action_dim"]),
            action_low=tuple(float(x) for x in values["action_low"]),
            action_high=tuple(float(x) for x in values["action_high"]),
            n_skills=int(values["n_skills"]),
            hidden=int(values["hidden"]),
        )


class SkillPolicy(nn.Module):
    """One skill as a plain module: observation (batch, obs_dim) in, action (batch, act) out.

    The skill-conditioned policy with z fixed to `skill`, deterministic (tanh of the mean,
    scaled to the action bounds). This is what gets registered and exported.
    """

    def __init__(self, policy: TanhGaussianPolicy, skill: int, n_skills: int) -> None:
        super().__init__()
        self.policy = policy
        one_hot = torch.zeros(1, n_skills)
        one_hot[0, skill] = 1.0
        self.register_buffer("one_hot", one_hot)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        skill = self.one_hot.expand(obs.shape[0], -1)
        return self.policy.deterministic(torch.cat([obs, skill], dim=-1))


class SkillLibrary:
    """N frozen skills. `act(obs, skill)` runs any of them, batched."""

    def __init__(
        self,
        spec: LibrarySpec,
        policy: TanhGaussianPolicy,
        discriminator: Discriminator | None = None,
        name: str = "",
        run_id: str = "",
    ) -> None:
        self.spec = spec
        self.policy = policy.eval().requires_grad_(False)
        self.discriminator = (
            discriminator.eval().requires_grad_(False) if discriminator is not None else None
        )
        self.name = name
        self.run_id = run_id

    @property
    def n_skills(self) -> int:
        return self.spec.n_skills

    @torch.no_grad()
    def act(self, obs: np.ndarray, skill: int | np.ndarray) -> np.ndarray:
        """Deterministic actions. obs (obs_dim,) or (batch, obs_dim); skill an int or (batch,)."""
        obs = np.asarray(obs, dtype=np.float32)
        single = obs.ndim == 1
        obs = obs.reshape(-1, self.spec.obs_dim)
        skills = np.asarray(skill, dtype=np.int64).reshape(-1)
        if skills.size == 1:
            skills = np.repeat(skills, len(obs))
        if skills.shape != (len(obs),):
            raise ValueError(f"{skills.size} skills for {len(obs)} observations")
        if len(skills) and (skills.min() < 0 or skills.max() >= self.n_skills):
            raise ValueError(f"skill index out of range 0..{self.n_skills - 1}")
        # the policy's input, built in numpy: a handful of torch calls per step is what
        # decides the speed of one-env rollouts (the skill-action wrapper)
        state = np.zeros((len(obs), self.spec.obs_dim + self.n_skills), dtype=np.float32)
        state[:, : self.spec.obs_dim] = obs
        state[np.arange(len(obs)), self.spec.obs_dim + skills] = 1.0
        device = self.policy.action_scale.device
        action = self.policy.deterministic(torch.from_numpy(state).to(device)).cpu().numpy()
        return action[0] if single else action

    def skill(self, index: int) -> SkillPolicy:
        """Skill `index` as a standalone deterministic module."""
        if not 0 <= index < self.n_skills:
            raise ValueError(f"skill index {index} out of range 0..{self.n_skills - 1}")
        return SkillPolicy(self.policy, index, self.n_skills).eval()

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, name: str = "") -> SkillLibrary:
        """Load the skills of a pretraining checkpoint (weights only, never pickled code).

        `name` defaults to the library name stored in the checkpoint.
        """
        state = load_checkpoint(path)
        try:
            spec = LibrarySpec.from_dict(state["spec"])
            name = name or str(dict(state.get("config") or {}).get("name", ""))
            return cls.from_state_dict(spec, state["agent"], name=name, run_id="")
        except (KeyError, RuntimeError, ValueError, TypeError) as error:
            raise CheckpointError(f"{path} does not hold a skill library ({error})") from None

    @classmethod
    def from_state_dict(cls, spec: LibrarySpec, agent_state: dict, **kwargs) -> SkillLibrary:
        """Build from a DIAYN agent's state dict (keys `sac.policy.*`, `discriminator.*`)."""
        policy = policy_for(spec)
        discriminator = Discriminator(spec.obs_dim, spec.n_skills, spec.hidden)
        policy.load_state_dict(_sub_state(agent_state, "sac.policy."))
        discriminator.load_state_dict(_sub_state(agent_state, "discriminator."))
        return cls(spec, policy, discriminator, **kwargs)


def policy_for(spec: LibrarySpec) -> TanhGaussianPolicy:
    """An (untrained) skill-conditioned policy with the library's shapes and bounds."""
    return TanhGaussianPolicy(
        spec.obs_dim + spec.n_skills,
        spec.action_dim,
        spec.hidden,
        spec.action_low,
        spec.action_high,
    )


def _sub_state(state: dict, prefix: str) -> dict:
    return {key[len(prefix) :]: value for key, value in state.items() if key.startswith(prefix)}
