"""Skill reuse: the skill-action wrapper, tasks' rewards, frozen skills, the tracked run."""

import gymnasium as gym
import mlflow
import numpy as np
import pytest
import torch
from helpers import tiny_config
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from cli.main import app
from skillforge import export_library
from skillforge.app import pretrain as pipeline
from skillforge.app.hierarchical import train_hierarchical
from skillforge.app.library import promote_library
from skillforge.core.config import NO_EVALUATION
from skillforge.core.downstream_config import HierarchicalConfig
from skillforge.core.errors import ConfigError, EnvError
from skillforge.core.hurdles import HURDLE_HEIGHT, HURDLE_SPACING
from skillforge.reuse import baselines
from skillforge.reuse.budget import TaskBudget
from skillforge.reuse.meta_controller import reward_scale_for, train_meta_controller
from skillforge.reuse.meta_selection import Validation
from skillforge.reuse.skill_actions import SkillActionEnvs, SkillActionWrapper, run_skill_policy
from skillforge.reuse.task_sac import TaskSACSettings, greedy_play, scratch_agent, train_task_sac
from skillforge.reuse.tasks import WAYPOINTS, make_task
from skillforge.skills.sources import LibrarySkills, OnnxSkills, RegistrySkills


class ConstantSkills:
    """Skill k always outputs the torque (k - 1) on Pendulum: easy to replay by hand."""

    n_skills, obs_dim, action_dim = 3, 3, 1

    def act(self, obs, skills):
        assert obs.shape == (len(skills), 3)
        return (np.asarray(skills, dtype=np.float32) - 1.0)[:, None]


class Ticking(gym.Wrapper):
    """Pendulum whose info counts the steps of the episode."""

    def reset(self, **kwargs):
        self.ticks = 0
        return self.env.reset(**kwargs)

    def step(self, action):
        self.ticks += 1
        obs, reward, terminated, truncated, info = self.env.step(action)
        return obs, reward, terminated, truncated, {**info, "tick": self.ticks}


def test_wrapper_runs_k_steps_sums_rewards_and_stops_at_the_episode_end():
    env = SkillActionWrapper(Ticking(gym.make("Pendulum-v1")), ConstantSkills(), skill_steps=30)
    assert env.action_space == gym.spaces.Discrete(3)
    assert env.observation_space.shape == (3,)
    reference = gym.make("Pendulum-v1")
    env.reset(seed=5)
    reference.reset(seed=5)
    decisions = 0
    while True:
        skill = decisions % 3
        obs, reward, terminated, truncated, info = env.step(skill)
        expected, steps = 0.0, 0
        for _ in range(30):
            ref_obs, ref_reward, ref_term, ref_trunc, _ = reference.step([skill - 1.0])
            expected += ref_reward
            steps += 1
            if ref_term or ref_trunc:
                break
        decisions += 1
        assert info["env_steps"] == steps
        assert info["tick"] == min(30 * decisions, 200)  # the task's info of the last step
        assert reward == pytest.approx(expected)
        np.testing.assert_allclose(obs, ref_obs)
        if terminated or truncated:
            break
    assert decisions == 7 and steps == 20 and truncated  # 200 = 6 * 30 + 20
    with pytest.raises(ValueError):
        env.step(3)
    with pytest.raises(ValueError):
        SkillActionWrapper(gym.make("Pendulum-v1"), ConstantSkills(), skill_steps=0)


