"""A skill library: N frozen, deterministic skills of one environment, plus their discriminator."""

from __future__ import annotations

import hashlib
import os

import numpy as np
import torch
from torch import nn

from skillforge.core.errors import CheckpointError
from skillforge.core.versions import __version__
from skillforge.rl.checkpoint import load_checkpoint
from skillforge.rl.nets import Discriminator, TanhGaussianPolicy
from skillforge.rl.spec import LibrarySpec

DEFAULT_EXPORT_ROOT = "exports"
"""Where `skillforge export` writes a library's files by default: `exports/<library>/`."""


class LibraryPolicy(nn.Module):
    """Every skill in one module: observation (batch, obs_dim) float32 and skill (batch,)
    int64 in, deterministic action (batch, action_dim) out (tanh of the mean, scaled to the
    action bounds). What the library file of an export holds."""

    def __init__(self, policy: TanhGaussianPolicy, n_skills: int) -> None:
        super().__init__()
        self.policy = policy
        self.register_buffer("skill_codes", torch.eye(n_skills))  # (n_skills, n_skills) one-hot

    def forward(self, obs: torch.Tensor, skill: torch.Tensor) -> torch.Tensor:
        one_hot = self.skill_codes[skill]  # (batch, n_skills)
        return self.policy.deterministic(torch.cat([obs, one_hot], dim=-1))


class SkillPolicy(nn.Module):
    """One skill as a plain module: observation (batch, obs_dim) in, action (batch, act) out:
    the library's policy with z fixed to `skill`. This is what gets registered and exported."""

    def __init__(self, policy: TanhGaussianPolicy, skill: int, n_skills: int) -> None:
        super().__init__()
        self.library = LibraryPolicy(policy, n_skills)
        self.register_buffer("skill", torch.tensor([skill]))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.library(obs, self.skill.expand(obs.shape[0]))


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
        """Build from an agent's state dict (keys `sac.policy.*`, and `discriminator.*` for
        DIAYN; a METRA library has no discriminator)."""
        policy = policy_for(spec)
        policy.load_state_dict(_sub_state(agent_state, "sac.policy."))
        discriminator_state = _sub_state(agent_state, "discriminator.")
        if not discriminator_state:
            return cls(spec, policy, None, **kwargs)
        discriminator = Discriminator(spec.discriminator_input_dim, spec.n_skills, spec.hidden)
        discriminator.load_state_dict(discriminator_state)
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


def library_tags(library: SkillLibrary, run_id: str) -> dict[str, str]:
    """What a registered or exported skill says about itself, as string tags."""
    spec = library.spec
    return {
        "library": library.name,
        "run_id": run_id,
        "env_id": spec.env_id,
        "n_skills": str(spec.n_skills),
        "observation_shape": str([spec.obs_dim]),
        "action_shape": str([spec.action_dim]),
        "action_low": str(list(spec.action_low)),
        "action_high": str(list(spec.action_high)),
        "skillforge_version": __version__,
    }


def parameter_hash(module: nn.Module) -> str:
    """SHA-256 of every parameter and buffer: equal before and after means frozen."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()
