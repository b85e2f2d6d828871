"""A sweep of 4 small libraries: 2 at a time (1 thread each) against one after another.

    python benchmarks/bench_sweep.py [--steps 4000] [--repeats 1]

Both runs are the real command (`skillforge sweep pendulum --seeds 0,1,2,3 ...` on a local
Ray instance, each in a fresh embedded store), timed wall clock from the command's start to
its end, so Ray's start-up, the evaluations and the registration of every skill are in both.
Prints the times and the speed-up and writes benchmarks/results/sweep.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "sweep.json"
SKILLFORGE = str(Path(sys.executable).parent / "skillforge")


def sweep_command(steps: int, concurrent: int) -> list[str]:
    return [
        SKILLFORGE, "sweep", "pendulum", "--seeds", "0,1,2,3", "--skills", "4",
        "--steps", str(steps), "--hidden", "64", "--batch-size", "64",
        "--learning-starts", "500", "--buffer-size", "10000", "--checkpoint-every", "2000",
        "--eval-episodes", "1", "--eval-every", "0", "--name", "bench",
        "--max-concurrent", str(concurrent), "--cpus-per-trial", "1",
    ]  # fmt: skip


def timed_sweep(steps: int, concurrent: int) -> float:
    """Seconds for the whole sweep command, in a fresh folder (its own store)."""
    env = {**os.environ, "MUJOCO_GL": "egl"}
    env.pop("MLFLOW_TRACKING_URI", None)
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        done = subprocess.run(
            sweep_command(steps, concurrent), cwd=folder, env=env, capture_output=True, text=True
        )
        seconds = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"the sweep failed: {done.stderr.strip().splitlines()[-1:]}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=4000, help="env steps per library")
    parser.add_argument("--repeats", type=int, default=1, help="pairs of runs (interleaved)")
    args = parser.parse_args()
    times: dict[str, list[float]] = {"one_at_a_time": [], "two_at_a_time": []}
    for repeat in range(args.repeats):
        for key, concurrent in (("one_at_a_time", 1), ("two_at_a_time", 2)):
            seconds = timed_sweep(args.steps, concurrent)
            times[key].append(seconds)
            print(f"repeat {repeat + 1}: {key.replace('_', ' ')}: {seconds:.1f} s", flush=True)
    one, two = (statistics.median(times[key]) for key in ("one_at_a_time", "two_at_a_time"))
    result = {
        "what": "skillforge sweep of 4 Pendulum libraries (4 skills, 64x64, batch 64), "
        f"{args.steps} env steps each, local Ray, wall clock of the whole command",
        "cpu_count": os.cpu_count(),
        "machine": platform.processor() or platform.machine(),
        "seconds": times,
        "median_seconds": {"one_at_a_time": one, "two_at_a_time": two},
        "speedup": one / two,
    }
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"one at a time {one:.1f} s, two at a time {two:.1f} s: {one / two:.2f}x faster")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