def test_lanes_step_in_lockstep_and_give_the_single_env_results():
    def policy(obs, rng):  # depends on the observation only
        return (obs[:, 2] > 0).astype(np.int64) * 2

    alone = SkillActionEnvs([gym.make("Pendulum-v1")], ConstantSkills(), skill_steps=7)
    expected = run_skill_policy(alone, policy, seed=3, episodes=5)
    calls = []

    class CountingSkills(ConstantSkills):
        def act(self, obs, skills):
            calls.append(len(obs))
            return super().act(obs, skills)

    lanes = SkillActionEnvs([gym.make("Pendulum-v1") for _ in range(3)], CountingSkills(), 7)
    assert run_skill_policy(lanes, policy, seed=3, episodes=5) == pytest.approx(expected)
    assert max(calls) == 3 and sum(calls) == 5 * 200  # one call per env step for all lanes
    with pytest.raises(RuntimeError, match="reset"):
        lanes.step(np.zeros(3))  # every lane's episode has ended
    obs, _ = lanes.reset(0, seed=0)
    assert obs.dtype == np.float32 and obs.shape == (3,)
    with pytest.raises(ValueError, match="one skill at a time"):
        lanes.step(np.zeros(2), lanes=np.array([0, 0]))
    with pytest.raises(ValueError, match="2 skills for 1 lanes"):
        lanes.step(np.zeros(2), lanes=np.array([0]))
    with pytest.raises(ValueError, match="out of range"):
        lanes.step(np.array([3]), lanes=np.array([0]))


def test_reward_scale_brings_dense_rewards_to_q_values_of_order_ten():
    dense = torch.tensor([12.0, -14.0, 16.0, 18.0])  # Hopper: ~15 per decision of K=10 steps
    assert reward_scale_for(dense) == pytest.approx(1 / 150)
    assert reward_scale_for(torch.tensor([0.0, 0.0, 1.0, 0.0])) == pytest.approx(0.4)
    assert reward_scale_for(torch.tensor([0.0, 0.0, 0.01])) == 1.0  # never scaled up
    assert reward_scale_for(torch.zeros(3)) == 1.0 and reward_scale_for(torch.zeros(0)) == 1.0


def test_a_library_of_another_env_is_refused():
    with pytest.raises(EnvError, match="another environment"):
        SkillActionWrapper(gym.make("Hopper-v5"), ConstantSkills(), skill_steps=5)


def test_ant_navigation_rewards_waypoints_in_order_up_to_five():
    env = make_task("ant-navigation")
    env.reset(seed=0)
    ant = env.unwrapped

    def move_to(xy):
        qpos, qvel = ant.data.qpos.copy(), ant.data.qvel.copy()
        qpos[:2] += np.asarray(xy) - env.centre_of_mass()
        ant.set_state(qpos, qvel)

    move_to(WAYPOINTS[1])  # the second waypoint first: no reward
    assert env.waypoint_reward() == 0.0
    move_to(WAYPOINTS[0] + [0.3, 0.3])  # within 0.5 m
    assert env.waypoint_reward() == 1.0
    assert env.waypoint_reward() == 0.0  # reached once only
    move_to(WAYPOINTS[1] + [0.6, 0.0])  # 0.6 m away: not yet
    assert env.waypoint_reward() == 0.0
    total = 1.0
    for waypoint in WAYPOINTS[1:]:
        move_to(waypoint)
        total += env.waypoint_reward()
    assert total == 5.0 and env.reached == 5
    assert env.waypoint_reward() == 0.0
    obs, _ = env.reset(seed=1)
    assert obs.shape == (105 + 5,) and env.reached == 0


def test_halfcheetah_hurdle_has_hurdles_and_rewards_forward_progress():
    env = make_task("halfcheetah-hurdle")
    model = env.unwrapped.model
    hurdles = [model.geom(i) for i in range(model.ngeom) if model.geom(i).name.startswith("hurdle")]
    assert len(hurdles) == 40
    first = min(hurdles, key=lambda geom: geom.pos[0])
    assert first.pos[0] == pytest.approx(HURDLE_SPACING)
    assert 2 * first.size[2] == pytest.approx(HURDLE_HEIGHT)
    obs, _ = env.reset(seed=0)
    assert obs[-1] == pytest.approx(HURDLE_SPACING - env.x())
    for _ in range(20):
        before = env.x()
        obs, reward, *_ = env.step(env.action_space.sample())
        assert reward == pytest.approx((env.x() - before) / env.unwrapped.dt)


