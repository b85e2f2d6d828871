"""`skillforge finetune`."""

from __future__ import annotations

from typing import Annotated

import typer

from cli.app import LibraryOption, TaskArgument, Threads, TrackingUri, app, defaults
from skillforge.core.downstream_config import FinetuneConfig

FINETUNE = defaults(FinetuneConfig)


@app.command()
def finetune(
    task: TaskArgument = None,
    library: LibraryOption = None,
    skill: Annotated[
        str, typer.Option(help="Skill to start from: an index, or best (on this task).")
    ] = FINETUNE.skill,
    steps: Annotated[
        int,
        typer.Option(
            help="Task env steps of fine-tuning (and of SAC from scratch), all included "
            "(skill selection, validation, training)."
        ),
    ] = FINETUNE.total_steps,
    seed: Annotated[int, typer.Option(help="Random seed.")] = FINETUNE.seed,
    batch_size: Annotated[
        int, typer.Option(help="Transitions per gradient step.")
    ] = FINETUNE.batch_size,
    learning_starts: Annotated[
        int,
        typer.Option(
            help="Random steps before SAC from scratch learns; critic-only updates before "
            "the fine-tuned policy moves."
        ),
    ] = FINETUNE.learning_starts,
    baselines: Annotated[
        str, typer.Option(help="sac (SAC from scratch, same networks and settings), or none.")
    ] = "none",
    eval_episodes: Annotated[
        int, typer.Option(help="Greedy held-out episodes for every final return.")
    ] = FINETUNE.eval_episodes,
    validation_episodes: Annotated[
        int,
        typer.Option(
            help="Validation episodes (seeds of their own), as in hierarchical: best is "
            "chosen on them, the greedy policy is checked on them every --validate-every steps "
            "and the best kept; it is deployed only if surely better than the skill it started "
            "from on three times as many other episodes, else that skill is; 0: off. Paid "
            "from --steps."
        ),
    ] = FINETUNE.validation_episodes,
    validate_every: Annotated[
        int, typer.Option(help="Task env steps between validations (and one at the end).")
    ] = FINETUNE.validate_every,
    updates_per_step: Annotated[
        float,
        typer.Option(
            help="Gradient steps per task env step, of fine-tuning and SAC from scratch alike "
            "(SAC's own: 1; 0.25 makes millions of steps affordable on a CPU)."
        ),
    ] = FINETUNE.updates_per_step,
    tracking_uri: TrackingUri = None,
    threads: Threads = 0,
) -> None:
    """Fine-tune one skill with SAC on a task's real reward (DIAYN section 4.2.1)."""
    from skillforge.core.downstream_config import parse_baselines
    from skillforge.reuse.tasks import task_env_id

    config = FinetuneConfig(
        task=task or "",
        skill=skill,
        total_steps=steps,
        seed=seed,
        batch_size=batch_size,
        learning_starts=learning_starts,
        baselines=parse_baselines(baselines),
        eval_episodes=eval_episodes,
        validation_episodes=validation_episodes,
        validate_every=validate_every,
        updates_per_step=updates_per_step,
    )
    if task:
        task_env_id(task)  # refuse an unknown task before loading torch and mlflow

    from cli.downstream import downstream_command
    from skillforge.app.checks import use_threads
    from skillforge.app.finetune import finetune as run_finetune

    use_threads(threads)

    with downstream_command() as progress_for:
        result = run_finetune(library, config, tracking_uri, progress_for)
    typer.echo(f"Fine-tuned skill {result.skill} on {result.task}: run {result.run_id}")
    typer.echo(f"  registered  {result.model_uri}")
    if result.fallback:
        typer.echo(
            f"  keeps skill {result.skill}: the fine-tuned policy was not surely better on the "
            "validation episodes, so the skill's own weights are put back, scored and registered"
        )
    for name, value in result.final_returns.items():
        used = result.task_env_steps.get(name)
        spent = "" if used is None else f"  ({used:,} task env steps)"
        typer.echo(f"  {name:<16} final return {value:9.1f}{spent}")
