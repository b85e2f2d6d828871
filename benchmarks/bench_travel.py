"""Travel benchmark: how far do the skills of each objective go, at the same wall-clock budget?

    python benchmarks/bench_travel.py [--env halfcheetah] [--methods metra,diayn,diayn-prior]
        [--minutes 60] [--seeds 0] [--skills 16] [--store runs/travel] [--report-only]

For every method and seed, `skillforge pretrain ENV --minutes M` trains a library on this
machine (METRA with its own defaults; DIAYN with the paper's; DIAYN + prior with
`--discriminator-features x` on a track, `xy` in the plane; METRA and the prior on the env
that observes its position), evaluated on 5 held-out episodes per skill. A library already in
the store is not trained again (an unfinished one is continued with `--resume`).

Each run's record goes to `benchmarks/results/travel.json` (`{"runs": [{"env", "objective",
"prior", "skills", "seed", "minutes", "env_steps", "gradient_steps", "coverage",
"random_coverage", "max_forward_m", "max_backward_m", "paths"}]}`, plus `"max_distance_m"` in
the plane): coverage in 1 m bins of x (HalfCheetah) or 1 m x 1 m cells of x-y (Ant), the
random policy's on the same episodes, displacements in metres after 200 steps; `"paths"` is
the run's paths plot (every skill's held-out episodes beside a random policy's), copied to
`benchmarks/results/travel/`. The figure
`benchmarks/results/travel.png` shows coverage over the random policy's and the farthest
skills per method. Wall-clock budgets depend on what else the machine runs: the records keep
env steps and gradient steps, and the note says what the machine was doing.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
PRIORS = {"halfcheetah": "x", "hopper": "x", "walker2d": "x", "ant": "xy", "humanoid": "xy"}
METHODS = ("metra", "diayn", "diayn-prior")


def library_name(env: str, method: str, skills: int, seed: int, minutes: float) -> str:
    return f"travel-{env}-{method}-{skills}sk-{minutes:g}min-s{seed}"


def pretrain_command(env: str, method: str, skills: int, seed: int, minutes: float) -> list[str]:
    """The `skillforge pretrain` arguments of one run."""
    objective = "metra" if method == "metra" else "diayn"
    command = ["pretrain", env, "--objective", objective, "--skills", str(skills)]
    command += ["--minutes", str(minutes), "--seed", str(seed), "--threads", "1"]
    command += ["--no-video", "--eval-every", "0", "--eval-episodes", "5"]
    command += ["--name", library_name(env, method, skills, seed, minutes)]
    if method == "diayn-prior":
        command += ["--discriminator-features", PRIORS[env]]
    return command


def train(store: str, env: str, method: str, skills: int, seed: int, minutes: float) -> None:
    """Train (or continue, or leave alone) one library in `store`."""
    from skillforge.core.errors import SkillforgeError
    from skillforge.store import tracking

    name = library_name(env, method, skills, seed, minutes)
    uri = f"sqlite:///{Path(store).resolve() / 'mlflow.db'}"
    try:
        info = tracking.find_library(name, uri)
    except SkillforgeError:  # no store yet, or no such library in it
        info = None
    if info is not None and info.status == "finished":
        return
    args = (
        ["--resume", name]
        if info is not None
        else pretrain_command(env, method, skills, seed, minutes)
    )
    subprocess.run(
        [sys.executable, "-m", "cli.main", *args, "--tracking-uri", uri],
        cwd=store,
        check=True,
        env={**os.environ, "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl")},
    )


def record(store: str, name: str, minutes: float) -> dict:
    """The JSON record of the finished library `name`, from its MLflow run."""
    from mlflow.tracking import MlflowClient

    from skillforge.store import tracking

    uri = f"sqlite:///{Path(store).resolve() / 'mlflow.db'}"
    info = tracking.find_library(name, uri)
    run = MlflowClient(uri).get_run(info.run_id)
    metrics, params = run.data.metrics, run.data.params
    result = {
        "env": params["env_id"],
        "objective": params["objective"],
        "prior": params["discriminator_features"]
        if params["discriminator_features"] != "all"
        else "",
        "skills": int(params["n_skills"]),
        "seed": int(params["seed"]),
        "minutes": minutes,
        "env_steps": int(run.data.tags[tracking.TAG_TOTAL_STEPS]),
        "gradient_steps": int(metrics.get("gradient_steps", 0)),
        "coverage": int(metrics["eval/coverage_bins"]),
        "random_coverage": int(metrics["eval/random_coverage_bins"]),
    }
    for key in ("max_forward_m", "max_backward_m", "max_distance_m"):
        if f"eval/{key}" in metrics:
            result[key] = round(metrics[f"eval/{key}"], 2)
    result["paths"] = save_paths_plot(uri, info.run_id, result)
    return result


def save_paths_plot(uri: str, run_id: str, result: dict) -> str:
    """Copy the run's paths plot (its evaluation's `plots/trajectories.png`) to
    `benchmarks/results/travel/`; its path relative to the results folder."""
    from mlflow.tracking import MlflowClient

    family = result["env"].split("WithPosition")[0].split("-")[0].lower()
    method = result["objective"] + (f"-{result['prior']}" if result["prior"] else "")
    target = RESULTS / "travel" / f"{family}-{method}-s{result['seed']}.png"
    target.parent.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as folder:
        plot = MlflowClient(uri).download_artifacts(run_id, "plots/trajectories.png", folder)
        shutil.copyfile(plot, target)
    return str(target.relative_to(RESULTS))


def run_key(record: dict) -> tuple:
    return tuple(record[key] for key in ("env", "objective", "prior", "skills", "seed", "minutes"))


def merge(earlier: list[dict], new: list[dict]) -> list[dict]:
    """Earlier records, each replaced by a new one of the same run."""
    kept = {run_key(r): r for r in earlier}
    kept.update({run_key(r): r for r in new})
    return sorted(kept.values(), key=run_key)


def plot(runs: list[dict], path: Path) -> None:
    """Coverage over the random policy's, and the farthest skills, per env and method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [
        f"{r['env'].split('-')[0]}\n{r['objective']}{'+' + r['prior'] if r['prior'] else ''}"
        f"\nseed {r['seed']}"
        for r in runs
    ]
    fig, (cover, far) = plt.subplots(1, 2, figsize=(max(8, 1.6 * len(runs)), 4.5))
    ratios = [r["coverage"] / max(1, r["random_coverage"]) for r in runs]
    cover.bar(labels, ratios, color="tab:blue")
    cover.axhline(1.0, color="grey", linestyle="--", label="random policy")
    cover.set_ylabel("coverage / random policy's")
    cover.legend()
    forward = [r.get("max_forward_m", r.get("max_distance_m", 0.0)) for r in runs]
    backward = [-r.get("max_backward_m", 0.0) for r in runs]
    far.bar(labels, forward, color="tab:green", label="farthest forward (or from the start)")
    far.bar(labels, backward, color="tab:red", label="farthest backward")
    far.axhline(0.0, color="black", lw=0.8)
    far.set_ylabel("metres after 200 steps")
    far.legend(fontsize=8, loc="lower left")
    for axis in (cover, far):
        axis.tick_params(axis="x", labelsize=7)
        axis.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    from skillforge.core.errors import SkillforgeError

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", default="halfcheetah", choices=sorted(PRIORS))
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--skills", type=int, default=16)
    parser.add_argument("--store", default="runs/travel")
    parser.add_argument("--json", type=Path, default=RESULTS / "travel.json")
    parser.add_argument("--report-only", action="store_true", help="read the store, train nothing")
    parser.add_argument(
        "--libraries",
        default="",
        help="also record these finished libraries of the store, trained by hand (NAME, "
        "comma-separated; --minutes is their budget)",
    )
    args = parser.parse_args()
    methods = [m for m in args.methods.split(",") if m]
    unknown = sorted(set(methods) - set(METHODS))
    if unknown:
        parser.error(f"unknown method {', '.join(unknown)}; choose from {', '.join(METHODS)}")
    Path(args.store).mkdir(parents=True, exist_ok=True)
    new = []
    seeds = [int(s) for s in args.seeds.split(",")] if not args.libraries else []
    for seed in seeds:
        for method in methods:
            if not args.report_only:
                train(args.store, args.env, method, args.skills, seed, args.minutes)
            name = library_name(args.env, method, args.skills, seed, args.minutes)
            try:
                new.append(record(args.store, name, args.minutes))
            except SkillforgeError as error:  # not in this store: the JSON's record stays
                print(f"{args.env} {method} seed {seed}: no finished library ({error})")
    new += [record(args.store, name, args.minutes) for name in args.libraries.split(",") if name]
    earlier = json.loads(args.json.read_text())["runs"] if args.json.exists() else []
    runs = merge(earlier, new)
    args.json.write_text(json.dumps({"runs": runs}, indent=1) + "\n")
    plot(runs, args.json.with_suffix(".png"))
    for r in runs:
        print(json.dumps(r))


if __name__ == "__main__":
    main()