@pytest.fixture
def library(store):
    return pipeline.pretrain(tiny_config(name="lib"), store, evaluation=NO_EVALUATION)


def test_skills_stay_frozen_and_every_source_gives_the_same_results(library, store):
    export_library(library.library)  # exports/lib/ in the test's working folder
    sources = {
        "checkpoint": LibrarySkills(library.library),
        "registry": RegistrySkills.load("lib", library.library.spec, store),
        "onnx": OnnxSkills.load("lib", library.library.spec),
    }
    obs = np.random.default_rng(0).normal(size=(20, 3)).astype(np.float32)
    mixed = np.arange(20) % 4
    expected = sources["checkpoint"].act(obs, mixed)
    assert expected.shape == (20, 1)
    np.testing.assert_allclose(sources["registry"].act(obs, mixed), expected, atol=1e-5)
    np.testing.assert_allclose(sources["onnx"].act(obs, mixed), expected, atol=1e-5)
    config = HierarchicalConfig(
        total_steps=1_000,
        skill_steps=10,
        hidden=32,
        learning_starts=20,
        envs=3,
        validation_episodes=0,
    )
    curves = {}
    for name, skills in sources.items():
        before = skills.fingerprint()
        envs = [gym.make("Pendulum-v1") for _ in range(config.envs)]
        lanes = SkillActionEnvs(envs, skills, config.skill_steps)
        meta = train_meta_controller(lanes, config)
        assert skills.fingerprint() == before
        curves[name] = run_skill_policy(lanes, lambda o, rng, m=meta: m.choose(o), 0, episodes=2)
    assert curves["checkpoint"] == pytest.approx(curves["registry"], abs=1e-2)
    assert curves["checkpoint"] == pytest.approx(curves["onnx"], abs=1e-2)


def test_baselines_at_the_same_budget(library):
    envs = [gym.make("Pendulum-v1") for _ in range(2)]
    lanes = SkillActionEnvs(envs, LibrarySkills(library.library), 10)
    means = baselines.skill_means(lanes, episodes=1, seed=0)
    assert means.shape == (4,)
    best = int(means.argmax())
    alone = run_skill_policy(lanes, baselines.constant(best), 0, episodes=1)
    assert alone[0] == pytest.approx(means[best])
    reported = []

    class Recorder:
        def on_step(self, step, metrics):
            reported.append(step)

    budget = TaskBudget(1_005)
    returns = baselines.random_skills(lanes, 1_005, 0, [Recorder()], budget)
    # two lanes in lockstep, counted one after the other: four episodes by 800 steps; the
    # two started then are cut at 1,000 (5 steps are less than a decision: left)
    assert len(returns) == 4 and reported == [390, 400, 790, 800] and budget.used == 1_000
    env, settings = gym.make("Pendulum-v1"), TaskSACSettings(hidden=32, batch_size=32)
    budget = TaskBudget(400)
    sac_returns = train_task_sac(scratch_agent(env, settings, 0), env, budget, 0, settings)
    assert len(sac_returns) == 2 and budget.used == 400


