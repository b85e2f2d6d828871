"""The MLflow store and the runs of skill libraries: connecting, finding libraries, logging.

Metric delivery that survives store outages is in `delivery`; the Model Registry in
`registry`."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from pathlib import Path

from skillforge.core.errors import ConfigError, LibraryNotFound, SkillforgeError, first_line
from skillforge.core.names import library_model_name
from skillforge.store.mlflow_logs import quiet_store_chatter
from skillforge.store.model_uris import is_model_uri, model_version
from skillforge.store.paths import (
    artifact_root,
    check_sqlite_file,
    place_default_experiment,
    relocate_moved_store,
    repair_artifact_locations,
    resolve_tracking_uri,
    shown_uri,
    store_exists,
    store_lock,
)

logger = logging.getLogger("skillforge")

DEFAULT_EXPERIMENT = "skillforge"
TAG_LIBRARY = "skillforge.library"
TAG_ENV = "skillforge.env_id"
TAG_SKILLS = "skillforge.n_skills"
TAG_FEATURES = "skillforge.discriminator_features"
TAG_CHECKPOINT = "skillforge.checkpoint"
TAG_STATUS = "skillforge.status"
TAG_STEP = "skillforge.step"
TAG_KIND = "skillforge.kind"
TAG_CONFIG = "skillforge.config"
TAG_TOTAL_STEPS = "skillforge.total_steps"
TAG_CHECKPOINT_ROOT = "skillforge.checkpoint_root"
TAG_CHECKPOINT_STEP = "skillforge.checkpoint_step"
TAG_EVALUATION = "skillforge.evaluation"


class StoreUnavailable(SkillforgeError):
    """The tracking store cannot be reached (server down, network gone)."""


DATABASE_SCHEMES = ("postgresql", "mysql", "mssql")


def probe(uri: str, timeout: float = 2.0) -> str | None:
    """None if the store at `uri` answers, else why not. HTTP servers are asked their
    `/health`, database servers must accept a connection (MLflow would retry for minutes);
    local stores always answer."""
    if uri.split("+", 1)[0].split(":", 1)[0] in DATABASE_SCHEMES:
        return _probe_database(uri, timeout)
    if not uri.startswith(("http://", "https://")):
        return None
    import requests

    try:
        response = requests.get(f"{uri.rstrip('/')}/health", timeout=timeout)
    except requests.RequestException as error:
        reason = error.__class__.__name__
        if isinstance(error, requests.ConnectionError):
            reason = "connection refused or host unreachable"
        elif isinstance(error, requests.Timeout):
            reason = f"no answer within {timeout:g} s"
        return reason
    if response.status_code >= 500:
        return f"HTTP {response.status_code}"
    return None


def _probe_database(uri: str, timeout: float) -> str | None:
    """None if the database server of `uri` accepts a TCP connection, else why not."""
    import socket
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(uri)
        host, port = parts.hostname, parts.port
    except ValueError as error:
        return f"not a database URI ({error})"
    if not host:
        return None  # a local socket: the driver says what is wrong
    default = {"postgresql": 5432, "mysql": 3306, "mssql": 1433}
    port = port or default[parts.scheme.split("+", 1)[0]]
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as error:
        return error.strerror or type(error).__name__
    return None


def connect(uri: str | None = None):
    """A ready MlflowClient for `uri` (schema created, fluent API pointed at the same store,
    artifact paths of an older skillforge repaired).

    Every failure (unreachable server, unwritable folder, unknown scheme, foreign database)
    is a one-line SkillforgeError.
    """
    uri = resolve_tracking_uri(uri)
    check_sqlite_file(uri)
    reason = probe(uri, timeout=5.0)
    if reason is not None:
        raise StoreUnavailable(f"cannot reach the tracking server {shown_uri(uri)}: {reason}")
    try:
        import mlflow
        from mlflow.tracking import MlflowClient

        quiet_store_chatter()
        mlflow.set_tracking_uri(uri)
        mlflow.set_registry_uri(uri)
        with store_lock(uri):
            new_store = not store_exists(uri)
            client = MlflowClient(tracking_uri=uri, registry_uri=uri)
            client.search_experiments(max_results=1)
            if new_store:
                place_default_experiment(uri)
            repair_artifact_locations(uri)
            moved_from = relocate_moved_store(uri, (TAG_CHECKPOINT, TAG_CHECKPOINT_ROOT))
    except SkillforgeError:
        raise
    except Exception as error:  # any store failure: one line for the user
        message = f"cannot open the MLflow store {shown_uri(uri)}: {first_line(error)}"
        raise SkillforgeError(message) from None
    if moved_from is not None:
        logger.warning(
            "the store %s was moved or copied from %s: its files are now the ones beside it",
            uri,
            moved_from,
        )
    return client


def connect_existing(uri: str | None = None):
    """`connect` to a store that must already hold libraries (read-only commands, and any
    command naming a library): a sqlite store not created yet is "no libraries", and is not
    created by looking."""
    uri = resolve_tracking_uri(uri)
    check_sqlite_file(uri)
    if not store_exists(uri):
        raise LibraryNotFound(
            f"no skill libraries in {shown_uri(uri)}; create one with `skillforge pretrain ENV`"
        )
    return connect(uri)


def ensure_experiment(client, name: str) -> str:
    """The id of experiment `name`, created (with an absolute artifact folder) if missing."""
    from mlflow.exceptions import MlflowException

    if not name or not name.strip() or len(name) > 256 or not name.isprintable():
        raise ConfigError(
            f"--experiment {name!r} is not a usable experiment name "
            "(printable, not empty, at most 256 characters)"
        )
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        if experiment.lifecycle_stage == "deleted":
            raise SkillforgeError(f"experiment {name!r} is deleted; restore it or pick another")
        return experiment.experiment_id
    location = artifact_root(client.tracking_uri)
    with store_lock(client.tracking_uri):
        try:
            return client.create_experiment(name, artifact_location=location)
        except MlflowException as error:  # created by a concurrent process in the meantime?
            experiment = client.get_experiment_by_name(name)
            if experiment is None:
                raise SkillforgeError(
                    f"cannot create experiment {name!r}: {first_line(error)}"
                ) from None
            return experiment.experiment_id


def create_library_run(client, experiment_id: str, name: str, tags: dict[str, str]) -> str:
    """Create the run of a new library and return its id. Everything a later `--resume`
    needs (config, checkpoint path, library tags) goes into `tags`, written with the run in
    one transaction, so a kill at any moment leaves either no library or a resumable one.

    `name`, when not empty, must be free; on a sqlite store the check and the creation hold
    the store lock, so two runs started at once cannot both take the same name.
    """
    with store_lock(client.tracking_uri):
        refuse_taken_name(client, name)
        run = client.create_run(experiment_id, tags=tags, run_name=name or None)
    return run.info.run_id


def refuse_taken_name(client, name: str) -> None:
    """ConfigError if a library called `name` exists in any experiment of the store."""
    if name and _named_library_runs(client, name):
        raise ConfigError(
            f"a library named {name!r} already exists; pick another --name, "
            f"or continue it with --resume {name}"
        )


def _named_library_runs(client, name: str) -> list:
    experiments = [e.experiment_id for e in client.search_experiments()]
    if not experiments:
        return []
    quoted = name.replace("'", "")  # names are validated; never let a quote into the filter
    runs = client.search_runs(
        experiments,
        filter_string=f"tags.`{TAG_LIBRARY}` = '{quoted}' and tags.`{TAG_KIND}` = 'library'",
        max_results=10,
    )
    return list(runs)


@dataclass(frozen=True)
class LibraryInfo:
    """One skill library as the store knows it."""

    name: str
    run_id: str
    env_id: str
    n_skills: int
    step: int
    log_q_z: float | None
    status: str
    started: float
    experiment: str
    checkpoint: str
    model_uri: str = ""
    """The version of the library model that a `models:/<library>@<alias>` (or `/<version>`)
    reference named, else empty: `hierarchical --skills-from registry` and `serve` run it."""
    heldout_log_q_z: float | None = None
    """Mean log q(z|s) of the latest held-out evaluation (`eval/log_q_z`); `log_q_z` is the
    training batches' (none for an imported library)."""

    @property
    def date(self) -> str:
        return time.strftime("%Y-%m-%d %H:%M", time.localtime(self.started))


