"""Everything MLflow: the store, runs of skill libraries, metrics, registering skills."""

from __future__ import annotations

import collections
import fcntl
import json
import logging
import os
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

from skillforge.errors import ConfigError, LibraryNotFound, SkillforgeError

logger = logging.getLogger("skillforge")

DEFAULT_EXPERIMENT = "skillforge"
TAG_LIBRARY = "skillforge.library"
TAG_ENV = "skillforge.env_id"
TAG_SKILLS = "skillforge.n_skills"
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
    """The database file of a sqlite URI, or None for other stores."""
    if not uri.startswith("sqlite:///"):
        return None
    return Path(unquote(urlparse(uri).path))


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
        message = f"cannot open the MLflow store {shown_uri(uri)}: {_first_line(error)}"
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
                    f"cannot create experiment {name!r}: {_first_line(error)}"
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
    """A library by name or run id; None or 'latest' means the most recent one."""
    libraries = list_libraries(tracking_uri, experiment)
    if not libraries:
        store = resolve_tracking_uri(tracking_uri)
        raise LibraryNotFound(
            f"no skill libraries in {store}; create one with `skillforge pretrain ENV`"
        )
    if reference in (None, "", "latest"):
        return libraries[0]
    for library in libraries:
        if reference in (library.name, library.run_id):
            return library
    known = ", ".join(sorted({library.name for library in libraries})[:20])
    raise LibraryNotFound(f"no library named {reference!r}; libraries in the store: {known}")


def model_name(library: str, skill: int) -> str:
    """Registered model name of one skill. The library is part of the name because skill
    indices of two libraries are unrelated: `hopper-20sk-ab12cd.skill-03`."""
    return f"{library}.skill-{skill:02d}"


class MlflowTracker:
    """Training callback that writes params and metrics to one MLflow run."""

    def __init__(self, client, run_id: str) -> None:
        self.client = client
        self.run_id = run_id
        self.history: dict[str, list[tuple[int, float]]] = {}

    def on_step(self, step: int, metrics: dict[str, float]) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [Metric(key, value, now, step) for key, value in metrics.items()]
        for key, value in metrics.items():
            self.history.setdefault(key, []).append((step, value))
        for start in range(0, len(batch), 1000):
            self.client.log_batch(self.run_id, metrics=batch[start : start + 1000])
        self.client.set_tag(self.run_id, TAG_STEP, str(step))

    def on_checkpoint(self, path: str, step: int) -> None:
        self.client.set_tag(self.run_id, TAG_CHECKPOINT, path)


@dataclass
class Report:
    """One metric report as the store will hold it. It keeps its timestamp for good, so
    sending it twice is harmless (MLflow drops an exact duplicate of a logged metric)."""

    step: int
    timestamp: int
    """Milliseconds since the epoch."""
    metrics: dict[str, float]
    kind: str = "train"
    """"train" (a training report; the run's step tag follows it) or "eval"."""

    def to_json(self) -> str:
        fields = {"step": self.step, "time": self.timestamp, "kind": self.kind}
        return json.dumps({**fields, "metrics": self.metrics}) + "\n"

    @classmethod
    def from_json(cls, line: str) -> Report:
        entry = json.loads(line)
        metrics = {str(key): float(value) for key, value in entry["metrics"].items()}
        return cls(int(entry["step"]), int(entry["time"]), metrics, str(entry["kind"]))


