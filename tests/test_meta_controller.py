"""The meta-controller on tasks with a known answer: scripted skills, no skill training.

The validation guard is off (`validation_episodes=0`) where they test the learner itself.
"""

from __future__ import annotations

import dataclasses

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.wrappers import TimeLimit

from skillforge.core.config import HierarchicalConfig
from skillforge.reuse import baselines
from skillforge.reuse.baselines import SELECTION_SEED_OFFSET
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
    returns = run_skill_policy(lanes, baselines.constant(skill), 123, 4)
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


def test_the_best_skill_is_chosen_apart_from_the_test_episodes():
    lanes = lanes_of(Cliff, n_skills=3, steps=100, k=5)
    assert baselines.best_skill(lanes, episodes=2, seed=0) == (0, 100.0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_switching_between_two_skills_beats_either_alone(seed):
    lanes = lanes_of(Shuttle, n_skills=2, steps=200, k=5)
    best_alone = max(constant_return(lanes, 0), constant_return(lanes, 1))
    meta = train_meta_controller(lanes, config(total_steps=30_000, skill_steps=5, seed=seed))
    assert best_alone == 1.0
    assert greedy_return(lanes, meta) >= 9.0  # one point per wall reached, 10 at best


def test_validation_keeps_the_best_network_outside_the_budget():
    """Validated every 3,000 steps on episodes of their own: the deployed network is the best
    validated one (its validation return reproduces), at least the best single skill's, and
    the validation steps are neither training decisions nor part of the budget."""
    lanes = lanes_of(Shuttle, n_skills=2, steps=200, k=5)
    checks = lanes_of(Shuttle, n_skills=2, steps=200, k=5, envs=2)
    settings = config(total_steps=30_000, skill_steps=5, validation_episodes=2)
    settings = dataclasses.replace(settings, validate_every=3_000)
    reported = []

    class Recorder:
        def on_step(self, step, metrics):
            reported.append((step, metrics))

    meta = train_meta_controller(lanes, settings, [Recorder()], checks)
    curve = meta.validation_curve
    assert [step // 3_000 for step, _ in curve[:-1]] == list(range(1, len(curve)))
    assert meta.validation["best"] == max(value for _, value in curve)
    assert meta.validation["meta-controller"] >= meta.validation["best-skill"] == 1.0
    assert meta.fallback is None
    seed = settings.seed + SELECTION_SEED_OFFSET
    again = run_skill_policy(checks, lambda obs, rng: meta.choose(obs), seed, episodes=2)
    assert np.mean(again) == meta.validation["best"]
    again = run_skill_policy(checks, lambda obs, rng: meta.choose(obs), seed + 1, episodes=6)
    assert np.mean(again) == meta.validation["meta-controller"]  # the deploy decision's
    # every validation: 2 episodes of 200 steps; then the network on 6 others, both skills
    # on the first 2 and the 2 best (both) on the 6 others
    assert meta.validation_env_steps == (len(curve) + 3 + 2 + 2 * 3) * 2 * 200
    trained = [step for step, metrics in reported if "return" in metrics]
    assert max(trained) <= settings.total_steps
    checked = [
        metrics["validation_return"] for _, metrics in reported if "validation_return" in metrics
    ]
    assert checked == [value for _, value in curve]