def test_tracked_run_is_linked_to_its_library(library, store):
    config = HierarchicalConfig(
        total_steps=800,
        skill_steps=10,
        hidden=32,
        learning_starts=20,
        baselines=("best-skill", "random-skills"),
        eval_episodes=1,
        envs=2,
        validation_episodes=0,
    )
    promote_library("lib", "champion", tracking_uri=store)  # named by its alias from here on
    result = train_hierarchical("models:/lib@champion", config, store)
    client = MlflowClient(store)
    run = client.get_run(result.run_id)
    assert run.data.tags["mlflow.parentRunId"] == library.run_id
    assert run.data.tags["skillforge.library"] == "lib"
    assert run.data.tags["skillforge.skills_frozen"] == "true"
    assert run.data.params["task"] == "Pendulum-v1" and run.data.params["skill_steps"] == "10"
    assert 0 < float(run.data.params["reward_scale"]) < 0.1  # Pendulum: -1 to -16 per step
    steps = [m.step for m in client.get_metric_history(result.run_id, "return")]
    assert steps == [390, 400, 790, 800]  # two lanes, counted one after the other
    assert len(client.get_metric_history(result.run_id, "baseline/random-skills/return")) == 4
    for name in ("meta-controller", "best-skill", "random-skills"):
        assert f"final_return/{name}" in run.data.metrics
        assert run.data.metrics[f"task_env_steps/{name}"] == 800  # the whole budget, no more
    assert result.task_env_steps == dict.fromkeys(
        ("meta-controller", "best-skill", "random-skills"), 800
    )
    hindsight = run.data.metrics["hindsight_return/best-skill"]  # chosen on the test episodes
    assert hindsight >= run.data.metrics["final_return/best-skill"]
    plots = [a.path for a in client.list_artifacts(result.run_id, "plots")]
    assert plots == ["plots/meta_controller.png", "plots/returns.png"]
    for key in ("q_value", "q_target", "td_error", "epsilon", "replay_random_share"):
        assert client.get_metric_history(result.run_id, key), key
    mlflow.set_tracking_uri(store)
    q_net = mlflow.pyfunc.load_model(result.model_uri)
    q_values = np.asarray(q_net.predict(np.zeros((2, 3), dtype=np.float32)))
    assert q_values.shape == (2, 4)


def test_sac_from_scratch_apart_scores_as_it_does_beside_the_meta_controller(library, store):
    """`--no-meta-controller --baselines sac`: the longest baseline as a run of its own (its
    seed alone decides it), nothing trained or registered for the meta-controller."""
    options = ["--steps", "600", "--eval-episodes", "1", "--envs", "2"]
    options += [
        "--validation-episodes",
        "1",
        "--validate-every",
        "300",
        "--skills-from",
        "checkpoint",
    ]
    result = CliRunner().invoke(
        app,
        ["hierarchical", "--library", "lib", "--no-meta-controller", "--baselines", "sac"]
        + options
        + ["--tracking-uri", store],
    )
    assert result.exit_code == 0, result.output
    assert "Meta-controller" not in result.stdout
    run_id = result.stdout.split("Baselines on Pendulum-v1: run ", 1)[1].split()[0]
    run = MlflowClient(store).get_run(run_id)
    assert run.data.params["meta_controller"] == "False"
    assert {key for key in run.data.metrics if key.startswith("final_return/")} == {
        "final_return/sac"
    }
    assert run.data.metrics["task_env_steps/sac"] == 600
    assert not MlflowClient(store).search_registered_models("name = 'lib.meta-Pendulum-v1'")
    beside = HierarchicalConfig(
        total_steps=600,
        baselines=("sac",),
        eval_episodes=1,
        envs=2,
        validation_episodes=1,
        validate_every=300,
        skills_from="checkpoint",
    )
    both = train_hierarchical("lib", beside, store)
    assert set(both.final_returns) == {"meta-controller", "sac"}
    assert both.final_returns["sac"] == run.data.metrics["final_return/sac"]


def test_refusals(library, store):
    runner = CliRunner()
    for args, fragment in (
        (["--library", "lib", "--skill-steps", "0"], "--skill-steps"),
        (["no-such-task", "--library", "lib"], "unknown task"),
        (["--library", "nope"], "no library named"),
        (["hopper", "--library", "lib"], "learned on Pendulum-v1"),
        (["--library", "lib", "--baselines", "magic"], "unknown baseline"),
        (["--library", "lib", "--skills-from", "ftp"], "--skills-from"),
        (["--library", "lib", "--envs", "0"], "--envs"),
        (["--library", "lib", "--validate-every", "0"], "--validate-every"),
        (["--library", "lib", "--no-meta-controller"], "name them with --baselines"),
    ):
        result = runner.invoke(app, ["hierarchical", *args, "--tracking-uri", store])
        assert result.exit_code != 0
        assert result.stderr.startswith("error: ") and fragment in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
    with pytest.raises(ConfigError):
        HierarchicalConfig(skill_steps=0)


