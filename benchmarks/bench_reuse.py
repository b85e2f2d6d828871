"""Reuse benchmark: do skill libraries pay off downstream?

    python benchmarks/bench_reuse.py [--store DIR] [--seeds 0,1,2] [--tasks a,b] [--jobs 2]
        [--commands hierarchical,finetune]

For every task, a library of its environment is pretrained once (or taken from the store,
or imported from the library files shipped in `exports/libraries/`), then, for each seed and
at the same env-step budget (the task built on the library's env: `halfcheetah-goal` on
HalfCheetahWithPosition-v5 for the METRA library):

- `skillforge hierarchical` (meta-controller over the frozen skills; baselines best-skill,
  random-skills and SAC from scratch), and
- `skillforge finetune` (SAC starting from the best skill, with SAC from scratch's
  settings: batch 256, random actions for the first tenth of the budget, at most 10,000),
so that the two SAC runs of a seed, an hour or more each, run side by side. On
`ant-navigation` (2,000,000 task env steps) both SAC runs take one gradient step every fourth
env step (SAC's own rate would be about 10 hours per seed on one core): a weaker SAC, and
`reuse.json` says so (`sac_updates_per_step`).

Every method has the same task experience: every env step it takes on the task's reward
(skill selection, validation, training) is paid from the same `env_steps` budget, and its
run records what it used (`task_env_steps/<method>`); a comparison whose methods' task env
steps differ by more than 1% is refused. Pretraining is not counted (it uses no task
reward). Every final return is greedy, on the same held-out episodes run to their end.
Results go to `benchmarks/results/reuse.json` (`{"tasks": [{"task", "library", "objective",
"env_steps", "pretrain_steps", "returns": {method: [one final return per seed]},
"task_env_steps": {method: [per seed]}}]}`) and a plot `benchmarks/results/reuse.png`.
Every run is an MLflow run of the store; the JSON also keeps
each finished run's record (`"runs"`), so an interrupted benchmark continues where it stopped,
in the same store or in a new one on another machine (a run in the store supersedes its
record in the JSON).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import multiprocessing
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
SHIPPED = Path(__file__).parent.parent / "exports" / "libraries"
METHODS = ("meta-controller", "finetune", "best-skill", "random-skills", "sac")
COMMAND_METHODS = {
    "hierarchical": ("meta-controller", "best-skill", "random-skills", "sac"),
    "finetune": ("finetune",),
}
"""The methods each command's run scores (SAC from scratch as a baseline of `hierarchical`,
whose own methods take minutes)."""
CURVES = {
    "hierarchical": {
        "meta-controller": "validation_return",
        "best-skill": "baseline/best-skill/validation_return",
        "sac": "baseline/sac/validation_return",
    },
    "finetune": {"finetune": "validation_return"},
}
"""Each method's greedy return on the same validation episodes against task env steps."""


@dataclass(frozen=True)
class Library:
    """A library the benchmark pretrains (small networks: this is a 2-core CPU budget)."""

    name: str
    env: str
    skills: int
    steps: int
    features: str = "all"
    objective: str = "diayn"
    hidden: int = 128
    batch_size: int = 128
    learning_starts: int = 5_000


@dataclass(frozen=True)
class Task:
    """A downstream task, the library it reuses, its env-step budget and K; the validation
    episodes (the best skill's selection and every check) are paid from the budget, so a
    small budget takes few; the test episodes every method is scored on are not."""

    name: str
    library: Library
    env_steps: int
    skill_steps: int
    validation_episodes: int = 2
    eval_episodes: int = 5
    checks: int = 4
    """Validations of the greedy policy over the budget (and one at the end)."""
    sac_updates_per_step: float = 1.0
    """Gradient steps per task env step of SAC from scratch and of fine-tuning."""


