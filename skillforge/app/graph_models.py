"""A library as one registered model, an ONNX graph checked against PyTorch and run by the
model code `store/graph_model.py`:

- `<library>`: observation (batch, obs_dim) and skill (batch,) in, action out; every row
  runs its own skill. Registered next to the `<library>.skill-NN` models, with their tags.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from skillforge.core.names import library_model_name
from skillforge.export.writer import write_library_onnx
from skillforge.skills.library import SkillLibrary, library_tags
from skillforge.store import registry


def register_library_model(
    client, library: SkillLibrary, run_id: str, example_obs: np.ndarray, step: int | None = None
) -> str:
    """Register every skill of `library` as one model `<library>` to the active run `run_id`
    (once per run and training `step`), with the skills' tags; returns its model URI."""
    n_skills = library.n_skills
    example = {
        "observation": np.asarray(example_obs, dtype=np.float32),
        "skill": np.arange(len(example_obs), dtype=np.int64) % n_skills,
    }
    tags = {**library_tags(library, run_id), "skill": "all"}
    if step is not None:
        tags["step"] = str(step)
    description = (
        f"All {n_skills} skills of library {library.name} ({library.spec.env_id}, run "
        f"{run_id}). Deterministic: observation (batch, {library.spec.obs_dim}) and skill index "
        f"(batch,) in 0..{n_skills - 1}, action (batch, {library.spec.action_dim}) out; each "
        "row runs its own skill."
    )

    def write_graph(path: Path) -> None:
        write_library_onnx(library, path)

    name = library_model_name(library.name)
    return registry.register_graph(client, name, "library", write_graph, example, tags, description)
