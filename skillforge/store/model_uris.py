"""Registered models named by URI wherever a library is named: `models:/<name>/<version>`,
`models:/<name>@<alias>` (an MLflow alias, e.g. set by `skillforge library promote`) and
`models:/<name>/latest`."""

from __future__ import annotations

import re

from skillforge.core.errors import LibraryNotFound, first_line

MODEL_URI = re.compile(
    r"models:/(?P<name>[^/@'\"]+)(?:/(?P<version>[1-9][0-9]*|latest)|@(?P<alias>[\w-]+))"
)
FORMS = "models:/<library>/<version>, models:/<library>@<alias> or models:/<library>/latest"


def is_model_uri(reference: str | None) -> bool:
    """True for a reference of the `models:/...` form (checked by `model_version`)."""
    return bool(reference) and reference.startswith("models:/")


def model_version(client, uri: str):
    """The registered model version `uri` names (an `mlflow.entities.model_registry.
    ModelVersion`); a malformed URI, or one naming nothing in the store, is a one-line
    LibraryNotFound."""
    from mlflow.exceptions import MlflowException

    match = MODEL_URI.fullmatch(uri)
    if match is None:
        raise LibraryNotFound(f"{uri!r} is not a model URI; use {FORMS}")
    name, version, alias = match.group("name", "version", "alias")
    try:
        if alias is not None:
            return client.get_model_version_by_alias(name, alias)
        if version == "latest":
            versions = client.search_model_versions(f"name = '{name}'")
            if not versions:
                raise LibraryNotFound(f"no registered model named {name!r} in the store")
            return max(versions, key=lambda found: int(found.version))
        return client.get_model_version(name, version)
    except MlflowException as error:
        message = f"no registered model {uri} in the store ({first_line(error)})"
        raise LibraryNotFound(message) from None
