"""`skillforge evaluate`."""

from __future__ import annotations

import math
from typing import Annotated

import typer

from cli.app import LIBRARY_FORMS, Threads, TrackingUri, app, given_or_absent
from cli.library import running_log_q_text


@app.command()
def evaluate(
    library: Annotated[
        str | None,
        typer.Argument(
            help=f"{LIBRARY_FORMS}. Default: the most recent library.",
            show_default=False,
            callback=given_or_absent,
        ),
    ] = None,
    episodes: Annotated[
        int, typer.Option(help="Deterministic episodes per skill, on fresh seeds.")
    ] = 5,
    video: Annotated[
        bool, typer.Option("--video/--no-video", help="Film every skill (GIFs, headless).")
    ] = True,
    seed: Annotated[int, typer.Option(help="Seed of the evaluation episodes.")] = 0,
    tracking_uri: TrackingUri = None,
    threads: Threads = 0,
) -> None:
    """Measure a library's skills and log the measures, plots and videos to its MLflow run."""
    from skillforge.core.errors import ConfigError

    if episodes < 1:
        raise ConfigError(f"--episodes must be at least 1, got {episodes}")

    from skillforge.app.checks import use_threads
    from skillforge.app.evaluate import evaluate_stored

    use_threads(threads)

    def announce(info) -> None:
        typer.echo(
            f"Evaluating {info.name} ({info.env_id}, {info.n_skills} skills): "
            f"{episodes} episodes per skill{', filming' if video else ''}...",
            err=True,
        )

    info, report = evaluate_stored(library, tracking_uri, episodes, seed, video, announce)
    for note in report.notes:
        typer.echo(f"warning: {note}", err=True)
    for line in summary(info, report):
        typer.echo(line)


def summary(info, report) -> list[str]:
    """What a user reads after `skillforge evaluate`."""
    metrics = report.metrics()
    n = report.n_skills
    lines = [
        f"{info.name}: {info.env_id}, {n} skills, {info.step:,} steps, "
        f"{report.episodes} episodes per skill (run {info.run_id})"
    ]

    def row(label: str, text: str) -> None:
        lines.append(f"  {label:<24}{text}")

    if report.scores:
        row(
            "discriminator accuracy",
            f"{metrics['discriminator_accuracy']:.3f}  (chance {1 / n:.3f})",
        )
        row("mean log q(z|s)", f"{metrics['log_q_z']:.3f}  (chance {-math.log(n):.3f})")
        bound = metrics["mutual_information_bound"]
        row(
            "I(S;Z) lower bound",
            f"{bound:.3f} nats = {metrics['mutual_information_fraction']:.2f} of ln N"
            if bound >= 0
            else f"{bound:.3f} nats: vacuous (I(S;Z) >= 0; log q(z|s) is below chance on "
            "these held-out states)",
        )
        row("effective skills", f"{metrics['effective_skills']:.2f} of {n}")
    row("running log q(z|s)", running_log_q_text(report.running_log_q))
    row(
        "best skill",
        f"{int(metrics['best_skill'])} (return {metrics['best_skill_return']:.1f}); "
        f"mean over skills {metrics['mean_skill_return']:.1f}",
    )
    if report.coverage is not None:
        row(
            "coverage",
            f"{report.coverage} bins ({report.coverage_of}); "
            f"a random policy: {report.random_coverage}",
        )
    plots = [name for name in report.artifacts if name.startswith("plots/")]
    videos = [name for name in report.artifacts if name.startswith("videos/")]
    logged = f"{len(plots)} plots in plots/"
    if videos:
        logged += f", {len(videos)} GIFs in videos/ (one per skill, all_skills.gif)"
    row("logged to the run", logged)
    lines.append("Compare libraries: skillforge library compare; browse: skillforge ui")
    return lines