class MetricJournal:
    """The metric reports of one run in a local JSON-lines file, each appended before it is
    sent to the store. It lives next to the checkpoint: what the store has not received
    (server down, process killed) is still here, and is sent on resume or registration.
    A line torn by a kill is dropped; a journal of another run is started afresh."""

    FORMAT = "skillforge-metric-journal"

    def __init__(self, path: str | os.PathLike, run_id: str) -> None:
        self.path = Path(path)
        self.run_id = run_id

    def load(self) -> list[Report]:
        """The reports so far (rewriting the file if it was torn, foreign or missing)."""
        reports, intact = self._read()
        if not intact:
            self._rewrite(reports)
        return reports

    def append(self, report: Report) -> None:
        """Add one report (raises OSError if the disk refuses)."""
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(report.to_json())

    def _header(self) -> str:
        return json.dumps({"format": self.FORMAT, "run_id": self.run_id}) + "\n"

    def _read(self) -> tuple[list[Report], bool]:
        try:
            lines = self.path.read_text(encoding="utf-8").splitlines(keepends=True)
        except (OSError, UnicodeDecodeError):
            return [], False
        if not lines or lines[0] != self._header():
            return [], False
        reports = []
        for line in lines[1:]:
            try:
                if not line.endswith("\n"):
                    raise ValueError("torn line")
                reports.append(Report.from_json(line))
            except (ValueError, KeyError, TypeError, AttributeError):
                return reports, False  # a kill tore the last line: keep what came before
        return reports, True

    def _rewrite(self, reports: list[Report]) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(f".{self.path.name}.tmp")
            tmp.write_text(self._header() + "".join(r.to_json() for r in reports), "utf-8")
            os.replace(tmp, self.path)
        except OSError as error:
            logger.warning("cannot write the metric journal %s: %s", self.path, error)


