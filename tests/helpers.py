"""Test helpers shared by several modules."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request

from skillforge.core.config import PretrainConfig
from skillforge.store.ui_server import answers


def tiny_config(**changes) -> PretrainConfig:
    """Pendulum, 4 skills, small nets: seconds per run, every code path exercised."""
    values = dict(
        env_id="Pendulum-v1",
        n_skills=4,
        total_steps=300,
        hidden=32,
        batch_size=32,
        buffer_size=1_000,
        learning_starts=100,
        checkpoint_every=100,
        log_every=50,
        threads=1,
        device="cpu",
    )
    values.update(changes)
    return PretrainConfig(**values)


def assert_one_line_error(result, *fragments: str) -> str:
    """A refusal: non-zero exit, exactly one `error: ...` line on stderr holding every
    fragment, no traceback. Returns the line."""
    assert result.exit_code not in (0, None), result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


@contextlib.contextmanager
def serving(command: list[str], port: int, env: dict | None = None, timeout: float = 240.0):
    """Run a model server `command` (a real process, in its own process group) until it
    answers GET /ping on `port`; yields the process, stopped with SIGTERM afterwards (its
    exit code and output are then on the process: `returncode`, `stopped_output`)."""
    process = subprocess.Popen(
        command,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + timeout
        while not answers(f"http://127.0.0.1:{port}/ping"):
            assert process.poll() is None, process.communicate()[1]
            assert time.monotonic() < deadline, f"no answer on port {port} within {timeout} s"
            time.sleep(0.5)
        yield process
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.stopped_output = process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.stopped_output = process.communicate()


def post_json(port: int, body: bytes, content_type: str = "application/json") -> tuple[int, dict]:
    """POST `body` to /invocations on `port` with urllib: (HTTP status, the JSON answer)."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/invocations", data=body, headers={"Content-Type": content_type}
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())
