"""Reuse benchmark: do skill libraries pay off downstream?

    python benchmarks/bench_reuse.py [--store DIR] [--seeds 0,1,2] [--tasks a,b] [--jobs 2]
        [--threads 1] [--commands hierarchical,sac,finetune] [--libraries a,b]

For every task, a library of its environment is pretrained once (or taken from the store,
or imported from the library files shipped in `exports/libraries/`), then, for each seed and
at the same env-step budget (the task built on the library's env: `halfcheetah-goal` on
HalfCheetahWithPosition-v5 for the METRA library):

- `skillforge hierarchical` (meta-controller over the frozen skills; baselines best-skill,
  random-skills and SAC from scratch; on `ant-navigation`, whose seed takes longer than a
  working session, SAC from scratch runs apart: `hierarchical --no-meta-controller
  --baselines sac`, the job `sac`), and
- `skillforge finetune` (SAC starting from the best skill, with SAC from scratch's
  settings: batch 256, random actions for the first tenth of the budget, at most 10,000),
so that the two SAC runs of a seed, an hour or more each, run side by side. On
`ant-navigation` (2,000,000 task env steps) both SAC runs take one gradient step every fourth
env step (SAC's own rate would be about 6 hours per seed on one core): a weaker SAC, and
`reuse.json` says so (`sac_updates_per_step`).

`halfcheetah-goal` and `ant-navigation` also reuse the DIAYN library with a position prior
of the same env (`bench_travel.py`'s, shipped): its meta-controller, skills and fine-tuning
are named `<method>/diayn+x` (`+xy` on Ant) beside `<method>/metra`; SAC from scratch,
which uses no library, runs once. `--libraries` runs only the named libraries' jobs.

Every method has the same task experience: every env step it takes on the task's reward
(skill selection, validation, training) is paid from the same `env_steps` budget, and its
run records what it used (`task_env_steps/<method>`); a comparison whose methods' task env
steps differ by more than 1% is refused. Pretraining is not counted (it uses no task
reward). Every final return is greedy, on the same held-out episodes run to their end.
Results go to `benchmarks/results/reuse.json` (`{"tasks": [{"task", "library", "objective",
"env_steps", "pretrain_steps", "also": [the other libraries], "returns": {method: [one final
return per seed]}, "task_env_steps": {method: [per seed]}}]}`) and a plot
`benchmarks/results/reuse.png`. Every run is an MLflow run of the store; the JSON also keeps
each finished run's record (`"runs"`), so an interrupted benchmark continues where it stopped,
in the same store or in a new one on another machine (a run in the store supersedes its
record in the JSON). A seed's methods may come from several runs (SAC from scratch apart,
or a method rerun: the newest run of a method counts); the methods compared beside the
meta-controller count for a seed once every one of them is recorded.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import signal
import sys
import time
import warnings
from pathlib import Path

from reuse_records import (
    columns,
    comparable,
    current_runs,
    expected_methods,
    is_current,
    methods_by_seed,
    summarise,
)
from reuse_tasks import TASKS, Library, with_budget

RESULTS = Path(__file__).parent / "results"
SHIPPED = Path(__file__).parent.parent / "exports" / "libraries"


def ensure_library(library: Library, store: str) -> None:
    """The library in the store: already there, imported from its shipped file, or trained
    (on the env its objective needs: `PretrainConfig.for_objective`)."""
    from skillforge import PretrainConfig, SkillforgeError, pretrain
    from skillforge.core.config import EvaluationOptions
    from skillforge.store.tracking import find_library

    try:
        if find_library(library.name, store).status == "finished":
            return
    except SkillforgeError:
        pass
    shipped = SHIPPED / f"{library.name}.pt"
    if shipped.is_file():
        from skillforge.app.library_file import import_library

        import_library(shipped, name=library.name, tracking_uri=store)
        return
    config = PretrainConfig.for_objective(
        library.env,
        library.objective,
        n_skills=library.skills,
        total_steps=library.steps,
        hidden=library.hidden,
        batch_size=library.batch_size,
        learning_starts=library.learning_starts,
        discriminator_features=library.features,
        threads=1,
        name=library.name,
    )
    print(f"pretraining {library.name} ({library.steps:,} steps)...", flush=True)
    pretrain(config, store, evaluation=EvaluationOptions(episodes=5, every=0, video=False))


def run_job(job: tuple[str, str, str, tuple[str, ...], int, str, int | None, int]) -> None:
    """One (task, library, command, methods, seed) in its own process with `threads` torch
    threads: a hierarchical run (`hierarchical` and `sac`) scores only `methods`, those of its
    job not yet recorded (the meta-controller only if it is one of them)."""
    import torch

    task_name, library, command, methods, seed, store, env_steps, threads = job
    torch.set_num_threads(threads)
    with_budget(env_steps)
    task = TASKS[task_name]
    started = time.perf_counter()
    if command in ("hierarchical", "sac"):
        from skillforge import HierarchicalConfig, train_hierarchical

        config = HierarchicalConfig(
            task=task.name,
            skill_steps=task.skill_steps,
            total_steps=task.env_steps,
            seed=seed,
            skills_from="checkpoint",
            baselines=tuple(sorted(set(methods) - {"meta-controller"})),
            meta_controller="meta-controller" in methods,
            validation_episodes=task.validation_episodes,
            eval_episodes=task.eval_episodes,
            validate_every=task.env_steps // task.checks,
            sac_updates_per_step=task.sac_updates_per_step,
        )
        final = train_hierarchical(library, config, store).final_returns
    else:
        from skillforge.app.finetune import finetune
        from skillforge.core.downstream_config import FinetuneConfig

        config = FinetuneConfig(
            task=task.name,
            total_steps=task.env_steps,
            seed=seed,
            learning_starts=min(10_000, task.env_steps // 10),
            baselines=(),
            validation_episodes=task.validation_episodes,
            eval_episodes=task.eval_episodes,
            validate_every=task.env_steps // task.checks,
            updates_per_step=task.sac_updates_per_step,
        )
        final = finetune(library, config, store).final_returns
        final = {"finetune": final["finetune"]}
    minutes = (time.perf_counter() - started) / 60
    print(f"{task_name} {library} seed {seed} {command}: {final} ({minutes:.1f} min)", flush=True)


def plot(summary: dict, runs: list[dict], path: Path) -> None:
    """Two panels per task run so far: each method's greedy return on the validation
    episodes against task env steps (mean over seeds, the band from the lowest to the
    highest seed), and the mean final return per method with a dot per seed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    tasks = [entry for entry in summary["tasks"] if entry["returns"]] or summary["tasks"]
    fig, axes = plt.subplots(2, len(tasks), figsize=(4.5 * len(tasks), 7.2), squeeze=False)
    for ax, entry in zip(axes[0], tasks, strict=True):
        grid = np.linspace(0, entry["env_steps"], 60)
        for index, (column, library, method) in enumerate(columns(TASKS[entry["task"]])):
            color = f"C{index}"
            curves = [
                record["curves"][method]
                for record in runs
                if record["task"] == entry["task"]
                and record["library"] == library.name
                and record["seed"] in entry["seeds"]
                and record.get("curves", {}).get(method)
            ]
            if not curves:
                continue
            if all(len(curve) == 1 for curve in curves):  # a skill: chosen once, then fixed
                value = float(np.mean([curve[0][1] for curve in curves]))
                ax.hlines(value, 0, entry["env_steps"], color, "--", label=column)
                continue
            # each seed's last validation return at or before each step of the grid
            values = np.array([held(np.array(curve), grid) for curve in curves])
            with warnings.catch_warnings():  # NaN where no seed has a point yet
                warnings.simplefilter("ignore", RuntimeWarning)
                mean = np.nanmean(values, axis=0)
                low, high = np.nanmin(values, axis=0), np.nanmax(values, axis=0)
            ax.plot(grid, mean, color=color, label=column)
            ax.fill_between(grid, low, high, color=color, alpha=0.2)
        ax.set_title(entry["task"])
        ax.set_xlabel("task env steps")
        ax.xaxis.set_major_formatter(lambda value, _: f"{value / 1000:g}k")
        ax.set_ylabel("greedy return on validation episodes")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    for ax, entry in zip(axes[1], tasks, strict=True):
        methods = list(entry["returns"])
        means = [np.mean(entry["returns"][m]) for m in methods]
        ax.bar(range(len(methods)), means, color="#9ab")
        for i, method in enumerate(methods):
            values = entry["returns"][method]
            ax.plot([i] * len(values), values, "k.", markersize=6)
        ax.set_xticks(range(len(methods)), methods, rotation=30, ha="right")
        ax.set_title(f"{entry['task']}\n{entry['env_steps']:,} env steps")
        ax.set_ylabel("final return (held-out, greedy)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def held(curve, grid):
    """A (step, value) curve read at every step of `grid`: its last value at or before it
    (NaN before its first point)."""
    import numpy as np

    index = np.searchsorted(curve[:, 0], grid, side="right") - 1
    return np.where(index >= 0, curve[np.maximum(index, 0), 1], np.nan)


def missing_jobs(
    pairs: list[tuple[str, Library]],
    seeds: list[int],
    commands: list[str],
    scored: dict[tuple[str, str, int], set[str]],
) -> list[tuple[str, str, str, tuple[str, ...], int]]:
    """(task, library, command, methods, seed) for every command with methods not yet
    recorded (`scored`): a job runs only those."""
    jobs = []
    for seed in seeds:
        for name, library in pairs:
            recorded = scored.get((name, library.name, seed), set())
            for command in commands:
                missing = expected_methods(TASKS[name], library.name, command) - recorded
                if missing:
                    jobs.append((name, library.name, command, tuple(sorted(missing)), seed))
    return jobs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", default="reuse-bench", help="folder of the MLflow store")
    parser.add_argument(
        "--seeds", default="0,1,2", help="seeds to run (the JSON reports every seed recorded)"
    )
    parser.add_argument("--tasks", default=",".join(TASKS))
    parser.add_argument("--jobs", type=int, default=2, help="processes at once")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads per process (2 for one run alone)"
    )
    parser.add_argument(
        "--commands",
        default="hierarchical,sac,finetune",
        help="which jobs to run (sac: SAC from scratch apart, on the tasks that run it apart)",
    )
    parser.add_argument("--json", default=str(RESULTS / "reuse.json"))
    parser.add_argument(
        "--env-steps", type=int, help="every task at this budget instead of its own (a check)"
    )
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="write the results of the runs already in the store, run nothing",
    )
    parser.add_argument(
        "--libraries", help="only these of the tasks' libraries (comma-separated names)"
    )
    args = parser.parse_args()
    # a kill ends the benchmark through the pool's exit, which stops its runs with it
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    libraries = None if args.libraries is None else set(args.libraries.split(","))
    seeds = [int(seed) for seed in args.seeds.split(",")]
    tasks = [name.strip() for name in args.tasks.split(",")]
    commands = [name.strip() for name in args.commands.split(",")]
    if not set(commands) <= {"hierarchical", "sac", "finetune"}:
        parser.error(f"--commands: any of hierarchical, sac, finetune; got {args.commands}")
    unknown = [name for name in tasks if name not in TASKS]
    if unknown:
        parser.error(f"unknown task {unknown}; tasks: {', '.join(TASKS)}")
    with_budget(args.env_steps)

    folder = Path(args.store).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    os.chdir(folder)  # checkpoints and mlruns of the store live next to it
    store = f"sqlite:///{folder / 'mlflow.db'}"
    out = Path(args.json)
    earlier = json.loads(out.read_text()).get("runs", []) if out.is_file() else []
    if not args.report_only:
        pairs = [
            (name, library)
            for name in tasks
            for library in TASKS[name].libraries
            if libraries is None or library.name in libraries
        ]
        for library in {library for _, library in pairs}:
            ensure_library(library, store)
        scored = methods_by_seed(current_runs(store, earlier))
        jobs = [
            (*job, store, args.env_steps, args.threads)
            for job in missing_jobs(pairs, seeds, commands, scored)
        ]
        print(f"{len(jobs)} runs to go", flush=True)
        if jobs:
            context = multiprocessing.get_context("spawn")
            with context.Pool(args.jobs, maxtasksperchild=1) as pool:
                for _ in pool.imap_unordered(run_job, jobs):
                    pass  # each run is recorded in the store

    done = current_runs(store, earlier)
    counted = comparable(done)
    recorded = sorted(set(seeds) | {record["seed"] for record in done})
    try:  # every task and every seed recorded: a partial call loses none
        summary = summarise(counted, recorded, list(TASKS))
    except ValueError as error:
        raise SystemExit(f"error: {error}") from None
    summary["runs"] = done + [record for record in earlier if not is_current(record)]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=2) + "\n")
    plot(summary, counted, out.with_suffix(".png"))
    for entry in summary["tasks"]:
        line = ", ".join(
            f"{method} {sum(v) / len(v):.2f}" for method, v in entry["returns"].items()
        )
        print(f"{entry['task']} ({entry['env_steps']:,} steps): {line}")
    print(f"wrote {out} and {out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
