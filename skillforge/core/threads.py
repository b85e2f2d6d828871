"""How many torch threads a run uses when it is not told (`--threads 0`, the default), and
how long idle ones wait for work.

Two threads on two cores make a 300 x 300 network up to a third faster on a quiet machine, but
when other jobs hold the cores every parallel region waits for a thread that is not running:
measured on this project's 2-core machine beside two busy training runs, a small Pendulum
library took 694 s with two threads against 35 s with one. So a run takes the cores other jobs
leave free and decides again every 30 s as jobs come and go. "Free" is measured, not taken
from the load average (which trails by a minute, so a run started just after other work ended
would begin on one thread): the busy time the kernel counts for this process's cores
(`/proc/stat`) less the process's own CPU time, over a quarter of a second before training
and over each 30 s after.

An idle OpenMP thread spins before it sleeps: libgomp's default, 300,000 spins, holds a core
other jobs need; sleeping at once (`OMP_WAIT_POLICY=PASSIVE`) makes every small matrix
product wait for a wake-up, and two such threads ran the 300 x 300 Hopper setting slower than
one. 10,000 spins (`GOMP_SPINCOUNT`, set when skillforge is imported before torch unless the
user chose a policy) bridges the gaps between one update's products and then lets the core go:
the fastest of the three on a quiet machine (`benchmarks/bench_threads.py`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

RECHECK_SECONDS = 30.0
PARALLEL_WORK = 2**22
"""Multiply-adds of one hidden layer on one batch (batch x hidden^2) below which a second
thread does not pay for itself: a 64-unit Pendulum library (batch 64: 0.26M) ran no faster
on two threads than on one, the paper's 300-unit Hopper setting (batch 256: 23M) a quarter
faster."""
SAMPLE_SECONDS = 0.25
PROC_STAT = Path("/proc/stat")
WAIT_POLICY_VARIABLES = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")
SPIN_COUNT = 10_000
BUSY_FIELDS = (0, 1, 2, 5, 6, 7)  # user, nice, system, irq, softirq, steal (not idle, iowait)


def spin_briefly() -> None:
    """Idle OpenMP threads spin `SPIN_COUNT` times, then sleep, unless the user set
    `OMP_WAIT_POLICY` or `GOMP_SPINCOUNT` (read once, when torch loads: call before importing
    torch)."""
    if not any(name in os.environ for name in WAIT_POLICY_VARIABLES):
        os.environ["GOMP_SPINCOUNT"] = str(SPIN_COUNT)


def machine_cores() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0))


def busy_seconds(stat: Path = PROC_STAT) -> float | None:
    """CPU seconds this process's cores have been busy since boot, by anyone (their lines of
    `/proc/stat`); None where the kernel does not provide it."""
    try:
        lines = stat.read_text().splitlines()
    except OSError:
        return None
    mine = {f"cpu{core}" for core in os.sched_getaffinity(0)}
    ticks = 0
    for line in lines:
        name, *values = line.split()
        if name in mine:
            ticks += sum(int(values[field]) for field in BUSY_FIELDS)
    return ticks / os.sysconf("SC_CLK_TCK")


def free_cores(others: float) -> int:
    """The cores left when other jobs keep `others` cores busy: at least one."""
    cores = machine_cores()
    return max(1, min(cores, round(cores - others)))


class OtherJobs:
    """The cores other jobs kept busy since the last `restart`: the busy time of this
    process's cores less this process's own CPU time, per second of wall time."""

    def __init__(
        self,
        busy: Callable[[], float | None] = busy_seconds,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.busy, self.clock = busy, clock
        self.restart()

    def restart(self) -> None:
        self.busy_since, self.own_since = self.busy(), time.process_time()
        self.since = self.clock()

    def cores(self) -> float:
        busy, elapsed = self.busy(), self.clock() - self.since
        if busy is None or self.busy_since is None or elapsed <= 0:
            return 0.0
        own = time.process_time() - self.own_since
        return max(0.0, (busy - self.busy_since - own) / elapsed)

    def free_cores_sampled(self, sleep: Callable[[float], None] = time.sleep) -> int:
        """The cores other jobs leave free, measured from now over `SAMPLE_SECONDS`."""
        self.restart()
        sleep(SAMPLE_SECONDS)
        return free_cores(self.cores())


def free_cores_now() -> int:
    """The cores other jobs leave free, measured over the next `SAMPLE_SECONDS`."""
    return OtherJobs().free_cores_sampled()


class FreeCoreThreads:
    """Training callback: torch's threads follow the free cores, measured at the start and
    decided again every `every` seconds over the time since the last decision; one thread
    whatever the cores if the networks' `work` (batch x hidden^2) is below `PARALLEL_WORK`
    (`busy`, `clock` and `sleep`: the readings, for a test to give)."""

    def __init__(
        self,
        work: int = PARALLEL_WORK,
        every: float = RECHECK_SECONDS,
        busy: Callable[[], float | None] = busy_seconds,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.every, self.sleep = every, sleep
        self.most = machine_cores() if work >= PARALLEL_WORK else 1
        self.others = OtherJobs(busy, clock)
        self.threads = 0

    def _use(self, threads: int) -> None:
        import torch

        self.threads = min(threads, self.most)
        torch.set_num_threads(self.threads)
        self.others.restart()

    def on_start(self, info: dict) -> None:
        self._use(self.others.free_cores_sampled(self.sleep))

    def on_step(self, step: int, metrics: dict[str, float]) -> None:
        if self.others.clock() - self.others.since >= self.every:
            self._use(free_cores(self.others.cores()))
