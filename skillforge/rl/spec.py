"""What every artefact of a library says about itself: env, shapes, bounds, skills, width."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


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
    discriminator_features: str = "all"
    """What q(z|s) sees (`skillforge.rl.features`); the skills always see the observation."""
    feature_dim: int = 0
    """Width of q(z|s)'s input when it is not the observation (0: the observation)."""

    @classmethod
    def from_env(
        cls,
        env_id: str,
        env,
        n_skills: int,
        hidden: int,
        discriminator_features: str = "all",
        feature_dim: int = 0,
    ) -> LibrarySpec:
        space = env.action_space
        return cls(
            env_id=env_id,
            obs_dim=int(env.observation_space.shape[0]),
            action_dim=int(space.shape[0]),
            action_low=tuple(float(x) for x in space.low),
            action_high=tuple(float(x) for x in space.high),
            n_skills=n_skills,
            hidden=hidden,
            discriminator_features=discriminator_features,
            feature_dim=feature_dim,
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
            discriminator_features=str(values.get("discriminator_features", "all")),
            feature_dim=int(values.get("feature_dim", 0)),
        )

    @property
    def discriminator_input_dim(self) -> int:
        """Width of what q(z|s) reads: the observation, or the prior's features."""
        return self.feature_dim or self.obs_dim
