"""The MLflow Model Registry: every skill of a library as its own registered model
(`<library>.skill-NN`), ONNX graphs (a whole library, an agent) as models run by
`graph_model.py`, self-describing tags, aliases, and ONNX exports logged as models."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from skillforge.core.errors import ConfigError, LibraryNotFound
from skillforge.core.names import library_model_name, skill_model_name
from skillforge.skills.library import library_tags
from skillforge.skills.onnx_session import onnx_session
from skillforge.store.pt2_models import Pt2Models
from skillforge.store.tracking import LibraryInfo, connect

GRAPH_MODEL_CODE = Path(__file__).with_name("graph_model.py")
"""The code of every graph model, logged with it (MLflow's models from code)."""


def register_skills(
    client, library, run_id: str, example_obs, step: int | None = None, on_skill=None
) -> list[str]:
    """Log every skill of `library` to the active run `run_id` as a deterministic PyTorch model
    (observation in, action out; pickle-free pt2 format with a dynamic batch dimension)
    and register it as `skill_model_name(library, k)`. Returns the registered model URIs.

    Idempotent and resumable: a skill that already has a version from this run at this
    training `step` (version tags `run_id` and `step`) is not registered again, so a
    registration cut short by a kill is completed by calling this again.
    """
    base_tags = library_tags(library, run_id)
    if step is not None:
        base_tags["step"] = str(step)
    found = _search(client.search_registered_models, f"tags.library = '{library.name}'")
    models = {model.name: model for model in found}
    versions: dict[str, list] = {}
    for version in _search(client.search_model_versions, f"tags.run_id = '{run_id}'"):
        versions.setdefault(version.name, []).append(version)
    names = []
    with tempfile.TemporaryDirectory(prefix="skillforge-pt2-") as folder:
        pt2 = Pt2Models(client, run_id, example_obs, Path(folder))
        for skill in range(library.n_skills):
            name = skill_model_name(library.name, skill)
            tags = {**base_tags, "skill": str(skill)}
            description = (
                f"Skill {skill} of {library.n_skills} of library {library.name} "
                f"({library.spec.env_id}, run {run_id}). Deterministic: observation in, "
                "action out. Skill indices of different libraries are unrelated."
            )
            model = models.get(name)
            version = _version_of(versions.get(name, []), run_id, tags.get("step"))
            if version is None:
                model_id = pt2.log(library.skill(skill), f"skill-{skill:02d}")
                model = model or _registered_model(client, name, description, tags)
                version = _register_version(client, model_id, run_id, name, tags)
            _describe(client, name, description, tags, model)
            names.append(f"models:/{name}/{version}")
            if on_skill is not None:
                on_skill(skill)
    return names


def register_graph(
    client,
    name: str,
    artifact: str,
    write_graph: Callable[[Path], None],
    example: dict,
    tags: dict[str, str],
    description: str,
) -> str:
    """Register an ONNX graph as model `name`, run by `graph_model.py`: `write_graph(path)`
    writes the graph (its metadata `input_ranges` bounds its integer inputs), which is logged
    to the active run as `artifact` with a signature and the named arrays `example` as input
    example.

    Idempotent like `register_skills`: when model `name` has a version from this run at this
    step (tags `run_id`, `step`), nothing is written or logged again. Returns the model URI.
    """
    import mlflow
    import numpy as np
    import onnxruntime
    from mlflow.models import infer_signature

    version, model = _registered_version(client, name, tags["run_id"], tags.get("step")), None
    if version is None:
        requirements = [
            f"mlflow=={mlflow.__version__}",
            f"onnxruntime=={onnxruntime.__version__}",
            f"numpy=={np.__version__}",
        ]
        with tempfile.TemporaryDirectory(prefix="skillforge-graph-") as folder:
            path = Path(folder) / f"{artifact}.onnx"
            write_graph(path)
            session = onnx_session(path)
            names = [node.name for node in session.get_outputs()]
            outputs = session.run(names, example)
            output = outputs[0] if len(names) == 1 else dict(zip(names, outputs, strict=True))
            info = mlflow.pyfunc.log_model(
                name=artifact,
                python_model=str(GRAPH_MODEL_CODE),
                artifacts={"graph": str(path)},
                signature=infer_signature(example, output),
                input_example=example,
                pip_requirements=requirements,
            )
        model = _registered_model(client, name, description, tags)
        version = _register_version(client, info.model_id, info.run_id, name, tags)
    _describe(client, name, description, tags, model)
    return f"models:/{name}/{version}"


def _registered_model(client, name: str, description: str | None = None, tags=None):
    """Registered model `name`, created with `description` and `tags` if it does not exist."""
    from mlflow.exceptions import MlflowException

    try:
        return client.create_registered_model(name, tags=tags, description=description)
    except MlflowException as error:
        if error.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    return client.get_registered_model(name)


def _describe(client, name: str, description: str, tags: dict[str, str], model=None) -> None:
    """Set the description and tags of registered model `name` that differ from `model` (its
    state as read; read now if None): a kill may have come between registering a version
    and describing the model, and a later step of the same run updates the `step` tag."""
    model = model or client.get_registered_model(name)
    if model.description != description:
        client.update_registered_model(name, description=description)
    for key, value in tags.items():
        if model.tags.get(key) != value:
            client.set_registered_model_tag(name, key, value)


def _registered_version(client, name: str, run_id: str, step: str | None) -> str | None:
    """The version of model `name` registered from run `run_id` at `step`, if any."""
    return _version_of(client.search_model_versions(f"name = '{name}'"), run_id, step)


def _version_of(versions: Iterable, run_id: str, step: str | None) -> str | None:
    """The first of `versions` registered from run `run_id` at `step`, if any."""
    for version in versions:
        tags = version.tags or {}
        if tags.get("run_id") == run_id and (step is None or tags.get("step") == step):
            return str(version.version)
    return None


def _search(search: Callable, filter_string: str) -> list:
    """Every page of an MLflow registry search (`search_registered_models`, ...)."""
    found, token = [], None
    while True:
        page = search(filter_string, page_token=token)
        found.extend(page)
        token = page.token
        if not token:
            return found


def newest_version(client, name: str) -> str | None:
    """The newest version of registered model `name`, None if it has none."""
    versions = client.search_model_versions(f"name = '{name}'")
    return str(max(int(version.version) for version in versions)) if versions else None


def newest_library_model(client, library: str) -> str:
    """The newest version of `library`'s library model; a LibraryNotFound naming the command
    that registers one if it has none."""
    name = library_model_name(library)
    newest = newest_version(client, name)
    if newest is None:
        raise LibraryNotFound(
            f"library {library} has no library model yet; register it with "
            f"`skillforge library register {library}`"
        )
    return newest


def model_aliases(client, name: str) -> dict[str, str]:
    """The aliases of registered model `name` and the version each points at."""
    return dict(client.get_registered_model(name).aliases)


def set_alias(client, name: str, alias: str, version: str) -> str:
    """Point `alias` of registered model `name` at `version` (moving it if it pointed
    elsewhere); returns `models:/<name>@<alias>`. A version the model does not have is a
    ConfigError."""
    from mlflow.exceptions import MlflowException

    try:
        client.get_model_version(name, version)
    except MlflowException:
        raise ConfigError(f"model {name} has no version {version!r}") from None
    client.set_registered_model_alias(name, alias, version)
    return f"models:/{name}@{alias}"


@dataclass(frozen=True)
class SkillInfo:
    """One registered skill of a library."""

    index: int
    model_uri: str
    eval_return: float | None


def library_skills(
    info: LibraryInfo, tracking_uri: str | None = None, client=None
) -> list[SkillInfo]:
    """The skills of a library: registered model URI and evaluated return, skill by skill."""
    client = client or connect(tracking_uri)
    metrics = client.get_run(info.run_id).data.metrics
    skills = []
    for index in range(info.n_skills):
        name = skill_model_name(info.name, index)
        version = newest_version(client, name)
        uri = f"models:/{name}/{version}" if version else ""
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


def register_module(module, example_input, name: str, artifact: str, tags: dict[str, str]) -> str:
    """Log a PyTorch module (float32 input with a dynamic batch, pickle-free pt2) to the
    active run as `artifact`, register it as `name` with `tags`; returns its model URI."""
    import mlflow
    from mlflow.tracking import MlflowClient

    client, run_id = MlflowClient(), mlflow.active_run().info.run_id
    with tempfile.TemporaryDirectory(prefix="skillforge-pt2-") as folder:
        model_id = Pt2Models(client, run_id, example_input, Path(folder)).log(module, artifact)
    _registered_model(client, name)
    return f"models:/{name}/{_register_version(client, model_id, run_id, name, tags)}"


def _register_version(client, model_id: str, run_id: str, name: str, tags) -> str:
    """Register logged model `model_id` as a new version of `name`, linked both ways (what
    `mlflow.register_model` does, without its two lines on stderr per model)."""
    import json

    from mlflow.utils.mlflow_tags import MLFLOW_MODEL_VERSIONS

    uri = f"models:/{model_id}"
    version = client.create_model_version(name, uri, run_id, tags=tags, model_id=model_id).version
    link = [{"name": name, "version": str(version)}]
    client.set_logged_model_tags(model_id, {MLFLOW_MODEL_VERSIONS: json.dumps(link)})
    return str(version)
