"""The running log q(z|s) against episodes, as DIAYN-PyTorch plots it (issue 22)."""

from __future__ import annotations

import pytest
from helpers import tiny_config
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from cli.main import app
from skillforge.app import pretrain as pipeline
from skillforge.app.evaluate import evaluate_stored
from skillforge.app.library import running_log_q as library_running_log_q
from skillforge.core.config import NO_EVALUATION
from skillforge.evaluation.running_log_q import running_log_q

runner = CliRunner()


def test_each_episode_takes_its_windows_log_q_then_the_099_average():
    log_q_z = [(200, -2.0), (300, -1.0), (400, -0.5), (500, -0.25)]
    # episode 1 ends in the warm-up (no update, no log q), 2 at 200, 3 and 4 at 300, 5 at 500
    episodes = [(100, 1), (200, 2), (300, 4), (400, 4), (500, 5)]
    # by hand: -2 (episode 2 sets it); 0.99 * -2 + 0.01 * -1 = -1.99, then -1.9801 (episode
    # 4, same window); 0.99 * -1.9801 + 0.01 * -0.25 = -1.962799 (episode 5)
    points = running_log_q(log_q_z, episodes)
    assert [episode for episode, _ in points] == [2, 4, 5]
    assert [value for _, value in points] == pytest.approx([-2.0, -1.9801, -1.962799], abs=1e-12)


def test_without_episode_counts_there_is_no_curve():
    assert running_log_q([(100, -1.0)], []) == []
    assert running_log_q([], [(100, 3)]) == []


def test_a_step_logged_twice_counts_once():
    once = running_log_q([(100, -1.0), (200, -0.5)], [(100, 1), (200, 2)])
    twice = running_log_q([(100, -1.0), (200, -0.5), (200, -0.5)], [(100, 1), (200, 2), (200, 2)])
    assert twice == once == [(1, -1.0), (2, pytest.approx(-0.995))]


def test_library_show_and_evaluate_report_a_real_runs_running_log_q(store, tmp_path):
    # Pendulum's episodes last 200 steps: 5 end at steps 200..1000, each at a report step
    config = tiny_config(name="pend-curve", total_steps=1000)
    result = pipeline.pretrain(
        config, store, checkpoint_dir=tmp_path / "ck", evaluation=NO_EVALUATION
    )
    client = MlflowClient(store)
    log_q = {m.step: m.value for m in client.get_metric_history(result.run_id, "log_q_z")}
    running = None
    for step in (200, 400, 600, 800, 1000):  # DIAYN-PyTorch's logger, one episode at a time
        running = log_q[step] if running is None else 0.99 * running + 0.01 * log_q[step]

    points = library_running_log_q("pend-curve", store)
    assert [episode for episode, _ in points] == [1, 2, 3, 4, 5]
    assert points[-1][1] == pytest.approx(running, abs=1e-9)

    expected = f"running log q(z|s) {running:.3f} after 5 episodes"
    shown = runner.invoke(app, ["library", "show", "pend-curve", "--tracking-uri", store])
    assert shown.exit_code == 0, shown.output
    assert expected in shown.stdout
    evaluated = runner.invoke(
        app, ["evaluate", "pend-curve", "--episodes", "1", "--no-video", "--tracking-uri", store]
    )
    assert evaluated.exit_code == 0, evaluated.output
    assert " ".join(expected.split()) in " ".join(evaluated.stdout.split())
    _, report = evaluate_stored("pend-curve", store, episodes=1, video=False)
    assert report.running_log_q == points  # the Python API's report carries it too
