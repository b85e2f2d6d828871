"""What an export says about itself: `manifest.json` and the metadata inside every file."""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict
from pathlib import Path

from skillforge.export.formats import format_versions
from skillforge.export.parity import (
    PARITY_RANDOM_OBSERVATIONS,
    PARITY_REAL_OBSERVATIONS,
    ParityCheck,
)
from skillforge.skills.library import SkillLibrary, library_tags

MANIFEST = "manifest.json"


MANIFEST_FORMAT = "skillforge-export"


MANIFEST_VERSION = 1


def is_export(folder: Path) -> bool:
    try:
        return json.loads((folder / MANIFEST).read_text()).get("format") == MANIFEST_FORMAT
    except (OSError, ValueError, AttributeError):
        return False


def file_metadata(library: SkillLibrary, skill: int | None) -> dict[str, str]:
    """What a file says about itself, read back with no other file at hand."""
    spec = library.spec
    observation = f"observation float32 [batch, {spec.obs_dim}]"
    if skill is None:
        description = (
            f"All {spec.n_skills} skills of library {library.name} ({spec.env_id}): observation "
            f"and skill index in, deterministic action out."
        )
        inputs = f"{observation}; skill int64 [batch] in 0..{spec.n_skills - 1}"
        ranges = {"input_ranges": json.dumps({"skill": [0, spec.n_skills - 1]})}
    else:
        description = (
            f"Skill {skill} of {spec.n_skills} of library {library.name} ({spec.env_id}): "
            "observation in, deterministic action out."
        )
        inputs, ranges = observation, {}
    return {
        **library_tags(library, library.run_id),
        "skill": "all" if skill is None else str(skill),
        "inputs": inputs,
        **ranges,
        "outputs": f"action float32 [batch, {spec.action_dim}]",
        "description": description,
    }


def manifest_for(
    library: SkillLibrary,
    fmt: str,
    checks: list[ParityCheck],
    tolerance: float,
    source: dict | None,
    mlflow_models: list[str],
    folder: Path,
) -> dict:
    spec = library.spec
    return {
        "format": MANIFEST_FORMAT,
        "manifest_version": MANIFEST_VERSION,
        "export_format": fmt,
        "library": library.name,
        "env_id": spec.env_id,
        "n_skills": spec.n_skills,
        "observation_shape": [spec.obs_dim],
        "action_shape": [spec.action_dim],
        "action_low": list(spec.action_low),
        "action_high": list(spec.action_high),
        "inputs": {
            "observation": {"dtype": "float32", "shape": ["batch", spec.obs_dim]},
            "skill": {"dtype": "int64", "shape": ["batch"], "range": [0, spec.n_skills - 1]},
        },
        "outputs": {"action": {"dtype": "float32", "shape": ["batch", spec.action_dim]}},
        "files": [_file_entry(folder, check) for check in checks],
        "source": {"run_id": library.run_id, **(source or {})},
        "mlflow_models": mlflow_models,
        "versions": format_versions(fmt),
        "parity": {
            "passed": all(check.passed for check in checks),
            "tolerance": tolerance,
            "observations": PARITY_REAL_OBSERVATIONS + PARITY_RANDOM_OBSERVATIONS,
            "real_observations": PARITY_REAL_OBSERVATIONS,
            "observations_from": f"{spec.env_id} rollouts of the skills and of random actions, "
            "then random vectors around them",
            "max_abs_diff": max(check.max_abs_diff for check in checks),
            "checks": [asdict(check) for check in checks],
        },
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def _file_entry(folder: Path, check: ParityCheck) -> dict:
    library_file = check.skill is None
    return {
        "path": check.file,
        "skill": "all" if library_file else check.skill,
        "inputs": ["observation", "skill"] if library_file else ["observation"],
        "sha256": hashlib.sha256((folder / check.file).read_bytes()).hexdigest(),
    }