HOPPER = Library("hopper", "Hopper-v5", 10, 60_000)
METRA_HALFCHEETAH = Library(  # shipped; made with --minutes 35 (431,688 env steps)
    "metra-halfcheetah",
    "HalfCheetah-v5",
    16,
    431_688,
    objective="metra",
    hidden=256,
    batch_size=256,
    learning_starts=10_000,
)
METRA_ANT = Library(  # shipped; made with --minutes 90 (1,824,800 env steps)
    "metra-ant",
    "Ant-v5",
    8,
    1_824_800,
    objective="metra",
    hidden=256,
    batch_size=256,
    learning_starts=10_000,
)
MOUNTAINCAR_X = Library("mountaincar-x", "MountainCarContinuous-v0", 10, 60_000, features="x")
TASKS = {
    task.name: task
    for task in (
        Task("Hopper-v5", HOPPER, 20_000, 10),
        Task(
            "halfcheetah-goal",
            METRA_HALFCHEETAH,
            300_000,
            50,
            validation_episodes=4,
            eval_episodes=20,
        ),
        Task(
            "ant-navigation",
            METRA_ANT,
            2_000_000,
            5,
            validation_episodes=4,
            eval_episodes=10,
            checks=20,
            sac_updates_per_step=0.25,  # one per step is ~10 h per seed on one core
        ),
        Task(
            "halfcheetah-hurdle",
            METRA_HALFCHEETAH,
            300_000,
            10,
            validation_episodes=4,
            eval_episodes=10,
            checks=6,
        ),
        Task("MountainCarContinuous-v0", MOUNTAINCAR_X, 30_000, 50),
    )
}


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


def with_budget(env_steps: int | None) -> None:
    """Every task at `env_steps` task env steps instead of its own (a quick check), if given."""
    if env_steps:
        for name, task in TASKS.items():
            TASKS[name] = dataclasses.replace(task, env_steps=env_steps)


def run_job(job: tuple[str, str, int, str, int | None]) -> None:
    """One (task, command, seed) in its own process with one torch thread."""
    import torch

    torch.set_num_threads(1)
    task_name, command, seed, store, env_steps = job
    with_budget(env_steps)
    task = TASKS[task_name]
    started = time.perf_counter()
    if command == "hierarchical":
        from skillforge import HierarchicalConfig, train_hierarchical

        config = HierarchicalConfig(
            task=task.name,
            skill_steps=task.skill_steps,
            total_steps=task.env_steps,
            seed=seed,
            skills_from="checkpoint",
            baselines=("best-skill", "random-skills", "sac"),
            validation_episodes=task.validation_episodes,
            eval_episodes=task.eval_episodes,
            validate_every=task.env_steps // task.checks,
            sac_updates_per_step=task.sac_updates_per_step,
        )
        final = train_hierarchical(task.library.name, config, store).final_returns
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
        final = finetune(task.library.name, config, store).final_returns
        final = {"finetune": final["finetune"]}
    minutes = (time.perf_counter() - started) / 60
    print(f"{task_name} seed {seed} {command}: {final} ({minutes:.1f} min)", flush=True)


def recorded_runs(store: str) -> list[dict]:
    """Every finished hierarchical (of today's learner) and finetune run in the store, as
    (task, library, command, seed, final returns): the store is the record, so an
    interrupted benchmark continues where it stopped and two benchmarks may share a store."""
    from mlflow.tracking import MlflowClient

    from skillforge.reuse.meta_controller import LEARNER

    client = MlflowClient(store)
    experiments = [e.experiment_id for e in client.search_experiments()]
    records, seen = [], set()
    for kind, command in (("meta", "hierarchical"), ("finetune", "finetune")):
        query = f"tags.`skillforge.kind` = '{kind}'"
        for run in client.search_runs(experiments, query, order_by=["attributes.start_time DESC"]):
            finals = metrics_under(run, "final_return/")
            spent = metrics_under(run, "task_env_steps/")
            finals = {m: v for m, v in finals.items() if m in COMMAND_METHODS[command]}
            params = run.data.params
            key = (params["task"], params["library"], command, params["seed"])
            rate = float(params.get("sac_updates_per_step", params.get("updates_per_step", 1)))
            key += (params["total_steps"], params.get("skill_steps"), rate)
            if command == "hierarchical" and params.get("learner") != LEARNER:
                continue
            if run.info.status != "FINISHED" or set(finals) != set(COMMAND_METHODS[command]):
                continue  # unfinished, or from before SAC ran beside the meta-controller
            if key in seen:
                continue  # newest first: a rerun supersedes an earlier run
            if not spent:
                continue  # from before every task env step was counted: not comparable
            seen.add(key)
            record = {
                "task": params["task"],
                "task_env_id": params.get("task_env_id", ""),
                "library": params["library"],
                "command": command,
                "seed": int(params["seed"]),
                "env_steps": int(params["total_steps"]),
                "sac_updates_per_step": rate,
                "returns": finals,
                "task_env_steps": {m: spent[m] for m in finals if m in spent},
                "curves": {
                    method: [
                        [m.step, m.value]
                        for m in client.get_metric_history(run.info.run_id, key)
                        if abs(m.value) < 1e300  # a check the budget cut scored nothing
                    ]
                    for method, key in CURVES[command].items()
                },
            }
            if command == "hierarchical":
                record["learner"] = LEARNER
                record["skill_steps"] = int(params["skill_steps"])
            records.append(record)
    return records


