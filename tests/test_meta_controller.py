"""The meta-controller on tasks with a known answer: scripted skills, no skill training.

The validation guard is off (`validation_episodes=0`): these test the learner itself.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.wrappers import TimeLimit

from skillforge.core.config import HierarchicalConfig
from skillforge.reuse.meta_controller import train_meta_controller
from skillforge.reuse.skill_actions import SkillActionEnvs, run_skill_policy


class ScriptedSkills:
    """Skill k outputs the action k (one number), whatever it sees."""

    action_dim = 1

    def __init__(self, n_skills: int, obs_dim: int) -> None:
        self.n_skills, self.obs_dim = n_skills, obs_dim

    def act(self, obs, skills):
        return np.asarray(skills, dtype=np.float32)[:, None]


class Cliff(gym.Env):
    """+1 a step; any action but 0 falls (the episode ends). Skill 0 alone earns the limit."""

    observation_space = gym.spaces.Box(0.0, 1.0, (1,), np.float32)
    action_space = gym.spaces.Box(0.0, 2.0, (1,), np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.zeros(1, np.float32), {}

    def step(self, action):
        self.t += 1
        fell = float(action[0]) > 0.5
        return np.array([self.t / 100], np.float32), 1.0, fell, False, {}


class Shuttle(gym.Env):
    """Run between the walls at x = -1 and +1: +1 each time the wall asked for (the second
    observation) is reached. Skill 0 moves right, skill 1 left; either alone earns 1 or 0,
    switching at each wall earns about one point per 20 steps."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
    action_space = gym.spaces.Box(0.0, 1.0, (1,), np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.x, self.goal = 0.0, 1.0
        return self._obs(), {}

    def step(self, action):
        move = 0.1 if float(action[0]) < 0.5 else -0.1
        self.x = float(np.clip(round(self.x + move, 2), -1.0, 1.0))
        reward = 0.0
        if self.x == self.goal:
            reward, self.goal = 1.0, -self.goal
        return self._obs(), reward, False, False, {}

    def _obs(self):
        return np.array([self.x, self.goal], np.float32)


def lanes_of(env_class, n_skills: int, steps: int, k: int, envs: int = 4) -> SkillActionEnvs:
    made = [TimeLimit(env_class(), max_episode_steps=steps) for _ in range(envs)]
    return SkillActionEnvs(made, ScriptedSkills(n_skills, made[0].observation_space.shape[0]), k)


def greedy_return(lanes: SkillActionEnvs, meta, seed: int = 123) -> float:
    return float(np.mean(run_skill_policy(lanes, lambda obs, rng: meta.choose(obs), seed, 4)))


def constant_return(lanes: SkillActionEnvs, skill: int) -> float:
    returns = run_skill_policy(lanes, lambda obs, rng: np.full(len(obs), skill), 123, 4)
    return float(np.mean(returns))


def config(**changes) -> HierarchicalConfig:
    values = dict(hidden=32, batch_size=32, learning_starts=64, envs=4, validation_episodes=0)
    return HierarchicalConfig(**{**values, **changes})


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_skill_that_never_falls_is_chosen(seed):
    lanes = lanes_of(Cliff, n_skills=3, steps=100, k=5)
    meta = train_meta_controller(lanes, config(total_steps=6_000, skill_steps=5, seed=seed))
    assert meta.fallback is None  # the learner's own choice, not the guard's
    assert greedy_return(lanes, meta) == constant_return(lanes, 0) == 100.0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_switching_between_two_skills_beats_either_alone(seed):
    lanes = lanes_of(Shuttle, n_skills=2, steps=200, k=5)
    best_alone = max(constant_return(lanes, 0), constant_return(lanes, 1))
    meta = train_meta_controller(lanes, config(total_steps=30_000, skill_steps=5, seed=seed))
    assert best_alone == 1.0
    assert greedy_return(lanes, meta) >= 9.0  # one point per wall reached, 10 at best
