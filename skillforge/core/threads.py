"""How many torch threads a run uses when it is not told (`--threads 0`, the default).

Two threads on two cores make a 300 x 300 network up to a third faster on a quiet machine, but
when other jobs hold the cores every parallel region waits for a thread that is not running:
measured on this project's 2-core machine beside two busy training runs, a small Pendulum
library took 694 s with two threads against 35 s with one. So a run takes the cores the other
jobs leave free (the 1-minute load average less its own share) and decides again every 30 s
as jobs come and go; and idle OpenMP threads sleep instead of spinning (`OMP_WAIT_POLICY=PASSIVE`,
set when skillforge is imported before torch, unless the user chose a policy), so the minute a
new job needs to show in the load average costs 2x, not 20x.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

RECHECK_SECONDS = 30.0
WAIT_POLICY_VARIABLES = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")


def wait_passively() -> None:
    """Let idle OpenMP threads sleep, unless the user set `OMP_WAIT_POLICY` or
    `GOMP_SPINCOUNT` (read once, when torch loads: call before importing torch)."""
    if not any(name in os.environ for name in WAIT_POLICY_VARIABLES):
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"


def machine_cores() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0))


def free_cores(own_load: float = 0.0) -> int:
    """The cores other jobs leave free: this process's cores less the 1-minute load average
    that is not this process's own (`own_load`, in cores), at least one."""
    cores = machine_cores()
    others = max(0.0, os.getloadavg()[0] - own_load)
    return max(1, min(cores, round(cores - others)))


class FreeCoreThreads:
    """Training callback: torch's threads follow the free cores, decided at the start and
    again every `every` seconds (this process's own load measured by its CPU time)."""

    def __init__(
        self, every: float = RECHECK_SECONDS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.every, self.clock = every, clock
        self.since = self.cpu_since = 0.0
        self.threads = 0

    def _use(self, threads: int) -> None:
        import torch

        self.threads = threads
        torch.set_num_threads(threads)
        self.since, self.cpu_since = self.clock(), time.process_time()

    def on_start(self, info: dict) -> None:
        self._use(free_cores())

    def on_step(self, step: int, metrics: dict[str, float]) -> None:
        elapsed = self.clock() - self.since
        if elapsed >= self.every:
            own = (time.process_time() - self.cpu_since) / elapsed
            self._use(free_cores(own))
