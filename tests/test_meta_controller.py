"""The meta-controller on tasks with a known answer: scripted skills, no skill training.

The validation guard is off (`validation_episodes=0`) where they test the learner itself.
"""

from __future__ import annotations

import dataclasses

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.wrappers import TimeLimit

from skillforge.core.downstream_config import HierarchicalConfig
from skillforge.reuse import baselines
from skillforge.reuse.baselines import SELECTION_SEED_OFFSET
from skillforge.reuse.budget import TaskBudget, check_equal_experience
from skillforge.reuse.meta_controller import dqn_loss, train_meta_controller, window_return
from skillforge.reuse.meta_selection import lower_bound, surely_better
from skillforge.reuse.skill_actions import SkillActionEnvs, run_skill_policy
from skillforge.rl.replay import Batch


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


class Nothing(Cliff):
    """Never pays, never ends early."""

    def step(self, action):
        return np.zeros(1, np.float32), 0.0, False, False, {}


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
    chosen = baselines.best_skill(lanes, episodes=2, seed=0)
    assert (chosen.skill, chosen.mean, chosen.longest) == (0, 100.0, 100)
    assert chosen.returns.tolist() == [100.0] * 6  # the second round: 3 x 2 episodes


def test_the_best_skill_baseline_spends_its_whole_budget_choosing():
    """Every step of the choice is paid from the budget; with `spend_all` the two candidates
    play more second-round episodes until less than one decision is left."""
    lanes = lanes_of(Cliff, n_skills=3, steps=100, k=5)
    budget = TaskBudget(5_000)
    chosen = baselines.best_skill(lanes, 2, 0, budget=budget, spend_all=True)
    assert chosen.skill == 0 and 5_000 - 5 < budget.used <= 5_000
    # skill 0 plays 100 steps an episode, the others fall at once: 2 x 100 + 4 x 1 first,
    # then rounds of 6 episodes each (606 steps) until the budget ends
    assert len(chosen.returns) > 6 and set(chosen.returns) == {100.0}
    few = TaskBudget(150)  # not one episode of skill 0 ends: cut, not scored
    assert baselines.best_skill(lanes, 2, 0, budget=few).mean == -np.inf
    assert few.used == 150


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_switching_between_two_skills_beats_either_alone(seed):
    lanes = lanes_of(Shuttle, n_skills=2, steps=200, k=5)
    best_alone = max(constant_return(lanes, 0), constant_return(lanes, 1))
    meta = train_meta_controller(lanes, config(total_steps=30_000, skill_steps=5, seed=seed))
    assert best_alone == 1.0
    assert greedy_return(lanes, meta) >= 9.0  # one point per wall reached, 10 at best


def test_validation_keeps_the_best_network_inside_the_budget():
    """Validated every 3,000 task env steps on episodes of their own: the deployed network is
    the best validated one (its validation return reproduces), at least the best single
    skill's, and the selection and validation steps are paid from the same budget as
    training: all of it is used, never more."""
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
    # the selection: both skills on 2 episodes, both again on 6 others (200 steps each);
    # every check 2 episodes; the final comparison plays the others until the budget ends
    selection = (2 * 2 + 2 * 6) * 200
    final = meta.validation_env_steps - len(curve) * 2 * 200
    assert final >= 6 * 200  # at least the skill's own second round fitted
    again = run_skill_policy(checks, lambda obs, rng: meta.choose(obs), seed + 1, episodes=6)
    assert np.mean(again) >= meta.validation["best-skill"]
    assert 30_000 - 5 < meta.task_env_steps <= 30_000
    trained = [step for step, metrics in reported if "return" in metrics]
    assert selection < min(trained) and max(trained) <= settings.total_steps
    checked = [
        metrics["validation_return"] for _, metrics in reported if "validation_return" in metrics
    ]
    assert checked == [value for _, value in curve]