def metrics_under(run, prefix: str) -> dict[str, float]:
    """The run's metrics named `<prefix><method>`, by method."""
    metrics = run.data.metrics.items()
    return {key.removeprefix(prefix): value for key, value in metrics if key.startswith(prefix)}


def run_key(record: dict) -> tuple:
    """What makes two records the same run (a rerun supersedes the earlier one)."""
    keys = ("task", "library", "command", "seed", "env_steps", "skill_steps")
    return (*(record.get(key) for key in keys), record.get("sac_updates_per_step", 1.0))


def current_runs(store: str, earlier: list[dict]) -> list[dict]:
    """The recorded runs of the benchmark's tasks, with their library and env-step budget:
    those of the store, and those of `earlier` (the JSON's records) the store lacks, if they
    score every method of their command (a hierarchical record without SAC does not count)."""
    from skillforge.reuse.meta_controller import LEARNER

    records = recorded_runs(store)
    keys = {run_key(record) for record in records}
    records += [
        record
        for record in earlier
        if run_key(record) not in keys
        and record.get("learner", LEARNER) == LEARNER
        and "task_env_steps" in record
        and set(record["returns"]) == set(COMMAND_METHODS[record["command"]])
    ]
    return [
        record
        for record in records
        if record["task"] in TASKS
        and record["library"] == TASKS[record["task"]].library.name
        and record["env_steps"] == TASKS[record["task"]].env_steps
        and record.get("skill_steps", TASKS[record["task"]].skill_steps)
        == TASKS[record["task"]].skill_steps
        and record.get("sac_updates_per_step", 1.0) == TASKS[record["task"]].sac_updates_per_step
    ]


def summarise(done: list[dict], seeds: list[int], tasks: list[str]) -> dict:
    """reuse.json: per task, one final return and the task env steps it took per seed for
    every method; refuses (ValueError) a seed whose methods' task env steps differ by more
    than 1%."""
    from skillforge.reuse.budget import check_equal_experience

    entries = []
    for name in tasks:
        task = TASKS[name]
        returns: dict[str, list[float]] = {}
        spent: dict[str, list[float]] = {}
        for seed in seeds:
            records = [r for r in done if r["task"] == name and r["seed"] == seed]
            steps = {m: v for r in records for m, v in r["task_env_steps"].items()}
            check_equal_experience(steps, f"{name}, seed {seed}")
        for method in METHODS:
            found = [
                record
                for seed in seeds
                for record in done
                if record["task"] == name and record["seed"] == seed and method in record["returns"]
            ]
            if found:
                returns[method] = [record["returns"][method] for record in found]
                spent[method] = [record["task_env_steps"][method] for record in found]
        built_on = {r.get("task_env_id") for r in done if r["task"] == name} - {"", None}
        entries.append(
            {
                "task": name,
                "task_env_id": ", ".join(sorted(built_on)),
                "library": task.library.name,
                "objective": task.library.objective,
                "env_steps": task.env_steps,
                "pretrain_steps": task.library.steps,
                "skill_steps": task.skill_steps,
                "eval_episodes": task.eval_episodes,
                "sac_updates_per_step": task.sac_updates_per_step,
                "library_config": {
                    "env": task.library.env,
                    "skills": task.library.skills,
                    "discriminator_features": task.library.features,
                    "hidden": task.library.hidden,
                    "batch_size": task.library.batch_size,
                },
                "seeds": sorted({r["seed"] for r in done if r["task"] == name} & set(seeds)),
                "returns": returns,
                "task_env_steps": spent,
            }
        )
    return {"tasks": entries}


