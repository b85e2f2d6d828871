"""The named tasks: built on their env or on its WithPosition variant (where METRA libraries
and DIAYN libraries with a position prior are learned), and the hurdle task's observation."""

import gymnasium as gym
import numpy as np
import pytest

from skillforge.core.envs import make_env
from skillforge.core.errors import EnvError
from skillforge.core.hurdles import NO_HURDLE_AHEAD, distance_to_next_hurdle
from skillforge.core.position_envs import with_position
from skillforge.reuse.tasks import GROUNDS, TASKS, make_task, task_env_id, task_envs


@pytest.mark.parametrize("task", TASKS)
def test_a_named_task_is_built_on_its_env_or_its_position_variant(task):
    base, _, gym_id = TASKS[task]
    grounds = [base, *GROUNDS.get(task, ())]
    assert task_envs(task) == tuple(e for g in grounds for e in (g, with_position(g)))
    assert task_env_id(task) == base
    for env_id in task_envs(task):
        env, plain = make_task(task, env_id), make_env(env_id)
        obs, _ = env.reset(seed=3)
        plain_obs, _ = plain.reset(seed=3)
        # the skills read the first entries: the observation of the env they were learned on
        np.testing.assert_array_equal(obs[: plain_obs.shape[0]], plain_obs)
        assert env.unwrapped.spec.id == env_id
        registered = gym.make(gym_id, env_id=env_id)  # gymnasium users choose the env too
        again = gym.make(registered.spec)  # and it is made again from the spec alike
        assert registered.observation_space == again.observation_space == env.observation_space
        assert again.spec.kwargs["env_id"] == env_id  # (observation sizes differ by env)
        for made in (env, plain, registered, again):
            made.close()
    default = gym.make(gym_id)  # by default, the task's own env
    assert default.observation_space == make_task(task, base).observation_space


def test_the_position_variant_puts_the_torso_x_first_and_the_task_reads_the_same_x():
    env = make_task("halfcheetah-goal", "HalfCheetahWithPosition-v5")
    obs, info = env.reset(seed=0)
    assert obs.shape == (20,) and obs[0] == env.x()
    assert obs[-1] == pytest.approx(info["goal_side"] * 10.0 - obs[0])
    assert make_task("halfcheetah-goal").observation_space.shape == (19,)


def test_a_task_refuses_an_env_of_another_family():
    with pytest.raises(EnvError, match="HalfCheetahWithPosition-v5, not on Hopper-v5"):
        make_task("halfcheetah-goal", "Hopper-v5")
    with pytest.raises(EnvError, match="Ant-v5 or AntWithPosition-v5, not on HalfCheetah-v5"):
        gym.make("skillforge/AntNavigation-v0", env_id="halfcheetah")
    # an env id as the task is that env alone, as before
    assert task_envs("hopper") == ("Hopper-v5",) and task_env_id("pendulum", "Pendulum-v1")
    with pytest.raises(EnvError, match="built on Hopper-v5, not on HopperWithPosition-v5"):
        task_env_id("hopper", "HopperWithPosition-v5")
    with pytest.raises(EnvError, match="unknown task"):
        task_envs("no-such-task")


@pytest.mark.parametrize(
    ("x", "distance"),
    [
        (-7.5, 10.5),  # behind the start: the first hurdle is at 3 m
        (-0.5, 3.5),
        (0.0, 3.0),
        (2.9, 0.1),
        (3.0, 3.0),  # on a hurdle's centre: the next one
        (4.5, 1.5),
        (119.0, 1.0),  # before the 40th and last, at 120 m
        (120.0, NO_HURDLE_AHEAD),
        (250.0, NO_HURDLE_AHEAD),
    ],
)
def test_the_hurdle_distance_is_to_the_next_hurdle_ahead(x, distance):
    assert distance_to_next_hurdle(x) == pytest.approx(distance)


@pytest.mark.parametrize(
    "env_id", ["HalfCheetah-v5", "HalfCheetahWithPosition-v5", "HalfCheetahHurdlesWithPosition-v5"]
)
def test_the_hurdle_task_observes_the_true_distance_behind_the_start_and_past_the_end(env_id):
    env = make_task("halfcheetah-hurdle", env_id)
    obs, _ = env.reset(seed=0)
    assert obs[-1] == pytest.approx(3.0 - env.x())
    cheetah = env.unwrapped
    for x, expected in ((-2.0, 5.0), (125.0, NO_HURDLE_AHEAD)):
        qpos = cheetah.data.qpos.copy()
        qpos[0] = x
        cheetah.set_state(qpos, cheetah.data.qvel.copy())
        obs, *_ = env.step(np.zeros(6))
        assert obs[-1] == pytest.approx(distance_to_next_hurdle(env.x()))
        assert obs[-1] == pytest.approx(expected, abs=0.05)  # one step moves it millimetres
    assert np.isfinite(obs).all()


def test_the_hurdle_course_is_an_env_a_library_is_pretrained_on_and_its_task_built_on(store):
    """`halfcheetah-hurdles` is HalfCheetah on the hurdle task's ground: a METRA library learns
    on it (its position observed), the course's travel is measured, and `hierarchical
    halfcheetah-hurdle` builds the task on the library's env."""
    from mlflow.tracking import MlflowClient
    from typer.testing import CliRunner

    from cli.main import app
    from skillforge.app.load import load_library

    course = make_env("halfcheetah-hurdles")
    model = course.unwrapped.model
    names = [model.geom(i).name for i in range(model.ngeom)]
    assert sum(name.startswith("hurdle") for name in names) == 40
    assert course.observation_space.shape == (17,)
    runner = CliRunner()
    pretrain = "pretrain halfcheetah-hurdles --objective metra --skills 2 --steps 800 --envs 2"
    pretrain += " --learning-starts 200 --hidden 16 --batch-size 32 --updates-per-step 0.25"
    pretrain += " --eval-episodes 1 --no-video --name course --threads 1"
    result = runner.invoke(app, [*pretrain.split(), "--tracking-uri", store])
    assert result.exit_code == 0, result.output
    library = load_library("course", store)
    assert library.spec.env_id == "HalfCheetahHurdlesWithPosition-v5"
    assert library.spec.obs_dim == 18  # x first
    client = MlflowClient(store)
    metrics = client.get_run(library.run_id).data.metrics
    assert metrics["eval/coverage_bins"] >= 1  # one-metre bins of x, as on flat ground
    assert client.get_run(library.run_id).data.tags["skillforge.coverage"].startswith("torso x")
    options = "--steps 1000 --skill-steps 50 --envs 2 --eval-episodes 1 --validation-episodes 0"
    command = f"hierarchical halfcheetah-hurdle --library course {options} --threads 1"
    result = runner.invoke(app, [*command.split(), "--tracking-uri", store])
    assert result.exit_code == 0, result.output
    experiments = [e.experiment_id for e in client.search_experiments()]
    (run,) = client.search_runs(experiments, "tags.`skillforge.kind` = 'meta'")
    assert run.data.params["task_env_id"] == "HalfCheetahHurdlesWithPosition-v5"
