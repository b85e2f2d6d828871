import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from skillforge.core.envs import ALIASES, episode_seed, make_env, resolve_env_id
from skillforge.core.errors import EnvError
from skillforge.reuse.skill_actions import SkillActionWrapper
from skillforge.reuse.tasks import TASKS, make_task, task_env_id


def test_every_alias_is_registered_and_continuous():
    for alias, env_id in ALIASES.items():
        assert resolve_env_id(alias) == env_id
        assert env_id in gym.registry
    env = make_env("hopper")
    assert env.action_space.shape == (3,) and env.observation_space.shape == (11,)
    env.close()


def test_gymnasium_ids_pass_through():
    assert resolve_env_id("Pendulum-v1") == "Pendulum-v1"


def test_unknown_env_suggests_close_names():
    with pytest.raises(EnvError, match="did you mean.*Hopper"):
        resolve_env_id("Hoper-v5")


def test_discrete_actions_are_refused():
    with pytest.raises(EnvError, match="Discrete action space.*continuous"):
        make_env("CartPole-v1")


def test_episode_seeds_are_a_pure_function():
    assert episode_seed(0, 5) == episode_seed(0, 5)
    assert len({episode_seed(0, i) for i in range(100)}) == 100
    assert episode_seed(1, 0) != episode_seed(0, 0)
    obs_a, _ = make_env("Pendulum-v1").reset(seed=episode_seed(3, 2))
    obs_b, _ = make_env("Pendulum-v1").reset(seed=episode_seed(3, 2))
    np.testing.assert_array_equal(obs_a, obs_b)


GYMNASIUM_NOTICES = (  # what gymnasium's checker says of any wrapped MuJoCo env
    "is different from the unwrapped version",
    "minimum value is -infinity",
    "maximum value is infinity",
)


class StillSkills:
    """Every skill holds the actions at zero: a SkillSet for an env with these shapes."""

    n_skills = 3

    def __init__(self, env_id: str) -> None:
        env = make_env(env_id)
        self.obs_dim, self.action_dim = env.observation_space.shape[0], env.action_space.shape[0]
        env.close()

    def act(self, obs, skills):
        return np.zeros((len(skills), self.action_dim), dtype=np.float32)


def shipped_env(name: str) -> gym.Env:
    """A named task by its gymnasium id, or the skill-action wrapper (`skills:<task>`) over a
    task or an env."""
    if not name.startswith("skills:"):
        return gym.make(TASKS[name][2])
    task = name.removeprefix("skills:")
    return SkillActionWrapper(make_task(task), StillSkills(task_env_id(task)), skill_steps=5)


@pytest.mark.parametrize(
    "name", [*TASKS, *(f"skills:{task}" for task in (*TASKS, "pendulum", "hopper"))]
)
def test_every_env_skillforge_ships_passes_gymnasiums_checker(name):
    env = shipped_env(name)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env, skip_render_check=True)  # "human" rendering needs a display
    problems = [
        str(w.message) for w in caught if not any(n in str(w.message) for n in GYMNASIUM_NOTICES)
    ]
    assert problems == []  # e.g. no float64 space over float32 observations
    again = gym.make(env.spec)  # made again from its spec, wrappers and arguments included
    assert (again.observation_space, again.action_space) == (
        env.observation_space,
        env.action_space,
    )
    assert isinstance(again, SkillActionWrapper) == name.startswith("skills:")
    obs, _ = again.reset(seed=0)
    assert obs in again.observation_space
    env.close()
    again.close()


@pytest.mark.parametrize("task", TASKS)
def test_named_tasks_render_when_asked(task):
    env = gym.make(TASKS[task][2], render_mode="rgb_array", width=32, height=32)
    env.reset(seed=0)
    assert env.render().shape == (32, 32, 3)
    env.close()
