"""`skillforge ui`: the MLflow UI answers HTTP on loopback, and Ctrl-C stops it and its children."""

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from typer.testing import CliRunner

from cli.main import app
from skillforge.store import tracking
from skillforge.store import ui_server as ui
from skillforge.store.ui_server import free_port

runner = CliRunner()


def children(pid: int) -> list[int]:
    """Direct children of `pid` (Linux /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "Z" not in _state(pid)


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "Z"


def test_ui_answers_on_loopback_and_ctrl_c_stops_it(tmp_path):
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracking.connect(store)  # the schema exists, as after any pretrain
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "ui", "--port", str(port), "--tracking-uri", store],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )
    try:
        line = process.stdout.readline()  # printed once the UI answers
        assert line.startswith(f"MLflow UI: http://127.0.0.1:{port}"), (line, process.stderr)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as response:
            assert response.status == 200 and b"MLflow" in response.read()
        server_pids = children(process.pid)
        assert server_pids, "the UI runs as a child process"

        process.send_signal(signal.SIGINT)  # what Ctrl-C does
        assert process.wait(timeout=90) == 0  # generous: CI machines are shared
        assert not ui.port_in_use("127.0.0.1", port) or not ui.answers(
            f"http://127.0.0.1:{port}/health"
        )
        deadline = time.monotonic() + 10
        while any(alive(pid) for pid in server_pids) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not any(alive(pid) for pid in server_pids), "no orphaned server"
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_a_busy_port_is_refused_in_one_line(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        store = f"sqlite:///{tmp_path / 'mlflow.db'}"
        result = runner.invoke(app, ["ui", "--port", str(port), "--tracking-uri", store])
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: port {port} on 127.0.0.1 is in use; pick another with --port"
    )


def test_a_server_store_has_its_own_ui():
    result = runner.invoke(app, ["ui", "--tracking-uri", "http://tracking.example:5000"])
    assert result.exit_code == 0
    assert "its UI is the server's own, at http://tracking.example:5000" in result.stdout


def test_the_command_uses_this_interpreters_mlflow_on_the_store():
    command = ui.ui_command("sqlite:////data/mlflow.db", "127.0.0.1", 5123)
    assert command[:4] == [sys.executable, "-m", "mlflow", "ui"]
    assert command[command.index("--backend-store-uri") + 1] == "sqlite:////data/mlflow.db"
    assert command[command.index("--default-artifact-root") + 1] == "/data/mlruns"
    assert command[-6:] == ["--workers", "1", "--host", "127.0.0.1", "--port", "5123"]