def plot(summary: dict, runs: list[dict], path: Path) -> None:
    """Two panels per task: each method's greedy return on the validation episodes against
    task env steps (mean over seeds, the band from the lowest to the highest seed), and the
    mean final return per method with a dot per seed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    tasks = summary["tasks"]
    fig, axes = plt.subplots(2, len(tasks), figsize=(4.5 * len(tasks), 7.2), squeeze=False)
    for ax, entry in zip(axes[0], tasks, strict=True):
        grid = np.linspace(0, entry["env_steps"], 60)
        for index, method in enumerate(METHODS):
            color = f"C{index}"
            curves = [
                record["curves"][method]
                for record in runs
                if record["task"] == entry["task"]
                and record["seed"] in entry["seeds"]
                and record.get("curves", {}).get(method)
            ]
            if not curves:
                continue
            if all(len(curve) == 1 for curve in curves):  # a skill: chosen once, then fixed
                value = float(np.mean([curve[0][1] for curve in curves]))
                ax.hlines(value, 0, entry["env_steps"], color, "--", label=method)
                continue
            # each seed's last validation return at or before each step of the grid
            values = np.array([held(np.array(curve), grid) for curve in curves])
            with warnings.catch_warnings():  # NaN where no seed has a point yet
                warnings.simplefilter("ignore", RuntimeWarning)
                mean = np.nanmean(values, axis=0)
                low, high = np.nanmin(values, axis=0), np.nanmax(values, axis=0)
            ax.plot(grid, mean, color=color, label=method)
            ax.fill_between(grid, low, high, color=color, alpha=0.2)
        ax.set_title(f"{entry['task']}: validation curves")
        ax.set_xlabel("task env steps")
        ax.set_ylabel("greedy return (validation episodes)")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    for ax, entry in zip(axes[1], tasks, strict=True):
        methods = [m for m in METHODS if m in entry["returns"]]
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", default="reuse-bench", help="folder of the MLflow store")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--tasks", default=",".join(TASKS))
    parser.add_argument("--jobs", type=int, default=2, help="processes at once (1 thread each)")
    parser.add_argument(
        "--commands", default="hierarchical,finetune", help="which of the two commands to run"
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
    args = parser.parse_args()
    seeds = [int(seed) for seed in args.seeds.split(",")]
    tasks = [name.strip() for name in args.tasks.split(",")]
    commands = [name.strip() for name in args.commands.split(",")]
    if not set(commands) <= {"hierarchical", "finetune"}:
        parser.error(f"--commands: hierarchical and/or finetune, got {args.commands}")
    unknown = [name for name in tasks if name not in TASKS]
    if unknown:
        parser.error(f"unknown task {unknown}; tasks: {', '.join(TASKS)}")
    with_budget(args.env_steps)

    folder = Path(args.store).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    os.chdir(folder)  # checkpoints and mlruns of the store live next to it
    store = f"sqlite:///{folder / 'mlflow.db'}"
    if not args.report_only:
        for library in {TASKS[name].library for name in tasks}:
            ensure_library(library, store)

    out = Path(args.json)
    earlier = json.loads(out.read_text()).get("runs", []) if out.is_file() else []
    finished = {(r["task"], r["command"], r["seed"]) for r in current_runs(store, earlier)}
    jobs = [
        (name, command, seed, store, args.env_steps)
        for seed in seeds
        for name in tasks
        for command in commands
        if (name, command, seed) not in finished
    ]
    print(f"{len(jobs)} runs to go ({len(finished)} done before)", flush=True)
    if jobs and not args.report_only:
        context = multiprocessing.get_context("spawn")
        with context.Pool(args.jobs, maxtasksperchild=1) as pool:
            for _ in pool.imap_unordered(run_job, jobs):
                pass  # each run is recorded in the store

    done = current_runs(store, earlier)
    try:
        summary = summarise(done, seeds, list(TASKS))  # every task: a partial call loses none
    except ValueError as error:
        raise SystemExit(f"error: {error}") from None
    kept = {run_key(record) for record in done}
    summary["runs"] = done + [r for r in earlier if run_key(r) not in kept]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=2) + "\n")
    plot(summary, done, out.with_suffix(".png"))
    for entry in summary["tasks"]:
        line = ", ".join(
            f"{method} {sum(v) / len(v):.2f}" for method, v in entry["returns"].items()
        )
        print(f"{entry['task']} ({entry['env_steps']:,} steps): {line}")
    print(f"wrote {out} and {out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
