"""Where the agent is, for state coverage and DIAYN's position prior.

`POSITIONS`, keyed by the env id without its version:

| environment | position | bin |
|---|---|---|
| Hopper, HalfCheetah, Walker2d | x of the torso, `data.qpos[0]` | 1 m |
| Ant, Humanoid, Swimmer (move in the plane) | x-y of the torso, `data.qpos[:2]` | 1 m x 1 m |
| BipedalWalker(Hardcore) | x of the hull, `hull.position.x` (Box2D units ~ m) | 1 |
| LunarLander(Continuous) | x-y of the lander, `lander.position` (Box2D units) | 1 x 1 |
| MountainCarContinuous | car position, observation[0] (track -1.2 ... 0.6) | 0.1 |
| Pendulum | pole angle atan2(sin, cos) from the observation | pi/8 rad (16 bins) |

Other environments have no coverage measure (reported as missing) and no x / xy prior.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from skillforge.core.position_envs import family_of


@dataclass(frozen=True)
class PositionProbe:
    """Where the agent is, for state coverage: `read(env.unwrapped, observation)` -> (dims,)."""

    what: str
    bin_size: float
    read: Callable[[Any, np.ndarray], np.ndarray]
    dims: int = 1
    """Coordinates `read` returns: 1 (x, along a track) or 2 (x-y, in the plane)."""
    travels: bool = True
    """Whether a change of position is a distance travelled (not for a wrapping angle)."""


def _qpos(dims: int) -> Callable[[Any, np.ndarray], np.ndarray]:
    return lambda env, obs: np.array(env.data.qpos[:dims], dtype=np.float64)


def _body(name: str, dims: int) -> Callable[[Any, np.ndarray], np.ndarray]:
    return lambda env, obs: np.array(tuple(getattr(env, name).position)[:dims], dtype=np.float64)


_X = _qpos(1)
_XY = _qpos(2)
POSITIONS: dict[str, PositionProbe] = {
    "Hopper": PositionProbe("torso x (m)", 1.0, _X),
    "HalfCheetah": PositionProbe("torso x (m)", 1.0, _X),
    "HalfCheetahHurdles": PositionProbe("torso x (m)", 1.0, _X),
    "Walker2d": PositionProbe("torso x (m)", 1.0, _X),
    "Ant": PositionProbe("torso x-y (m)", 1.0, _XY, dims=2),
    "Humanoid": PositionProbe("torso x-y (m)", 1.0, _XY, dims=2),
    "Swimmer": PositionProbe("tip x-y (m)", 1.0, _XY, dims=2),
    "BipedalWalker": PositionProbe("hull x", 1.0, _body("hull", 1)),
    "BipedalWalkerHardcore": PositionProbe("hull x", 1.0, _body("hull", 1)),
    "LunarLander": PositionProbe("lander x-y", 1.0, _body("lander", 2), dims=2),
    "LunarLanderContinuous": PositionProbe("lander x-y", 1.0, _body("lander", 2), dims=2),
    "MountainCarContinuous": PositionProbe(
        "car position", 0.1, lambda env, obs: np.array(obs[:1], dtype=np.float64)
    ),
    "Pendulum": PositionProbe(
        "pole angle (rad)",
        math.pi / 8,
        lambda env, obs: np.array([math.atan2(float(obs[1]), float(obs[0]))]),
        travels=False,
    ),
}


def position_probe(env_id: str) -> PositionProbe | None:
    """The coverage probe of an env id (`Hopper-v5` -> the `Hopper` row), None if unknown."""
    return POSITIONS.get(family_of(env_id))