def test_exploration_decays_over_the_budget_left_after_the_selection():
    """Epsilon is 1 at the first training decision (not already decayed by the selection's
    steps) and reaches its end value only after `exploration_fraction` of what is left."""
    lanes = lanes_of(Cliff, n_skills=3, steps=100, k=5)
    checks = lanes_of(Cliff, n_skills=3, steps=100, k=5, envs=2)
    settings = config(total_steps=6_000, skill_steps=5, validation_episodes=2, learning_starts=0)
    epsilons = []

    class Recorder:
        def on_step(self, step, metrics):
            if "epsilon" in metrics:
                epsilons.append((step, metrics["epsilon"]))

    train_meta_controller(lanes, settings, [Recorder()], checks)
    # the selection: skill 0 on 2 + 6 episodes of 100 steps, the others fall at once
    selection = 8 * 100 + 4 * 1 + 6 * 1
    span = 0.3 * (6_000 - selection - (1 + 3) * 2 * 100)  # the reserve: 4 x 2 episodes
    training = [(step, eps) for step, eps in epsilons if step > selection]
    assert training[0][1] > 0.9
    for step, eps in training:
        expected = max(0.05, 1 - 0.95 * (step - selection) / span)
        assert abs(eps - expected) < 0.05, (step, eps, expected)
    assert training[-1][1] == 0.05


def test_a_window_of_known_rewards_gives_the_discounted_return():
    rewards = np.array([[1.0, 2.0, 3.0], [4.0, 0.0, 0.0]])  # the second cut after one step
    np.testing.assert_allclose(window_return(rewards, 0.5), [1 + 1 + 0.75, 4.0])


class FixedQ(torch.nn.Module):
    """Q(s, .) = (1, 3) everywhere."""

    def forward(self, obs):
        return torch.tensor([[1.0, 3.0]]).expand(len(obs), 2)


@pytest.mark.parametrize(("tau", "terminated"), [(10, 0.0), (4, 0.0), (4, 1.0)])
def test_the_target_bootstraps_with_gamma_to_the_window_length(tau, terminated):
    """A full window of K = 10 bootstraps with gamma^10, a window cut after 4 steps by the
    time limit with gamma^4 (truncation is not termination), a terminated one not at all."""
    batch = Batch(
        obs=torch.zeros(1, 2),
        skill=torch.tensor([0]),
        action=torch.tensor([[float(tau)]]),
        reward=torch.tensor([2.0]),
        next_obs=torch.zeros(1, 2),
        terminated=torch.tensor([terminated]),
    )
    _, q, target = dqn_loss(FixedQ(), FixedQ(), batch, gamma=0.9)
    assert q.item() == 1.0
    assert target.item() == pytest.approx(2.0 + (1 - terminated) * 0.9**tau * 3.0)


def test_a_truncated_window_reports_its_real_length():
    lanes = lanes_of(Cliff, n_skills=1, steps=12, k=5, envs=1)
    lanes.reset(0, seed=0)
    lengths = []
    while not lengths or lengths[-1] == 5:
        result = lanes.step(np.zeros(1))
        lengths.append(int(result.env_steps[0]))
    assert lengths == [5, 5, 2] and result.truncated[0] and not result.terminated[0]
    np.testing.assert_array_equal(result.step_rewards, [[1.0, 1.0, 0.0, 0.0, 0.0]])


def test_a_tie_keeps_the_skill():
    """All-zero returns (a sparse task nobody solved): the lower bound equals the skill's
    mean and the skill is kept, by the meta-controller as by fine-tuning."""
    zeros = np.zeros(24)
    assert lower_bound(zeros, 0.0) == 0.0 and not surely_better(lower_bound(zeros, 0.0), 0.0)
    assert surely_better(lower_bound(np.full(24, 1.0), 0.0), 0.0)
    lanes = lanes_of(Nothing, n_skills=3, steps=50, k=5)
    checks = lanes_of(Nothing, n_skills=3, steps=50, k=5, envs=2)
    settings = config(total_steps=4_000, skill_steps=5, validation_episodes=2)
    meta = train_meta_controller(lanes, settings, (), checks)
    assert meta.validation["meta-controller-lower-bound"] == meta.validation["best-skill"] == 0.0
    assert meta.fallback == meta.best_skill == 0


def test_unequal_experience_is_no_comparison():
    check_equal_experience({"meta-controller": 20_000, "sac": 19_850})  # within 1%
    with pytest.raises(ValueError, match="unequal task experience"):
        check_equal_experience({"meta-controller": 20_000, "sac": 19_700})
