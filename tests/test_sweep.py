"""`skillforge sweep`: grids, refusals, and real runs on Ray against real stores.

The cluster test is the whole production shape on one machine: PostgreSQL, `mlflow server`
on it, a two-node Ray cluster (`ray start --head` + `ray start --address`), a trial's worker
killed with -9 mid-run. The Ctrl-C test uses the local Ray instance a sweep starts itself.
"""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import torch
from helpers import assert_one_line_error, tiny_config
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from cli.main import app
from skillforge.core.errors import ConfigError
from skillforge.core.grid import SweepGrid, parse_values
from skillforge.store import sweeps, tracking
from skillforge.store.ui_server import free_port

BIN = Path(sys.executable).parent
pytestmark = pytest.mark.xdist_group("ray")  # one Ray at a time: `ray stop` stops every one
STEPS = 3000
TINY = (
    f"--skills 4 --steps {STEPS} --hidden 32 --batch-size 32 --learning-starts 100 "
    "--buffer-size 1000 --checkpoint-every 500 --eval-episodes 1 --eval-every 0"
).split()


def test_grid_values_parse_and_combine():
    assert parse_values("--seeds", "0, 1,1,2", int) == [0, 1, 2]
    for bad in ("", " ", "0,,1", "0,"):
        with pytest.raises(ConfigError, match="empty value"):
            parse_values("--seeds", bad, int)
    with pytest.raises(ConfigError, match="--lr value 'fast'"):
        parse_values("--lr", "fast", float)
    grid = SweepGrid(tiny_config(), {"seed": [0, 1], "n_skills": [4, 8, 16]})
    configs = grid.configs("s")
    assert [c.name for c in configs] == [f"s-{i:02d}" for i in range(6)]
    assert [(c.seed, c.n_skills) for c in configs[:4]] == [(0, 4), (0, 8), (0, 16), (1, 4)]
    assert grid.varied() == {"seed": [0, 1], "n_skills": [4, 8, 16]}
    again = SweepGrid(tiny_config(threads=4), {"seed": [0, 1], "n_skills": [4, 8, 16]})
    assert again.default_name() == grid.default_name()  # threads do not change the libraries
    other = SweepGrid(tiny_config(), {"seed": [0, 2], "n_skills": [4, 8, 16]})
    assert other.fingerprint() != grid.fingerprint()
    with pytest.raises(ConfigError, match="--skills must be from 2"):
        SweepGrid(tiny_config(), {"n_skills": [4, 1]})


def test_the_objective_is_a_grid_axis_with_each_objectives_own_collection():
    grid = SweepGrid(
        tiny_config(env_id="HalfCheetah-v5"),
        {"objective": ["diayn", "metra"], "hidden": [64], "seed": [0]},
    )
    diayn, metra = grid.configs("s")
    assert (diayn.objective, diayn.env_id, diayn.envs, diayn.updates_per_step) == (
        "diayn",
        "HalfCheetah-v5",
        1,
        1.0,
    )
    # METRA: its own collection and episode length, on the env that observes x; the swept
    # width applies to both objectives
    assert (metra.objective, metra.env_id, metra.envs, metra.updates_per_step) == (
        "metra",
        "HalfCheetahWithPosition-v5",
        8,
        1 / 8,
    )
    assert metra.max_episode_steps == 200 and metra.hidden == diayn.hidden == 64
    with pytest.raises(ConfigError, match="--objective must be one of diayn, metra"):
        SweepGrid(tiny_config(), {"objective": ["dads"]})


def test_sweep_refusals_are_one_line_and_write_nothing(workdir):
    runner = CliRunner()
    base = ["sweep", "pendulum", *TINY]
    cases = [
        (["--seeds", "0,,1"], "--seeds has an empty value"),
        (["--skills", "four"], "--skills value 'four' is not valid"),
        (["--steps", "50"], "ends before the first gradient step"),
        (["--name", "a b"], "not a usable sweep name"),
        (["--ray-address", f"127.0.0.1:{free_port()}"], "cannot reach the Ray cluster"),
        (["--ray-address", "nowhere"], "is not HOST:PORT"),
        (["--tracking-uri", f"http://127.0.0.1:{free_port()}"], "cannot reach the tracking"),
        (["--cpus-per-trial", "0"], "--cpus-per-trial must be in"),
    ]
    for extra, fragment in cases:
        result = runner.invoke(app, [*base, *extra])
        assert_one_line_error(result, fragment)
        assert list(workdir.iterdir()) == [], (extra, list(workdir.iterdir()))


