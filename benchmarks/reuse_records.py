"""The reuse benchmark's records (`bench_reuse.py`): its finished runs read from the MLflow
store (or kept in the JSON), and the per-task summary written to `reuse.json`."""

from __future__ import annotations

from reuse_tasks import TASKS, Library, Task

METHODS = ("meta-controller", "finetune", "best-skill", "random-skills", "sac")
COMMAND_METHODS = {
    "hierarchical": ("meta-controller", "best-skill", "random-skills", "sac"),
    "sac": ("sac",),
    "finetune": ("finetune",),
}
"""The methods each of the benchmark's jobs scores: SAC from scratch as a baseline of
`hierarchical` (only over a task's first library), or, on a task whose SAC runs apart, in a
`hierarchical --no-meta-controller` run of its own (the job `sac`)."""
HIERARCHICAL = ("meta-controller", "best-skill", "random-skills", "sac")
"""The methods compared beside the meta-controller: a seed counts for them only once each
(of those its library has) is recorded, whichever runs they came from."""
CURVES = {
    "meta": {
        "meta-controller": "validation_return",
        "best-skill": "baseline/best-skill/validation_return",
        "sac": "baseline/sac/validation_return",
    },
    "finetune": {"finetune": "validation_return"},
}
"""Each method's greedy return on the same validation episodes against task env steps, by
the kind of run that scores it."""


def expected_methods(task: Task, library: str, command: str) -> set[str]:
    """The methods the benchmark's job `command` over `library` scores on `task` (none: the
    benchmark has no such job)."""
    methods = set(COMMAND_METHODS[command])
    if library != task.library.name or task.sac_apart != (command == "sac"):
        methods -= {"sac"}
    return methods


def task_methods(task: Task, library: str) -> set[str]:
    """Every method compared over `library` on `task`."""
    return set().union(*(expected_methods(task, library, command) for command in COMMAND_METHODS))


def columns(task: Task) -> list[tuple[str, Library, str]]:
    """(name in reuse.json, library, method) of every method compared on `task`: a method
    over a library is named `<method>/<objective>` where the task compares two libraries."""
    found = []
    for library in task.libraries:
        for method in METHODS:
            if method in task_methods(task, library.name):
                named = not task.also or method == "sac"
                found.append((method if named else f"{method}/{library.label}", library, method))
    return found


def recorded_runs(store: str) -> list[dict]:
    """Every finished hierarchical (of today's learner; with the meta-controller or only
    baselines) and finetune run of the benchmark's tasks in the store, with the final
    returns of the task's methods it scored, each method from its newest run: the store is
    the record, so an interrupted benchmark continues where it stopped, two benchmarks may
    share a store, and a seed's methods may come from several runs."""
    from mlflow.tracking import MlflowClient

    from skillforge.reuse.meta_controller import LEARNER

    client = MlflowClient(store)
    experiments = [e.experiment_id for e in client.search_experiments()]
    records, seen = [], set()
    for kind in ("meta", "finetune"):
        query = f"tags.`skillforge.kind` = '{kind}'"
        for run in client.search_runs(experiments, query, order_by=["attributes.start_time DESC"]):
            params = run.data.params
            if params["task"] not in TASKS or run.info.status != "FINISHED":
                continue
            if kind == "meta" and params.get("learner") != LEARNER:
                continue
            spent = metrics_under(run, "task_env_steps/")
            if not spent:
                continue  # from before every task env step was counted: not comparable
            rate = float(params.get("sac_updates_per_step", params.get("updates_per_step", 1)))
            record = {
                "task": params["task"],
                "task_env_id": params.get("task_env_id", ""),
                "library": params["library"],
                "command": command_of(kind, params),
                "seed": int(params["seed"]),
                "env_steps": int(params["total_steps"]),
                "sac_updates_per_step": rate,
            }
            if kind == "meta":
                record["learner"] = LEARNER
                record["skill_steps"] = int(params["skill_steps"])
            methods = task_methods(TASKS[params["task"]], params["library"])
            finals = metrics_under(run, "final_return/")
            finals = {  # newest first: a rerun supersedes an earlier run
                m: v for m, v in finals.items() if m in methods and (config(record), m) not in seen
            }
            if not finals:
                continue
            seen |= {(config(record), method) for method in finals}
            record["returns"] = finals
            record["task_env_steps"] = {m: spent[m] for m in finals if m in spent}
            record["curves"] = {
                method: [
                    [m.step, m.value]
                    for m in client.get_metric_history(run.info.run_id, metric)
                    if abs(m.value) < 1e300  # a check the budget cut scored nothing
                ]
                for method, metric in CURVES[kind].items()
                if method in finals
            }
            records.append(record)
    return records


def command_of(kind: str, params: dict) -> str:
    """`finetune`, `hierarchical`, or `baselines` (a hierarchical run without the
    meta-controller)."""
    if kind == "finetune":
        return "finetune"
    return "baselines" if params.get("meta_controller") == "False" else "hierarchical"


def metrics_under(run, prefix: str) -> dict[str, float]:
    """The run's metrics named `<prefix><method>`, by method."""
    metrics = run.data.metrics.items()
    return {key.removeprefix(prefix): value for key, value in metrics if key.startswith(prefix)}


