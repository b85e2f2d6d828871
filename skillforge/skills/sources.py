"""Frozen skills from where they are kept: a checkpoint, the Model Registry, an ONNX export.

All three give the same batched `act(obs, skills)` (the `SkillSet` protocol of `hierarchical`)
and a `fingerprint()` that changes if anything in the skills changes.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from skillforge.core.errors import SkillforgeError, first_line
from skillforge.core.names import library_model_name
from skillforge.rl.spec import LibrarySpec
from skillforge.skills.library import DEFAULT_EXPORT_ROOT, SkillLibrary, parameter_hash
from skillforge.skills.onnx_session import onnx_session
from skillforge.skills.registered_graph import load_graph


class LibrarySkills:
    """The skills of an in-memory `SkillLibrary` (e.g. loaded from its checkpoint)."""

    def __init__(self, library: SkillLibrary) -> None:
        self.library = library
        self.n_skills = library.n_skills
        self.obs_dim, self.action_dim = library.spec.obs_dim, library.spec.action_dim

    def act(self, obs: np.ndarray, skills: np.ndarray) -> np.ndarray:
        return self.library.act(obs, skills)

    def fingerprint(self) -> str:
        return parameter_hash(self.library.policy)


class RegistrySkills:
    """The library's registered model (`<library>`: every skill in one ONNX graph, observation
    and skill index in), loaded with plain MLflow and run by onnxruntime: one batched call
    per env step, whichever skills the rows run."""

    def __init__(self, graph, spec: LibrarySpec) -> None:
        self.graph = graph
        metadata = graph.metadata
        if metadata.get("env_id") != spec.env_id or metadata.get("n_skills") != str(spec.n_skills):
            raise SkillforgeError(
                f"the registered model of library {metadata.get('library', '?')} holds "
                f"{metadata.get('n_skills', '?')} skills of {metadata.get('env_id', '?')}, not "
                f"{spec.n_skills} of {spec.env_id}"
            )
        self.n_skills = spec.n_skills
        self.obs_dim, self.action_dim = spec.obs_dim, spec.action_dim

    @classmethod
    def load(
        cls, library_name: str, spec: LibrarySpec, tracking_uri: str, model_uri: str = ""
    ) -> RegistrySkills:
        """Load `model_uri` (default: the newest version of the library's model)."""
        import mlflow

        mlflow.set_tracking_uri(tracking_uri)
        mlflow.set_registry_uri(tracking_uri)
        uri = model_uri or f"models:/{library_model_name(library_name)}/latest"
        try:
            graph = load_graph(uri)
        except SkillforgeError as error:
            if model_uri:
                raise
            raise SkillforgeError(
                f"{error}; a library registered before library models existed gets one with "
                f"`skillforge library register {library_name}`"
            ) from None
        return cls(graph, spec)

    def act(self, obs: np.ndarray, skills: np.ndarray) -> np.ndarray:
        """Deterministic actions (batch, action_dim): one call of the library's graph."""
        inputs = {
            "observation": np.asarray(obs, dtype=np.float32),
            "skill": np.asarray(skills, dtype=np.int64),
        }
        return self.graph.run(inputs)

    def fingerprint(self) -> str:
        return hashlib.sha256(Path(self.graph.path).read_bytes()).hexdigest()


class OnnxSkills:
    """The library file of an ONNX export (observation and skill index in, action out), run by
    onnxruntime on one thread, as on a robot's computer."""

    def __init__(self, path: Path, spec: LibrarySpec) -> None:
        self.path = path
        try:
            self.session = onnx_session(path, threads=1)
            metadata = self.session.get_modelmeta().custom_metadata_map
            matches = metadata.get("env_id") == spec.env_id and metadata.get("n_skills") == str(
                spec.n_skills
            )
            inputs = {node.name for node in self.session.get_inputs()}
        except Exception as error:  # onnxruntime raises its own types for broken files
            message = f"{path} is not a readable ONNX model ({first_line(error, 200)})"
            raise SkillforgeError(message) from None
        if not matches or inputs != {"observation", "skill"}:
            raise SkillforgeError(f"{path} is not an export of this library; export it again")
        self.n_skills = spec.n_skills
        self.obs_dim, self.action_dim = spec.obs_dim, spec.action_dim

    @classmethod
    def load(cls, library_name: str, spec: LibrarySpec, folder: str | None = None) -> OnnxSkills:
        """The export in `folder` (default `exports/<library>/`)."""
        path = Path(folder or Path(DEFAULT_EXPORT_ROOT) / library_name) / "library.onnx"
        if not path.is_file():
            raise SkillforgeError(
                f"no ONNX export at {path}; run `skillforge export {library_name}` first"
            )
        return cls(path, spec)

    def act(self, obs: np.ndarray, skills: np.ndarray) -> np.ndarray:
        inputs = {
            "observation": np.asarray(obs, dtype=np.float32),
            "skill": np.asarray(skills, dtype=np.int64),
        }
        return self.session.run(["action"], inputs)[0]

    def fingerprint(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest()
