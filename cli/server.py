"""`skillforge server`: the shared store (MLflow server on PostgreSQL) in the foreground."""

from __future__ import annotations

from typing import Annotated

import typer

from cli.app import app, warn_if_exposed
from skillforge.core.interrupts import signals_interrupt


@app.command()
def server(
    folder: Annotated[
        str,
        typer.Option(
            help="Folder of the store: PostgreSQL's data in postgres/, artifacts in artifacts/ "
            "(created on first start, reused after)."
        ),
    ] = "mlflow-server",
    host: Annotated[
        str, typer.Option(help="Address to bind. Anything but loopback exposes every run.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port of the MLflow server.")] = 5000,
    db_port: Annotated[
        int, typer.Option(help="Port of PostgreSQL on 127.0.0.1 (0: a free one).")
    ] = 0,
    artifacts_destination: Annotated[
        str | None,
        typer.Option(
            help="Where the server writes artifacts: a folder or s3://bucket/path. "
            "Default: FOLDER/artifacts.",
            show_default=False,
        ),
    ] = None,
    backend_store_uri: Annotated[
        str | None,
        typer.Option(
            help="A PostgreSQL database you run yourself (postgresql://user:pw@host/db) "
            "instead of the one started in FOLDER.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Run the shared tracking store: `mlflow server` on PostgreSQL with proxied artifacts.

    Point every command (and every node of a sweep) at it with --tracking-uri. Ctrl-C stops
    the server and its database."""
    from skillforge.store.shared_store import SharedStore

    warn_if_exposed(
        host,
        f"binding to {host} exposes every run and model to your network, with no authentication",
    )
    store = SharedStore(folder, host, port, db_port, artifacts_destination, backend_store_uri)
    store.check()
    typer.echo(f"Starting PostgreSQL and the MLflow server in {store.folder} ...", err=True)
    try:
        with signals_interrupt():
            url = store.start()
            typer.echo(f"MLflow server: {url}  (Ctrl-C stops it)")
            typer.echo(f"  artifacts   {store.artifacts}")
            typer.echo(f"  use it      skillforge sweep hopper --tracking-uri {url}")
            store.wait()
    except KeyboardInterrupt:
        typer.echo("Stopping the MLflow server and PostgreSQL.", err=True)
    finally:
        store.stop()
