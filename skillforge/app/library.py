"""`skillforge library list|show|compare|promote`: the libraries of a store, one by one or
side by side, their training curves, and aliases of their library models."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import partial

from skillforge.core.errors import ConfigError
from skillforge.core.names import library_model_name
from skillforge.evaluation import compare
from skillforge.evaluation.running_log_q import running_log_q as smoothed_log_q
from skillforge.store import registry, tracking
from skillforge.store.records import library_records
from skillforge.store.registry import SkillInfo, library_skills
from skillforge.store.tracking import LibraryInfo

ALIAS = re.compile(r"(?!latest$)(?![vV][0-9]+$)[A-Za-z0-9_-]{1,255}")
"""What MLflow takes as an alias: letters, digits, '_' and '-'; not `latest`, not `v<N>`."""


@dataclass(frozen=True)
class Comparison:
    """A rendered comparison table and what it covers."""

    text: str
    style: str
    libraries: int
    not_evaluated: list[str]


@dataclass(frozen=True)
class LibraryView:
    """One library as `skillforge library show` prints it."""

    info: LibraryInfo
    skills: list[SkillInfo]
    library_model: str
    """The newest version of the library model (empty if it has none)."""
    aliases: dict[str, str]
    """Aliases of the library model and the versions they point at."""
    running_log_q: list[tuple[int, float]]
    """(episodes, running log q(z|s)) of its training, as DIAYN-PyTorch plots it (empty if
    the run logged no episode counts: made before them, or imported)."""


def show_library(reference: str, tracking_uri: str | None = None) -> LibraryView:
    """One library: its skills (registered model, evaluated return), its library model and
    the aliases of that model."""
    client = tracking.connect_existing(tracking_uri)
    info = tracking.find_library(reference, client=client)
    name = library_model_name(info.name)
    version = registry.newest_version(client, name)
    uri = f"models:/{name}/{version}" if version else ""
    aliases = registry.model_aliases(client, name) if version else {}
    skills = library_skills(info, client=client)
    return LibraryView(info, skills, uri, aliases, running_log_q_of_run(client, info.run_id))


def running_log_q(
    reference: str | None = None, tracking_uri: str | None = None
) -> list[tuple[int, float]]:
    """The training curve of library `reference` (name, run id, None for the latest) as
    DIAYN-PyTorch plots it: (episodes finished, running log q(z|s)) points, smoothed as
    `skillforge.evaluation.running_log_q` says; empty if the run logged no episode counts."""
    client = tracking.connect_existing(tracking_uri)
    return running_log_q_of_run(client, tracking.find_library(reference, client=client).run_id)


def running_log_q_of_run(client, run_id: str) -> list[tuple[int, float]]:
    """`running_log_q` of the run `run_id` in the open store `client`."""
    history = partial(tracking.metric_history, client, run_id)
    return smoothed_log_q(history("log_q_z"), history("episodes"))


def promote_library(
    reference: str, alias: str, version: str | None = None, tracking_uri: str | None = None
) -> tuple[str, str]:
    """Point `alias` (e.g. champion) of the library model of `reference` at `version`
    (default: the version `reference` names when it is a `models:/` URI, else the newest).
    Returns (`models:/<library>@<alias>`, the version); `--library models:/<library>@<alias>`
    then names that library, and `serve` and `hierarchical` run that version."""
    if not ALIAS.fullmatch(alias):
        raise ConfigError(
            f"--alias {alias!r} is not an alias MLflow takes: use letters, digits, '_' and '-' "
            "(not 'latest', not v<number>), e.g. champion"
        )
    client = tracking.connect_existing(tracking_uri)
    info = tracking.find_library(reference, client=client)
    name = library_model_name(info.name)
    newest = registry.newest_library_model(client, info.name)
    version = version or info.model_uri.rpartition("/")[2] or newest
    return registry.set_alias(client, name, alias, version), version


def compare_libraries(
    references: list[str],
    fmt: str | None = None,
    output: str | None = None,
    tracking_uri: str | None = None,
) -> Comparison:
    """The evaluation measures of `references` (default: every library), one column each, as
    a table, markdown or csv (`fmt`, else from the `output` file's suffix)."""
    style = compare.format_for(output, fmt)  # refuse a bad --format before touching the store
    records = library_records(references, tracking_uri)
    text = compare.render(compare.comparison(records), style)
    return Comparison(text, style, len(records), compare.not_evaluated(records))
