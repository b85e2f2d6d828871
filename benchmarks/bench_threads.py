"""Default threads on a quiet and on a shared machine: wall time of whole `pretrain` commands.

    python benchmarks/bench_threads.py [--busy 0,2] [--steps 1500] [--hopper-steps 2500]
        [--hopper-busy 0,1] [--repeats 2]

Four thread settings, each a fresh `skillforge pretrain` subprocess, interleaved so that
machine noise hits all alike:
- `one`: `--threads 1`;
- `all-spinning`: every core, idle threads spinning as libgomp does by default (300,000
  spins: skillforge's default before it chose threads from the free cores);
- `all-passive`: every core, idle threads asleep at once (`OMP_WAIT_POLICY=PASSIVE`);
- `default`: `--threads 0`, the cores other jobs leave free, decided again every 30 s, idle
  threads spinning 10,000 times, then asleep (`skillforge.core.threads`).
Each runs a small Pendulum library (4 skills, 64 units, batch 64) beside `--busy` processes
that keep cores busy (0: nothing else started here), and the paper's 300 x 300 Hopper
setting (batch 256) beside `--hopper-busy` of them, each setting `--repeats` times. Records
go to `benchmarks/results/threads.json` (each run, with the load average at its start: a
machine already shared shows it there, and the median of each setting per case).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from skillforge.core.threads import WAIT_POLICY_VARIABLES, machine_cores

RESULTS = Path(__file__).parent / "results" / "threads.json"
SETTINGS = {  # name: (--threads, extra environment)
    "one": ("1", {}),
    "all-spinning": (str(machine_cores()), {"GOMP_SPINCOUNT": "300000"}),
    "all-passive": (str(machine_cores()), {"OMP_WAIT_POLICY": "PASSIVE"}),
    "default": ("0", {}),
}
PENDULUM = "pendulum --skills 4 --hidden 64 --batch-size 64 --learning-starts 500"
HOPPER = "hopper --skills 20 --learning-starts 1000"
BUSY_LOOP = "while True: pass"


def pretrain_seconds(workload: str, steps: int, setting: str, folder: str) -> float:
    """Wall seconds of one `skillforge pretrain` run, in its own store."""
    threads, extra = SETTINGS[setting]
    env = {k: v for k, v in os.environ.items() if k not in WAIT_POLICY_VARIABLES}
    store = tempfile.mkdtemp(dir=folder)
    command = [sys.executable, "-m", "cli.main", "pretrain", *workload.split()]
    command += ["--steps", str(steps), "--threads", threads, "--eval-episodes", "0"]
    command += ["--no-video", "--eval-every", "0", "--name", "bench"]
    command += ["--tracking-uri", f"sqlite:///{store}/mlflow.db"]
    start = time.perf_counter()
    subprocess.run(
        command,
        cwd=store,
        env={**env, **extra},
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return time.perf_counter() - start


def measure(workload: str, steps: int, busy: int, folder: str, repeats: int) -> list[dict]:
    """Every setting `repeats` times, interleaved, beside `busy` busy-looping processes."""
    loops = [  # sessions of their own, as other users' jobs are (the kernel's autogroups)
        subprocess.Popen([sys.executable, "-c", BUSY_LOOP], start_new_session=True)
        for _ in range(busy)
    ]
    try:
        records = []
        for repeat in range(repeats):
            for setting in SETTINGS:
                load = os.getloadavg()[0]
                seconds = pretrain_seconds(workload, steps, setting, folder)
                records.append(
                    {
                        "workload": workload.split()[0],
                        "steps": steps,
                        "busy_processes": busy,
                        "setting": setting,
                        "repeat": repeat,
                        "seconds": round(seconds, 1),
                        "load_at_start": round(load, 2),
                    }
                )
                print(json.dumps(records[-1]), flush=True)
        return records
    finally:
        for process in loops:
            process.kill()
            process.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--busy", default="0,2", help="busy processes beside each run")
    parser.add_argument("--steps", type=int, default=1500, help="Pendulum env steps")
    parser.add_argument("--hopper-steps", type=int, default=2500, help="0: skip Hopper")
    parser.add_argument("--hopper-busy", default="0,1", help="busy processes beside Hopper")
    parser.add_argument("--repeats", type=int, default=2, help="runs of each setting")
    parser.add_argument("--json", type=Path, default=RESULTS)
    args = parser.parse_args()
    # a kill ends the benchmark through its cleanups, so no busy process is left behind
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    with tempfile.TemporaryDirectory() as folder:
        records = []
        for busy in [int(b) for b in args.busy.split(",")]:
            records += measure(PENDULUM, args.steps, busy, folder, args.repeats)
        if args.hopper_steps:
            for busy in [int(b) for b in args.hopper_busy.split(",")]:
                records += measure(HOPPER, args.hopper_steps, busy, folder, args.repeats)
    machine = {"cores": machine_cores(), "load_at_end": os.getloadavg()[0]}
    summary = medians(records)
    for row in summary:
        print(row)
    result = {"machine": machine, "medians": summary, "runs": records}
    args.json.write_text(json.dumps(result, indent=1) + "\n")


def medians(records: list[dict]) -> list[dict]:
    """Median seconds of each setting per (workload, busy processes)."""
    seconds: dict[tuple, list[float]] = {}
    for r in records:
        seconds.setdefault((r["workload"], r["busy_processes"], r["setting"]), []).append(
            r["seconds"]
        )
    cases = sorted({(workload, busy) for workload, busy, _ in seconds})
    return [
        {
            "workload": workload,
            "busy_processes": busy,
            **{s: statistics.median(seconds[workload, busy, s]) for s in SETTINGS},
        }
        for workload, busy in cases
    ]


if __name__ == "__main__":
    main()
