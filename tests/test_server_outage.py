"""The tracking server goes away mid-run: a real `mlflow server` on loopback, stopped while
two pretraining runs log to it. Training goes on with a warning, metrics wait in the
run's journal. The server comes back while run A waits for it: A sends everything and
registers its skills. Run B gives up first: it ends with its checkpoint and the command
that registers it later, and that command, once the server is back, completes it."""

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import requests
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from cli.main import app
from skillforge.store.ui_server import free_port

BIN = Path(sys.executable).parent
TINY = (
    "--skills 4 --hidden 32 --batch-size 32 --buffer-size 1000 --learning-starts 100 "
    "--checkpoint-every 500 --threads 1 --eval-episodes 1 --no-video"
).split()
STEPS = {"waits": 5000, "gives-up": 1500}  # "waits" trains on long after the server goes


class Server:
    """`mlflow server` on 127.0.0.1 with a sqlite store; start, stop, start again."""

    def __init__(self, folder: Path) -> None:
        self.folder, self.port = folder, free_port()
        self.db = folder / "server.db"
        self.uri = f"http://127.0.0.1:{self.port}"
        self.process = None

    def start(self) -> None:
        env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
        command = [str(BIN / "mlflow"), "server", "--backend-store-uri", f"sqlite:///{self.db}"]
        command += ["--host", "127.0.0.1", "--port", str(self.port), "--workers", "1"]
        log = open(self.folder / "server.log", "a")  # noqa: SIM115 (the server owns it)
        self.process = subprocess.Popen(
            command, cwd=self.folder, env=env, stdout=log, stderr=log, start_new_session=True
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert self.process.poll() is None, (self.folder / "server.log").read_text()[-2000:]
            try:
                if requests.get(f"{self.uri}/health", timeout=1).ok:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.3)
        raise AssertionError("mlflow server did not start within 120 s")

    def stop(self) -> None:
        """Gone at once, as a crashed or unplugged server (the server and its workers are
        our own process group)."""
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def logged_step(self, library: str) -> int:
        """The step tag of a library's run, read straight from the server's database."""
        sql = (
            "SELECT s.value FROM tags s JOIN tags n ON s.run_uuid = n.run_uuid "
            "WHERE s.key = 'skillforge.step' AND n.key = 'skillforge.library' AND n.value = ?"
        )
        try:
            with sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=1) as connection:
                rows = connection.execute(sql, (library,)).fetchall()
        except sqlite3.OperationalError:
            return -1
        return int(rows[0][0]) if rows else -1


def wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def noticed_outage(stderr: str) -> bool:
    """A run warned that the store is gone: mid-run, or (if training outran the sender)
    while it waits at the end."""
    return "does not answer" in stderr or "waiting up to" in stderr


def test_training_survives_the_tracking_server_going_away(tmp_path):
    server = Server(tmp_path)
    runs = {}
    try:
        server.start()
        env = {**os.environ, "MUJOCO_GL": "egl", "PYTHONUNBUFFERED": "1"}
        env.pop("MLFLOW_TRACKING_URI", None)
        env.pop("MLFLOW_REGISTRY_URI", None)
        for name, timeout in (("waits", "300"), ("gives-up", "3")):
            command = [sys.executable, "-m", "cli.main", "pretrain", "pendulum", "--name", name]
            command += [*TINY, "--steps", str(STEPS[name]), "--tracking-uri", server.uri]
            command += ["--store-timeout", timeout]
            runs[name] = subprocess.Popen(
                command,
                cwd=tmp_path,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=(tmp_path / f"{name}.err").open("w"),  # read while it runs
                text=True,
            )
        wait_for(  # at once: on a fast machine "gives-up" could otherwise finish first
            lambda: server.logged_step("gives-up") >= 500 and server.logged_step("waits") >= 0,
            180,
            "the first metric report of the short run, and the long run's start",
        )
        server.stop()  # mid-run: both are still training
        assert all(process.poll() is None for process in runs.values())
        assert server.logged_step("waits") < STEPS["waits"], "stopped too late to test anything"

        runs["gives-up"].wait(timeout=300)
        gave_up_err = (tmp_path / "gives-up.err").read_text()
        assert runs["gives-up"].returncode == 1, gave_up_err
        assert noticed_outage(gave_up_err), gave_up_err
        errors = [  # (SDL, used by the evaluation's rendering, may add its own "error:" lines)
            line
            for line in gave_up_err.splitlines()
            if line.startswith("error: ") and "XDG_RUNTIME_DIR" not in line
        ]
        assert len(errors) == 1 and "Traceback" not in gave_up_err, gave_up_err
        assert "is trained (step 1,500)" in errors[0]
        assert "finish with: skillforge library register" in errors[0]
        register_later = errors[0].split("finish with: ", 1)[1].split()
        checkpoint = tmp_path / "checkpoints" / "gives-up" / "checkpoint.pt"
        assert checkpoint.is_file()

        wait_for(  # it must meet the outage before the server is back, however slow it is
            lambda: noticed_outage((tmp_path / "waits.err").read_text()),
            300,
            "the long run's warning that the store does not answer",
        )
        server.start()  # back, while "waits" is still training or waiting
        runs["waits"].wait(timeout=300)
        waited_err = (tmp_path / "waits.err").read_text()
        assert runs["waits"].returncode == 0, waited_err

        assert register_later[:3] == ["skillforge", "library", "register"]
        result = CliRunner().invoke(app, register_later[1:])
        assert result.exit_code == 0, result.output

        client = MlflowClient(server.uri, registry_uri=server.uri)
        for name in runs:
            run = client.search_runs(
                [e.experiment_id for e in client.search_experiments()],
                filter_string=f"tags.`skillforge.library` = '{name}'",
            )[0]
            assert run.info.status == "FINISHED", name
            assert run.data.tags["skillforge.status"] == "finished", name
            for key in ("log_q_z", "critic_loss", "extrinsic_return"):
                steps = sorted(m.step for m in client.get_metric_history(run.info.run_id, key))
                expected = list(range(500, STEPS[name] + 1, 500))
                assert steps == expected, (name, key, steps)  # nothing lost, nothing twice
            evaluations = client.get_metric_history(run.info.run_id, "eval/best_skill_return")
            assert len(evaluations) == 1, name
            for skill in range(4):
                versions = client.search_model_versions(f"name = '{name}.skill-{skill:02d}'")
                assert len(versions) == 1, (name, skill)
    finally:
        for process in runs.values():
            if process.poll() is None:
                process.kill()
                process.wait()
        server.stop()
