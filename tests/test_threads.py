"""Default threads: the cores other jobs leave free, measured from the kernel's busy time and
decided again while training, and idle OpenMP threads that spin briefly, then sleep. Where a
test needs a known load it gives the readings (busy seconds, a clock); the busy machine is
real: processes that spin on every core."""

import os
import subprocess
import sys
import time

import pytest
import torch
from helpers import tiny_config

from skillforge.core import threads
from skillforge.rl import loop

CORES = threads.machine_cores()


@pytest.fixture(autouse=True)
def keep_threads():
    previous = torch.get_num_threads()
    yield
    torch.set_num_threads(previous)


class Machine:
    """Readings of a machine where other jobs keep `load` cores busy: a clock that `sleep`
    moves, and busy seconds that grow by `load` per second plus this process's own CPU."""

    def __init__(self) -> None:
        self.now, self.load, self.busy_before = 0.0, 0.0, 0.0
        self.since, self.own_since = 0.0, time.process_time()

    def set_load(self, load: float) -> None:
        self.busy_before, self.since = self.busy(), self.now
        self.load = load

    def busy(self) -> float:
        own = time.process_time() - self.own_since
        return self.busy_before + self.load * (self.now - self.since) + own

    def sleep(self, seconds: float) -> None:
        self.now += seconds

    def callback(
        self, every: float = 30.0, work: int = threads.PARALLEL_WORK
    ) -> threads.FreeCoreThreads:
        return threads.FreeCoreThreads(work, every, self.busy, lambda: self.now, self.sleep)


def spin_count_after_import(**variables: str) -> str:
    code = "import os, skillforge; print(os.environ.get('GOMP_SPINCOUNT', 'unset'))"
    env = {k: v for k, v in os.environ.items() if k not in threads.WAIT_POLICY_VARIABLES}
    out = subprocess.run(
        [sys.executable, "-c", code], env={**env, **variables}, capture_output=True, text=True
    )
    return out.stdout.strip()


def test_idle_threads_spin_briefly_unless_the_user_chose_how_they_wait():
    assert spin_count_after_import() == str(threads.SPIN_COUNT)
    assert spin_count_after_import(OMP_WAIT_POLICY="PASSIVE") == "unset"
    assert spin_count_after_import(GOMP_SPINCOUNT="1000") == "1000"


def test_free_cores_are_the_cores_less_those_other_jobs_keep_busy():
    assert threads.free_cores(0.0) == CORES
    assert threads.free_cores(0.4) == CORES
    assert threads.free_cores(CORES - 1.0) == 1
    assert threads.free_cores(CORES + 3.0) == 1


def test_busy_time_is_read_from_the_lines_of_this_process_s_cores(tmp_path):
    stat = tmp_path / "stat"
    lines = ["cpu  9 9 9 9 9 9 9 9 0 0"]
    lines += [f"cpu{core} 100 20 30 5000 70 1 2 3 0 0" for core in range(CORES)]
    lines += ["cpu999 100000 0 0 0 0 0 0 0 0 0", "intr 12345 1 2", "procs_running 3"]
    stat.write_text("\n".join(lines) + "\n")
    hz = os.sysconf("SC_CLK_TCK")
    assert threads.busy_seconds(stat) == pytest.approx(CORES * 156 / hz)
    assert threads.busy_seconds(tmp_path / "missing") is None
    assert threads.busy_seconds() > 0  # this machine's own /proc/stat


def test_a_run_starts_on_the_free_cores_at_once_not_a_minute_later():
    machine = Machine()
    machine.set_load(CORES)  # other jobs held every core until now...
    machine.sleep(60.0)
    machine.set_load(0.0)  # ...and have just ended: the load average still says CORES
    callback = machine.callback()
    callback.on_start({})
    assert callback.threads == torch.get_num_threads() == CORES


def test_threads_are_decided_again_only_after_the_interval():
    machine = Machine()
    callback = machine.callback(every=30.0)
    callback.on_start({})
    assert callback.threads == CORES
    machine.set_load(CORES)  # other jobs arrive
    machine.sleep(29.0)
    callback.on_step(1000, {})
    assert torch.get_num_threads() == CORES
    machine.sleep(2.0)
    callback.on_step(2000, {})
    assert callback.threads == torch.get_num_threads() == 1
    machine.set_load(0.0)  # and leave
    machine.sleep(31.0)
    callback.on_step(3000, {})
    assert callback.threads == torch.get_num_threads() == CORES


def test_small_networks_train_on_one_thread_even_on_a_free_machine():
    small = Machine().callback(work=64 * 64**2)  # Pendulum's 64 units, batch 64
    small.on_start({})
    assert small.threads == torch.get_num_threads() == 1
    large = Machine().callback(work=256 * 300**2)  # the paper's 300 units, batch 256
    large.on_start({})
    assert large.threads == torch.get_num_threads() == CORES


def test_without_the_kernel_s_figures_a_run_takes_every_core():
    callback = threads.FreeCoreThreads(busy=lambda: None, sleep=lambda seconds: None)
    callback.on_start({})
    assert callback.threads == CORES


@pytest.mark.skipif(CORES == 1, reason="one core: one thread whatever the load")
def test_a_run_with_default_threads_steps_down_on_a_busy_machine(tmp_path):
    spin = [sys.executable, "-c", "while True: pass"]
    spinners = [subprocess.Popen(spin) for _ in range(CORES)]
    try:
        torch.set_num_threads(CORES)
        config = tiny_config(threads=0, total_steps=150, hidden=256, batch_size=64)
        loop.train(config, str(tmp_path / "c.pt"))
        assert torch.get_num_threads() == 1
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()
