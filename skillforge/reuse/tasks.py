"""Downstream tasks for reusing skills. A task is a gymnasium env whose observation starts
with the observation of the env the skills were learned on (skills read that prefix) and may
append task information (waypoints, hurdles) for the meta-controller.

- any gymnasium id or alias: the env itself, with its own (real) reward.
- `ant-navigation` (DIAYN paper, sec. 4.2): on Ant-v5, five waypoints in order on a 4 m
  square, (2,2), (2,-2), (-2,-2), (-2,2), (2,2); reward +1 when the centre of mass comes
  within 0.5 m of the next waypoint (maximum 5, then the episode ends). Extra observation:
  centre-of-mass x-y, offset to the next waypoint, waypoints reached.
- `halfcheetah-hurdle`: on HalfCheetah-v5 with boxes 0.25 m high every 3 m from x = 3 m
  (40 of them: `skillforge.core.hurdles`); reward is forward progress, dx/dt of the torso.
  Extra observation: the distance from the torso to the next hurdle ahead
  (`distance_to_next_hurdle`). Also built on the course as an env of its own
  (`HalfCheetahHurdles-v5`, or its WithPosition variant), where a library may be pretrained.
- `halfcheetah-goal`: on HalfCheetah-v5, reach x = +10 m or x = -10 m, the side drawn per
  episode; reward +1 once, when the torso gets there (the episode then ends), else 0 for
  the 1,000 steps. Sparse and long: random torques move the cheetah 10 m in under one
  episode in ten (measured: 0 of 10; 5 m in 4 of 10). Extra
  observation: the goal's side (+1 or -1) and the signed distance to the goal.

A named task is built on its env or on that env's `WithPosition` variant
(`skillforge.core.position_envs`: the position kept in the observation, where METRA
libraries and DIAYN libraries with an x / x-y prior are learned): `make_task(task, env_id)`
with the library's env, so its skills read the observation they were learned on.

The named tasks are also registered with gymnasium (`gymnasium.make("skillforge/
HalfCheetahGoal-v0")` after `import skillforge.reuse.tasks`), so other libraries can use them;
`env_id=` chooses the env underneath (`env_id="HalfCheetahWithPosition-v5"`).
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from skillforge.core.envs import make_env, resolve_env_id
from skillforge.core.errors import EnvError
from skillforge.core.hurdles import ENV_ID as HURDLE_COURSE
from skillforge.core.hurdles import distance_to_next_hurdle, hurdle_model_file
from skillforge.core.position_envs import with_position

WAYPOINTS = np.array([(2.0, 2.0), (2.0, -2.0), (-2.0, -2.0), (-2.0, 2.0), (2.0, 2.0)])
WAYPOINT_RADIUS = 0.5
GOAL_DISTANCE = 10.0


def _extended_space(space: gym.spaces.Box, extra: int) -> gym.spaces.Box:
    """The env's observation space with `extra` unbounded entries appended."""
    low = np.concatenate([space.low, np.full(extra, -np.inf)])
    high = np.concatenate([space.high, np.full(extra, np.inf)])
    return gym.spaces.Box(low, high, dtype=np.float64)


