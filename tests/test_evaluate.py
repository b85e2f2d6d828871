"""Evaluation measures on cases with a known answer; the periodic-evaluation callback."""

import math

import gymnasium as gym
import numpy as np
import pytest
import torch
from helpers import tiny_config
from torch import nn

from skillforge.core.errors import ConfigError, EnvError
from skillforge.core.positions import POSITIONS, PositionProbe, position_probe
from skillforge.evaluation.measures import coverage_bins, discriminator_scores
from skillforge.evaluation.report import PeriodicEvaluation, evaluate
from skillforge.evaluation.rollouts import random_policy_paths
from skillforge.evaluation.travel import travel_metrics
from skillforge.rl import loop
from skillforge.rl.nets import TanhGaussianPolicy
from skillforge.rl.spec import LibrarySpec
from skillforge.skills.library import SkillLibrary

STEPS = 10  # LineWalk episode length


class LineWalk(gym.Env):
    """x starts at 0.5 and moves by the action (in [-1, 1]); reward = displacement."""

    observation_space = gym.spaces.Box(-np.inf, np.inf, (1,), np.float32)
    action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)

    def __init__(self, render_mode=None):
        self.render_mode = render_mode

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.x = 0.5
        return np.array([self.x], np.float32), {}

    def step(self, action):
        move = float(np.clip(action[0], -1, 1))
        self.x += move
        return np.array([self.x], np.float32), move, False, False, {}


if "LineWalk-v0" not in gym.registry:
    gym.register("LineWalk-v0", entry_point=LineWalk, max_episode_steps=STEPS)


@pytest.fixture
def line_probe(monkeypatch):
    probe = PositionProbe("x", 1.0, lambda env, obs: np.array([env.x]))
    monkeypatch.setitem(POSITIONS, "LineWalk", probe)
    random_policy_paths.cache_clear()
    return probe


def walker_library(discriminator: nn.Module | None = None) -> SkillLibrary:
    """Two skills by hand: skill 0 walks right at full speed, skill 1 left."""
    spec = LibrarySpec("LineWalk-v0", 1, 1, (-1.0,), (1.0,), n_skills=2, hidden=2)
    policy = TanhGaussianPolicy(3, 1, 2, spec.action_low, spec.action_high)
    first, second, last = (m for m in policy.net if isinstance(m, nn.Linear))
    with torch.no_grad():
        for layer in (first, second, last):
            layer.weight.zero_()
            layer.bias.zero_()
        first.weight[0, 1] = first.weight[1, 2] = 1.0  # hidden = one-hot skill
        second.weight.copy_(torch.eye(2))
        last.weight[0] = torch.tensor([10.0, -10.0])  # mean = 10 (z0 - z1), tanh -> +-1
    if discriminator is None:  # q(z|s): skill 0 right of 0.5, skill 1 left
        discriminator = nn.Linear(1, 2)
        with torch.no_grad():
            discriminator.weight.copy_(torch.tensor([[20.0], [-20.0]]))
            discriminator.bias.copy_(torch.tensor([-10.0, 10.0]))
    return SkillLibrary(spec, policy, discriminator, name="walkers")


class MarkerDiscriminator(nn.Module):
    """Reads the skill from the state's first component: confident and always right, or
    (shift=1) confident and always naming the next skill."""

    def __init__(self, n_skills: int, shift: int = 0) -> None:
        super().__init__()
        self.n_skills, self.shift = n_skills, shift

    def forward(self, states):
        target = (states[:, 0].long() + self.shift) % self.n_skills
        return 50.0 * nn.functional.one_hot(target, self.n_skills).float()


def marked_states(n_skills: int) -> list[np.ndarray]:
    """Skill k's states carry k in component 0; episode lengths differ from skill to skill."""
    rng = np.random.default_rng(0)
    return [
        np.column_stack([np.full(3 + 7 * k, k), rng.normal(size=3 + 7 * k)]).astype(np.float32)
        for k in range(n_skills)
    ]


def test_a_perfect_discriminator_scores_every_skill_as_itself():
    n = 5
    scores, confusion = discriminator_scores(MarkerDiscriminator(n), marked_states(n), n)
    assert scores["discriminator_accuracy"] == 1.0
    assert -1e-6 < scores["log_q_z"] <= 0.0
    assert scores["mutual_information_bound"] == pytest.approx(math.log(n), abs=1e-6)
    assert scores["mutual_information_fraction"] == pytest.approx(1.0, abs=1e-6)
    # every skill counts once, whatever its episode length: exactly N effective skills
    assert scores["effective_skills"] == pytest.approx(n)
    np.testing.assert_array_equal(confusion, np.eye(n))


