"""Environments: aliases, construction, and the checks that make an env usable for skills."""

from __future__ import annotations

import contextlib
import difflib
import sys

import gymnasium as gym
import numpy as np

from skillforge.core import hurdles, position_envs
from skillforge.core.errors import EnvError

ALIASES: dict[str, str] = {
    "hopper": "Hopper-v5",
    "halfcheetah": "HalfCheetah-v5",
    "halfcheetah-hurdles": hurdles.ENV_ID,
    "walker2d": "Walker2d-v5",
    "ant": "Ant-v5",
    "humanoid": "Humanoid-v5",
    "bipedalwalker": "BipedalWalker-v3",
    "mountaincar": "MountainCarContinuous-v0",
    "pendulum": "Pendulum-v1",
    "lunarlander": "LunarLanderContinuous-v3",
}
hurdles.register()
position_envs.register()


def resolve_env_id(name: str) -> str:
    """Map an alias or a registered gymnasium id to the id; unknown names raise EnvError."""
    if name.lower() in ALIASES:
        return ALIASES[name.lower()]
    if name in gym.registry:
        return name
    close = difflib.get_close_matches(name, list(ALIASES) + list(gym.registry), n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise EnvError(
        f"unknown environment {name!r}{hint} (aliases: {', '.join(ALIASES)}; "
        "or any registered gymnasium id with a continuous action space)"
    )


def make_env(env_id: str, render_mode: str | None = None, **kwargs) -> gym.Env:
    """Make a gymnasium env whose action space is a bounded Box and observation a flat Box."""
    env_id = resolve_env_id(env_id)
    try:
        with _known_mujoco_warnings_dropped(env_id):
            env = gym.make(env_id, render_mode=render_mode, **kwargs)
    except gym.error.Error as error:
        raise EnvError(f"cannot make {env_id}: {error}") from None
    except (ImportError, ModuleNotFoundError) as error:
        raise EnvError(f"cannot make {env_id}: missing dependency ({error})") from None
    check_spaces(env_id, env)
    return env


KNOWN_MUJOCO_WARNINGS = ("compiler attribute 'settotalmass' is deprecated",)
"""MuJoCo warnings about gymnasium's own model files (HalfCheetah's XML under MuJoCo 4), which
a user can do nothing about. MuJoCo prints each to stderr and appends it to MUJOCO_LOG.TXT
in the working folder, every time the model is compiled."""


@contextlib.contextmanager
def _known_mujoco_warnings_dropped(env_id: str):
    """While a MuJoCo env is made, MuJoCo's warning handler drops `KNOWN_MUJOCO_WARNINGS` and
    shows any other warning as MuJoCo would; the previous handler is put back afterwards."""
    entry_point = str(gym.spec(env_id).entry_point)
    if "mujoco" not in entry_point and not entry_point.startswith(hurdles.__name__):
        yield
        return
    import mujoco

    previous = mujoco.get_mju_user_warning()

    def warn(message: str) -> None:
        if message.startswith(KNOWN_MUJOCO_WARNINGS):
            return
        if previous is not None:
            previous(message)
        else:
            print(f"WARNING: {message}\n", file=sys.stderr)

    mujoco.set_mju_user_warning(warn)
    try:
        yield
    finally:
        mujoco.set_mju_user_warning(previous)


def steps_for_episodes(env_id: str, episodes: int) -> int:
    """The most env steps `episodes` episodes can take (each ends by its time limit): the step
    cap of an episode budget. Envs without a time limit count 1,000 steps an episode."""
    limit = gym.spec(resolve_env_id(env_id)).max_episode_steps or 1000
    return max(1, episodes * limit)


def check_spaces(env_id: str, env: gym.Env) -> None:
    """Refuse discrete actions, unbounded actions and non-vector observations."""
    action_space, observation_space = env.action_space, env.observation_space
    if not isinstance(action_space, gym.spaces.Box):
        env.close()
        raise EnvError(
            f"{env_id} has a {type(action_space).__name__} action space; skillforge needs "
            f"continuous (Box) actions, e.g. {', '.join(sorted(ALIASES))}"
        )
    if not (np.all(np.isfinite(action_space.low)) and np.all(np.isfinite(action_space.high))):
        env.close()
        raise EnvError(f"{env_id} has unbounded actions; skillforge needs finite action bounds")
    if not isinstance(observation_space, gym.spaces.Box) or len(observation_space.shape) != 1:
        env.close()
        raise EnvError(f"{env_id} observations are not a flat vector (Box of rank 1)")


EVAL_SEED_OFFSET = 1_000_003
"""Held-out (evaluation) episodes start from `episode_seed(seed + EVAL_SEED_OFFSET, j)`:
seeds no training episode uses, the same for every method that is compared."""


def episode_seed(seed: int, episode: int) -> int:
    """The reset seed of episode `episode`: a pure function, so a resumed run can replay it."""
    return int(np.random.SeedSequence([seed, episode]).generate_state(1)[0])
