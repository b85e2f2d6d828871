"""`skillforge server`: PostgreSQL and `mlflow server` on it, as a user starts them."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from helpers import assert_one_line_error
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from cli.main import app
from skillforge.store.ui_server import answers, free_port, port_in_use

BIN = Path(sys.executable).parent


@pytest.fixture
def folder():
    """A folder the postgres user can reach (pytest's own temp folders are private)."""
    path = Path(tempfile.mkdtemp(prefix="skillforge-server-"))
    path.chmod(0o755)
    yield path / "store"
    shutil.rmtree(path, ignore_errors=True)


def start_server(folder: Path, port: int, log: Path) -> subprocess.Popen:
    command = [str(BIN / "skillforge"), "server", "--folder", str(folder), "--port", str(port)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    with log.open("a") as output:
        server = subprocess.Popen(command, env=env, stdout=output, stderr=output)
    # Ready once the command says so: the server answering /health alone races the command's
    # own check, and a Ctrl-C sent in between stops it before it has printed its address.
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        assert server.poll() is None, log.read_text()[-2000:]
        printed = "MLflow server: http://" in log.read_text()
        if printed and answers(f"http://127.0.0.1:{port}/health", timeout=1):
            return server
        time.sleep(0.5)
    server.kill()
    raise AssertionError(f"skillforge server did not answer: {log.read_text()[-2000:]}")


def stop_server(server: subprocess.Popen) -> int:
    server.send_signal(signal.SIGINT)
    return server.wait(timeout=120)


def postgres_running(folder: Path) -> bool:
    return (folder / "postgres" / "data" / "postmaster.pid").is_file()


def test_server_keeps_runs_in_postgres_and_artifacts_in_its_folder_across_restarts(
    folder, tmp_path
):
    port, log = free_port(), tmp_path / "server.log"
    server = start_server(folder, port, log)
    try:
        uri = f"http://127.0.0.1:{port}"
        client = MlflowClient(uri)
        experiment = client.create_experiment("shared")
        run = client.create_run(experiment)
        client.log_metric(run.info.run_id, "loss", 0.5, step=3)
        note = tmp_path / "note.txt"
        note.write_text("proxied")
        client.log_artifact(run.info.run_id, str(note))
    finally:
        code = stop_server(server)
    assert code == 0, log.read_text()[-2000:]
    assert "MLflow server: http://127.0.0.1:" in log.read_text()
    assert not postgres_running(folder)  # Ctrl-C stopped the database too
    assert not port_in_use("127.0.0.1", port)  # and freed the port
    stored = list((folder / "artifacts").rglob("note.txt"))  # written by the server
    assert len(stored) == 1 and stored[0].read_text() == "proxied"
    assert oct((folder / "postgres" / "password").stat().st_mode)[-3:] == "600"

    server = start_server(folder, port, log)  # the same folder: the same store
    try:
        history = MlflowClient(uri).get_metric_history(run.info.run_id, "loss")
        assert [(m.step, m.value) for m in history] == [(3, 0.5)]
    finally:
        assert stop_server(server) == 0


def test_server_refusals_are_one_line_and_write_nothing(folder, tmp_path):
    runner = CliRunner()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = runner.invoke(app, ["server", "--folder", str(folder), "--port", str(port)])
    assert_one_line_error(result, f"port {port}", "in use")
    assert not folder.exists()
    if os.geteuid() == 0:  # PostgreSQL runs as `postgres`, who cannot enter pytest's folders
        private = tmp_path / "store"
        result = runner.invoke(
            app, ["server", "--folder", str(private), "--port", str(free_port())]
        )
        assert_one_line_error(result, "cannot reach")
        assert not private.exists()
