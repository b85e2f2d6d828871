"""The MLflow store and the runs of skill libraries: connecting, finding libraries, logging.

Metric delivery that survives store outages is in `delivery`; the Model Registry in
`registry`."""

from __future__ import annotations

import fcntl
import logging
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import unquote

from skillforge.core.errors import ConfigError, LibraryNotFound, SkillforgeError, first_line
from skillforge.core.names import library_model_name
from skillforge.store.model_uris import is_model_uri, model_version

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


class StoreUnavailable(SkillforgeError):
    """The tracking store cannot be reached (server down, network gone)."""


def resolve_tracking_uri(uri: str | None = None) -> str:
    """The store to use: `uri`, else MLFLOW_TRACKING_URI, else ./mlflow.db (sqlite, absolute).

    An explicit absolute sqlite URI also keeps MLflow from falling back to a stray ./mlruns
    file store, which MLflow 3 refuses.
    """
    uri = uri or os.environ.get("MLFLOW_TRACKING_URI") or ""
    if not uri:
        return f"sqlite:///{Path.cwd() / 'mlflow.db'}"
    if uri in ("databricks", "databricks-uc", "uc") or uri.startswith("databricks:"):
        return uri  # MLflow's own names for a Databricks workspace
    if "://" not in uri:  # a bare path: treat it as a sqlite file
        return f"sqlite:///{Path(uri).expanduser().resolve()}"
    return uri


def shown_uri(uri: str) -> str:
    """A tracking URI fit for a message or a log: a password in it is masked."""
    from urllib.parse import urlsplit, urlunsplit

    try:
        parts = urlsplit(uri)
        if parts.password is None:
            return uri
        port = f":{parts.port}" if parts.port else ""
        return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{parts.hostname}{port}"))
    except ValueError:  # not a URL we can take apart: show nothing of it but the scheme
        return uri.split("://", 1)[0] + "://..."


def sqlite_path(uri: str) -> Path | None:
    """The database file of a sqlite URI (`sqlite:////abs/mlflow.db`: `/abs/mlflow.db`, not
    the URL path `//abs/...`, which made artifact folders MLflow cannot serve models from)."""
    if not uri.startswith("sqlite:///"):
        return None
    return Path(unquote(uri[len("sqlite:///") :].split("?", 1)[0]))


@contextmanager
def _store_lock(uri: str):
    """Serialise schema creation of a local sqlite store across processes (MLflow's alembic
    migration crashes when two processes create the same fresh database at once), and the
    check-then-create of a library name. Not re-entrant: never nest two of them."""
    db = sqlite_path(uri)
    if db is None:
        yield
        return
    try:
        db.parent.mkdir(parents=True, exist_ok=True)
        lock = open(db.parent / f".{db.name}.lock", "w")  # noqa: SIM115 (held across yield)
    except OSError as error:
        raise SkillforgeError(
            f"cannot open the MLflow store {uri}: {error.strerror or error}"
        ) from None
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def probe(uri: str, timeout: float = 2.0) -> str | None:
    """None if the store at `uri` answers, else why not. Only HTTP servers are probed (their
    `/health` endpoint, no retries); local stores always answer."""
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


def connect(uri: str | None = None):
    """A ready MlflowClient for `uri` (schema created, fluent API pointed at the same store).

    Every failure (unreachable server, unwritable folder, unknown scheme, foreign database)
    is a one-line SkillforgeError.
    """
    uri = resolve_tracking_uri(uri)
    if uri.startswith("sqlite:"):
        db = sqlite_path(uri)
        if db is None or not db.name or db.name == ":memory:" or uri.endswith("/"):
            raise SkillforgeError(
                f"{uri} names no database file (an in-memory store would lose everything); "
                "use sqlite:////absolute/path/mlflow.db or a plain file path"
            )
    reason = probe(uri, timeout=5.0)
    if reason is not None:
        raise StoreUnavailable(f"cannot reach the tracking server {shown_uri(uri)}: {reason}")
    try:
        import mlflow
        from mlflow.tracking import MlflowClient

        mlflow.set_tracking_uri(uri)
        mlflow.set_registry_uri(uri)
        with _store_lock(uri):
            client = MlflowClient(tracking_uri=uri, registry_uri=uri)
            client.search_experiments(max_results=1)
    except SkillforgeError:
        raise
    except Exception as error:  # any store failure: one line for the user
        message = f"cannot open the MLflow store {shown_uri(uri)}: {first_line(error)}"
        raise SkillforgeError(message) from None
    return client


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
    db = sqlite_path(client.tracking_uri)
    location = str(db.parent / "mlruns") if db is not None else None
    with _store_lock(client.tracking_uri):
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
    with _store_lock(client.tracking_uri):
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
    )


def list_libraries(
    tracking_uri: str | None = None, experiment: str | None = None
) -> list[LibraryInfo]:
    """Every skill library in the store (newest first), optionally of one experiment."""
    client = connect(tracking_uri)
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
    reference: str | None, tracking_uri: str | None = None, experiment: str | None = None
) -> LibraryInfo:
    """A library by name, run id or registered model URI (`model_uris.FORMS`: the library of
    the model version it names); None or 'latest' means the most recent one."""
    libraries = list_libraries(tracking_uri, experiment)
    if not libraries:
        store = resolve_tracking_uri(tracking_uri)
        raise LibraryNotFound(
            f"no skill libraries in {store}; create one with `skillforge pretrain ENV`"
        )
    if reference in (None, "", "latest"):
        return libraries[0]
    if is_model_uri(reference):
        return _library_of_model(reference, libraries, tracking_uri)
    for library in libraries:
        if reference in (library.name, library.run_id):
            return library
    known = ", ".join(sorted({library.name for library in libraries})[:20])
    raise LibraryNotFound(f"no library named {reference!r}; libraries in the store: {known}")


def _library_of_model(uri: str, libraries: list[LibraryInfo], tracking_uri: str | None):
    """The library of the model version `uri` names (by its version tags `run_id`, else
    `library`); a version of the library model itself becomes its `model_uri`."""
    version = model_version(connect(tracking_uri), uri)
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


class MlflowTracker:
    """Training callback that writes params and metrics to one MLflow run."""

    def __init__(self, client, run_id: str) -> None:
        self.client = client
        self.run_id = run_id
        self.history: dict[str, list[tuple[int, float]]] = {}

    def on_step(self, step: int, metrics: dict[str, float]) -> None:

        for key, value in metrics.items():
            self.history.setdefault(key, []).append((step, value))
        log_metrics(self.client, self.run_id, metrics, step, tags={TAG_STEP: str(step)})

    def on_checkpoint(self, path: str, step: int) -> None:
        self.client.set_tag(self.run_id, TAG_CHECKPOINT, path)


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
