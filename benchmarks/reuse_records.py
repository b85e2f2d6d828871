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
CURVES = {
    "hierarchical": {
        "meta-controller": "validation_return",
        "best-skill": "baseline/best-skill/validation_return",
        "sac": "baseline/sac/validation_return",
    },
    "sac": {"sac": "baseline/sac/validation_return"},
    "finetune": {"finetune": "validation_return"},
}
"""Each method's greedy return on the same validation episodes against task env steps."""


def expected_methods(task: Task, library: str, command: str) -> set[str]:
    """The methods a finished run of `command` over `library` must score on `task` (none:
    the benchmark has no such job)."""
    methods = set(COMMAND_METHODS[command])
    if library != task.library.name or task.sac_apart != (command == "sac"):
        methods -= {"sac"}
    return methods


def columns(task: Task) -> list[tuple[str, Library, str]]:
    """(name in reuse.json, library, method) of every method compared on `task`: a method
    over a library is named `<method>/<objective>` where the task compares two libraries."""
    found = []
    for library in task.libraries:
        for method in METHODS:
            scored = (expected_methods(task, library.name, command) for command in COMMAND_METHODS)
            if method in set().union(*scored):
                named = not task.also or method == "sac"
                found.append((method if named else f"{method}/{library.label}", library, method))
    return found


def recorded_runs(store: str) -> list[dict]:
    """Every finished hierarchical (of today's learner: with the meta-controller, or SAC
    apart) and finetune run of the benchmark's tasks in the store that scores its methods,
    as (task, library, command, seed, final returns): the store is the record, so an
    interrupted benchmark continues where it stopped and two benchmarks may share a store."""
    from mlflow.tracking import MlflowClient

    from skillforge.reuse.meta_controller import LEARNER

    client = MlflowClient(store)
    experiments = [e.experiment_id for e in client.search_experiments()]
    records, seen = [], set()
    for kind, kind_command in (("meta", "hierarchical"), ("finetune", "finetune")):
        query = f"tags.`skillforge.kind` = '{kind}'"
        for run in client.search_runs(experiments, query, order_by=["attributes.start_time DESC"]):
            params = run.data.params
            if params["task"] not in TASKS:
                continue
            command = kind_command
            if params.get("meta_controller") == "False":
                command = "sac"  # only the baselines ran: the benchmark's for SAC apart
            expected = expected_methods(TASKS[params["task"]], params["library"], command)
            finals = metrics_under(run, "final_return/")
            finals = {m: v for m, v in finals.items() if m in expected}
            spent = metrics_under(run, "task_env_steps/")
            key = (params["task"], params["library"], command, params["seed"])
            rate = float(params.get("sac_updates_per_step", params.get("updates_per_step", 1)))
            key += (params["total_steps"], params.get("skill_steps"), rate)
            if not expected or command != "finetune" and params.get("learner") != LEARNER:
                continue
            if run.info.status != "FINISHED" or set(finals) != expected:
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
                        for m in client.get_metric_history(run.info.run_id, metric)
                        if abs(m.value) < 1e300  # a check the budget cut scored nothing
                    ]
                    for method, metric in CURVES[command].items()
                    if method in expected
                },
            }
            if command != "finetune":
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
        and record["task"] in TASKS
        and record.get("learner", LEARNER) == LEARNER
        and "task_env_steps" in record
        and set(record["returns"])
        == expected_methods(TASKS[record["task"]], record["library"], record["command"])
    ]
    return [record for record in records if _current(TASKS[record["task"]], record)]


def _current(task: Task, record: dict) -> bool:
    """Whether `record` was run with the task's libraries, budget, K and SAC rate."""
    return (
        record["library"] in {library.name for library in task.libraries}
        and record["env_steps"] == task.env_steps
        and record.get("skill_steps", task.skill_steps) == task.skill_steps
        and record.get("sac_updates_per_step", 1.0) == task.sac_updates_per_step
    )


def summarise(done: list[dict], seeds: list[int], tasks: list[str]) -> dict:
    """reuse.json: per task, one final return and the task env steps it took per seed for
    every method; refuses (ValueError) a seed whose methods' task env steps differ by more
    than 1%."""
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