def test_a_constant_discriminator_is_at_chance_with_one_effective_skill():
    n = 4
    constant = lambda states: torch.zeros(len(states), n)  # noqa: E731
    scores, confusion = discriminator_scores(constant, marked_states(n), n)
    assert scores["log_q_z"] == pytest.approx(-math.log(n))
    assert scores["mutual_information_bound"] == pytest.approx(0.0, abs=1e-9)
    assert scores["mutual_information_fraction"] == pytest.approx(0.0, abs=1e-9)
    assert scores["effective_skills"] == pytest.approx(1.0)  # it always names skill 0
    assert scores["discriminator_accuracy"] == pytest.approx(1 / n)
    assert np.all(confusion[:, 0] == 1.0)


def test_a_confidently_wrong_discriminator_has_n_effective_skills_but_no_accuracy():
    n = 3
    scores, _ = discriminator_scores(MarkerDiscriminator(n, shift=1), marked_states(n), n)
    assert scores["discriminator_accuracy"] == 0.0
    assert scores["effective_skills"] == pytest.approx(n)
    assert scores["mutual_information_fraction"] < -10  # far below chance: log q ~ -50


def test_coverage_counts_distinct_bins_in_one_and_two_dimensions():
    line = [np.array([[0.1], [0.9], [1.2]]), np.array([[-0.2], [5.0]])]
    assert coverage_bins(line, 1.0) == 4  # bins 0, 1, -1, 5
    assert coverage_bins(line, 0.5) == 5  # 0, 1, 2, -1, 10
    plane = [np.array([[0.2, 0.2], [0.7, 0.9], [1.1, 0.1], [-0.1, 3.5]])]
    assert coverage_bins(plane, 1.0) == 3  # (0, 0), (1, 0), (-1, 3)
    assert coverage_bins([], 1.0) == 0


def test_skills_that_walk_known_paths_give_known_measures(line_probe):
    library = walker_library()
    calls = []
    act = library.act
    library.act = lambda obs, skills: calls.append(len(skills)) or act(obs, skills)
    report = evaluate(library, episodes=3)
    metrics = report.metrics()

    assert calls == [2] * (3 * STEPS)  # lockstep: one batched policy call per step
    speed = math.tanh(10.0)
    assert metrics["return/skill_00"] == pytest.approx(STEPS * speed)
    assert metrics["return/skill_01"] == pytest.approx(-STEPS * speed)
    assert metrics["return_std/skill_00"] == pytest.approx(0.0, abs=1e-9)
    assert metrics["best_skill"] == 0 and metrics["best_skill_return"] == pytest.approx(STEPS)
    assert metrics["episodes"] == 3 and metrics["episode_length"] == STEPS
    # x from 0.5 to ~10.5 and to ~-9.5: bins 0..10 and -10..0, 21 in all
    assert metrics["coverage_bins"] == 2 * STEPS + 1
    assert 1 <= metrics["random_coverage_bins"] < 2 * STEPS + 1
    assert metrics["discriminator_accuracy"] == 1.0
    assert metrics["effective_skills"] == pytest.approx(2.0)
    assert report.trajectories[0][0][:, 0] == pytest.approx(0.5 + speed * np.arange(STEPS + 1))
    assert len(report.trajectories[1]) == 3
    assert report.coverage_of == "x, bins of 1"
    # travel: skill 0 ends STEPS x speed forward, skill 1 as far backward, in every episode
    assert metrics["displacement/skill_00"] == pytest.approx(STEPS * speed)
    assert metrics["displacement/skill_01"] == pytest.approx(-STEPS * speed)
    assert metrics["max_forward_m"] == metrics["max_backward_m"] == pytest.approx(STEPS * speed)
    assert len(report.random_trajectories) == 2 * 3  # the random policy's paths, drawn beside


def test_travel_is_measured_after_the_horizon_signed_on_a_track_and_as_distance_in_a_plane():
    track = [[np.arange(301.0)[:, None]], [-0.5 * np.arange(11.0)[:, None]]]  # 300 and 10 steps
    metrics = travel_metrics(track, dt=0.05, horizon=200)
    assert metrics["displacement/skill_00"] == 200.0  # after 200 steps, not at the end (300)
    assert metrics["displacement/skill_01"] == -5.0  # an episode shorter than the horizon: its end
    assert metrics["speed/skill_00"] == pytest.approx(200.0 / (200 * 0.05))
    assert metrics["speed/skill_01"] == pytest.approx(5.0 / (10 * 0.05))
    assert (metrics["max_forward_m"], metrics["max_backward_m"]) == (200.0, 5.0)
    plane = [[np.array([[1.0, 1.0], [4.0, 5.0]]), np.array([[0.0, 0.0], [0.0, -1.0]])]]
    metrics = travel_metrics(plane, dt=None)
    assert metrics["displacement/skill_00"] == pytest.approx((5.0 + 1.0) / 2)  # mean distance
    assert metrics["max_distance_m"] == pytest.approx(3.0) and "speed/skill_00" not in metrics


def test_the_random_baseline_is_a_fixed_function_of_env_episodes_and_seed(line_probe):
    first = random_policy_paths("LineWalk-v0", 4, 2, 0)
    random_policy_paths.cache_clear()
    again = random_policy_paths("LineWalk-v0", 4, 2, 0)
    assert len(again) == len(first) == 4 * 2
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a, b)  # the same paths, so the same coverage


@pytest.mark.parametrize(
    "env_id, dims", [("Hopper-v5", 1), ("Ant-v5", 2), ("HalfCheetah-v5", 1), ("Walker2d-v5", 1)]
)
def test_mujoco_positions_read_the_torso(env_id, dims):
    env = gym.make(env_id)
    env.reset(seed=0)
    data = env.unwrapped.data
    data.qpos[:2] = [3.7, -1.2]
    probe = position_probe(env_id)
    assert probe.bin_size == 1.0
    np.testing.assert_allclose(probe.read(env.unwrapped, None), [3.7, -1.2][:dims])
    env.close()


def test_box2d_and_classic_positions():
    env = gym.make("BipedalWalker-v3")
    env.reset(seed=0)
    x = position_probe("BipedalWalker-v3").read(env.unwrapped, None)
    assert x.shape == (1,) and x[0] == pytest.approx(env.unwrapped.hull.position[0])
    env = gym.make("LunarLanderContinuous-v3")
    env.reset(seed=0)
    xy = position_probe("LunarLanderContinuous-v3").read(env.unwrapped, None)
    np.testing.assert_allclose(xy, tuple(env.unwrapped.lander.position))
    env = gym.make("Pendulum-v1")
    obs, _ = env.reset(seed=0)
    angle = position_probe("Pendulum-v1").read(env.unwrapped, obs)[0]
    theta = env.unwrapped.state[0]
    assert angle == pytest.approx(math.atan2(math.sin(theta), math.cos(theta)), abs=1e-6)
    mountain = position_probe("MountainCarContinuous-v0")
    assert mountain.read(None, np.array([-0.55, 0.0]))[0] == -0.55
    assert position_probe("Reacher-v5") is None  # no sensible position: no coverage


def test_refusals_are_clear(line_probe):
    library = walker_library()
    with pytest.raises(ConfigError, match="--episodes must be at least 1, got 0"):
        evaluate(library, episodes=0)
    spec = LibrarySpec("NoSuchEnv-v0", 1, 1, (-1.0,), (1.0,), 2, 2)
    lost = SkillLibrary(spec, library.policy, library.discriminator, name="lost")
    with pytest.raises(EnvError, match="cannot evaluate library lost: unknown environment"):
        evaluate(lost)


def test_periodic_evaluation_reports_on_schedule_and_leaves_training_untouched(tmp_path):
    config = tiny_config(total_steps=300, log_every=50)
    reports = []
    periodic = PeriodicEvaluation(
        100, lambda report, step: reports.append((step, report.metrics())), episodes=1
    )
    with_eval = loop.train(config, str(tmp_path / "a.pt"), [periodic])
    without = loop.train(config, str(tmp_path / "b.pt"))

    assert [step for step, _ in reports] == [100, 200]  # the final one is the pipeline's
    for _, metrics in reports:
        assert {"log_q_z", "effective_skills", "coverage_bins", "return/skill_03"} <= set(metrics)
    for key, tensor in with_eval.agent.state_dict().items():
        torch.testing.assert_close(tensor, without.agent.state_dict()[key], rtol=0, atol=0)
    assert all(p.requires_grad for p in with_eval.agent.sac.policy.parameters())
    with pytest.raises(ConfigError, match="--eval-every"):
        PeriodicEvaluation(-1, print)