class BufferedTracker:
    """Training callback that logs metric reports to one MLflow run without ever making
    training wait for the store.

    Each report is appended to `journal` (if given), then sent by a background thread with
    the run's step tag. While the store does not answer, reports wait (in memory and in the
    journal) and a warning says so; they are sent, in order, when it is back. Reports the
    journal already held when the tracker started (logged before a crash) are sent again if
    they are past `sent_step` (the run's step tag: what the store has; evaluations always),
    and are not logged a second time when the resumed training reaches their step again.
    """

    BATCH_METRICS = 900  # MLflow takes at most 1000 metrics + tags per log_batch

    def __init__(
        self,
        client,
        run_id: str,
        journal: MetricJournal | None = None,
        sent_step: int = -1,
        retry_seconds: float = 1.0,
    ) -> None:
        self.client = client
        self.run_id = run_id
        self.journal = journal
        self.uri = client.tracking_uri
        self.retry_seconds = retry_seconds
        self.reports: list[Report] = journal.load() if journal is not None else []
        self.journaled_until = max((r.step for r in self.reports if r.kind == "train"), default=-1)
        self.last_checkpoint: tuple[str, int] | None = None
        self._pending = collections.deque(  # evaluations carry no step tag: resend them all
            r for r in self.reports if r.kind != "train" or r.step > sent_step
        )
        self._tags: dict[str, str] = {}
        self._cond = threading.Condition()
        self._closing = False
        self._down_since: float | None = None
        self.last_problem = ""
        """Why the last send failed (empty once one succeeds)."""
        self._journal_failed = False
        self._thread = threading.Thread(
            target=self._send_loop, name="skillforge-tracker", daemon=True
        )
        self._thread.start()

    # -- the training callback --------------------------------------------------------------
    def on_step(self, step: int, metrics: dict[str, float]) -> None:
        if step <= self.journaled_until:
            return  # logged before a crash: the journal's copy is sent (or was)
        self._add(Report(step, int(time.time() * 1000), dict(metrics)))

    def on_checkpoint(self, path: str, step: int) -> None:
        self.last_checkpoint = (path, step)
        self.set_tags({TAG_CHECKPOINT_STEP: str(step)})

    # -- evaluation and tags ----------------------------------------------------------------
    def evaluation(self, step: int) -> dict[str, float] | None:
        """The evaluation already logged at `step` by this run (from the journal), if any."""
        for report in reversed(self.reports):
            if report.kind == "eval" and report.step == step:
                return {key.removeprefix("eval/"): v for key, v in report.metrics.items()}
        return None

    def log_evaluation(self, step: int, metrics: dict[str, float]) -> None:
        """Log `metrics` as `eval/<name>` at `step` (again, if the journal has them)."""
        for report in reversed(self.reports):
            if report.kind == "eval" and report.step == step:
                self._enqueue(report)
                return
        values = {f"eval/{key}": float(value) for key, value in metrics.items()}
        self._add(Report(step, int(time.time() * 1000), values, "eval"))

    def history(self, key: str) -> list[tuple[int, float]]:
        """(step, value) of a training metric, from the reports this tracker knows."""
        return sorted(
            (r.step, r.metrics[key]) for r in self.reports if r.kind == "train" and key in r.metrics
        )

    def set_tags(self, tags: dict[str, str]) -> None:
        """Set run tags with the next batch (or alone)."""
        with self._cond:
            self._tags.update(tags)
            self._cond.notify_all()

    # -- delivery ---------------------------------------------------------------------------
    @property
    def unsent(self) -> int:
        """Reports not yet accepted by the store."""
        with self._cond:
            return len(self._pending)

    @property
    def store_down_for(self) -> float | None:
        """Seconds since the store stopped answering, or None if it answers."""
        return None if self._down_since is None else time.monotonic() - self._down_since

    def flush(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for every report and tag to be sent; True if they
        all were."""
        deadline = time.monotonic() + max(0.0, timeout)
        with self._cond:
            while (self._pending or self._tags) and self._thread.is_alive():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(min(remaining, 0.5))
            return not (self._pending or self._tags)

    def close(self, timeout: float) -> bool:
        """Flush (bounded by `timeout`) and stop the sender; True if everything was sent."""
        delivered = self.flush(timeout)
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._thread.join(timeout=1.0)
        return delivered

    def _add(self, report: Report) -> None:
        if self.journal is not None and not self._journal_failed:
            try:
                self.journal.append(report)
            except OSError as error:
                self._journal_failed = True
                logger.warning(
                    "cannot append to the metric journal %s (%s); metrics go to the store only",
                    self.journal.path,
                    error.strerror or error,
                )
        self.reports.append(report)
        if report.kind == "train":
            self.journaled_until = max(self.journaled_until, report.step)
        self._enqueue(report)

    def _enqueue(self, report: Report) -> None:
        with self._cond:
            self._pending.append(report)
            self._cond.notify_all()

    def _send_loop(self) -> None:
        while True:
            with self._cond:
                while not (self._pending or self._tags or self._closing):
                    self._cond.wait()
                if self._closing:
                    return
                batch, size = [], 0
                for report in self._pending:
                    if batch and size + len(report.metrics) > self.BATCH_METRICS:
                        break
                    batch.append(report)
                    size += len(report.metrics)
                tags = dict(self._tags)
            problem = self._send(batch, tags)
            with self._cond:
                if problem is None:
                    for _ in batch:
                        self._pending.popleft()
                    for key, value in tags.items():
                        if self._tags.get(key) == value:
                            del self._tags[key]
                    waiting = len(self._pending)
                self._cond.notify_all()
            self.last_problem = problem or ""
            if problem is None:
                if self._down_since is not None:
                    logger.warning(
                        "tracking store %s answers again after %.0f s: sent the buffered "
                        "metric reports (%d more waiting)",
                        shown_uri(self.uri),
                        time.monotonic() - self._down_since,
                        waiting,
                    )
                    self._down_since = None
                continue
            if self._down_since is None:
                self._down_since = time.monotonic()
                where = f" and kept in {self.journal.path}" if self.journal is not None else ""
                logger.warning(
                    "tracking store %s does not answer (%s); training goes on, metrics are "
                    "buffered%s and sent when it is back",
                    shown_uri(self.uri),
                    problem,
                    where,
                )
            with self._cond:
                if not self._closing:
                    self._cond.wait(self.retry_seconds)

    def _send(self, batch: list[Report], tags: dict[str, str]) -> str | None:
        """Send one batch; None on success, else why it failed."""
        from mlflow.entities import Metric, RunTag

        problem = probe(self.uri)
        if problem is not None:
            return problem
        metrics = [
            Metric(key, value, report.timestamp, report.step)
            for report in batch
            for key, value in report.metrics.items()
        ]
        train_steps = [report.step for report in batch if report.kind == "train"]
        if train_steps:
            tags = {**tags, TAG_STEP: str(max(train_steps))}
        run_tags = [RunTag(key, value) for key, value in tags.items()]
        try:
            chunks = range(0, max(len(metrics), 1), self.BATCH_METRICS)
            for start in chunks:
                last = start + self.BATCH_METRICS >= len(metrics)
                self.client.log_batch(
                    self.run_id,
                    metrics=metrics[start : start + self.BATCH_METRICS],
                    tags=run_tags if last else [],
                )
        except Exception as error:  # the store is down, locked, or refusing: retry later
            return _first_line(error)
        return None


def log_params(client, run_id: str, params: dict[str, str]) -> None:
    """Log params in batches (MLflow caps a batch at 100)."""
    from mlflow.entities import Param

    items = [Param(key, str(value)[:6000]) for key, value in params.items()]
    for start in range(0, len(items), 100):
        client.log_batch(run_id, params=items[start : start + 100])


def metric_history(client, run_id: str, key: str) -> list[tuple[int, float]]:
    """(step, value) pairs of a metric, in step order."""
    return sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0][:300] if text else type(error).__name__


def library_tags(library, run_id: str) -> dict[str, str]:
    """Tags that make a registered skill self-describing."""
    from skillforge import __version__

    spec = library.spec
    return {
        "library": library.name,
        "run_id": run_id,
        "env_id": spec.env_id,
        "n_skills": str(spec.n_skills),
        "observation_shape": str([spec.obs_dim]),
        "action_shape": str([spec.action_dim]),
        "action_low": str(list(spec.action_low)),
        "action_high": str(list(spec.action_high)),
        "skillforge_version": __version__,
    }


def register_skills(
    client, library, run_id: str, example_obs, step: int | None = None, on_skill=None
) -> list[str]:
    """Log every skill of `library` to the active run `run_id` as a deterministic PyTorch model
    (observation in, action out; pickle-free pt2 format with a dynamic batch dimension)
    and register it as `model_name(library, k)`. Returns the registered model URIs.

    Idempotent and resumable: a skill that already has a version from this run at this
    training `step` (version tags `run_id` and `step`) is not registered again, so a
    registration cut short by a kill is completed by calling this again.
    """
    import mlflow
    import numpy as np
    import torch
    from mlflow.models import infer_signature

    requirements = [f"torch=={torch.__version__.split('+')[0]}", f"numpy=={np.__version__}"]
    example = np.asarray(example_obs, dtype=np.float32)
    base_tags = library_tags(library, run_id)
    if step is not None:
        base_tags["step"] = str(step)
    names = []
    for skill in range(library.n_skills):
        name = model_name(library.name, skill)
        tags = {**base_tags, "skill": str(skill)}
        version = _registered_version(client, name, run_id, tags.get("step"))
        if version is None:
            module = library.skill(skill)
            with torch.no_grad():
                actions = module(torch.from_numpy(example)).numpy()
            info = mlflow.pytorch.log_model(
                module,
                name=f"skill-{skill:02d}",
                serialization_format="pt2",
                signature=infer_signature(example, actions),
                input_example=example,
                pip_requirements=requirements,
            )
            version = mlflow.register_model(info.model_uri, name, tags=tags).version
        client.update_registered_model(  # again on a retry: a kill may have come before
            name,
            description=(
                f"Skill {skill} of {library.n_skills} of library {library.name} "
                f"({library.spec.env_id}, run {run_id}). Deterministic: observation in, "
                "action out. Skill indices of different libraries are unrelated."
            ),
        )
        for key, value in tags.items():
            client.set_registered_model_tag(name, key, value)
        names.append(f"models:/{name}/{version}")
        if on_skill is not None:
            on_skill(skill)
    return names


def _registered_version(client, name: str, run_id: str, step: str | None) -> str | None:
    """The version of model `name` registered from run `run_id` at `step`, if any."""
    for version in client.search_model_versions(f"name = '{name}'"):
        tags = version.tags or {}
        if tags.get("run_id") == run_id and (step is None or tags.get("step") == step):
            return str(version.version)
    return None


@dataclass(frozen=True)
class SkillInfo:
    """One registered skill of a library."""

    index: int
    model_uri: str
    eval_return: float | None


def library_skills(info: LibraryInfo, tracking_uri: str | None = None) -> list[SkillInfo]:
    """The skills of a library: registered model URI and evaluated return, skill by skill."""
    client = connect(tracking_uri)
    metrics = client.get_run(info.run_id).data.metrics
    skills = []
    for index in range(info.n_skills):
        name = model_name(info.name, index)
        versions = client.search_model_versions(f"name = '{name}'")
        uri = f"models:/{name}/{max(int(v.version) for v in versions)}" if versions else ""
        skills.append(SkillInfo(index, uri, metrics.get(f"eval/return/skill_{index:02d}")))
    return skills


def log_onnx_models(
    client, run_id: str, models: list[tuple[str, str, object, object]]
) -> list[str]:
    """Log ONNX files to run `run_id` as ONNX-flavour models under `onnx/<name>`, each
    loadable with `mlflow.pyfunc.load_model`. `models` holds (name, path, example input,
    example output); the input is an array, or a dict of arrays for a multi-input model.
    The run's status is left as it is. Returns the model URIs (`runs:/<run_id>/onnx/<name>`)."""
    import tempfile

    import mlflow.onnx
    import numpy as np
    import onnx
    import onnxruntime
    from mlflow.models import infer_signature

    requirements = [
        f"onnx=={onnx.__version__}",
        f"onnxruntime=={onnxruntime.__version__}",
        f"numpy=={np.__version__}",
    ]
    uris = []
    with tempfile.TemporaryDirectory(prefix="skillforge-onnx-") as folder:
        for name, path, example_input, example_output in models:
            model = onnx.load(path)
            local = Path(folder) / name
            mlflow.onnx.save_model(
                model,
                str(local),
                signature=infer_signature(example_input, example_output),
                pip_requirements=requirements,
                metadata={prop.key: prop.value for prop in model.metadata_props},
                save_as_external_data=False,
            )
            client.log_artifacts(run_id, str(local), f"onnx/{name}")
            uris.append(f"runs:/{run_id}/onnx/{name}")
    return uris


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
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    batch = [Metric(f"eval/{key}", float(value), now, step) for key, value in metrics.items()]
    for start in range(0, len(batch), 1000):
        client.log_batch(run_id, metrics=batch[start : start + 1000])
    if coverage_of:
        client.set_tag(run_id, TAG_COVERAGE, coverage_of)
    if folder is not None:
        client.log_artifacts(run_id, str(folder))


@dataclass(frozen=True)
class LibraryRecord:
    """A library with its run's latest metrics, params and tags (what `compare` reads)."""

    info: LibraryInfo
    experiment_id: str
    metrics: dict[str, float]
    params: dict[str, str]
    tags: dict[str, str]


def library_records(references: list[str], tracking_uri: str | None = None) -> list[LibraryRecord]:
    """The libraries named by `references` (names or run ids; none: every library, newest
    first), each with its run's data."""
    client = connect(tracking_uri)
    if references:
        infos = [find_library(reference, tracking_uri) for reference in references]
    else:
        infos = list_libraries(tracking_uri)
        if not infos:
            find_library(None, tracking_uri)  # raises the "no libraries" error
    records = []
    for info in infos:
        run = client.get_run(info.run_id)
        data = run.data
        records.append(
            LibraryRecord(
                info, run.info.experiment_id, dict(data.metrics), dict(data.params), dict(data.tags)
            )
        )
    return records
