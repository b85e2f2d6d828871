"""`skillforge export`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli.app import LIBRARY_FORMS, Threads, TrackingUri, app


@app.command("export")
def export(
    library: Annotated[
        str | None,
        typer.Argument(
            help=f"{LIBRARY_FORMS}. Default: the most recent library.",
            metavar="LIBRARY",
            show_default=False,
        ),
    ] = None,
    fmt: Annotated[
        str, typer.Option("--format", help="onnx, or torchscript (PyTorch C++ / libtorch).")
    ] = "onnx",
    out: Annotated[
        Path | None,
        typer.Option(help="Output folder. Default: exports/<library>/.", show_default=False),
    ] = None,
    skills: Annotated[
        str | None,
        typer.Option(
            help="Skills that get their own file, e.g. 0,3,7. Default: all. The library file "
            "always serves every skill.",
            show_default=False,
        ),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Replace an existing export folder.")
    ] = False,
    from_checkpoint: Annotated[
        Path | None,
        typer.Option(
            help="Export the library of a checkpoint file instead of one from the store.",
            show_default=False,
        ),
    ] = None,
    agent: Annotated[
        str | None,
        typer.Option(
            help="Export the agent trained on this task instead (`skillforge hierarchical`): "
            "its ONNX graph, to <out>/agent.onnx (default exports/<library>.agent-<task>/).",
            show_default=False,
        ),
    ] = None,
    log_to_mlflow: Annotated[
        bool,
        typer.Option(
            "--log-to-mlflow", help="Also log the ONNX files to the library's run as MLflow models."
        ),
    ] = False,
    tracking_uri: TrackingUri = None,
    threads: Threads = 0,
) -> None:
    """Export a skill library: one file per skill, a library file, a manifest; checked
    against PyTorch with onnxruntime (or TorchScript) before anything is written."""
    skill_list = _parse_skills(skills)
    if agent is not None:
        from skillforge.app.export import export_agent

        if skills is not None or from_checkpoint is not None or log_to_mlflow or fmt != "onnx":
            raise typer.BadParameter(
                "--agent exports one ONNX file; it takes LIBRARY, --out and --force only"
            )
        path = export_agent(library, agent, out, force, tracking_uri)
        typer.echo(f"Exported the agent on {agent} to {path}")
        return

    from skillforge.app.checks import use_threads
    from skillforge.app.export import export_saved_library

    use_threads(threads)
    result = export_saved_library(
        library,
        checkpoint=from_checkpoint,
        tracking_uri=tracking_uri,
        out_dir=out,
        fmt=fmt,
        skills=skill_list,
        force=force,
        log_to_mlflow=log_to_mlflow,
    )
    manifest, parity = result.manifest, result.manifest["parity"]
    typer.echo(
        f"Exported {manifest['library']} ({manifest['env_id']}, {manifest['n_skills']} skills) "
        f"as {result.format} to {result.out_dir}"
    )
    typer.echo(f"  files     {', '.join(result.files)}")
    typer.echo(
        f"  parity    max |action - PyTorch action| {result.max_abs_diff:.2g} <= "
        f"{parity['tolerance']:g} on {parity['observations']:,} observations "
        f"({parity['real_observations']:,} from {manifest['env_id']} rollouts), every file"
    )
    for uri in manifest["mlflow_models"]:
        typer.echo(f"  mlflow    {uri}")


def _parse_skills(text: str | None) -> list[int] | None:
    """`0,3,7` -> [0, 3, 7]."""
    if text is None:
        return None
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise typer.BadParameter(
            f"--skills takes comma-separated skill indices, e.g. 0,3,7; got {text!r}"
        ) from None
