"""`skillforge hierarchical`."""

from __future__ import annotations

import math
from typing import Annotated

import typer

from cli.app import LibraryOption, TaskArgument, Threads, TrackingUri, app, defaults
from skillforge.core.downstream_config import HierarchicalConfig

HIERARCHICAL = defaults(HierarchicalConfig)


@app.command()
def hierarchical(
    task: TaskArgument = None,
    library: LibraryOption = None,
    steps: Annotated[
        int,
        typer.Option(
            help="Task env steps for the meta-controller and each baseline, all included "
            "(skill selection, validation, training)."
        ),
    ] = HIERARCHICAL.total_steps,
    skill_steps: Annotated[
        int, typer.Option(help="K: env steps per chosen skill.")
    ] = HIERARCHICAL.skill_steps,
    seed: Annotated[int, typer.Option(help="Random seed.")] = HIERARCHICAL.seed,
    skills_from: Annotated[
        str,
        typer.Option(help="Frozen skills from: registry, onnx (exports/<library>/) or checkpoint."),
    ] = HIERARCHICAL.skills_from,
    baselines: Annotated[
        str, typer.Option(help="Comma-separated: best-skill, random-skills, sac; or none.")
    ] = "none",
    meta_controller: Annotated[
        bool,
        typer.Option(
            help="Train the meta-controller; --no-meta-controller runs only the --baselines "
            "(SAC from scratch, the longest, apart: another session, another machine)."
        ),
    ] = HIERARCHICAL.meta_controller,
    eval_episodes: Annotated[
        int, typer.Option(help="Greedy episodes for final returns.")
    ] = HIERARCHICAL.eval_episodes,
    envs: Annotated[
        int, typer.Option(help="Copies of the task run in lockstep (one batched skill call).")
    ] = HIERARCHICAL.envs,
    validation_episodes: Annotated[
        int,
        typer.Option(
            help="Validation episodes (seeds of their own): the best single skill is chosen "
            "on them first, the greedy meta-controller is checked on them every "
            "--validate-every steps and the best network kept; it is deployed only if surely "
            "better than that skill on three times as many other episodes, else the skill is; "
            "0: off. Paid from --steps."
        ),
    ] = HIERARCHICAL.validation_episodes,
    validate_every: Annotated[
        int, typer.Option(help="Task env steps between validations (and one at the end).")
    ] = HIERARCHICAL.validate_every,
    sac_updates_per_step: Annotated[
        float,
        typer.Option(
            help="Gradient steps of the SAC baseline per task env step (SAC's own: 1; 0.25 "
            "makes millions of steps affordable on a CPU, with a weaker baseline)."
        ),
    ] = HIERARCHICAL.sac_updates_per_step,
    tracking_uri: TrackingUri = None,
    threads: Threads = 0,
) -> None:
    """Train a meta-controller that picks a frozen skill every K steps, on a task's real reward."""
    from skillforge.core.downstream_config import parse_baselines
    from skillforge.reuse.tasks import task_env_id

    config = HierarchicalConfig(
        task=task or "",
        skill_steps=skill_steps,
        total_steps=steps,
        seed=seed,
        skills_from=skills_from,
        baselines=parse_baselines(baselines),
        meta_controller=meta_controller,
        eval_episodes=eval_episodes,
        envs=envs,
        validation_episodes=validation_episodes,
        validate_every=validate_every,
        sac_updates_per_step=sac_updates_per_step,
    )
    if task:
        task_env_id(task)  # refuse an unknown task before loading torch and mlflow

    from cli.downstream import downstream_command
    from skillforge.app.checks import use_threads
    from skillforge.app.hierarchical import train_hierarchical

    use_threads(threads)

    with downstream_command() as progress_for:
        result = train_hierarchical(library, config, tracking_uri, progress_for)
    meta = result.meta_controller
    if meta is None:
        typer.echo(f"Baselines on {result.task}: run {result.run_id}")
    else:
        _describe_meta_controller(result, config)
    _print_returns(result)


def _describe_meta_controller(result, config: HierarchicalConfig) -> None:
    """Where the meta-controller was registered, and what it deploys after validation."""
    meta = result.meta_controller
    typer.echo(f"Meta-controller on {result.task}: run {result.run_id}")
    typer.echo(f"  registered  {result.model_uri}")
    if result.agent_uri:
        typer.echo(
            f"  agent       {result.agent_uri} (serve it: skillforge serve {result.agent_uri})"
        )
    typer.echo(f"  skills frozen (parameter hash unchanged): {result.skills_frozen}")
    if meta.fallback is not None and not math.isfinite(meta.validation.get("best-skill", 0.0)):
        typer.echo(
            f"  deploys skill {meta.fallback}: --steps {config.total_steps:,} left no whole "
            "validation episode once the skills were chosen, so nothing was compared (give "
            "more --steps or fewer --validation-episodes)"
        )
    elif meta.fallback is not None:
        typer.echo(
            f"  deploys skill {meta.fallback}: on the validation episodes it scored "
            f"{meta.validation['best-skill']:.1f}, the learned policy "
            f"{meta.validation['meta-controller']:.1f} (not surely better: one-sided 99% "
            f"lower bound less a 5% margin {meta.validation['meta-controller-lower-bound']:.1f})"
        )
    elif meta.validation:
        typer.echo(
            f"  validation  learned policy {meta.validation['meta-controller']:.1f} (one-sided "
            f"99% lower bound less a 5% margin "
            f"{meta.validation['meta-controller-lower-bound']:.1f}), best skill "
            f"{meta.validation['best-skill']:.1f}"
        )


def _print_returns(result) -> None:
    """Every method's final return and the task env steps it took."""
    for name, value in result.final_returns.items():
        used = result.task_env_steps.get(name)
        spent = "" if used is None else f"  ({used:,} task env steps)"
        typer.echo(f"  {name:<16} final return {value:9.1f}{spent}")
