"""`skillforge evaluate` and `skillforge library compare` on real libraries in a sqlite store."""

import csv
import io
import math

import pytest
from helpers import assert_one_line_error, tiny_config
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from cli.main import app
from skillforge.app import pretrain as pipeline
from skillforge.app.evaluate import evaluate_stored
from skillforge.evaluation import compare
from skillforge.evaluation.report import PeriodicEvaluation
from skillforge.rl import checkpoint, loop
from skillforge.store import records, tracking

runner = CliRunner()


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """Two tiny Pendulum libraries: pend-a (4 skills), pend-b (3 skills, another seed)."""
    folder = tmp_path_factory.mktemp("store")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    for name, skills, seed in (("pend-a", 4, 0), ("pend-b", 3, 1)):
        config = tiny_config(name=name, n_skills=skills, seed=seed)
        pipeline.pretrain(config, uri, checkpoint_dir=folder / "checkpoints")
    return uri


def run(*args: str):
    return runner.invoke(app, list(args))


def metrics_of(store, name):
    info = tracking.find_library(name, store)
    return MlflowClient(store).get_run(info.run_id).data.metrics


def test_evaluate_logs_measures_plots_and_videos_to_the_library_run(store):
    info, report = evaluate_stored("pend-a", store, episodes=2, video=True)
    client = MlflowClient(store)
    run = client.get_run(info.run_id)
    for key, value in report.metrics().items():
        assert run.data.metrics[f"eval/{key}"] == pytest.approx(value), key
    history = client.get_metric_history(info.run_id, "eval/coverage_bins")
    assert history[-1].step == 300  # logged at the library's step
    assert run.data.tags["skillforge.coverage"] == "pole angle (rad), bins of 0.393"
    plots = {a.path: a.file_size for a in client.list_artifacts(info.run_id, "plots")}
    assert set(plots) == {
        "plots/confusion_matrix.png",
        "plots/skill_returns.png",
        "plots/trajectories.png",
        "plots/learning_curve.png",
    }
    videos = {a.path: a.file_size for a in client.list_artifacts(info.run_id, "videos")}
    assert set(videos) == {"videos/all_skills.gif"} | {
        f"videos/skill_{k:02d}.gif" for k in range(4)
    }
    assert min(plots.values()) > 1000 and min(videos.values()) > 1000
    assert sorted(report.artifacts) == sorted([*plots, *videos])


def test_evaluate_command_prints_the_measures(store):
    result = run("evaluate", "pend-b", "--episodes", "2", "--no-video", "--tracking-uri", store)
    assert result.exit_code == 0, result.output
    metrics = metrics_of(store, "pend-b")
    out = result.stdout
    assert "pend-b: Pendulum-v1, 3 skills, 300 steps, 2 episodes per skill" in out
    assert f"effective skills        {metrics['eval/effective_skills']:.2f} of 3" in out
    assert f"(chance {-math.log(3):.3f})" in out
    assert "coverage" in out and "a random policy" in out
    assert metrics["eval/episodes"] == 2


def test_evaluate_refusals_are_one_line(store):
    assert_one_line_error(
        run("evaluate", "pend-a", "--episodes", "0", "--tracking-uri", store),
        "--episodes must be at least 1, got 0",
    )
    assert_one_line_error(
        run("evaluate", "nope", "--tracking-uri", store), "no library named 'nope'"
    )
    path = tracking.find_library("pend-b", store).checkpoint
    original = checkpoint.load_checkpoint(path)
    try:
        broken = dict(original, spec={**original["spec"], "env_id": "Gone-v0"})
        checkpoint.save_checkpoint(broken, path)
        assert_one_line_error(
            run("evaluate", "pend-b", "--tracking-uri", store),
            "cannot evaluate library pend-b: unknown environment 'Gone-v0'",
        )
    finally:
        checkpoint.save_checkpoint(original, path)


def test_compare_prints_one_column_per_library(store):
    result = run("library", "compare", "pend-a", "pend-b", "--tracking-uri", store)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["measure", "pend-a", "pend-b"]
    rows = {line[:42].strip(): line[42:].split() for line in lines[1:]}
    a, b = metrics_of(store, "pend-a"), metrics_of(store, "pend-b")
    assert rows["skills N"] == ["4", "3"]
    assert rows["seed"] == ["0", "1"]
    assert rows["effective skills"] == [
        f"{a['eval/effective_skills']:.2f}",
        f"{b['eval/effective_skills']:.2f}",
    ]
    assert rows["best skill return"] == [
        f"{a['eval/best_skill_return']:,.1f}",
        f"{b['eval/best_skill_return']:,.1f}",
    ]
    assert rows["coverage: bins visited"] == [
        f"{a['eval/coverage_bins']:.0f}",
        f"{b['eval/coverage_bins']:.0f}",
    ]


def test_compare_writes_markdown_and_csv(store, tmp_path):
    a = metrics_of(store, "pend-a")
    result = run("library", "compare", "-o", str(tmp_path / "c.md"), "--tracking-uri", store)
    assert result.exit_code == 0 and "markdown, 2 libraries" in result.stdout
    markdown = (tmp_path / "c.md").read_text().splitlines()
    assert markdown[0] == "| measure | pend-b | pend-a |"  # no names: every library, newest first
    assert markdown[1] == "|---|---|---|"
    assert "| I(S;Z) lower bound, nats | " in (tmp_path / "c.md").read_text()

    names = ("pend-a", "pend-b")
    result = run("library", "compare", *names, "--format", "csv", "--tracking-uri", store)
    table = list(csv.reader(io.StringIO(result.stdout)))
    assert table[0] == ["measure", "pend-a", "pend-b"]
    values = {row[0]: row[1:] for row in table[1:]}
    assert len(values) == len(compare.ROWS)
    assert float(values["mean log q(z|s) (chance -ln N)"][0]) == pytest.approx(
        a["eval/log_q_z"], abs=1e-3
    )
    assert values["environment steps"] == ["300", "300"]


def test_compare_refusals(store):
    assert_one_line_error(
        run("library", "compare", "pend-a", "ghost", "--tracking-uri", store),
        "no library named 'ghost'",
    )
    assert_one_line_error(
        run("library", "compare", "--format", "xml", "--tracking-uri", store),
        "--format must be one of table, markdown, csv",
    )


def test_evaluate_without_a_name_takes_the_most_recent_library(store):
    result = run("evaluate", "--episodes", "1", "--no-video", "--tracking-uri", store)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("pend-b: Pendulum-v1, 3 skills")
    assert "Evaluating pend-b" in result.stderr


def test_periodic_evaluation_logs_to_the_run_during_training(store, tmp_path):
    client = MlflowClient(store)
    run_id = client.create_run(tracking.ensure_experiment(client, "periodic")).info.run_id

    def log(report, step):
        tracking.log_evaluation(
            client, run_id, report.metrics(), step, coverage_of=report.coverage_of
        )

    periodic = PeriodicEvaluation(every=100, on_report=log)
    loop.train(tiny_config(total_steps=300), str(tmp_path / "c.pt"), [periodic])
    for key in ("eval/log_q_z", "eval/effective_skills", "eval/coverage_bins"):
        assert [m.step for m in client.get_metric_history(run_id, key)] == [100, 200], key
    assert client.get_run(run_id).data.tags["skillforge.coverage"].startswith("pole angle")


def test_a_negative_information_bound_is_shown_as_vacuous():
    import numpy as np

    from cli.evaluate import summary
    from skillforge.evaluation.report import EvaluationReport

    scores = {
        "discriminator_accuracy": 0.25,
        "log_q_z": -9.2,
        "mutual_information_bound": -9.2 + math.log(4),
        "mutual_information_fraction": (-9.2 + math.log(4)) / math.log(4),
        "effective_skills": 1.0,
    }
    report = EvaluationReport(
        "tiny", "Pendulum-v1", 4, 1, 0, np.zeros((4, 1)), np.ones((4, 1)), scores,
        None, None, None, "", 0.0, [[]] * 4,
    )  # fmt: skip
    info = tracking.LibraryInfo("tiny", "r", "Pendulum-v1", 4, 300, -0.2, "finished", 0, "e", "")
    line = next(line for line in summary(info, report) if "I(S;Z) lower bound" in line)
    assert "-7.814 nats: vacuous" in line

    metrics = {f"eval/{key}": value for key, value in scores.items()}
    record = records.LibraryRecord(info, "1", metrics, {}, {})
    rows = {row[0]: row[1] for row in compare.comparison([record]) if row[0].startswith("I(S")}
    assert rows["I(S;Z) lower bound, nats"] == "-7.814"
    assert rows["I(S;Z) bound floored at 0 (< 0: vacuous)"] == "0.000"
