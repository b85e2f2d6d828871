"""Refusals write nothing: every check that can be made before a library's run is created is
made first (no store, no run, no checkpoints/ left behind); and the evaluation a run chose is
kept by `--resume` and `library register` unless they are told otherwise."""

import pytest
import torch
from helpers import assert_one_line_error
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from cli.main import app
from skillforge.core.config import MAX_SKILLS, PretrainConfig
from skillforge.core.errors import ConfigError
from skillforge.store.tracking import find_library

runner = CliRunner()
TINY = (
    "--skills 2 --hidden 32 --batch-size 32 --buffer-size 1000 --learning-starts 100 "
    "--checkpoint-every 100 --threads 1"
).split()


def run(*args: str):
    return runner.invoke(app, list(args))


@pytest.mark.parametrize(
    "args, fragments",
    [
        pytest.param(
            ["--steps", "300", "--device", "cuda", *TINY],
            ["--device cuda", "no CUDA device"],
            marks=pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA"),
        ),
        (["--steps", "500"], ["--steps 500", "--learning-starts 10,000", "--learning-starts 250"]),
        (
            ["--steps", "300", *TINY, "--batch-size", "400"],
            ["--batch-size 400", "--batch-size 150"],
        ),
        (["--steps", "300", *TINY, "--skills", str(MAX_SKILLS + 1)], ["--skills", str(MAX_SKILLS)]),
        (["--steps", "300", *TINY, "--name", "latest"], ["--name 'latest' is reserved"]),
        (["--steps", "300", *TINY, "--tracking-uri", "http://127.0.0.1:1"], ["cannot reach"]),
    ],
)
def test_a_refused_pretrain_writes_nothing(workdir, args, fragments):
    assert_one_line_error(run("pretrain", "pendulum", *args), *fragments)
    assert list(workdir.iterdir()) == []  # no mlflow.db, no run, no empty checkpoints/


def test_a_leftover_checkpoint_is_refused_before_a_store_is_made(workdir):
    leftover = workdir / "checkpoints" / "old" / "checkpoint.pt"
    leftover.parent.mkdir(parents=True)
    leftover.write_bytes(b"a checkpoint of a library no store knows")
    result = run("pretrain", "pendulum", "--steps", "300", *TINY, "--name", "old")
    assert_one_line_error(result, str(leftover), "already holds a checkpoint")
    assert sorted(path.name for path in workdir.iterdir()) == ["checkpoints"]


def test_the_skill_limit_is_the_configs():
    assert PretrainConfig(env_id="Pendulum-v1", n_skills=MAX_SKILLS).n_skills == MAX_SKILLS
    with pytest.raises(ConfigError, match="--skills"):
        PretrainConfig(env_id="Pendulum-v1", n_skills=MAX_SKILLS + 1)


def test_resume_and_register_keep_the_runs_evaluation_choices_unless_told(workdir):
    store = f"sqlite:///{workdir / 'mlflow.db'}"
    quiet = ["--eval-episodes", "0", "--eval-every", "0", "--no-video"]
    result = run("pretrain", "pendulum", "--steps", "300", "--name", "quiet", *TINY, *quiet)
    assert result.exit_code == 0, result.output
    client = MlflowClient(store)
    run_id = find_library("quiet", store).run_id

    def evaluations() -> list[float]:
        return [m.value for m in client.get_metric_history(run_id, "eval/episodes")]

    def videos() -> list:
        return client.list_artifacts(run_id, "videos")

    assert evaluations() == [] and videos() == []
    extended = run("pretrain", "--resume", "quiet", "--steps", "400")
    assert extended.exit_code == 0, extended.output
    assert evaluations() == [] and videos() == []  # the run's --eval-episodes 0 --no-video

    registered = run("library", "register", "quiet", "--eval-episodes", "1")
    assert registered.exit_code == 0, registered.output
    assert evaluations() == [1.0] and videos() == []  # episodes given, --no-video kept
