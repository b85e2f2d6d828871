"""`skillforge serve`: a library's registered model (or an agent's) over HTTP, on
onnxruntime, in one step."""

from __future__ import annotations

from dataclasses import dataclass

from skillforge.core.downstream_config import ServeConfig
from skillforge.core.names import library_model_name
from skillforge.skills.registered_graph import load_graph
from skillforge.store import registry, tracking
from skillforge.store.model_server import ModelServer
from skillforge.store.model_uris import is_model_uri, model_version


@dataclass
class Serving:
    """A bound server and what it serves."""

    server: ModelServer
    model_uri: str
    """The model version served, `models:/<name>/<version>`."""
    inputs: list[str]
    """The request's inputs by name, e.g. observation and skill."""


def serve_model(
    reference: str | None, config: ServeConfig, tracking_uri: str | None = None
) -> Serving:
    """Load the model `reference` names and bind a server to it (`Serving.server.serve()`
    answers requests). A library's name, run id or 'latest' serves the newest version of its
    library model; a `models:/` URI (an alias, a version, an agent's model) serves that."""
    model_uri = served_version(reference, tracking_uri)
    graph = load_graph(model_uri)
    return Serving(ModelServer(graph, config.host, config.port), model_uri, list(graph.inputs))


def served_version(reference: str | None, tracking_uri: str | None = None) -> str:
    """`models:/<name>/<version>` of the model `reference` names (see `serve_model`)."""
    client = tracking.connect_existing(tracking_uri)
    if is_model_uri(reference):
        version = model_version(client, reference)
        return f"models:/{version.name}/{version.version}"
    info = tracking.find_library(reference, client=client)
    newest = registry.newest_library_model(client, info.name)
    return f"models:/{library_model_name(info.name)}/{newest}"
