"""`skillforge library list|show|compare|register|promote|save|import`."""

from __future__ import annotations

from typing import Annotated

import typer

from cli.app import LibraryArgument, TrackingUri, app, given_or_absent
from cli.help import Group, Typer
from skillforge.core.config import DEFAULT_STORE_TIMEOUT, EvaluationOverrides

library_app = Typer(
    cls=Group, help="Inspect the skill libraries in the MLflow store.", no_args_is_help=True
)
app.add_typer(library_app, name="library")


@library_app.command("list")
def library_list(tracking_uri: TrackingUri = None) -> None:
    """List the skill libraries in the store, newest first, with the held-out log q(z|s) of
    their latest evaluation."""
    from skillforge.store.tracking import list_libraries

    libraries = list_libraries(tracking_uri)
    if not libraries:
        typer.echo("No skill libraries yet. Create one with: skillforge pretrain hopper")
        return
    rows = [("name", "env", "skills", "steps", "held-out log q(z|s)", "status", "date", "run id")]
    for lib in libraries:
        log_q = "-" if lib.heldout_log_q_z is None else f"{lib.heldout_log_q_z:.3f}"
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
    library: LibraryArgument,
    tracking_uri: TrackingUri = None,
) -> None:
    """Show one library, skill by skill, with its library model, aliases and running log q(z|s)
    (training, against episodes, as DIAYN-PyTorch plots it)."""
    from skillforge.app.library import show_library

    view = show_library(library, tracking_uri)
    info = view.info
    typer.echo(
        f"{info.name}: {info.env_id}, {info.n_skills} skills, {info.step:,} steps, "
        f"{info.status}, run {info.run_id}"
    )
    aliases = ", ".join(f"@{alias} -> {version}" for alias, version in view.aliases.items())
    model = view.library_model or "(not registered: skillforge library register NAME)"
    typer.echo(f"library model {model}{f' ({aliases})' if aliases else ''}")
    typer.echo(f"running log q(z|s) {running_log_q_text(view.running_log_q)}")
    rows = [("skill", "registered model", "eval return")]
    for skill in view.skills:
        value = "-" if skill.eval_return is None else f"{skill.eval_return:.1f}"
        rows.append((str(skill.index), skill.model_uri or "(not registered)", value))
    _print_table(rows)


def running_log_q_text(points: list[tuple[int, float]]) -> str:
    """The end of a library's running log q(z|s) curve, for `library show` and `evaluate`."""
    if not points:
        return "unavailable (no training log q(z|s) with episode counts: imported, METRA, or older)"
    episodes, value = points[-1]
    return f"{value:.3f} after {episodes:,} episodes (training, smoothed as DIAYN-PyTorch plots it)"


def _print_table(rows: list[tuple[str, ...]]) -> None:
    """Plain aligned columns: readable in a terminal, greppable in a pipe."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        cells = (cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        typer.echo("  ".join(cells).rstrip())


@library_app.command("compare")
def library_compare(
    libraries: Annotated[
        list[str] | None,
        typer.Argument(
            help="Library names or run ids. Default: every library in the store.",
            show_default=False,
        ),
    ] = None,
    fmt: Annotated[
        str | None,
        typer.Option(
            "--format",
            help="table, markdown or csv. Default: from the --output suffix (.md, .csv), "
            "else table.",
            show_default=False,
        ),
    ] = None,
    output: Annotated[
        str | None,
        typer.Option("--output", "-o", help="Write to this file instead.", show_default=False),
    ] = None,
    tracking_uri: TrackingUri = None,
) -> None:
    """Compare libraries' evaluation measures, one column per library."""
    from skillforge.app.library import compare_libraries

    comparison = compare_libraries(libraries or [], fmt, output, tracking_uri)
    if output is None:
        typer.echo(comparison.text, nl=False)
    else:
        with open(output, "w", encoding="utf-8") as file:
            file.write(comparison.text)
        typer.echo(f"Wrote {output} ({comparison.style}, {comparison.libraries} libraries)")
    missing = comparison.not_evaluated
    if missing:
        typer.echo(
            f"not evaluated yet: {', '.join(missing)}; run `skillforge evaluate NAME`", err=True
        )


@library_app.command("register")
def library_register(
    library: LibraryArgument,
    tracking_uri: TrackingUri = None,
    store_timeout: Annotated[
        float, typer.Option(help="Seconds to wait for an unreachable tracking server.")
    ] = DEFAULT_STORE_TIMEOUT,
    eval_episodes: Annotated[
        int | None,
        typer.Option(
            help="Episodes per skill in the final evaluation (0: none). Default: the run's own.",
            show_default=False,
        ),
    ] = None,
    video: Annotated[
        bool | None,
        typer.Option(
            "--video/--no-video",
            help="Film every skill. Default: as the run chose.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Finish a library whose training is done: send the metrics kept while the tracking
    server was away, evaluate it (as its pretrain chose, unless told otherwise), register
    every skill not yet registered. Safe to repeat."""
    from cli.pretrain import echoed_warnings, print_result
    from skillforge.app import pretrain as pipeline

    evaluation = EvaluationOverrides(episodes=eval_episodes, video=video)
    with echoed_warnings():
        result = pipeline.register(library, tracking_uri, evaluation, store_timeout)
    print_result(result)


@library_app.command("promote")
def library_promote(
    library: LibraryArgument,
    alias: Annotated[str, typer.Option(help="The alias to set, e.g. champion.")],
    version: Annotated[
        str | None,
        typer.Option(
            help="Version of the library model. Default: the one LIBRARY names "
            "(models:/<library>/<version>), else the newest.",
            show_default=False,
        ),
    ] = None,
    tracking_uri: TrackingUri = None,
) -> None:
    """Set an MLflow alias on the library model; afterwards `models:/<library>@<alias>` names
    the library wherever one is named, and `serve` and `hierarchical` run that version."""
    from skillforge.app.library import promote_library

    uri, version = promote_library(library, alias, version, tracking_uri)
    typer.echo(f"{uri} -> version {version}")


@library_app.command("save")
def library_save(
    library: LibraryArgument,
    out: Annotated[
        str, typer.Option("--out", "-o", help="The library file to write (e.g. hopper.pt).")
    ],
    force: Annotated[bool, typer.Option(help="Replace an existing file.")] = False,
    tracking_uri: TrackingUri = None,
) -> None:
    """Write a finished library to one small weights-only file (no replay buffer), to ship
    or share; `skillforge library import FILE` registers it in another store."""
    from skillforge.app.library_file import save_library

    path = save_library(library, out, tracking_uri, force)
    typer.echo(f"Wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")


@library_app.command("import")
def library_import(
    file: Annotated[str, typer.Argument(help="A library file written by `library save`.")],
    name: Annotated[
        str | None,
        typer.Option(
            help="Library name in this store. Default: the file's.",
            show_default=False,
            callback=given_or_absent,
        ),
    ] = None,
    checkpoint_dir: Annotated[
        str, typer.Option(help="Folder of checkpoints (one subfolder per library).")
    ] = "checkpoints",
    tracking_uri: TrackingUri = None,
) -> None:
    """Register a library file in the store as a finished library: evaluated, every skill
    registered, like a pretrained one."""
    from cli.pretrain import echoed_warnings, print_result
    from skillforge.app.library_file import import_library

    with echoed_warnings():
        result = import_library(
            file, name=name, tracking_uri=tracking_uri, checkpoint_dir=checkpoint_dir
        )
    print_result(result)
