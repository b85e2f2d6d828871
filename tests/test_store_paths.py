"""Where a store keeps its files: absolute artifact paths (MLflow's own server can serve a
registered skill), relative URIs taken from the working directory, stores of an older
skillforge repaired, and store paths that cannot be a database refused fast, writing nothing."""

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from helpers import assert_one_line_error, tiny_config
from typer.testing import CliRunner

from cli.main import app
from skillforge.app import pretrain as pipeline
from skillforge.core.config import NO_EVALUATION
from skillforge.rl.checkpoint import load_checkpoint
from skillforge.store import tracking
from skillforge.store.ui_server import free_port

runner = CliRunner()
LOCATION_COLUMNS = (  # where MLflow keeps artifact paths in a sqlite store
    ("experiments", "artifact_location"),
    ("runs", "artifact_uri"),
    ("logged_models", "artifact_location"),
    ("model_versions", "storage_location"),
)
TINY_RUN = "--steps 600 --learning-starts 300 --hidden 32 --batch-size 32 --threads 1".split()
SERVE_DEADLINE = 300.0  # seconds for `mlflow models serve` to answer on a busy 2-core machine


@pytest.fixture(scope="module")
def served_store(tmp_path_factory):
    """A store holding one finished two-skill library (no evaluation: only what serving needs)."""
    folder = tmp_path_factory.mktemp("serve")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    config = tiny_config(name="served", n_skills=2)
    result = pipeline.pretrain(
        config, uri, checkpoint_dir=folder / "checkpoints", evaluation=NO_EVALUATION
    )
    return uri, folder, result


def stored_locations(db: Path) -> dict[str, list[str]]:
    """Every artifact path the store's database holds, by table."""
    with sqlite3.connect(db) as connection:
        return {
            table: [row[0] for row in connection.execute(f"SELECT {column} FROM {table}")]
            for table, column in LOCATION_COLUMNS
        }


def test_a_new_store_keeps_absolute_artifact_paths_beside_the_database(served_store):
    uri, folder, _ = served_store
    locations = stored_locations(folder / "mlflow.db")
    assert all(locations.values()), locations  # an experiment, a run, models, versions
    for paths in locations.values():
        for path in paths:
            assert path.startswith(f"{folder}/mlruns"), path  # not //tmp/...: host "tmp"


def post_json(address: str, body: dict, timeout: float = 10.0) -> tuple[int, dict]:
    request = urllib.request.Request(
        address, json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return response.status, json.loads(response.read())


def wait_until_serving(process: subprocess.Popen, address: str, log: Path) -> None:
    deadline = time.monotonic() + SERVE_DEADLINE
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"mlflow models serve exited: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{address}/ping", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    pytest.fail(f"mlflow models serve did not answer within {SERVE_DEADLINE:.0f} s")


def test_mlflow_serves_a_skill_of_a_store_made_by_an_older_skillforge(served_store, tmp_path):
    """Earlier versions stored `//tmp/...` (the `//` of `sqlite:////tmp/...`): opening the store
    with skillforge repairs it, and MLflow's own server then answers with the skill's actions."""
    uri, folder, result = served_store
    db = folder / "mlflow.db"
    with sqlite3.connect(db) as connection:  # as an older skillforge left the store
        for table, column in LOCATION_COLUMNS:
            connection.execute(f"UPDATE {table} SET {column} = '/' || {column}")
    assert all(path.startswith("//") for paths in stored_locations(db).values() for path in paths)

    assert runner.invoke(app, ["library", "list", "--tracking-uri", uri]).exit_code == 0
    assert not any(p.startswith("//") for paths in stored_locations(db).values() for p in paths)

    port, log = free_port(), tmp_path / "serve.log"
    bin_dir = str(Path(sys.executable).parent)  # mlflow runs the venv's uvicorn
    path = bin_dir + os.pathsep + os.environ["PATH"]
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "PATH": path}
    command = [
        sys.executable, "-m", "mlflow", "models", "serve", "-m", "models:/served.skill-01/1",
        "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port),
    ]  # fmt: skip
    with open(log, "w") as stderr:
        process = subprocess.Popen(
            command, env=env, stdout=stderr, stderr=stderr, start_new_session=True
        )
    address = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(process, address, log)
        observations = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32)
        status, answer = post_json(f"{address}/invocations", {"inputs": observations.tolist()})
        assert status == 200
        expected = result.library.act(observations, 1)
        np.testing.assert_allclose(np.asarray(answer["predictions"]), expected, atol=1e-5)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def test_a_copied_store_uses_its_own_files_and_leaves_the_originals_alone(tmp_path):
    original, copy = tmp_path / "original", tmp_path / "copy"
    pipeline.pretrain(
        tiny_config(name="copied", n_skills=2),
        f"sqlite:///{original / 'mlflow.db'}",
        checkpoint_dir=original / "checkpoints",
        evaluation=NO_EVALUATION,
    )
    shutil.copytree(original, copy)  # cp -r: every path in the database is the original's
    files = sorted(path for path in original.rglob("*") if path.is_file())
    before = [path.read_bytes() for path in files]

    uri = f"sqlite:///{copy / 'mlflow.db'}"
    command = ["pretrain", "--resume", "copied", "--steps", "400", "--tracking-uri", uri]
    resumed = subprocess.run(  # a process of its own: MLflow caches artifact folders by run id
        [sys.executable, "-m", "cli.main", *command], capture_output=True, text=True, timeout=600
    )
    assert resumed.returncode == 0, resumed.stderr
    assert f"was moved or copied from {original}" in resumed.stderr
    assert [path.read_bytes() for path in files] == before  # not a byte of the original
    assert load_checkpoint(copy / "checkpoints" / "copied" / "checkpoint.pt")["step"] == 400
    info = tracking.find_library("copied", uri)
    assert info.checkpoint == str(copy / "checkpoints" / "copied" / "checkpoint.pt")
    for paths in stored_locations(copy / "mlflow.db").values():
        assert all(path.startswith(f"{copy}/") for path in paths), paths


