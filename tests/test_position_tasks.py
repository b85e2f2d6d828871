"""A METRA library, learned on HalfCheetahWithPosition-v5, reused on `halfcheetah-goal`: the
task is built on the library's env, every run and registered model records that env, the
agent acts on the task made again from the record, and a library of another family is
refused in one line with nothing written."""

import mlflow
import numpy as np
import pytest
from helpers import assert_one_line_error
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from cli.main import app
from skillforge.app import pretrain as pipeline
from skillforge.app.load import load_library
from skillforge.core.config import NO_EVALUATION, PretrainConfig
from skillforge.reuse.tasks import make_task

TASK, ENV = "halfcheetah-goal", "HalfCheetahWithPosition-v5"
runner = CliRunner()


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """A store holding `met`: 3 METRA skills on HalfCheetah, seconds of training."""
    folder = tmp_path_factory.mktemp("position")
    config = PretrainConfig.for_objective(
        "HalfCheetah-v5",
        "metra",
        n_skills=3,
        total_steps=1_200,
        learning_starts=200,
        hidden=16,
        batch_size=32,
        envs=2,
        updates_per_step=0.5,
        threads=1,
        device="cpu",
        name="met",
    )
    store = f"sqlite:///{folder / 'mlflow.db'}"
    checkpoints = folder / "checkpoints"
    pipeline.pretrain(config, store, checkpoint_dir=checkpoints, evaluation=NO_EVALUATION)
    return folder


@pytest.fixture
def store(folder, monkeypatch):
    monkeypatch.chdir(folder)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return f"sqlite:///{folder / 'mlflow.db'}"


def invoke(store: str, command: str):
    return runner.invoke(app, [*command.split(), "--tracking-uri", store])


def child_runs(store: str, kind: str) -> list:
    client = MlflowClient(store)
    experiments = [e.experiment_id for e in client.search_experiments()]
    return client.search_runs(experiments, f"tags.`skillforge.kind` = '{kind}'")


def test_hierarchical_builds_the_task_on_the_librarys_env_and_the_agent_acts_on_it(store):
    library = load_library("met", store)
    assert library.spec.env_id == ENV and library.spec.obs_dim == 18  # x first, then the rest
    options = "--steps 2000 --skill-steps 50 --envs 2 --eval-episodes 1 --validation-episodes 0"
    result = invoke(store, f"hierarchical {TASK} --library met {options} --threads 1")
    assert result.exit_code == 0, result.output
    (run,) = child_runs(store, "meta")
    assert run.data.params["task"] == TASK and run.data.params["task_env_id"] == ENV
    assert run.data.tags["skillforge.task_env_id"] == ENV
    client = MlflowClient(store)
    for name in (f"met.meta-{TASK}", f"met.agent-{TASK}"):
        assert client.get_model_version(name, "1").tags["task_env_id"] == ENV, name
    # the task made again from the run's record is the one the agent was trained on
    env = make_task(run.data.params["task"], run.data.params["task_env_id"])
    obs = np.stack([env.reset(seed=seed)[0] for seed in range(4)]).astype(np.float32)
    assert obs.shape == (4, 20)  # HalfCheetahWithPosition's 18, the goal's side and distance
    mlflow.set_tracking_uri(store)
    agent = mlflow.pyfunc.load_model(f"models:/met.agent-{TASK}/1")
    start = np.zeros(4, dtype=np.int64)
    acted = agent.predict({"observation": obs, "skill": start, "steps_left": start})
    np.testing.assert_allclose(
        acted["action"], library.act(obs[:, :18], acted["next_skill"]), atol=1e-5
    )
    meta = mlflow.pyfunc.load_model(f"models:/met.meta-{TASK}/1")
    assert np.asarray(meta.predict(obs)).shape == (4, 3)


def test_finetune_builds_the_task_on_the_librarys_env(store):
    options = "--skill 0 --steps 1500 --learning-starts 300 --eval-episodes 1"
    result = invoke(store, f"finetune {TASK} --library met {options} --validation-episodes 0")
    assert result.exit_code == 0, result.output
    (run,) = child_runs(store, "finetune")
    assert run.data.params["task_env_id"] == ENV
    assert run.data.tags["skillforge.task_env_id"] == ENV
    version = MlflowClient(store).get_model_version(f"met.finetuned-{TASK}", "1")
    assert version.tags["task_env_id"] == ENV
    mlflow.set_tracking_uri(store)
    policy = mlflow.pyfunc.load_model(f"models:/met.finetuned-{TASK}/1")
    obs, _ = make_task(TASK, ENV).reset(seed=0)
    assert np.asarray(policy.predict(obs[None].astype(np.float32))).shape == (1, 6)


def test_a_library_of_another_family_is_refused_in_one_line_with_nothing_written(store):
    client = MlflowClient(store)
    experiments = [e.experiment_id for e in client.search_experiments()]
    before = len(client.search_runs(experiments))
    models = len(client.search_registered_models())
    for command in ("hierarchical", "finetune"):
        result = invoke(store, f"{command} ant-navigation --library met --steps 30000")
        assert_one_line_error(
            result, f"learned on {ENV}", "ant-navigation is built on Ant-v5 or AntWithPosition-v5"
        )
    assert len(client.search_runs(experiments)) == before
    assert len(client.search_registered_models()) == models
