"""Downstream tasks for reusing skills. A task is a gymnasium env whose observation starts
with the observation of the env the skills were learned on (skills read that prefix) and may
append task information (waypoints, hurdles) for the meta-controller.

- any gymnasium id or alias: the env itself, with its own (real) reward.
- `ant-navigation` (DIAYN paper, sec. 4.2): on Ant-v5, five waypoints in order on a 4 m
  square, (2,2), (2,-2), (-2,-2), (-2,2), (2,2); reward +1 when the centre of mass comes
  within 0.5 m of the next waypoint (maximum 5, then the episode ends). Extra observation:
  centre-of-mass x-y, offset to the next waypoint, waypoints reached.
- `halfcheetah-hurdle`: on HalfCheetah-v5 with boxes 0.25 m high every 3 m; reward is
  forward progress, dx/dt of the torso. Extra observation: distance to the next hurdle.
"""

from __future__ import annotations

import os
import re
import tempfile

import gymnasium as gym
import numpy as np

from skillforge.core.envs import make_env, resolve_env_id
from skillforge.core.errors import EnvError

WAYPOINTS = np.array([(2.0, 2.0), (2.0, -2.0), (-2.0, -2.0), (-2.0, 2.0), (2.0, 2.0)])
WAYPOINT_RADIUS = 0.5
HURDLE_SPACING, HURDLE_HEIGHT, HURDLE_COUNT = 3.0, 0.25, 40


class AntNavigation(gym.Wrapper):
    """+1 for each waypoint reached in order; the episode ends after the fifth."""

    EXTRA = 5

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        low = np.concatenate([env.observation_space.low, np.full(self.EXTRA, -np.inf)])
        high = np.concatenate([env.observation_space.high, np.full(self.EXTRA, np.inf)])
        self.observation_space = gym.spaces.Box(low, high, dtype=np.float64)
        self.reached = 0

    def centre_of_mass(self) -> np.ndarray:
        return np.array(self.env.unwrapped.data.subtree_com[0][:2])

    def _observe(self, obs: np.ndarray) -> np.ndarray:
        com = self.centre_of_mass()
        target = WAYPOINTS[min(self.reached, len(WAYPOINTS) - 1)]
        return np.concatenate([obs, com, target - com, [self.reached]])

    def waypoint_reward(self) -> float:
        """+1 (and advance) if the centre of mass is within the radius of the next waypoint."""
        if self.reached >= len(WAYPOINTS):
            return 0.0
        if np.linalg.norm(self.centre_of_mass() - WAYPOINTS[self.reached]) <= WAYPOINT_RADIUS:
            self.reached += 1
            return 1.0
        return 0.0

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        self.reached = 0
        return self._observe(obs), info

    def step(self, action):
        obs, _, terminated, truncated, info = self.env.step(action)
        reward = self.waypoint_reward()
        info["waypoints_reached"] = self.reached
        terminated = terminated or self.reached >= len(WAYPOINTS)
        return self._observe(obs), reward, terminated, truncated, info


class HalfCheetahHurdle(gym.Wrapper):
    """Reward = forward progress dx/dt; the model has hurdles every 3 m."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        low = np.append(env.observation_space.low, -np.inf)
        high = np.append(env.observation_space.high, np.inf)
        self.observation_space = gym.spaces.Box(low, high, dtype=np.float64)

    def x(self) -> float:
        return float(self.env.unwrapped.data.qpos[0])

    def _observe(self, obs: np.ndarray) -> np.ndarray:
        next_hurdle = (np.floor(self.x() / HURDLE_SPACING) + 1) * HURDLE_SPACING
        return np.append(obs, next_hurdle - self.x())

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        return self._observe(obs), info

    def step(self, action):
        before = self.x()
        obs, _, terminated, truncated, info = self.env.step(action)
        reward = (self.x() - before) / self.env.unwrapped.dt
        return self._observe(obs), reward, terminated, truncated, info


def hurdle_xml() -> str:
    """HalfCheetah's model (MJCF text) with hurdles added to the world."""
    import gymnasium.envs.mujoco as mujoco_envs

    source = os.path.join(os.path.dirname(mujoco_envs.__file__), "assets", "half_cheetah.xml")
    with open(source) as handle:
        xml = handle.read()
    half = HURDLE_HEIGHT / 2
    hurdles = "".join(
        f'<geom name="hurdle{i}" type="box" pos="{HURDLE_SPACING * (i + 1)} 0 {half}" '
        f'size="0.05 1 {half}" contype="1" conaffinity="1" rgba="0.9 0.3 0.3 1"/>'
        for i in range(HURDLE_COUNT)
    )
    return re.sub(r"(<worldbody>)", r"\1" + hurdles, xml, count=1)


def _halfcheetah_hurdle() -> HalfCheetahHurdle:
    with tempfile.NamedTemporaryFile("w", suffix=".xml", delete=False) as handle:
        handle.write(hurdle_xml())
    try:
        return HalfCheetahHurdle(make_env("HalfCheetah-v5", xml_file=handle.name))
    finally:
        os.unlink(handle.name)


TASKS = {
    "ant-navigation": ("Ant-v5", lambda: AntNavigation(make_env("Ant-v5"))),
    "halfcheetah-hurdle": ("HalfCheetah-v5", _halfcheetah_hurdle),
}


def task_env_id(task: str) -> str:
    """The env whose skills a task reuses (`ant-navigation` -> Ant-v5)."""
    if task in TASKS:
        return TASKS[task][0]
    try:
        return resolve_env_id(task)
    except EnvError:
        raise EnvError(
            f"unknown task {task!r}; tasks: {', '.join(TASKS)}, or an env id or alias"
        ) from None


def make_task(task: str) -> gym.Env:
    """Make the task env (see the module docstring for the named tasks)."""
    if task in TASKS:
        return TASKS[task][1]()
    return make_env(task_env_id(task))
