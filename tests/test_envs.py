import gymnasium as gym
import numpy as np
import pytest

from skillforge.core.envs import ALIASES, episode_seed, make_env, resolve_env_id
from skillforge.core.errors import EnvError


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
