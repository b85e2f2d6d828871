"""Default threads: the cores other jobs leave free, decided again while training, and idle
OpenMP threads that sleep. The 1-minute load average cannot be set by a test, so the tests
that need a known load replace `os.getloadavg`; everything else is real."""

import os
import subprocess
import sys

import pytest
import torch
from helpers import tiny_config

from skillforge.core import threads
from skillforge.rl import loop


@pytest.fixture
def load(monkeypatch):
    """Set the machine's 1-minute load average seen by skillforge: `load(2.0)`."""

    def set_load(value: float) -> None:
        monkeypatch.setattr(os, "getloadavg", lambda: (value, value, value))

    previous = torch.get_num_threads()
    yield set_load
    torch.set_num_threads(previous)


def wait_policy_after_import(**variables: str) -> str:
    code = "import os, skillforge; print(os.environ.get('OMP_WAIT_POLICY', 'unset'))"
    env = {k: v for k, v in os.environ.items() if k not in threads.WAIT_POLICY_VARIABLES}
    out = subprocess.run(
        [sys.executable, "-c", code], env={**env, **variables}, capture_output=True, text=True
    )
    return out.stdout.strip()


def test_idle_threads_sleep_unless_the_user_chose_how_they_wait():
    assert wait_policy_after_import() == "PASSIVE"
    assert wait_policy_after_import(OMP_WAIT_POLICY="ACTIVE") == "ACTIVE"
    assert wait_policy_after_import(GOMP_SPINCOUNT="1000") == "unset"


def test_free_cores_are_the_cores_less_the_load_of_other_jobs(load):
    cores = threads.machine_cores()
    load(0.0)
    assert threads.free_cores() == cores
    load(cores + 3.0)
    assert threads.free_cores() == 1
    load(cores - 1.0)
    assert threads.free_cores() == 1
    load(0.4)
    assert threads.free_cores() == cores
    load(cores)  # all of it this process's own
    assert threads.free_cores(own_load=cores) == cores


def test_threads_are_decided_again_only_after_the_interval(load):
    now = [0.0]
    callback = threads.FreeCoreThreads(every=30.0, clock=lambda: now[0])
    load(0.0)
    callback.on_start({})
    assert callback.threads == torch.get_num_threads() == threads.machine_cores()
    load(99.0)  # other jobs arrive
    now[0] = 29.0
    callback.on_step(1000, {})
    assert torch.get_num_threads() == threads.machine_cores()
    now[0] = 31.0
    callback.on_step(2000, {})
    assert callback.threads == torch.get_num_threads() == 1


def test_a_run_with_default_threads_steps_down_on_a_busy_machine(load, tmp_path):
    load(99.0)
    torch.set_num_threads(threads.machine_cores())
    loop.train(tiny_config(threads=0, total_steps=150), str(tmp_path / "c.pt"))
    assert torch.get_num_threads() == 1
