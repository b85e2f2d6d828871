"""Time of registering every skill of a library in the MLflow Model Registry (`register_skills`).

    .venv/bin/python benchmarks/bench_register.py --label after          # N = 20 and 64
    .venv/bin/python benchmarks/bench_register.py --skills 20 --profile  # where the time goes

Each N registers an untrained library of that many skills (Hopper-v5, 2 x 300 units: weights
do not change the timings) into a fresh sqlite store, from a run that holds what a finished
1M-step pretraining run holds: the training metrics at every `log_every` (500) step and the
evaluation measures of every skill. A 2-skill warm-up registration first pays the one-time
costs (imports, MLflow's requirement checks), so the figures are per library size. One
thread (the machine trains meanwhile). Prints seconds in total and per skill, checks that
the first and last skills load with plain MLflow and give the PyTorch skill's actions, and
merges the figures into benchmarks/results/register.json under `--label`.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import platform
import pstats
import tempfile
import time
from pathlib import Path

import mlflow
import numpy as np
import torch
from mlflow.entities import Metric

from skillforge.app.completion import example_observations
from skillforge.core.envs import make_env, resolve_env_id
from skillforge.rl.diayn import METRIC_NAMES
from skillforge.rl.spec import LibrarySpec
from skillforge.skills.library import SkillLibrary, policy_for
from skillforge.store import registry, tracking

RESULTS = Path(__file__).resolve().parent / "results" / "register.json"
STEP = 1_000_000
"""The training step of the registered library (a default-length pretraining run)."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skills", type=int, nargs="+", default=[20, 64], help="Library sizes.")
    parser.add_argument("--env", default="hopper", help="Env of the library.")
    parser.add_argument("--hidden", type=int, default=300, help="Units per hidden layer.")
    parser.add_argument("--history", type=int, default=2000, help="Points per training metric.")
    parser.add_argument("--label", default="", help="Key of the figures in --out (none: print).")
    parser.add_argument("--profile", action="store_true", help="Print the cProfile top 30.")
    parser.add_argument("--out", type=Path, default=RESULTS, help="JSON results file.")
    args = parser.parse_args()
    torch.set_num_threads(1)

    warmup = _time_registration(_library(args.env, 2, args.hidden), args.history, False)
    print(f"warm-up, 2 skills (imports, MLflow's one-time checks): {warmup:.1f} s")
    figures = {"warmup_2_skills_seconds": round(warmup, 2)}
    for n_skills in args.skills:
        library = _library(args.env, n_skills, args.hidden)
        seconds = _time_registration(library, args.history, args.profile)
        figures[str(n_skills)] = {
            "seconds": round(seconds, 2),
            "seconds_per_skill": round(seconds / n_skills, 3),
        }
        print(f"{n_skills} skills: {seconds:.1f} s, {seconds / n_skills:.3f} s per skill")
    if args.label:
        results = json.loads(args.out.read_text()) if args.out.exists() else {}
        results["setup"] = {
            "env_id": resolve_env_id(args.env),
            "hidden": args.hidden,
            "training_metric_points": args.history,
            "store": "sqlite",
            "torch_threads": 1,
            "machine": {"cores": os.cpu_count(), "python": platform.python_version()},
            "mlflow": mlflow.__version__,
            "torch": torch.__version__,
        }
        results[args.label] = {**figures, "date": time.strftime("%Y-%m-%d")}
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2) + "\n")
        print(f"written {args.out} ({args.label})")


def _library(env: str, n_skills: int, hidden: int) -> SkillLibrary:
    env_id = resolve_env_id(env)
    gym_env = make_env(env_id)
    spec = LibrarySpec.from_env(env_id, gym_env, n_skills, hidden)
    gym_env.close()
    torch.manual_seed(0)
    return SkillLibrary(spec, policy_for(spec), name=f"bench-{n_skills}")


def _time_registration(library: SkillLibrary, history: int, profile: bool) -> float:
    """Seconds of `register_skills` into a fresh store; checks the first and last skills."""
    with tempfile.TemporaryDirectory(prefix="bench-register-") as folder:
        uri = f"sqlite:///{folder}/mlflow.db"
        client = tracking.connect(uri)
        experiment_id = tracking.ensure_experiment(client, tracking.DEFAULT_EXPERIMENT)
        run_id = client.create_run(experiment_id).info.run_id
        _log_finished_run_metrics(client, run_id, library.n_skills, history)
        example = example_observations(library)
        profiler = cProfile.Profile() if profile else None
        with mlflow.start_run(run_id=run_id):
            start = time.perf_counter()
            if profiler:
                profiler.enable()
            uris = registry.register_skills(client, library, run_id, example, STEP)
            if profiler:
                profiler.disable()
            seconds = time.perf_counter() - start
        for skill in (0, library.n_skills - 1):
            actions = mlflow.pyfunc.load_model(uris[skill]).predict(example)
            np.testing.assert_allclose(actions, library.act(example, skill), atol=1e-6)
        mlflow.set_tracking_uri(None)
    if profiler:
        text = io.StringIO()
        pstats.Stats(profiler, stream=text).sort_stats("cumulative").print_stats(30)
        print(text.getvalue())
    return seconds


def _log_finished_run_metrics(client, run_id: str, n_skills: int, history: int) -> None:
    """The metrics of a finished run: training curves and one evaluation of every skill."""
    now = int(time.time() * 1000)
    every = STEP // history
    training = [
        Metric(key, 0.0, now, step)
        for key in (*METRIC_NAMES, "steps_per_second", "extrinsic_return")
        for step in range(every, STEP + 1, every)
    ]
    evaluation = {"eval/episodes": 5.0, "eval/best_skill_return": 0.0}
    for skill in range(n_skills):
        evaluation[f"eval/return/skill_{skill:02d}"] = 0.0
        evaluation[f"eval/return_std/skill_{skill:02d}"] = 0.0
    tracking.log_metrics(client, run_id, training)
    tracking.log_metrics(client, run_id, evaluation, STEP)


if __name__ == "__main__":
    main()
