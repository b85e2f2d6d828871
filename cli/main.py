"""`skillforge` — Typer app. Heavy imports (torch, mlflow) happen inside commands."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from typer._click.exceptions import UsageError  # vendored click (typer >= 0.29)
from typer.core import TyperGroup

from skillforge.errors import SkillforgeError


class _OneLineErrors(TyperGroup):
    """Every refusal is one line on stderr with a non-zero exit, never a traceback or a box."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        try:
            result = super().main(
                args, prog_name or "skillforge", complete_var, standalone_mode=False, **extra
            )
        except UsageError as error:
            _fail(error.format_message(), 2)
        except SkillforgeError as error:
            _fail(str(error), 1)
        except (typer.Abort, KeyboardInterrupt):
            _fail("aborted", 130)
        sys.exit(result if isinstance(result, int) else 0)


def _fail(message: str, code: int) -> None:
    first_line = message.strip().splitlines()[0] if message.strip() else "failed"
    print(f"error: {first_line}", file=sys.stderr)
    sys.exit(code)


app = typer.Typer(
    cls=_OneLineErrors,
    help="Learn reusable skills without a reward (DIAYN), track them in MLflow, export them.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
library_app = typer.Typer(
    help="Inspect the skill libraries in the MLflow store.", no_args_is_help=True
)
app.add_typer(library_app, name="library")

TrackingUri = Annotated[
    str | None,
    typer.Option(
        "--tracking-uri",
        help="MLflow tracking URI (e.g. http://127.0.0.1:5000). Default: $MLFLOW_TRACKING_URI, "
        "else ./mlflow.db with artifacts in ./mlruns.",
        show_default=False,
    ),
]
Experiment = Annotated[str, typer.Option("--experiment", help="MLflow experiment.")]


@app.command()
def pretrain(
    env: Annotated[
        str | None,
        typer.Argument(
            help="Alias (hopper, halfcheetah, walker2d, ant, humanoid, bipedalwalker, "
            "mountaincar, pendulum, lunarlander) or a gymnasium id with continuous actions.",
            show_default=False,
        ),
    ] = None,
    skills: Annotated[int, typer.Option(help="Number of skills N.")] = 20,
    steps: Annotated[
        int | None,
        typer.Option(
            help="Total environment steps (with --resume: the new total).", show_default="1000000"
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Random seed (same seed and device: same result).")] = 0,
    hidden: Annotated[int, typer.Option(help="Units per hidden layer (two layers).")] = 300,
    batch_size: Annotated[int, typer.Option(help="Transitions per gradient step.")] = 256,
    lr: Annotated[float, typer.Option(help="Adam learning rate.")] = 3e-4,
    alpha: Annotated[str, typer.Option(help="Entropy coefficient, or 'auto' to learn it.")] = "0.1",
    gamma: Annotated[float, typer.Option(help="Discount factor.")] = 0.99,
    tau: Annotated[float, typer.Option(help="Polyak rate of the target critics.")] = 0.005,
    buffer_size: Annotated[int, typer.Option(help="Replay buffer capacity.")] = 1_000_000,
    learning_starts: Annotated[
        int, typer.Option(help="Random-action steps before learning starts.")
    ] = 10_000,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    experiment: Experiment = "skillforge",
    name: Annotated[
        str | None,
        typer.Option(help="Library name. Default: <env>-<N>sk-<run id>.", show_default=False),
    ] = None,
    checkpoint_every: Annotated[int, typer.Option(help="Steps between checkpoints.")] = 10_000,
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
    threads: Annotated[int, typer.Option(help="torch threads (0: all cores).")] = 0,
) -> None:
    """Pretrain a library of N skills with DIAYN; every skill is registered in MLflow."""
    from skillforge.config import PretrainConfig, parse_alpha
    from skillforge.envs import make_env, resolve_env_id

    if resume is None and env is None:
        raise typer.BadParameter(
            "missing ENV (e.g. `skillforge pretrain hopper`), or pass --resume"
        )
    if resume is None:
        env_id = resolve_env_id(env)
        config = PretrainConfig(
            env_id=env_id,
            n_skills=skills,
            total_steps=1_000_000 if steps is None else steps,
            seed=seed,
            hidden=hidden,
            batch_size=batch_size,
            lr=lr,
            alpha=parse_alpha(alpha),
            gamma=gamma,
            tau=tau,
            buffer_size=buffer_size,
            learning_starts=learning_starts,
            device=device,
            checkpoint_every=checkpoint_every,
            threads=threads,
            name=name or "",
        )
        make_env(env_id).close()  # refuse discrete or broken envs before loading torch
    elif steps is not None and steps < 1:
        raise typer.BadParameter(f"--steps must be positive, got {steps}")

    from cli.progress import TrainingProgress, quiet_mlflow
    from skillforge import pipeline
    from skillforge.errors import TrainingInterrupted

    quiet_mlflow()
    progress = TrainingProgress()
    try:
        with progress:
            if resume is None:
                result = pipeline.pretrain(
                    config, tracking_uri, experiment, [progress], checkpoint_dir=checkpoint_dir
                )
            else:
                result = pipeline.resume(
                    resume, tracking_uri, None, steps, [progress], expected_env=env
                )
    except TrainingInterrupted as stop:
        typer.echo(
            f"Stopped at step {stop.step:,}; checkpoint {stop.checkpoint_path}.\n"
            f"Resume with: skillforge pretrain --resume {stop.run_id}",
            err=True,
        )
        raise typer.Exit(130) from None
    library = result.library
    typer.echo(f"Library {library.name} ({library.spec.env_id}, {library.n_skills} skills)")
    typer.echo(f"  run id      {result.run_id}")
    typer.echo(f"  store       {result.tracking_uri}")
    typer.echo(f"  checkpoint  {result.checkpoint_path}")
    if result.metrics:
        typer.echo(
            f"  eval        log q(z|s) {result.metrics.get('log_q_z', float('nan')):.3f}, "
            f"discriminator accuracy {result.metrics.get('discriminator_accuracy', 0):.2f}, "
            f"best skill {int(result.metrics['best_skill'])} "
            f"(return {result.metrics['best_skill_return']:.1f})"
        )
    typer.echo(f"  registered  {len(result.models)} skills, e.g. {result.models[0]}")


@library_app.command("list")
def library_list(tracking_uri: TrackingUri = None) -> None:
    """List the skill libraries in the store, newest first."""
    from skillforge.tracking import list_libraries

    libraries = list_libraries(tracking_uri)
    if not libraries:
        typer.echo("No skill libraries yet. Create one with: skillforge pretrain hopper")
        return
    rows = [("name", "env", "skills", "steps", "log q(z|s)", "status", "date", "run id")]
    for lib in libraries:
        log_q = "-" if lib.log_q_z is None else f"{lib.log_q_z:.3f}"
        rows.append(
            (
                lib.name,
                lib.env_id,
                str(lib.n_skills),
                f"{lib.step:,}",
                log_q,
                lib.status,
                lib.date,
                lib.run_id,
            )
        )
    _print_table(rows)


@library_app.command("show")
def library_show(
    library: Annotated[str, typer.Argument(help="Library name, run id, or 'latest'.")],
    tracking_uri: TrackingUri = None,
) -> None:
    """Show one library, skill by skill."""
    from skillforge.tracking import find_library, library_skills

    info = find_library(library, tracking_uri)
    typer.echo(
        f"{info.name}: {info.env_id}, {info.n_skills} skills, {info.step:,} steps, "
        f"{info.status}, run {info.run_id}"
    )
    rows = [("skill", "registered model", "eval return")]
    for skill in library_skills(info, tracking_uri):
        value = "-" if skill.eval_return is None else f"{skill.eval_return:.1f}"
        rows.append((str(skill.index), skill.model_uri or "(not registered)", value))
    _print_table(rows)


def _print_table(rows: list[tuple[str, ...]]) -> None:
    """Plain aligned columns: readable in a terminal, greppable in a pipe."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        cells = (cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        typer.echo("  ".join(cells).rstrip())


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