def test_a_sweep_name_belongs_to_one_grid(workdir, store):
    client = tracking.connect(store)
    experiment = tracking.ensure_experiment(client, "skillforge")
    sweeps.sweep_run(client, experiment, "grid-a", "fingerprint-a", {"seed": [0, 1]})
    runs_before = len(client.search_runs([experiment]))
    result = CliRunner().invoke(app, ["sweep", "pendulum", *TINY, "--name", "grid-a"])
    assert_one_line_error(result, "sweep 'grid-a' already ran another grid", "--name")
    assert len(client.search_runs([experiment])) == runs_before
    assert not (workdir / "checkpoints").exists()


def _sweep_command(*extra: str) -> list[str]:
    return [str(BIN / "skillforge"), "sweep", "pendulum", "--seeds", "0,1", *TINY, *extra]


def _env() -> dict[str, str]:
    env = {**os.environ, "MUJOCO_GL": "egl", "PYTHONUNBUFFERED": "1", "RAY_AUTH_MODE": "token"}
    env.pop("MLFLOW_TRACKING_URI", None)
    env.pop("MLFLOW_REGISTRY_URI", None)
    return env


def _wait_for(condition, timeout: float, what: str, process=None, log: Path | None = None):
    deadline = time.monotonic() + timeout
    while not condition():
        if process is not None and process.poll() is not None:
            raise AssertionError(f"the sweep ended early: {log.read_text()[-3000:]}")
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


def _store_made(uri: str) -> bool:
    """The store exists: a server's always; a SQLite file once the sweep has made it and its
    experiment in it (after MLflow's migrations): a client opened before would migrate the
    tables beside the sweep's own process, and the two clash."""
    if not uri.startswith("sqlite:///"):
        return True
    db = uri.removeprefix("sqlite:///")
    if not Path(db).is_file():
        return False
    query = "SELECT count(*) FROM experiments WHERE name = 'skillforge'"
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1.0) as connection:
            return connection.execute(query).fetchone()[0] > 0
    except sqlite3.OperationalError:  # no tables yet, or locked by the sweep making them
        return False


def _states(uri: str, sweep: str) -> dict:
    if not _store_made(uri):
        return {}
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("skillforge")
    if experiment is None:
        return {}
    return sweeps.trial_states(client, experiment.experiment_id, sweep)


def _checkpoint_step(uri: str, name: str) -> int:
    client = MlflowClient(uri)
    runs = client.search_runs(
        [e.experiment_id for e in client.search_experiments()],
        filter_string=f"tags.`skillforge.library` = '{name}'",
    )
    return int(runs[0].data.tags.get("skillforge.checkpoint_step", 0)) if runs else 0


def _weights(checkpoint: Path) -> dict[str, torch.Tensor]:
    """Every tensor of the checkpoint's networks, by dotted name."""
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    flat, todo = {}, [("agent", state["agent"])]
    while todo:
        prefix, value = todo.pop()
        if isinstance(value, torch.Tensor):
            flat[prefix] = value
        elif isinstance(value, dict):
            todo += [(f"{prefix}.{key}", item) for key, item in value.items()]
    return flat


@pytest.fixture(scope="module")
def shared_store():
    """PostgreSQL and `mlflow server` on it, in a folder the postgres user can reach."""
    from skillforge.store.shared_store import SharedStore

    folder = Path(tempfile.mkdtemp(prefix="skillforge-store-"))
    folder.chmod(0o755)
    store = SharedStore(folder, port=free_port())
    try:
        store.start()
        yield store
    finally:
        store.stop()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def two_node_ray():
    """A head node and a worker node, one CPU each, on this machine; stopped after."""
    ray = str(BIN / "ray")
    port = free_port()
    env = {**_env(), "RAY_USAGE_STATS_ENABLED": "0"}
    head = [ray, "start", "--head", f"--port={port}", "--num-cpus=1", "--include-dashboard=false"]
    try:
        subprocess.run(head, check=True, capture_output=True, env=env, timeout=180)
        worker = [ray, "start", f"--address=127.0.0.1:{port}", "--num-cpus=1"]
        subprocess.run(worker, check=True, capture_output=True, env=env, timeout=180)
        yield f"127.0.0.1:{port}"
    finally:
        subprocess.run([ray, "stop", "--force"], capture_output=True, env=env, timeout=120)