def test_a_copy_refuses_checkpoints_kept_outside_the_store_and_a_moved_store_keeps_them(
    tmp_path,
):
    original, copy, shared = tmp_path / "original", tmp_path / "copy", tmp_path / "shared"
    pipeline.pretrain(
        tiny_config(name="outside", n_skills=2),
        f"sqlite:///{original / 'mlflow.db'}",
        checkpoint_dir=shared,  # not in the store's folder: cp -r does not take it along
        evaluation=NO_EVALUATION,
    )
    shutil.copytree(original, copy)
    checkpoint = shared / "outside" / "checkpoint.pt"
    before = checkpoint.read_bytes()

    def resume(store: Path, steps: str):
        uri = f"sqlite:///{store / 'mlflow.db'}"
        command = ["pretrain", "--resume", "outside", "--steps", steps, "--tracking-uri", uri]
        return subprocess.run(
            [sys.executable, "-m", "cli.main", *command],
            capture_output=True,
            text=True,
            timeout=600,
        )

    refused = resume(copy, "400")
    assert refused.returncode == 1
    errors = [line for line in refused.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and f"belong to the store {original / 'mlflow.db'}" in errors[0]
    assert checkpoint.read_bytes() == before  # the original's checkpoint untouched

    moved = tmp_path / "moved"
    original.rename(moved)  # moved, not copied: the checkpoints follow it
    assert resume(moved, "400").returncode == 0
    assert load_checkpoint(checkpoint)["step"] == 400
    assert (shared / "outside" / "store").read_text().strip() == str(moved / "mlflow.db")


def test_a_relative_sqlite_uri_is_taken_from_the_working_directory(workdir):
    uri = tracking.resolve_tracking_uri("sqlite:///mlflow.db")
    assert uri == f"sqlite:///{workdir / 'mlflow.db'}"
    client = tracking.connect("sqlite:///mlflow.db")
    experiment = client.get_experiment(tracking.ensure_experiment(client, "relative"))
    assert experiment.artifact_location == str(workdir / "mlruns")
    assert (workdir / "mlflow.db").is_file() and (workdir / ".mlflow.db.lock").exists()
    assert not Path("/.mlflow.db.lock").exists()


def test_read_only_commands_in_an_empty_folder_create_no_store(workdir):
    assert runner.invoke(app, ["library", "list"]).exit_code == 0
    for command in (
        ["library", "show", "latest"],
        ["library", "compare"],
        ["evaluate", "latest"],
        ["library", "save", "latest", "--out", "x.pt"],
    ):
        assert_one_line_error(runner.invoke(app, command), "no skill libraries")
    assert list(workdir.iterdir()) == []


@pytest.mark.parametrize("kind", ["folder", "parent is a file", "device"])
def test_a_store_path_that_cannot_be_a_database_is_refused_fast(workdir, kind):
    target = {
        "folder": workdir / "a-folder",
        "parent is a file": workdir / "a-file" / "mlflow.db",
        "device": Path("/dev/null"),
    }[kind]
    (workdir / "a-folder").mkdir()
    (workdir / "a-file").write_text("not a folder\n")
    before = sorted(workdir.iterdir())
    for uri in (str(target), f"sqlite:///{target}"):
        for command in (["library", "list"], ["pretrain", "pendulum", *TINY_RUN]):
            started = time.monotonic()
            result = runner.invoke(app, [*command, "--tracking-uri", uri])
            assert_one_line_error(result, "cannot open the MLflow store", str(target))
            assert time.monotonic() - started < 20  # no minutes of MLflow's retries
    assert sorted(workdir.iterdir()) == before  # no store, no checkpoints/, no lock
    assert not Path("/dev/.null.lock").exists()