def _library_info(run, experiment_name: str) -> LibraryInfo:
    tags, metrics = run.data.tags, run.data.metrics
    return LibraryInfo(
        name=tags.get(TAG_LIBRARY, ""),
        run_id=run.info.run_id,
        env_id=tags.get(TAG_ENV, ""),
        n_skills=int(tags.get(TAG_SKILLS, 0)),
        step=int(tags.get(TAG_STEP, 0)),
        log_q_z=metrics.get("log_q_z"),
        status=tags.get(TAG_STATUS, run.info.status.lower()),
        started=run.info.start_time / 1000,
        experiment=experiment_name,
        checkpoint=tags.get(TAG_CHECKPOINT, ""),
        heldout_log_q_z=metrics.get("eval/log_q_z"),
    )


def list_libraries(
    tracking_uri: str | None = None, experiment: str | None = None, client=None
) -> list[LibraryInfo]:
    """Every skill library in the store (newest first), optionally of one experiment; pass
    the `client` of an open store to use it instead of connecting again. A sqlite store not
    created yet holds none (and is not created by looking)."""
    if client is None:
        uri = resolve_tracking_uri(tracking_uri)
        check_sqlite_file(uri)
        if not store_exists(uri):
            return []
        client = connect(uri)
    experiments = client.search_experiments()
    if experiment is not None:
        experiments = [e for e in experiments if e.name == experiment]
    names = {e.experiment_id: e.name for e in experiments}
    if not names:
        return []
    runs = client.search_runs(
        list(names),
        filter_string=f"tags.`{TAG_KIND}` = 'library'",
        order_by=["attributes.start_time DESC"],
        max_results=10_000,
    )
    return [_library_info(run, names[run.info.experiment_id]) for run in runs]


