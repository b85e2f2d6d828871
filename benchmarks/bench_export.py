"""Latency and throughput of an exported skill: onnxruntime against PyTorch eager, one run.

    .venv/bin/python benchmarks/bench_export.py            # Hopper-sized policy, 20 skills
    .venv/bin/python benchmarks/bench_export.py --library my-pendulum

Times one action for one observation (numpy in, numpy out, as a controller calls it) and
the throughput for a batch of 256. The exported files are the real ones, written and
parity-checked by `skillforge.export_library`. Weights do not change the timings, so
by default the policy is an untrained one of the paper's size (2 x 300 units) on Hopper-v5.
Prints a table and writes benchmarks/results/export.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime
import torch

from skillforge.app.load import load_library
from skillforge.core.envs import make_env, resolve_env_id
from skillforge.export.writer import export_library
from skillforge.rl.spec import LibrarySpec
from skillforge.skills.library import LibraryPolicy, SkillLibrary, policy_for

RESULTS = Path(__file__).resolve().parent / "results" / "export.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--library", help="A library of the store (default: untrained policy).")
    parser.add_argument("--tracking-uri", help="MLflow store of --library.")
    parser.add_argument("--env", default="hopper", help="Env of the untrained policy.")
    parser.add_argument("--skills", type=int, default=20, help="Skills of the untrained policy.")
    parser.add_argument("--hidden", type=int, default=300, help="Units per hidden layer.")
    parser.add_argument("--batch", type=int, default=256, help="Batch size of the throughput.")
    parser.add_argument("--calls", type=int, default=3000, help="Timed calls per measurement.")
    parser.add_argument("--out", type=Path, default=RESULTS, help="JSON results file.")
    args = parser.parse_args()

    library = _library(args)
    torch_threads = torch.get_num_threads()
    obs = _observations(library, args.batch)
    with tempfile.TemporaryDirectory() as folder:
        export = export_library(library, Path(folder) / "export", skills=[0])
        skill_session = _session(export.out_dir / "skill-00.onnx")
        library_session = _session(export.out_dir / "library.onnx")
    skill_module = library.skill(0)
    library_module = LibraryPolicy(library.policy, library.n_skills).eval()
    one, batch = obs[:1], obs
    skill_one = np.zeros(1, dtype=np.int64)

    def ort_skill(x):
        return skill_session.run(["action"], {"observation": x})[0]

    def ort_library(x, z):
        return library_session.run(["action"], {"observation": x, "skill": z})[0]

    @torch.no_grad()
    def torch_skill(x):
        return skill_module(torch.from_numpy(x)).numpy()

    @torch.no_grad()
    def torch_library(x, z):
        return library_module(torch.from_numpy(x), torch.from_numpy(z)).numpy()

    cases = {
        "skill file, 1 observation": ((ort_skill, one), (torch_skill, one)),
        "library file, 1 observation": (
            (ort_library, one, skill_one),
            (torch_library, one, skill_one),
        ),
        f"skill file, batch {len(obs)}": ((ort_skill, batch), (torch_skill, batch)),
    }
    columns = [
        "onnxruntime, 1 thread",
        "torch eager, 1 thread",
        f"torch eager, {torch_threads} threads",
    ]
    rows = {}
    for case, (ort_call, torch_call) in cases.items():
        timings = [_median_us(*ort_call, calls=args.calls)]
        for threads in (1, torch_threads):
            torch.set_num_threads(threads)
            timings.append(_median_us(*torch_call, calls=args.calls))
        rows[case] = dict(zip(columns, timings, strict=True))
    torch.set_num_threads(torch_threads)

    _print_table(library, rows, columns, len(obs))
    results = {
        "library": library.name or "(untrained)",
        "env_id": library.spec.env_id,
        "n_skills": library.n_skills,
        "hidden": library.spec.hidden,
        "batch": len(obs),
        "median_us": rows,
        "batch_throughput_obs_per_s": {
            column: len(obs) / (rows[f"skill file, batch {len(obs)}"][column] * 1e-6)
            for column in columns
        },
        "parity_max_abs_diff": export.max_abs_diff,
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "onnxruntime": onnxruntime.__version__,
        },
        "date": time.strftime("%Y-%m-%d"),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwritten {args.out}")


def _library(args) -> SkillLibrary:
    if args.library:
        return load_library(args.library, args.tracking_uri)
    env_id = resolve_env_id(args.env)
    env = make_env(env_id)
    spec = LibrarySpec.from_env(env_id, env, args.skills, args.hidden)
    env.close()
    torch.manual_seed(0)
    return SkillLibrary(spec, policy_for(spec), name="bench")


def _observations(library: SkillLibrary, rows: int) -> np.ndarray:
    """Real states of the library's env (random actions), (rows, obs_dim) float32."""
    env = make_env(library.spec.env_id)
    obs, _ = env.reset(seed=0)
    states = []
    while len(states) < rows:
        states.append(obs)
        obs, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            obs, _ = env.reset()
    env.close()
    return np.asarray(states, dtype=np.float32)


def _session(path: Path) -> onnxruntime.InferenceSession:
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _median_us(call, *inputs, calls: int) -> float:
    """Median wall time of one call in microseconds, after a warm-up."""
    for _ in range(min(200, calls)):
        call(*inputs)
    times = []
    for _ in range(calls):
        start = time.perf_counter_ns()
        call(*inputs)
        times.append(time.perf_counter_ns() - start)
    return statistics.median(times) / 1000


def _print_table(library: SkillLibrary, rows: dict, columns: list[str], batch: int) -> None:
    spec = library.spec
    print(
        f"{spec.env_id}: obs {spec.obs_dim}, action {spec.action_dim}, {spec.n_skills} skills, "
        f"2 x {spec.hidden} units; median of timed calls, numpy in and out"
    )
    width = max(len(case) for case in rows) + 2
    print("".ljust(width) + "".join(column.rjust(24) for column in columns))
    for case, timings in rows.items():
        print(case.ljust(width) + "".join(f"{timings[c]:>21.1f} µs" for c in columns))
    throughput = rows[f"skill file, batch {batch}"]
    print(
        f"batch {batch} throughput".ljust(width)
        + "".join(f"{batch / (throughput[c] * 1e-6):>18,.0f} obs/s" for c in columns)
    )


if __name__ == "__main__":
    main()
