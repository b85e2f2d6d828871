"""Ctrl-C or SIGTERM to `finetune` or `hierarchical` (real CLI processes on a real tiny
library), in whichever phase: the work stops at the next step boundary, the MLflow run ends
as KILLED, one line says where it stopped, what was kept and how to run it again; exit 130.

No timing: each test waits (generous deadline) until the progress output announces the phase
it wants, and that phase is made far longer than a signal takes to arrive."""

from __future__ import annotations

import queue
import shlex
import signal
import subprocess
import threading
import time

import pytest
from downstream_cli import DEADLINE, cli, folder  # noqa: F401  (a fixture)
from mlflow import MlflowClient


def stop_during(process: subprocess.Popen, after: str, signum: int) -> tuple[str, str]:
    """Wait until a stdout line starts with `after` (a phase starting, or ending), send
    `signum`, and return the whole stdout and stderr."""
    lines: queue.Queue = queue.Queue()
    seen: list[str] = []

    def read() -> None:
        for line in process.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=read, daemon=True).start()
    deadline = time.monotonic() + DEADLINE
    while True:
        line = lines.get(timeout=max(1.0, deadline - time.monotonic()))
        assert line is not None, f"ended before {after!r}: {process.stderr.read()}"
        seen.append(line)
        if line.startswith(after):
            break
    process.send_signal(signum)
    err = process.stderr.read()
    process.wait(timeout=DEADLINE)
    while (line := lines.get(timeout=DEADLINE)) is not None:
        seen.append(line)
    return "".join(seen), err


CASES = [
    # command, its options, the output line (its start) after which to stop it, the phase
    # that line shows running, the signal
    (
        "finetune",
        "--steps 1000000 --validation-episodes 100",
        "best-skill selection:",
        "best-skill selection",
        signal.SIGTERM,
    ),
    (
        "finetune",
        "--steps 1000000 --validation-episodes 2 --eval-episodes 2 --learning-starts 100",
        "fine-tuning:",
        "fine-tuning",
        signal.SIGINT,
    ),
    (
        "hierarchical",
        "--steps 1000000 --validation-episodes 100 --eval-episodes 2",
        "best-skill selection:",
        "best-skill selection",
        signal.SIGINT,
    ),
    (  # the meta-controller's own selection done (20 episodes), its training runs
        "hierarchical",
        "--steps 1000000 --validation-episodes 2 --eval-episodes 2 --validate-every 1000000",
        "best-skill selection 20/20 ",
        "meta-controller",
        signal.SIGTERM,
    ),
]


@pytest.mark.parametrize(("command", "options", "after", "phase", "signum"), CASES)
def test_a_stopped_downstream_run_ends_killed_and_says_how_to_run_it_again(
    folder,  # noqa: F811
    command,
    options,
    after,
    phase,
    signum,
):
    args = [command, "--library", "pend", *options.split(), "--threads", "1"]
    out, err = stop_during(cli(folder, *args), after, signum)
    name = signal.Signals(signum).name
    lines = err.strip().splitlines()
    assert len(lines) == 1, err  # one line, no traceback
    line = lines[0]
    assert line.startswith(f"Stopped ({name}) during {phase} at "), line
    again = shlex.split(line.split("Run it again with: ")[1])
    assert again[:2] == ["skillforge", command], line
    assert options_of(again[2:]) == options_of(args[1:]), line  # the same options, as typed
    run_id = line.split(": run ")[1].split()[0]

    run = MlflowClient(f"sqlite:///{folder / 'mlflow.db'}").get_run(run_id)
    assert run.info.status == "KILLED"
    assert run.data.tags["skillforge.status"].startswith(f"interrupted during {phase_key(phase)}")
    assert run.data.tags["skillforge.kind"] == ("finetune" if command == "finetune" else "meta")
    done, total = line.split(f"during {phase} at ")[1].split(" ")[0:3:2]
    assert int(done.replace(",", "")) < int(total.replace(",", ""))  # stopped mid-phase
    assert "registered" not in out  # the summary of a finished run never came


def phase_key(label: str) -> str:
    """The phase's name in the run's status tag."""
    return {
        "best-skill selection": "selection",
        "fine-tuning": "finetune",
        "meta-controller": "meta",
    }[label]


def options_of(words: list[str]) -> dict[str, str]:
    """`--option value` pairs."""
    return dict(zip(words[::2], words[1::2], strict=True))
