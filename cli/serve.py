"""`skillforge serve`."""

from __future__ import annotations

from typing import Annotated

import typer

from cli.app import LIBRARY_FORMS, TrackingUri, app, defaults, warn_if_exposed
from skillforge.core.downstream_config import ServeConfig
from skillforge.core.interrupts import signals_interrupt

SERVE = defaults(ServeConfig)


@app.command()
def serve(
    library: Annotated[
        str,
        typer.Argument(
            help=f"{LIBRARY_FORMS}, or an agent's models:/<library>.agent-<task>/<version>.",
            metavar="LIBRARY",
        ),
    ],
    host: Annotated[
        str, typer.Option(help="Address to listen on. Anything but loopback exposes the model.")
    ] = SERVE.host,
    port: Annotated[int, typer.Option(help="Port to listen on.")] = SERVE.port,
    tracking_uri: TrackingUri = None,
) -> None:
    """Serve every skill of a library over HTTP (its library model, on onnxruntime): POST
    {"inputs": {"observation": [[...], ...], "skill": [k, ...]}} to /invocations, as
    `mlflow models serve` takes it. Ctrl-C stops it."""
    from skillforge.app.serve import serve_model

    config = ServeConfig(host=host, port=port)
    warn_if_exposed(
        host,
        f"listening on {host} lets anyone who reaches port {port} use the model, "
        "with no authentication",
    )
    serving = serve_model(library, config, tracking_uri)
    inputs = ", ".join(serving.inputs)
    typer.echo(
        f"Serving {serving.model_uri} at {serving.server.url}/invocations "
        f"(inputs {inputs}; onnxruntime; Ctrl-C stops it)"
    )
    try:
        with signals_interrupt():
            serving.server.serve()
    except KeyboardInterrupt:
        typer.echo("Stopped.", err=True)