def find_library(
    reference: str | None,
    tracking_uri: str | None = None,
    experiment: str | None = None,
    client=None,
) -> LibraryInfo:
    """A library by name, run id or registered model URI (`model_uris.FORMS`: the library of
    the model version it names); None or 'latest' means the most recent one (`client`: an
    open store's, to use it instead of connecting again). An empty name names nothing: a
    ConfigError, not the most recent library."""
    if reference is not None and not reference.strip():
        raise ConfigError(
            f"{reference!r} names no library: give a library name, run id, models:/ URI or 'latest'"
        )
    libraries = list_libraries(tracking_uri, experiment, client)
    if not libraries:
        store = resolve_tracking_uri(tracking_uri)
        raise LibraryNotFound(
            f"no skill libraries in {store}; create one with `skillforge pretrain ENV`"
        )
    if reference in (None, "latest"):
        return libraries[0]
    if is_model_uri(reference):
        return _library_of_model(reference, libraries, client or connect(tracking_uri))
    for library in libraries:
        if reference in (library.name, library.run_id):
            return library
    known = ", ".join(sorted({library.name for library in libraries})[:20])
    raise LibraryNotFound(f"no library named {reference!r}; libraries in the store: {known}")


def _library_of_model(uri: str, libraries: list[LibraryInfo], client):
    """The library of the model version `uri` names (by its version tags `run_id`, else
    `library`); a version of the library model itself becomes its `model_uri`."""
    version = model_version(client, uri)
    tags = version.tags or {}
    found = [library for library in libraries if library.run_id == tags.get("run_id")]
    found = found or [library for library in libraries if library.name == tags.get("library")]
    if not found:
        raise LibraryNotFound(
            f"{uri} (model {version.name}, version {version.version}) "
            "belongs to no library of this store"
        )
    if version.name != library_model_name(found[0].name):  # a skill, a meta-controller...
        return found[0]
    return replace(found[0], model_uri=f"models:/{version.name}/{version.version}")


def log_params(client, run_id: str, params: dict[str, str]) -> None:
    """Log params in batches (MLflow caps a batch at 100)."""
    from mlflow.entities import Param

    items = [Param(key, str(value)[:6000]) for key, value in params.items()]
    for start in range(0, len(items), 100):
        client.log_batch(run_id, params=items[start : start + 100])


METRICS_PER_BATCH = 900
"""Metrics per `log_batch` call: MLflow takes at most 1000 metrics and tags in one."""


def log_metrics(
    client,
    run_id: str,
    metrics: dict[str, float] | list,
    step: int = 0,
    tags: dict[str, str] | None = None,
) -> None:
    """Log metrics (a dict at `step`, or a list of `mlflow.entities.Metric`) in batches MLflow
    accepts, with `tags` in the last batch (so they only land once every metric has)."""
    from mlflow.entities import Metric, RunTag

    if isinstance(metrics, dict):
        now = int(time.time() * 1000)
        metrics = [Metric(key, float(value), now, step) for key, value in metrics.items()]
    run_tags = [RunTag(key, value) for key, value in (tags or {}).items()]
    starts = range(0, max(len(metrics), 1), METRICS_PER_BATCH)
    for start in starts:
        last = start + METRICS_PER_BATCH >= len(metrics)
        batch = metrics[start : start + METRICS_PER_BATCH]
        if batch or (last and run_tags):
            client.log_batch(run_id, metrics=batch, tags=run_tags if last else [])


def metric_history(client, run_id: str, key: str) -> list[tuple[int, float]]:
    """(step, value) pairs of a metric, in step order."""
    return sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))


TAG_COVERAGE = "skillforge.coverage"


def log_evaluation(
    client,
    run_id: str,
    metrics: dict[str, float],
    step: int,
    folder: str | Path | None = None,
    coverage_of: str = "",
) -> None:
    """Log an evaluation to a library's run: `metrics` as `eval/<name>` at `step` (a later
    evaluation at the same step supersedes an earlier one), the files under `folder`
    (`plots/`, `videos/`) as artifacts, and what the coverage bins are as a tag."""
    log_metrics(client, run_id, {f"eval/{key}": value for key, value in metrics.items()}, step)
    if coverage_of:
        client.set_tag(run_id, TAG_COVERAGE, coverage_of)
    if folder is not None:
        client.log_artifacts(run_id, str(folder))