def test_meta_controller_falls_back_to_its_best_skill_when_that_does_better():
    """A budget too small to learn anything: the validation finds the best constant skill
    better than the untrained greedy policy, and the meta-controller deploys that skill."""
    config = HierarchicalConfig(
        total_steps=6_000,
        skill_steps=20,
        hidden=16,
        learning_starts=1_000,
        envs=3,
        validation_episodes=2,
    )
    envs = [gym.make("Pendulum-v1") for _ in range(config.envs)]
    lanes = SkillActionEnvs(envs, ConstantSkills(), config.skill_steps)
    checks = SkillActionEnvs([gym.make("Pendulum-v1")], ConstantSkills(), config.skill_steps)
    reported = []

    class Recorder:
        def on_step(self, step, metrics):
            reported.append(step)

    with pytest.raises(ValueError, match="validation_envs"):
        train_meta_controller(lanes, config)
    meta = train_meta_controller(lanes, config, [Recorder()], checks)
    # the selection first: 3 skills on 2 episodes, the 2 best on 6 (200 steps each)
    assert min(reported) > 18 * 200 and 6_000 - 20 < meta.task_env_steps <= 6_000
    assert set(meta.validation) == {
        "best",
        "meta-controller",
        "meta-controller-lower-bound",
        "best-skill",
    }
    if meta.validation["meta-controller-lower-bound"] < meta.validation["best-skill"]:
        assert meta.fallback == meta.best_skill  # the best-skill baseline's own choice
        obs = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32)
        assert (meta.choose(obs) == meta.fallback).all()
    else:
        assert meta.fallback is None
    alone = [np.mean(run_skill_policy(lanes, baselines.constant(k), 7, 3)) for k in range(3)]
    deployed = np.mean(run_skill_policy(lanes, lambda o, rng: meta.choose(o), 7, 3))
    assert deployed >= min(alone)  # never the worst of its skills here


@pytest.mark.parametrize(("rate", "expected"), [(1.0, [160, 360]), (0.25, [40, 90])])
def test_task_sac_takes_its_gradient_steps_at_the_chosen_rate(rate, expected):
    """After the 40 random steps (a tenth of the budget), SAC owes `rate` gradient steps per
    env step and takes them whole: Pendulum's episodes end at 200 and 400 steps."""
    env = gym.make("Pendulum-v1")
    settings = TaskSACSettings(hidden=16, batch_size=16, learning_starts=40, updates_per_step=rate)
    reported = []

    class Recorder:
        def on_step(self, step, metrics):
            reported.append(metrics["gradient_steps"])

    train_task_sac(scratch_agent(env, settings, 0), env, TaskBudget(400), 0, settings, [Recorder()])
    assert reported == expected


def test_sac_from_scratch_keeps_its_best_validated_policy_inside_its_budget():
    """SAC from scratch gets the meta-controller's protection: its greedy policy is checked on
    the validation episodes every 400 task env steps and at the end (until the budget is
    spent), each check paid from the same budget, and the best policy is the one kept."""
    env, settings = gym.make("Pendulum-v1"), TaskSACSettings(hidden=32, batch_size=32)
    budget = TaskBudget(2_000)
    play = greedy_play(lambda: gym.make("Pendulum-v1"))
    checks = Validation(play, 1, 0, 400, budget, compares=False)
    agent = scratch_agent(env, settings, 0)
    train_task_sac(agent, env, budget, 0, settings, validation=checks)
    assert budget.used == 2_000 and checks.env_steps >= len(checks.curve) * 200
    assert len(checks.curve) >= 3 and checks.best_return == max(v for _, v in checks.curve)
    kept = agent.sac.policy.state_dict()
    assert all(torch.equal(kept[key], value) for key, value in checks.best_state.items())
