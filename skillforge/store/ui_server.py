"""The MLflow UI on a skillforge store, as a child process that stops with its parent."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from skillforge.core.errors import SkillforgeError
from skillforge.store.paths import artifact_root
from skillforge.store.tracking import connect

LOOPBACK = ("127.0.0.1", "localhost", "::1")


class UiError(SkillforgeError):
    """The MLflow UI cannot start (port taken, server exited)."""


def is_server_store(uri: str) -> bool:
    """A tracking server (http, https, databricks) has its own UI; skillforge starts none."""
    return uri.split("://", 1)[0] in ("http", "https", "databricks")


def ui_command(uri: str, host: str, port: int) -> list[str]:
    """`mlflow ui` on store `uri`, with this interpreter (so the venv's mlflow and uvicorn)."""
    command = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri]
    root = artifact_root(uri)
    if root is not None:  # experiments created in the UI keep artifacts by the db
        command += ["--default-artifact-root", root]
    # one user: one worker (the default 4 each import mlflow, ~10 s apiece on 2 cores)
    return command + ["--workers", "1", "--host", host, "--port", str(port)]


def port_in_use(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return True
    return False


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def url(host: str, port: int) -> str:
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    return f"http://[{shown}]:{port}" if ":" in shown else f"http://{shown}:{port}"


class UiServer:
    """`with UiServer(uri, host, port) as server:` the UI answers at `server.url` inside."""

    what = "the MLflow UI"

    def __init__(self, uri: str, host: str = "127.0.0.1", port: int = 5000) -> None:
        self.uri, self.host, self.port = uri, host, port
        self.url = url(host, port)
        self.process: subprocess.Popen | None = None
        self.log = None  # the UI's stderr (a file: a pipe nobody reads would block it)

    def start(self, timeout: float = 120.0) -> str:
        """Start the UI and wait until it answers HTTP; returns its address."""
        if port_in_use(self.host, self.port):
            raise UiError(f"port {self.port} on {self.host} is in use; pick another with --port")
        self.prepare()
        env = {**os.environ, **self.environment()}
        bin_dir = str(Path(sys.executable).parent)  # mlflow execs the venv's uvicorn
        env["PATH"] = bin_dir + os.pathsep + env.get("PATH", "")
        # background GenAI jobs (trace scoring) start a job runner and its workers: not needed
        env.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
        self.log = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115  (closed by stop())
        self.process = subprocess.Popen(
            self.command(),
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=self.log,
            start_new_session=True,  # its own process group: stopped as one, never orphaned
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.log.seek(0)
                error = self.log.read().strip().splitlines()
                self.stop()
                raise UiError(f"{self.what} exited: {error[-1] if error else 'no message'}")
            if answers(f"{self.url}/health"):
                return self.url
            time.sleep(0.5)
        self.stop()
        raise UiError(f"{self.what} did not answer at {self.url} within {timeout:.0f} s")

    def prepare(self) -> None:
        """The store ready: its schema made, a moved store's paths followed, older ones
        repaired."""
        connect(self.uri)

    def command(self) -> list[str]:
        return ui_command(self.uri, self.host, self.port)

    def environment(self) -> dict[str, str]:
        """Variables the server process needs besides ours (kept off its command line)."""
        return {}

    def wait(self) -> int:
        """Block until the UI exits; Ctrl-C (or SIGTERM) stops it."""
        assert self.process is not None
        return self.process.wait()

    def stop(self) -> None:
        """Stop the UI and every process it started (its whole process group)."""
        if self.log is not None:
            self.log.close()
            self.log = None
        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=15)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self.process = None

    def __enter__(self) -> UiServer:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def answers(address: str, timeout: float = 2.0) -> bool:
    """True if `address` answers an HTTP GET with status 200."""
    try:
        with urllib.request.urlopen(address, timeout=timeout) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False