class AntNavigation(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """+1 for each waypoint reached in order; the episode ends after the fifth."""

    EXTRA = 5

    def __init__(self, env: gym.Env) -> None:
        gym.utils.RecordConstructorArgs.__init__(self)
        gym.Wrapper.__init__(self, env)
        self.observation_space = _extended_space(env.observation_space, self.EXTRA)
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


class HalfCheetahHurdle(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Reward = forward progress dx/dt; the model has hurdles every 3 m."""

    def __init__(self, env: gym.Env) -> None:
        gym.utils.RecordConstructorArgs.__init__(self)
        gym.Wrapper.__init__(self, env)
        self.observation_space = _extended_space(env.observation_space, 1)

    def x(self) -> float:
        return float(self.env.unwrapped.data.qpos[0])

    def _observe(self, obs: np.ndarray) -> np.ndarray:
        return np.append(obs, distance_to_next_hurdle(self.x()))

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        return self._observe(obs), info

    def step(self, action):
        before = self.x()
        obs, _, terminated, truncated, info = self.env.step(action)
        reward = (self.x() - before) / self.env.unwrapped.dt
        return self._observe(obs), reward, terminated, truncated, info


class HalfCheetahGoal(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """+1 once when the torso reaches x = side * 10 m (side +1 or -1, drawn at each reset from
    the reset's seed); the episode then ends."""

    def __init__(self, env: gym.Env, distance: float = GOAL_DISTANCE) -> None:
        gym.utils.RecordConstructorArgs.__init__(self, distance=distance)
        gym.Wrapper.__init__(self, env)
        self.observation_space = _extended_space(env.observation_space, 2)
        self.distance = distance
        self.side = 1.0

    def x(self) -> float:
        return float(self.env.unwrapped.data.qpos[0])

    def _observe(self, obs: np.ndarray) -> np.ndarray:
        return np.append(obs, [self.side, self.side * self.distance - self.x()])

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        self.side = 1.0 if self.env.unwrapped.np_random.random() < 0.5 else -1.0
        info["goal_side"] = self.side
        return self._observe(obs), info

    def step(self, action):
        obs, _, terminated, truncated, info = self.env.step(action)
        reached = self.side * self.x() >= self.distance
        info["goal_side"], info["goal_reached"] = self.side, reached
        return self._observe(obs), float(reached), terminated or reached, truncated, info


def ant_navigation(
    render_mode: str | None = None, env_id: str = "Ant-v5", **kwargs
) -> AntNavigation:
    """The ant-navigation task on `env_id` (Ant-v5 or AntWithPosition-v5); `render_mode` and
    `kwargs` go to that env."""
    env_id = task_env_id("ant-navigation", env_id)
    return AntNavigation(make_env(env_id, render_mode, **kwargs))


def halfcheetah_hurdle(
    render_mode: str | None = None, env_id: str = "HalfCheetah-v5", **kwargs
) -> HalfCheetahHurdle:
    """The halfcheetah-hurdle task on `env_id` (HalfCheetah-v5, HalfCheetahHurdles-v5 or their
    WithPosition variants); `render_mode` and `kwargs` go to that env."""
    env_id = task_env_id("halfcheetah-hurdle", env_id)
    xml_file = str(hurdle_model_file())
    return HalfCheetahHurdle(make_env(env_id, render_mode, xml_file=xml_file, **kwargs))


def halfcheetah_goal(
    distance: float = GOAL_DISTANCE,
    render_mode: str | None = None,
    env_id: str = "HalfCheetah-v5",
    **kwargs,
) -> HalfCheetahGoal:
    """The halfcheetah-goal task on `env_id` (HalfCheetah-v5 or its WithPosition variant);
    `render_mode` and `kwargs` go to that env."""
    env_id = task_env_id("halfcheetah-goal", env_id)
    return HalfCheetahGoal(make_env(env_id, render_mode, **kwargs), distance)


TASKS = {  # name: (the env it is built on by default, maker, gymnasium id)
    "ant-navigation": ("Ant-v5", ant_navigation, "skillforge/AntNavigation-v0"),
    "halfcheetah-hurdle": ("HalfCheetah-v5", halfcheetah_hurdle, "skillforge/HalfCheetahHurdle-v0"),
    "halfcheetah-goal": ("HalfCheetah-v5", halfcheetah_goal, "skillforge/HalfCheetahGoal-v0"),
}
for _, maker, gym_id in TASKS.values():
    if gym_id not in gym.registry:
        gym.register(gym_id, entry_point=maker, disable_env_checker=True)
GROUNDS = {"halfcheetah-hurdle": (HURDLE_COURSE,)}
"""Tasks whose ground is an env of its own, where a library may be pretrained."""


def task_envs(task: str) -> tuple[str, ...]:
    """The envs `task` can be built on: a named task's env and its WithPosition variant
    (`halfcheetah-goal`: HalfCheetah-v5, HalfCheetahWithPosition-v5), then its ground's if it
    has one (`GROUNDS`); any other task is its own env (an id or alias). An unknown task
    raises EnvError."""
    if task in TASKS:
        grounds = (TASKS[task][0], *GROUNDS.get(task, ()))
        return tuple(env for ground in grounds for env in (ground, with_position(ground)))
    try:
        return (resolve_env_id(task),)
    except EnvError:
        raise EnvError(
            f"unknown task {task!r}; tasks: {', '.join(TASKS)}, or an env id or alias"
        ) from None


def task_env_id(task: str, env_id: str | None = None) -> str:
    """The env `task` is built on: `env_id` (say, a library's env) if it is one of
    `task_envs(task)`, by default the first (`ant-navigation` -> Ant-v5); EnvError if not."""
    envs = task_envs(task)
    if env_id is None:
        return envs[0]
    try:
        env_id = resolve_env_id(env_id)
    except EnvError:
        env_id = str(env_id)
    if env_id not in envs:
        raise EnvError(f"task {task} is built on {' or '.join(envs)}, not on {env_id}")
    return env_id


def make_task(task: str, env_id: str | None = None) -> gym.Env:
    """Make the task env (see the module docstring for the named tasks), built on `env_id`
    (`task_env_id`: the task's default env if None)."""
    env_id = task_env_id(task, env_id)
    if task in TASKS:
        return TASKS[task][1](env_id=env_id)
    return make_env(env_id)
