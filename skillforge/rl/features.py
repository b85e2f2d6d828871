"""What the discriminator q(z|s) sees: the whole observation, or a prior (DIAYN+prior,
Eysenbach et al. 2018, section 4.2.2) that makes skills differ where it matters.

| `--discriminator-features` | q(z|s) sees |
|---|---|
| `all` (default) | the observation |
| `x` | the agent's position along its track (torso x of MuJoCo walkers, hull x, car position) |
| `xy` | the agent's position in the plane (Ant, Humanoid, Swimmer, LunarLander) |
| `0,3,5` | those entries of the observation |

Positions come from the simulator (gymnasium leaves them out of the MuJoCo observations),
read by `skillforge.core.positions`, and are stored next to each transition. The skills
themselves always see the observation, so registered and exported skills do not change.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from skillforge.core.config import check_feature_syntax
from skillforge.core.errors import ConfigError
from skillforge.core.positions import position_probe

POSITIONS = ("x", "xy")


@dataclass(frozen=True)
class FeatureReader:
    """Reads the discriminator's input from an env after a step: `read(env.unwrapped, obs)`."""

    name: str
    dim: int
    read: Callable[[Any, np.ndarray], np.ndarray]


def feature_reader(text: str, env_id: str, obs_dim: int) -> FeatureReader | None:
    """The reader for option `text` on `env_id` (None for `all`: q sees the observation)."""
    name = check_feature_syntax(text)
    if name == "all":
        return None
    if name in POSITIONS:
        probe = position_probe(env_id)
        dims = len(name)
        if probe is None or probe.dims < dims:
            has = f"its position is {probe.what}" if probe else "skillforge cannot locate it"
            raise ConfigError(
                f"--discriminator-features {name} needs the agent's {'x-y' if dims == 2 else 'x'}"
                f" position, and {env_id} has none ({has}); use all or observation indices"
            )
        read = probe.read

        def position(env, obs: np.ndarray) -> np.ndarray:
            return np.asarray(read(env, obs)[:dims], dtype=np.float32)

        return FeatureReader(name, dims, position)
    indices = np.array([int(part) for part in name.split(",")])
    if indices[-1] >= obs_dim:
        raise ConfigError(
            f"--discriminator-features: index {indices[-1]} is out of range; {env_id} "
            f"observations have {obs_dim} entries (0..{obs_dim - 1})"
        )
    return FeatureReader(name, len(indices), lambda env, obs: np.asarray(obs)[indices])
