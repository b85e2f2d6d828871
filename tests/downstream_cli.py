"""Real `skillforge` processes on a real tiny library, for the tests of `finetune` and
`hierarchical` as a user runs them (progress output, interrupts)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEADLINE = 600.0
"""Seconds any one process may take: generous, the machine is shared."""


def cli(folder, *args: str) -> subprocess.Popen:
    """`skillforge ARGS` as a real process in `folder` (its store: ./mlflow.db), its output
    piped (not a terminal)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env.update(PYTHONUNBUFFERED="1", PYTHONPATH=ROOT)
    return subprocess.Popen(
        [sys.executable, "-m", "cli.main", *args],
        cwd=folder,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """A folder whose store holds a tiny Pendulum library of 4 skills, `pend`."""
    folder = tmp_path_factory.mktemp("downstream")
    tiny = "--skills 4 --steps 300 --hidden 32 --batch-size 32 --buffer-size 1000"
    tiny += " --learning-starts 100 --eval-episodes 0 --no-video --threads 1 --name pend"
    process = cli(folder, "pretrain", "pendulum", *tiny.split())
    _, err = process.communicate(timeout=DEADLINE)
    assert process.returncode == 0, err
    return folder