def config(record: dict) -> tuple:
    """What makes two records the same comparison (a rerun of a method supersedes the
    earlier one)."""
    keys = ("task", "library", "seed", "env_steps", "skill_steps")
    return (*(record.get(key) for key in keys), record.get("sac_updates_per_step", 1.0))


def current_runs(store: str, earlier: list[dict]) -> list[dict]:
    """The recorded runs of the benchmark's tasks at their libraries, budgets, K and SAC
    rates: those of the store, and the methods of `earlier` (the JSON's records) the store
    lacks."""
    records = recorded_runs(store)
    covered = {(config(record), method) for record in records for method in record["returns"]}
    for record in earlier:
        if not is_current(record) or "task_env_steps" not in record:
            continue
        methods = task_methods(TASKS[record["task"]], record["library"])
        left = [m for m in record["returns"] if m in methods and (config(record), m) not in covered]
        if left:
            covered |= {(config(record), method) for method in left}
            records.append(
                {
                    **record,
                    "returns": {m: record["returns"][m] for m in left},
                    "task_env_steps": {m: record["task_env_steps"][m] for m in left},
                    "curves": {m: c for m, c in record.get("curves", {}).items() if m in left},
                }
            )
    return [record for record in records if is_current(record)]


def is_current(record: dict) -> bool:
    """Whether `record` is of a benchmark task, run with its libraries, budget, K and SAC
    rate (and today's meta-controller learner)."""
    from skillforge.reuse.meta_controller import LEARNER

    task = TASKS.get(record["task"])
    learner = record.get("learner", LEARNER) == LEARNER
    return task is not None and learner and _current(task, record)


def comparable(records: list[dict]) -> list[dict]:
    """`records` without the methods compared beside the meta-controller of a (task,
    library, seed) that lacks one of them (a seed without SAC from scratch beside, say)."""
    found = methods_by_seed(records)
    kept = []
    for record in records:
        task = TASKS[record["task"]]
        needed = task_methods(task, record["library"]) & set(HIERARCHICAL)
        if needed <= found[seed_of(record)]:
            kept.append(record)
        elif set(record["returns"]) - needed:
            returns = {m: v for m, v in record["returns"].items() if m not in needed}
            kept.append({**record, "returns": returns})
    return kept


def seed_of(record: dict) -> tuple:
    """(task, library, seed) of a record."""
    return record["task"], record["library"], record["seed"]


def methods_by_seed(records: list[dict]) -> dict[tuple, set[str]]:
    """The methods recorded for each (task, library, seed)."""
    found: dict[tuple, set[str]] = {}
    for record in records:
        found.setdefault(seed_of(record), set()).update(record["returns"])
    return found


def _current(task: Task, record: dict) -> bool:
    """Whether `record` was run with the task's libraries, budget, K and SAC rate."""
    return (
        record["library"] in {library.name for library in task.libraries}
        and record["env_steps"] == task.env_steps
        and record.get("skill_steps", task.skill_steps) == task.skill_steps
        and record.get("sac_updates_per_step", 1.0) == task.sac_updates_per_step
    )


def summarise(done: list[dict], seeds: list[int], tasks: list[str]) -> dict:
    """reuse.json from the records `done` (already `comparable`): per task, one final return
    and the task env steps it took per seed for every method; refuses (ValueError) a seed
    whose methods' task env steps differ by more than 1%."""
    from skillforge.reuse.budget import check_equal_experience

    entries = []
    for name in tasks:
        task = TASKS[name]
        of_task = [r for r in done if r["task"] == name and r["seed"] in seeds]
        scored = {  # column: (method, its records in seed order)
            column: (
                method,
                [
                    record
                    for seed in seeds
                    for record in of_task
                    if record["seed"] == seed
                    and record["library"] == library.name
                    and method in record["returns"]
                ],
            )
            for column, library, method in columns(task)
        }
        for seed in seeds:
            steps = {
                column: record["task_env_steps"][method]
                for column, (method, found) in scored.items()
                for record in found
                if record["seed"] == seed
            }
            check_equal_experience(steps, f"{name}, seed {seed}")
        returns = {c: [r["returns"][m] for r in found] for c, (m, found) in scored.items() if found}
        spent = {
            c: [r["task_env_steps"][m] for r in found] for c, (m, found) in scored.items() if found
        }
        built_on = {r.get("task_env_id") for r in of_task} - {"", None}
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
                "library_config": library_config(task.library),
                "also": [
                    {"library": other.name, "objective": other.objective, **library_config(other)}
                    for other in task.also
                ],
                "seeds": sorted({r["seed"] for r in of_task}),
                "returns": returns,
                "task_env_steps": spent,
            }
        )
    return {"tasks": entries}


def library_config(library: Library) -> dict:
    """How a library was made, as reuse.json records it."""
    return {
        "env": library.env,
        "skills": library.skills,
        "pretrain_steps": library.steps,
        "discriminator_features": library.features,
        "hidden": library.hidden,
        "batch_size": library.batch_size,
    }
