"""`skillforge library list|show`."""

from __future__ import annotations

from typing import Annotated

import typer

from cli.app import TrackingUri, app

library_app = typer.Typer(
    help="Inspect the skill libraries in the MLflow store.", no_args_is_help=True
)
app.add_typer(library_app, name="library")


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
