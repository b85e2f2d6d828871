"""`skillforge sweep`: a grid of libraries on Ray, with a live table of its trials."""

from __future__ import annotations

import time
from typing import Annotated

import typer
from rich.console import Console
from rich.live import Live
from rich.table import Table

from cli.app import Experiment, TrackingUri, app, given_or_absent
from cli.pretrain import EVALUATION, PRETRAIN, BufferSize, CheckpointEvery, echoed_warnings
from cli.progress import clock
from skillforge.core.config import (
    DEFAULT_STORE_TIMEOUT,
    EvaluationOptions,
    EvaluationOverrides,
    PretrainConfig,
)
from skillforge.core.interrupts import signals_interrupt


def _listed(help_text: str) -> dict:
    return {"help": f"{help_text}, comma-separated."}


@app.command()
def sweep(
    env: Annotated[
        str,
        typer.Argument(help="Environment alias or id; several, comma-separated, are swept too."),
    ],
    seeds: Annotated[str, typer.Option(**_listed("Random seeds"))] = str(PRETRAIN.seed),
    skills: Annotated[str, typer.Option(**_listed("Numbers of skills N"))] = str(PRETRAIN.n_skills),
    steps: Annotated[str, typer.Option(**_listed("Environment steps per library"))] = str(
        PRETRAIN.total_steps
    ),
    hidden: Annotated[str, typer.Option(**_listed("Units per hidden layer"))] = str(
        PRETRAIN.hidden
    ),
    batch_size: Annotated[str, typer.Option(**_listed("Transitions per gradient step"))] = str(
        PRETRAIN.batch_size
    ),
    lr: Annotated[str, typer.Option(**_listed("Adam learning rates"))] = str(PRETRAIN.lr),
    alpha: Annotated[str, typer.Option(**_listed("Entropy coefficients or 'auto'"))] = str(
        PRETRAIN.alpha
    ),
    gamma: Annotated[str, typer.Option(**_listed("Discount factors"))] = str(PRETRAIN.gamma),
    tau: Annotated[str, typer.Option(**_listed("Polyak rates"))] = str(PRETRAIN.tau),
    learning_starts: Annotated[
        str, typer.Option(**_listed("Random-action steps before learning"))
    ] = str(PRETRAIN.learning_starts),
    objective: Annotated[
        str,
        typer.Option(
            help="Objectives (diayn, metra), comma-separated; the other options apply to every "
            "objective, METRA's own collection defaults (8 env copies, one update per 32 "
            "steps, 200-step episodes) to its libraries."
        ),
    ] = PRETRAIN.objective,
    discriminator_features: Annotated[
        list[str] | None,
        typer.Option(
            help="What q(z|s) sees (all, x, xy or indices like 0,3); repeat the option to "
            "sweep several (commas belong to the indices).",
            show_default="all",
        ),
    ] = None,
    buffer_size: BufferSize = PRETRAIN.buffer_size,
    checkpoint_every: CheckpointEvery = PRETRAIN.checkpoint_every,
    eval_episodes: Annotated[
        int, typer.Option(help="Episodes per skill in each library's final evaluation.")
    ] = EVALUATION.episodes,
    eval_every: Annotated[
        int, typer.Option(help="Env steps between held-out evaluations (0: only at the end).")
    ] = EVALUATION.every,
    video: Annotated[
        bool, typer.Option("--video/--no-video", help="Film every skill at the end.")
    ] = False,
    name: Annotated[
        str | None,
        typer.Option(
            help="Sweep name (its libraries are <name>-00, -01, ...). Default: "
            "sweep-<env>-<hash of the grid>, so the same command continues the same sweep.",
            show_default=False,
            callback=given_or_absent,
        ),
    ] = None,
    ray_address: Annotated[
        str | None,
        typer.Option(
            help="HOST:PORT of a Ray cluster (`ray start --head` prints it). Default: a local "
            "Ray instance sized to this machine.",
            show_default=False,
        ),
    ] = None,
    max_concurrent: Annotated[
        int, typer.Option(help="Most libraries training at once (0: as many as the CPUs hold).")
    ] = 0,
    cpus_per_trial: Annotated[
        int, typer.Option(help="CPUs Ray reserves per library; also its torch threads.")
    ] = 1,
    checkpoint_dir: Annotated[
        str,
        typer.Option(
            help="Folder of checkpoints; on a multi-node cluster one every node sees (shared "
            "file system), so a trial resumes wherever Ray restarts it."
        ),
    ] = "checkpoints",
    tracking_uri: TrackingUri = None,
    experiment: Experiment = "skillforge",
    store_timeout: Annotated[
        float, typer.Option(help="Seconds each library waits at the end for a gone store.")
    ] = DEFAULT_STORE_TIMEOUT,
) -> None:
    """Pretrain a grid of libraries on a Ray cluster, nested under one MLflow sweep run.

    Every list option is swept: one library per combination of their values.
    Re-running the same command skips finished libraries and resumes the others.
    """
    from skillforge.app.sweep import SweepInterrupted, SweepOptions, run_sweep
    from skillforge.core.envs import resolve_env_id
    from skillforge.core.grid import GRID_OPTIONS, SweepGrid, parse_values

    texts = {
        "env_id": env,
        "seed": seeds,
        "n_skills": skills,
        "total_steps": steps,
        "hidden": hidden,
        "batch_size": batch_size,
        "lr": lr,
        "alpha": alpha,
        "gamma": gamma,
        "tau": tau,
        "learning_starts": learning_starts,
        "objective": objective,
    }
    values = {
        field: parse_values(GRID_OPTIONS[field][0], text, GRID_OPTIONS[field][1])
        for field, text in texts.items()
    }
    values["env_id"] = [resolve_env_id(value) for value in values["env_id"]]
    values["discriminator_features"] = list(dict.fromkeys(discriminator_features or ["all"]))
    base = PretrainConfig(
        env_id=values["env_id"][0], buffer_size=buffer_size, checkpoint_every=checkpoint_every
    )
    grid = SweepGrid(base, values)
    evaluation = EvaluationOverrides(eval_episodes, eval_every, video).applied_to(
        EvaluationOptions()
    )
    options = SweepOptions(
        name or "",
        ray_address,
        max_concurrent,
        cpus_per_trial,
        tracking_uri,
        experiment,
        checkpoint_dir,
        evaluation,
        store_timeout,
    )
    board = SweepBoard()
    try:
        with signals_interrupt(), echoed_warnings(), board:
            result = run_sweep(grid, options, board.show)
    except SweepInterrupted as stop:
        typer.echo(f"{stop}", err=True)
        raise typer.Exit(130) from None
    typer.echo(f"Sweep {result.name}: {len(result.outcomes)} libraries, run id {result.run_id}")
    for outcome in result.outcomes:
        typer.echo(f"  {outcome.name:<24} {outcome.status:<9} {outcome.message}".rstrip())
    if result.comparison:
        typer.echo(result.comparison)
    if result.failed:
        typer.echo(f"error: {len(result.failed)} libraries failed; see above", err=True)
        raise typer.Exit(1)


