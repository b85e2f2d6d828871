"""Frozen skills from where they are kept: a checkpoint, the Model Registry, an ONNX export.

All three give the same batched `act(obs, skills)` (the `SkillSet` protocol of `hierarchical`)
and a `fingerprint()` that changes if anything in the skills changes.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch

from skillforge.core.errors import SkillforgeError, first_line
from skillforge.core.names import skill_model_name
from skillforge.rl.spec import LibrarySpec
from skillforge.skills.library import DEFAULT_EXPORT_ROOT, SkillLibrary, parameter_hash
from skillforge.skills.onnx_session import onnx_session


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
    """One registered model per skill (`<library>.skill-NN`), loaded with plain MLflow."""

    def __init__(self, models: list[torch.nn.Module], spec: LibrarySpec) -> None:
        self.models = models
        self.n_skills = len(models)
        self.obs_dim, self.action_dim = spec.obs_dim, spec.action_dim

    @classmethod
    def load(cls, library_name: str, spec: LibrarySpec, tracking_uri: str) -> RegistrySkills:
        """Load the newest version of every skill of `library_name` from the registry."""
        import mlflow
        from mlflow.exceptions import MlflowException

        mlflow.set_tracking_uri(tracking_uri)
        mlflow.set_registry_uri(tracking_uri)
        models = []
        for skill in range(spec.n_skills):
            uri = f"models:/{skill_model_name(library_name, skill)}/latest"
            try:
                models.append(mlflow.pytorch.load_model(uri))
            except MlflowException as error:
                raise SkillforgeError(f"cannot load {uri} from the registry: {error}") from None
        return cls(models, spec)

    @torch.no_grad()
    def act(self, obs: np.ndarray, skills: np.ndarray) -> np.ndarray:
        """One batched call per skill in use (each skill is its own registered model)."""
        obs_t = torch.as_tensor(np.asarray(obs, dtype=np.float32))
        skills = np.asarray(skills)
        actions = np.zeros((len(obs_t), self.action_dim), dtype=np.float32)
        for skill in np.unique(skills):
            rows = np.flatnonzero(skills == skill)
            actions[rows] = self.models[int(skill)](obs_t[rows]).numpy()
        return actions

    def fingerprint(self) -> str:
        return hashlib.sha256("".join(parameter_hash(m) for m in self.models).encode()).hexdigest()


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
