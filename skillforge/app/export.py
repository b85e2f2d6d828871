"""`skillforge export`: export a library of the store (or a checkpoint file), optionally
logging the ONNX files to its MLflow run as models; or the ONNX graph of a trained agent."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlparse, urlunparse

import numpy as np

from skillforge.app.load import load_library
from skillforge.core.errors import ExportError
from skillforge.core.names import agent_model_name
from skillforge.export.formats import check_format
from skillforge.export.writer import ExportResult, export_library
from skillforge.skills.library import DEFAULT_EXPORT_ROOT, SkillLibrary
from skillforge.store import registry, tracking


def export_saved_library(
    reference: str | None = None,
    *,
    checkpoint: str | os.PathLike | None = None,
    tracking_uri: str | None = None,
    out_dir: str | os.PathLike | None = None,
    fmt: str = "onnx",
    skills: Sequence[int] | None = None,
    force: bool = False,
    log_to_mlflow: bool = False,
) -> ExportResult:
    """Export a library of the MLflow store (name, run id, or None for the most recent) or,
    with `checkpoint`, of a checkpoint file; `log_to_mlflow` also logs the ONNX files to the
    library's run as MLflow models. See `export_library` for the other options."""
    check_format(fmt)
    if log_to_mlflow and fmt != "onnx":
        raise ExportError("--log-to-mlflow logs ONNX models; use it with --format onnx")
    if checkpoint is not None:
        if reference is not None:
            raise ExportError("pass a library name or --from-checkpoint, not both")
        if log_to_mlflow:
            raise ExportError("--log-to-mlflow needs a library from the MLflow store")
        library = SkillLibrary.from_checkpoint(checkpoint)
        source = {"checkpoint": str(Path(checkpoint).resolve())}
    else:
        client = tracking.connect_existing(tracking_uri)
        info = tracking.find_library(reference, client=client)
        library = load_library(client=client, info=info)
        source = {
            "run_id": info.run_id,
            "tracking_uri": _without_credentials(tracking.resolve_tracking_uri(tracking_uri)),
            "experiment": info.experiment,
            "registered_models": [
                skill.model_uri for skill in registry.library_skills(info, client=client)
            ],
        }
    log_models = None
    if log_to_mlflow:

        def log_models(folder: Path, files: list[str], observations: np.ndarray) -> list[str]:
            return _log_models(library, folder, files, observations, client)

    return export_library(
        library, out_dir, fmt, skills, force, source=source, log_models=log_models
    )


def export_agent(
    reference: str | None,
    task: str,
    out_dir: str | os.PathLike | None = None,
    force: bool = False,
    tracking_uri: str | None = None,
) -> Path:
    """Write the agent of library `reference` on `task` (the newest version of its registered
    model `<library>.agent-<task>`) to `out_dir` (default `exports/<library>.agent-<task>/`)
    as `agent.onnx`: the graph checked against PyTorch when the agent was registered, its
    inputs, outputs, ranges and hold length K in its metadata. Returns the file."""
    client = tracking.connect(tracking_uri)
    info = tracking.find_library(reference, tracking_uri)
    name = agent_model_name(info.name, task)
    version = registry.newest_version(client, name)
    if version is None:
        raise ExportError(
            f"library {info.name} has no agent on {task}; train one with "
            f"`skillforge hierarchical {task} --library {info.name}`"
        )
    target = Path(out_dir or Path(DEFAULT_EXPORT_ROOT) / name).expanduser().resolve()
    path = target / "agent.onnx"
    if path.exists() and not force:
        raise ExportError(f"{path} already exists; pass --force to replace it")
    target.mkdir(parents=True, exist_ok=True)
    import mlflow

    with tempfile.TemporaryDirectory(prefix="skillforge-agent-") as folder:
        uri = f"models:/{name}/{version}"
        found = list(
            Path(mlflow.artifacts.download_artifacts(uri, dst_path=folder)).rglob("agent.onnx")
        )
        if not found:
            raise ExportError(f"models:/{name}/{version} holds no agent.onnx")
        partial = path.with_suffix(".onnx.tmp")
        shutil.copyfile(found[0], partial)
        os.replace(partial, path)  # all or nothing
    return path


def _log_models(
    library: SkillLibrary,
    folder: Path,
    files: list[str],
    observations: np.ndarray,
    client,
) -> list[str]:
    """Log the checked ONNX files to the library's run; returns their model URIs."""
    example = observations[:4]
    models = []
    for name in files:
        stem = name.removesuffix(".onnx")
        if stem == "library":
            skills = np.arange(len(example), dtype=np.int64) % library.n_skills
            inputs: object = {"observation": example, "skill": skills}
            outputs = library.act(example, skills)
        else:
            inputs, outputs = example, library.act(example, int(stem.split("-")[1]))
        models.append((stem, str(folder / name), inputs, outputs))
    return registry.log_onnx_models(client, library.run_id, models)


def _without_credentials(uri: str) -> str:
    """A tracking URI fit for a manifest: no user name or password."""
    parts = urlparse(uri)
    if "@" not in parts.netloc:
        return uri
    return urlunparse(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))