class SweepBoard:
    """The trials as a live table on a terminal; elsewhere a plain line per trial every
    `log_seconds` and whenever a trial's status changes."""

    def __init__(self, log_seconds: float = 30.0) -> None:
        self.console = Console(stderr=True)
        terminal = self.console.is_terminal
        self.live = Live(console=self.console, auto_refresh=False) if terminal else None
        self.log_seconds = log_seconds
        self.last_log = 0.0
        self.statuses: dict[str, str] = {}

    def __enter__(self) -> SweepBoard:
        if self.live is not None:
            self.live.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.live is not None:
            self.live.stop()

    def show(self, progress) -> None:
        if self.live is not None:
            self.live.update(self.table(progress), refresh=True)
            return
        statuses = {name: row.status for name, row in progress.rows.items()}
        due = time.monotonic() - self.last_log >= self.log_seconds
        if due or statuses != self.statuses:
            self.last_log, self.statuses = time.monotonic(), statuses
            for line in self.lines(progress):
                self.console.print(line, highlight=False, markup=False, soft_wrap=True)

    @staticmethod
    def cells(row) -> list[str]:
        log_q = "" if row.log_q_z is None else f"{row.log_q_z:.3f}"
        rate = f"{row.rate:,.0f}" if row.rate else ""
        eta = clock(row.eta) if row.eta is not None else ""
        step = f"{row.step:,}/{row.total_steps:,}"
        return [row.name, row.status, step, rate, log_q, eta, row.message]

    def table(self, progress) -> Table:
        table = Table(title=f"sweep {progress.name}  ETA {self.overall(progress)}")
        for header in ("library", "status", "step", "steps/s", "log q(z|s)", "ETA", ""):
            table.add_column(header)
        for row in progress.rows.values():
            table.add_row(*self.cells(row))
        return table

    def lines(self, progress) -> list[str]:
        done = progress.count("finished", "skipped")
        head = f"sweep {progress.name}: {done}/{len(progress.rows)} done"
        head += f", ETA {self.overall(progress)}"
        rows = []
        for row in progress.rows.values():
            name, status, step, rate, log_q, eta, message = self.cells(row)
            text = f"  {name} {status} {step}"
            text += f" {rate} steps/s" if rate else ""
            text += f" log q(z|s) {log_q}" if log_q else ""
            text += f" ETA {eta}" if eta else ""
            rows.append(f"{text} {message}".rstrip())
        return [head, *rows]

    @staticmethod
    def overall(progress) -> str:
        return clock(progress.eta) if progress.eta is not None else "-:--:--"