def test_sweep_on_a_two_node_cluster_survives_a_killed_worker(workdir, shared_store, two_node_ray):
    tmp_path = workdir
    uri, log = shared_store.url, tmp_path / "sweep.log"
    command = _sweep_command(
        "--name",
        "nodes",
        "--tracking-uri",
        uri,
        "--ray-address",
        two_node_ray,
        "--checkpoint-dir",
        str(tmp_path / "shared-checkpoints"),
    )
    with log.open("w") as output:
        sweep = subprocess.Popen(command, cwd=tmp_path, env=_env(), stdout=output, stderr=output)
    try:
        checkpointed = lambda: _checkpoint_step(uri, "nodes-00") >= 1000  # noqa: E731
        _wait_for(checkpointed, 600, "a checkpoint of trial nodes-00", sweep, log)
        host, pid = _states(uri, "nodes")["nodes-00"].worker.rsplit(":", 1)
        os.kill(int(pid), signal.SIGKILL)
        assert sweep.wait(timeout=900) == 0, log.read_text()[-3000:]
    finally:
        if sweep.poll() is None:
            sweep.kill()
    assert _states(uri, "nodes")["nodes-00"].worker != f"{host}:{pid}"  # ran again elsewhere

    client = MlflowClient(uri, registry_uri=uri)
    experiment = client.get_experiment_by_name("skillforge").experiment_id
    parent = client.search_runs(
        [experiment],
        filter_string="tags.`skillforge.sweep` = 'nodes' and tags.`skillforge.kind` = 'sweep'",
    )[0]
    assert parent.info.status == "FINISHED"
    assert {a.path for a in client.list_artifacts(parent.info.run_id)} >= {
        "comparison.md",
        "comparison.csv",
        "comparison.png",
    }
    for name in ("nodes-00", "nodes-01"):
        run = client.get_run(tracking.find_library(name, client=client).run_id)
        assert run.data.tags[sweeps.PARENT] == parent.info.run_id
        assert run.data.tags["skillforge.status"] == "finished"
        for key in ("log_q_z", "critic_loss"):  # the kill lost nothing, and sent nothing twice
            steps = sorted(m.step for m in client.get_metric_history(run.info.run_id, key))
            assert steps == list(range(500, STEPS + 1, 500)), (name, key, steps)
        for skill in range(4):
            versions = client.search_model_versions(f"name = '{name}.skill-{skill:02d}'")
            assert len(versions) == 1, (name, skill)

    # the killed trial ends bit-identical to the same library trained without a kill
    from skillforge.app.pretrain import pretrain

    reference = tiny_config(
        total_steps=STEPS, checkpoint_every=500, log_every=500, name="uninterrupted", seed=0
    )
    pretrain(
        reference,
        f"sqlite:///{tmp_path / 'reference.db'}",
        checkpoint_dir=tmp_path / "ref",
        evaluation=_no_evaluation(),
    )
    killed = _weights(tmp_path / "shared-checkpoints" / "nodes-00" / "checkpoint.pt")
    clean = _weights(tmp_path / "ref" / "uninterrupted" / "checkpoint.pt")
    assert killed.keys() == clean.keys() and killed
    assert all(torch.equal(killed[key], clean[key]) for key in clean)

    runs_before = len(client.search_runs([experiment]))
    again = subprocess.run(command, cwd=tmp_path, env=_env(), capture_output=True, text=True)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "nodes-00                 skipped" in again.stdout
    assert len(client.search_runs([experiment])) == runs_before  # nothing trained twice


def _no_evaluation():
    from skillforge.core.config import EvaluationOptions

    return EvaluationOptions(episodes=1, every=0, video=False)


def test_ctrl_c_stops_every_trial_at_a_checkpoint_and_the_same_command_continues(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    command = _sweep_command("--name", "stopped", "--tracking-uri", uri)
    log = tmp_path / "sweep.log"
    with log.open("w") as output:
        sweep = subprocess.Popen(command, cwd=tmp_path, env=_env(), stdout=output, stderr=output)
    try:
        _wait_for(
            lambda: (
                len(states := _states(uri, "stopped")) == 2
                and all(s.step >= 500 for s in states.values())
            ),
            600,
            "both trials to report",
            sweep,
            log,
        )
        sweep.send_signal(signal.SIGINT)
        assert sweep.wait(timeout=400) == 130, log.read_text()[-3000:]
    finally:
        if sweep.poll() is None:
            sweep.kill()
    assert "run the same command again to continue it" in log.read_text()
    for name, state in _states(uri, "stopped").items():
        assert state.status.startswith("interrupted at step"), (name, state.status)
        assert (tmp_path / "checkpoints" / name / "checkpoint.pt").is_file()
        assert state.step < STEPS

    again = subprocess.run(command, cwd=tmp_path, env=_env(), capture_output=True, text=True)
    assert again.returncode == 0, again.stderr[-3000:]
    client = MlflowClient(uri)
    for name, state in _states(uri, "stopped").items():
        assert state.finished and state.step == STEPS, (name, state)
        run_id = tracking.find_library(name, client=client).run_id
        steps = sorted(m.step for m in client.get_metric_history(run_id, "log_q_z"))
        assert steps == list(range(500, STEPS + 1, 500)), (name, steps)
