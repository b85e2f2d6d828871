"""Everything MLflow: the store, runs of skill libraries, metrics, registering skills."""

from __future__ import annotations

import fcntl
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

from skillforge.errors import LibraryNotFound, SkillforgeError

DEFAULT_EXPERIMENT = "skillforge"
TAG_LIBRARY = "skillforge.library"
TAG_ENV = "skillforge.env_id"
TAG_SKILLS = "skillforge.n_skills"
TAG_CHECKPOINT = "skillforge.checkpoint"
TAG_STATUS = "skillforge.status"
TAG_STEP = "skillforge.step"
TAG_KIND = "skillforge.kind"


def resolve_tracking_uri(uri: str | None = None) -> str:
    """The store to use: `uri`, else MLFLOW_TRACKING_URI, else ./mlflow.db (sqlite, absolute).

    An explicit absolute sqlite URI also keeps MLflow from falling back to a stray ./mlruns
    file store, which MLflow 3 refuses.
    """
    uri = uri or os.environ.get("MLFLOW_TRACKING_URI") or ""
    if not uri:
        return f"sqlite:///{Path.cwd() / 'mlflow.db'}"
    if "://" not in uri:  # a bare path: treat it as a sqlite file
        return f"sqlite:///{Path(uri).expanduser().resolve()}"
    return uri


def sqlite_path(uri: str) -> Path | None:
    """The database file of a sqlite URI, or None for other stores."""
    if not uri.startswith("sqlite:///"):
        return None
    return Path(unquote(urlparse(uri).path))


@contextmanager
def _store_lock(uri: str):
    """Serialise schema creation of a local sqlite store across processes (MLflow's alembic
    migration crashes when two processes create the same fresh database at once)."""
    db = sqlite_path(uri)
    if db is None:
        yield
        return
    db.parent.mkdir(parents=True, exist_ok=True)
    with open(db.parent / f".{db.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def connect(uri: str | None = None):
    """A ready MlflowClient for `uri` (schema created, fluent API pointed at the same store)."""
    import mlflow
    from mlflow.tracking import MlflowClient

    uri = resolve_tracking_uri(uri)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    with _store_lock(uri):
        client = MlflowClient(tracking_uri=uri, registry_uri=uri)
        try:
            client.search_experiments(max_results=1)
        except Exception as error:  # any store failure: one line for the user
            message = f"cannot open the MLflow store {uri}: {_first_line(error)}"
            raise SkillforgeError(message) from None
    return client


def ensure_experiment(client, name: str) -> str:
    """The id of experiment `name`, created (with an absolute artifact folder) if missing."""
    from mlflow.exceptions import MlflowException

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
        except MlflowException:  # created by a concurrent process in the meantime
            experiment = client.get_experiment_by_name(name)
            if experiment is None:
                raise
            return experiment.experiment_id


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


def register_skills(client, library, run_id: str, example_obs, on_skill=None) -> list[str]:
    """Log every skill of `library` to the active run `run_id` as a deterministic PyTorch model
    (observation in, action out; pickle-free pt2 format with a dynamic batch dimension)
    and register it as `model_name(library, k)`. Returns the registered model names."""
    import mlflow
    import numpy as np
    import torch
    from mlflow.models import infer_signature

    requirements = [f"torch=={torch.__version__.split('+')[0]}", f"numpy=={np.__version__}"]
    example = np.asarray(example_obs, dtype=np.float32)
    base_tags = library_tags(library, run_id)
    names = []
    for skill in range(library.n_skills):
        module = library.skill(skill)
        with torch.no_grad():
            actions = module(torch.from_numpy(example)).numpy()
        name = model_name(library.name, skill)
        tags = {**base_tags, "skill": str(skill)}
        info = mlflow.pytorch.log_model(
            module,
            name=f"skill-{skill:02d}",
            serialization_format="pt2",
            signature=infer_signature(example, actions),
            input_example=example,
            pip_requirements=requirements,
        )
        version = mlflow.register_model(info.model_uri, name, tags=tags)
        client.update_registered_model(
            name,
            description=(
                f"Skill {skill} of {library.n_skills} of library {library.name} "
                f"({library.spec.env_id}, run {run_id}). Deterministic: observation in, action "
                "out. Skill indices of different libraries are unrelated."
            ),
        )
        for key, value in tags.items():
            client.set_registered_model_tag(name, key, value)
        names.append(f"models:/{name}/{version.version}")
        if on_skill is not None:
            on_skill(skill)
    return names


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
