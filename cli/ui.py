"""`skillforge ui`."""

from __future__ import annotations

from typing import Annotated

import typer

from cli.app import TrackingUri, app, warn_if_exposed
from skillforge.core.interrupts import signals_interrupt


@app.command()
def ui(
    host: Annotated[
        str, typer.Option(help="Address to bind. Anything but loopback exposes every run.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port of the UI.")] = 5000,
    tracking_uri: TrackingUri = None,
) -> None:
    """Open the MLflow UI on the store, to compare libraries side by side. Ctrl-C stops it."""
    from skillforge.store.tracking import resolve_tracking_uri
    from skillforge.store.ui_server import UiServer, is_server_store

    uri = resolve_tracking_uri(tracking_uri)
    if is_server_store(uri):
        typer.echo(f"The store {uri} is an MLflow server: its UI is the server's own, at {uri}")
        return
    warn_if_exposed(
        host,
        f"binding to {host} exposes every run and model to your network, with no authentication",
    )
    server = UiServer(uri, host, port)
    typer.echo(f"Starting the MLflow UI on {uri} ...", err=True)
    try:
        with signals_interrupt():
            address = server.start()
            typer.echo(f"MLflow UI: {address}  (store {uri}; Ctrl-C stops it)")
            typer.echo(
                "Compare libraries: open the experiment, tick the runs, press Compare "
                "(eval/... metrics, plots/ and videos/ under Artifacts).",
            )
            server.wait()
    except KeyboardInterrupt:
        typer.echo("Stopping the MLflow UI.", err=True)
    finally:
        server.stop()
