"""`skillforge pretrain`."""

from __future__ import annotations

import contextlib
import logging
from typing import Annotated

import typer

from cli.app import THREADS_HELP, Experiment, TrackingUri, app, defaults, given_or_absent
from skillforge.core.config import (
    DEFAULT_STORE_TIMEOUT,
    OBJECTIVE_DEFAULTS,
    EvaluationOptions,
    EvaluationOverrides,
    PretrainConfig,
)

PRETRAIN = defaults(PretrainConfig)
METRA = OBJECTIVE_DEFAULTS["metra"]
UNCAPPED_STEPS = 10**12  # the step "budget" of a run that --minutes alone ends
EVALUATION = defaults(EvaluationOptions)
BufferSize = Annotated[int, typer.Option(help="Replay buffer capacity.")]
CheckpointEvery = Annotated[int, typer.Option(help="Steps between checkpoints.")]


@app.command()
def pretrain(
    env: Annotated[
        str | None,
        typer.Argument(
            help="Alias (hopper, halfcheetah, walker2d, ant, humanoid, bipedalwalker, "
            "mountaincar, pendulum, lunarlander, halfcheetah-hurdles: HalfCheetah among the "
            "hurdle task's hurdles) or a gymnasium id with continuous actions.",
            show_default=False,
        ),
    ] = None,
    skills: Annotated[int, typer.Option(help="Number of skills N.")] = PRETRAIN.n_skills,
    objective: Annotated[
        str,
        typer.Option(
            help="diayn: skills that can be told apart (the DIAYN paper); metra: skills that "
            "travel as far as they can (METRA), with its own defaults for the options that "
            "say so. Both train on the env with the agent's position observed where they need it."
        ),
    ] = PRETRAIN.objective,
    envs: Annotated[
        int | None,
        typer.Option(
            help=f"Env copies stepped in lockstep (one batched policy call). Default "
            f"{PRETRAIN.envs}; metra: {METRA['envs']}.",
            show_default=False,
        ),
    ] = None,
    updates_per_step: Annotated[
        float | None,
        typer.Option(
            help=f"Gradient steps per env step, fractions too (0.125: one per 8 steps). Default "
            f"{PRETRAIN.updates_per_step:g}; metra: {METRA['updates_per_step']:g}.",
            show_default=False,
        ),
    ] = None,
    max_episode_steps: Annotated[
        int | None,
        typer.Option(
            help="Training episodes end after this many steps. Default: the env's time limit; "
            f"metra: {METRA['max_episode_steps']}.",
            show_default=False,
        ),
    ] = None,
    steps: Annotated[
        int | None,
        typer.Option(
            help=f"Total environment steps, default {PRETRAIN.total_steps} (with --resume: the "
            "new total).",
            show_default=False,
        ),
    ] = None,
    episodes: Annotated[
        int | None,
        typer.Option(
            help="Total episodes instead (the budget DIAYN-PyTorch counts); the run ends at "
            "whichever of --steps and --episodes comes first. Without --steps: episodes alone.",
            show_default=False,
        ),
    ] = None,
    minutes: Annotated[
        float | None,
        typer.Option(
            help="Minutes of training instead (a wall-clock budget, to compare methods on one "
            "machine; where it ends depends on the machine's speed).",
            show_default=False,
        ),
    ] = None,
    seed: Annotated[
        int, typer.Option(help="Random seed (same seed and device: same result).")
    ] = PRETRAIN.seed,
    hidden: Annotated[
        int | None,
        typer.Option(
            help=f"Units per hidden layer (two layers). Default {PRETRAIN.hidden}; metra: "
            f"{METRA['hidden']}.",
            show_default=False,
        ),
    ] = None,
    batch_size: Annotated[
        int, typer.Option(help="Transitions per gradient step.")
    ] = PRETRAIN.batch_size,
    lr: Annotated[float, typer.Option(help="Adam learning rate.")] = PRETRAIN.lr,
    alpha: Annotated[
        str | None,
        typer.Option(
            help=f"Entropy coefficient, or 'auto' to learn it. Default {PRETRAIN.alpha}; metra: "
            f"{METRA['alpha']}.",
            show_default=False,
        ),
    ] = None,
    gamma: Annotated[float, typer.Option(help="Discount factor.")] = PRETRAIN.gamma,
    tau: Annotated[float, typer.Option(help="Polyak rate of the target critics.")] = PRETRAIN.tau,
    buffer_size: BufferSize = PRETRAIN.buffer_size,
    learning_starts: Annotated[
        int, typer.Option(help="Random-action steps before learning starts.")
    ] = PRETRAIN.learning_starts,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = PRETRAIN.device,
    experiment: Experiment = "skillforge",
    name: Annotated[
        str | None,
        typer.Option(
            help="Library name. Default: the env id without its version, the number of skills "
            "and the run id's first 6 characters, e.g. hopper-20sk-1a2b3c.",
            show_default=False,
            callback=given_or_absent,
        ),
    ] = None,
    checkpoint_every: CheckpointEvery = PRETRAIN.checkpoint_every,
    checkpoint_dir: Annotated[
        str, typer.Option(help="Folder of checkpoints (one subfolder per library).")
    ] = "checkpoints",
    resume: Annotated[
        str | None,
        typer.Option(
            help="Continue a library exactly: its run id, name, or 'latest'.", show_default=False
        ),
    ] = None,
    tracking_uri: TrackingUri = None,
    threads: Annotated[
        int | None,
        typer.Option(
            help=f"{THREADS_HELP} Default {PRETRAIN.threads}; with --resume: the run's own "
            "unless given (threads belong to the machine, not the library).",
            show_default=False,
        ),
    ] = None,
    store_timeout: Annotated[
        float,
        typer.Option(
            help="Seconds to wait at the end for an unreachable tracking server before "
            "giving up (the checkpoint stays; `skillforge library register` finishes later)."
        ),
    ] = DEFAULT_STORE_TIMEOUT,
    eval_every: Annotated[
        int | None,
        typer.Option(
            help="Env steps between held-out evaluations during training, without video "
            f"(0: only at the end). Default {EVALUATION.every}; with --resume: the run's own.",
            show_default=False,
        ),
    ] = None,
    eval_episodes: Annotated[
        int | None,
        typer.Option(
            help=f"Episodes per skill in the final evaluation (0: none). Default "
            f"{EVALUATION.episodes}; with --resume: the run's own.",
            show_default=False,
        ),
    ] = None,
    discriminator_features: Annotated[
        str,
        typer.Option(
            help="What q(z|s) sees: all (the observation), x or xy (the agent's position, from "
            "the simulator: DIAYN+prior), or observation indices like 0,3,5. Skills always "
            "see the whole observation."
        ),
    ] = PRETRAIN.discriminator_features,
    video: Annotated[
        bool | None,
        typer.Option(
            "--video/--no-video",
            help="Film every skill at the end. Default: film; with --resume: the run's choice.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Pretrain a library of N skills with DIAYN or METRA; every skill is registered in MLflow."""
    from skillforge.core.config import parse_alpha
    from skillforge.core.envs import make_env, resolve_env_id, steps_for_episodes

    if resume is not None and not resume.strip():
        raise typer.BadParameter("--resume needs a library name, a run id or 'latest'")
    if resume is None and env is None:
        raise typer.BadParameter(
            "missing ENV (e.g. `skillforge pretrain hopper`), or pass --resume"
        )
    if episodes is not None and episodes < 1:
        raise typer.BadParameter(f"--episodes must be positive, got {episodes}")
    if minutes is not None and not minutes > 0:
        raise typer.BadParameter(f"--minutes must be positive, got {minutes}")
    if resume is not None and minutes is not None:
        raise typer.BadParameter("--minutes starts a run; --resume continues its own budget")
    if resume is None:
        env_id = resolve_env_id(env)
        if steps is None and episodes is not None:
            steps = steps_for_episodes(env_id, episodes)
        elif steps is None:
            steps = PRETRAIN.total_steps if minutes is None else UNCAPPED_STEPS
        options = {
            "hidden": hidden,
            "lr": lr,
            "envs": envs,
            "updates_per_step": updates_per_step,
            "max_episode_steps": max_episode_steps,
        }
        given = {name: value for name, value in options.items() if value is not None}
        if alpha is not None:  # parse_alpha gives None for 'auto' (learned)
            given["alpha"] = parse_alpha(alpha)
        config = PretrainConfig.for_objective(
            env_id,
            objective,
            **given,
            n_skills=skills,
            total_steps=steps,
            total_episodes=episodes or 0,
            total_minutes=minutes or 0.0,
            seed=seed,
            batch_size=batch_size,
            gamma=gamma,
            tau=tau,
            buffer_size=buffer_size,
            learning_starts=learning_starts,
            device=device,
            checkpoint_every=checkpoint_every,
            threads=PRETRAIN.threads if threads is None else threads,
            name=name or "",
            discriminator_features=discriminator_features,
        )
        make_env(env_id).close()  # refuse discrete or broken envs before loading torch
    elif steps is not None and steps < 1:
        raise typer.BadParameter(f"--steps must be positive, got {steps}")
    evaluation = EvaluationOverrides(eval_episodes, eval_every, video)
    if resume is None:
        evaluation = evaluation.applied_to(EvaluationOptions())

    from cli.progress import TrainingProgress
    from skillforge.app import pretrain as pipeline
    from skillforge.core.errors import TrainingInterrupted

    progress = TrainingProgress()
    try:
        with echoed_warnings(), progress:
            if resume is None:
                result = pipeline.pretrain(
                    config,
                    tracking_uri,
                    experiment,
                    [progress],
                    checkpoint_dir=checkpoint_dir,
                    evaluation=evaluation,
                    store_timeout=store_timeout,
                )
            else:
                result = pipeline.resume(
                    resume,
                    tracking_uri,
                    None,
                    steps,
                    [progress],
                    expected_env=env,
                    evaluation=evaluation,
                    store_timeout=store_timeout,
                    total_episodes=episodes,
                    threads=threads,
                )
    except TrainingInterrupted as stop:
        typer.echo(
            f"Stopped at step {stop.step:,}; checkpoint {stop.checkpoint_path}.\n"
            f"Resume with: skillforge pretrain --resume {stop.run_id}",
            err=True,
        )
        raise typer.Exit(130) from None
    print_result(result)


def print_result(result) -> None:
    """The summary of a finished library."""
    library = result.library
    typer.echo(f"Library {library.name} ({library.spec.env_id}, {library.n_skills} skills)")
    typer.echo(f"  run id      {result.run_id}")
    typer.echo(f"  store       {result.tracking_uri}")
    typer.echo(f"  checkpoint  {result.checkpoint_path}")
    metrics = result.metrics
    if metrics and "best_skill" in metrics and "best_skill_return" in metrics:
        typer.echo(f"  eval        {held_out_summary(metrics)}")
    if result.models:
        typer.echo(f"  registered  {len(result.models)} skills, e.g. {result.models[0]}")
    if result.library_model:
        typer.echo(f"  library     {result.library_model} (every skill: observation, skill in)")


def held_out_summary(metrics: dict[str, float]) -> str:
    """The final evaluation in a line: q(z|s)'s measures (DIAYN), how far skills go (when
    measured), coverage against a random policy's, and the best skill."""
    parts = []
    if "log_q_z" in metrics:
        parts.append(
            f"log q(z|s) {metrics['log_q_z']:.3f}, discriminator accuracy "
            f"{metrics['discriminator_accuracy']:.2f}"
        )
    if "max_forward_m" in metrics:
        parts.append(
            f"farthest {metrics['max_forward_m']:.1f} m forward, "
            f"{metrics['max_backward_m']:.1f} m backward"
        )
    if "max_distance_m" in metrics:
        parts.append(f"farthest {metrics['max_distance_m']:.1f} m from the start")
    if "coverage_bins" in metrics and "random_coverage_bins" in metrics:
        parts.append(
            f"coverage {metrics['coverage_bins']:.0f} bins (random policy "
            f"{metrics['random_coverage_bins']:.0f})"
        )
    best = f"best skill {int(metrics['best_skill'])} (return {metrics['best_skill_return']:.1f})"
    return ", ".join([*parts, best])


class _EchoWarnings(logging.Handler):
    """skillforge's warnings (store unreachable, back again...) as `warning: ...` on stderr."""

    def emit(self, record: logging.LogRecord) -> None:
        typer.echo(f"warning: {record.getMessage()}", err=True)


@contextlib.contextmanager
def echoed_warnings():
    """Show skillforge's warnings on stderr while a command runs; the logger is put back as
    it was afterwards (a command called in-process, as in tests, leaves nothing behind)."""
    logger = logging.getLogger("skillforge")
    handler, propagate = _EchoWarnings(logging.WARNING), logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate
