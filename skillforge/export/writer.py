"""Export a skill library to files that run without skillforge: ONNX or TorchScript.

An export folder holds one file per skill (observation in, deterministic action out), one
library file (observation and skill index in, so one session serves every skill) and
`manifest.json`. Every file carries its own metadata. Before anything is moved into place,
each file's actions are compared with the PyTorch policy's on real environment states; a
mismatch, like any other failure, leaves no files behind and a previous export untouched.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from skillforge.core.errors import ExportError, first_line
from skillforge.core.names import is_valid_name
from skillforge.export.formats import (
    check_format,
    onnx_runner,
    save_onnx,
    save_torchscript,
    torchscript_runner,
)
from skillforge.export.manifest import MANIFEST, file_metadata, is_export, manifest_for
from skillforge.export.parity import (
    PARITY_TOLERANCE,
    ParityCheck,
    max_abs_diff,
    parity_observations,
)
from skillforge.skills.library import DEFAULT_EXPORT_ROOT, LibraryPolicy, SkillLibrary


@dataclass(frozen=True)
class ExportResult:
    """A finished export: where it is, what it holds, how closely it matches PyTorch."""

    out_dir: Path
    format: str
    files: list[str]
    parity: list[ParityCheck]
    manifest: dict

    @property
    def max_abs_diff(self) -> float:
        return max(check.max_abs_diff for check in self.parity)


def export_library(
    library: SkillLibrary,
    out_dir: str | os.PathLike | None = None,
    fmt: str = "onnx",
    skills: Sequence[int] | None = None,
    force: bool = False,
    *,
    source: dict | None = None,
    log_models: Callable[[Path, list[str], np.ndarray], list[str]] | None = None,
    tolerance: float = PARITY_TOLERANCE,
) -> ExportResult:
    """Write `library` to `out_dir` (default `exports/<library>/`) as `fmt` files, verified.

    :param skills: skills that get their own file (default: all); the library file always
        serves every skill, with the library's own indices.
    :param force: replace an existing export folder (only once the new one is complete).
    :param source: where the library came from, recorded in the manifest.
    :param log_models: called with (folder, files, parity observations) once every file is
        checked, before anything is moved into place; returns model URIs for the manifest
        (`skillforge export --log-to-mlflow` logs the files to MLflow with it).
    :param tolerance: largest accepted max-abs difference from the PyTorch actions.
    :raises ExportError: on a refusal or a failed check; nothing is left half-written.
    """
    check_format(fmt)
    selected = _check_skills(library, skills)
    target = _target_folder(library, out_dir)
    _check_replaceable(target, force)
    observations = parity_observations(library)
    staging = _staging_folder(target)
    try:
        files, checks = _write_and_check(library, fmt, selected, observations, staging, tolerance)
        models = log_models(staging, files, observations) if log_models is not None else []
        manifest = manifest_for(library, fmt, checks, tolerance, source, models, staging)
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        _commit(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return ExportResult(target, fmt, [*files, MANIFEST], checks, manifest)


def _check_skills(library: SkillLibrary, skills: Sequence[int] | None) -> list[int]:
    if skills is None:
        return list(range(library.n_skills))
    if not skills:
        raise ExportError("--skills is empty; name at least one skill, e.g. --skills 0")
    for skill in skills:
        if not 0 <= skill < library.n_skills:
            raise ExportError(
                f"skill {skill} out of range: library {library.name or '(unnamed)'} has "
                f"skills 0..{library.n_skills - 1}"
            )
    return sorted(set(skills))


def _target_folder(library: SkillLibrary, out_dir: str | os.PathLike | None) -> Path:
    """`out_dir`, or `exports/<library>` with a name that cannot leave `exports/`."""
    if out_dir is not None:
        return Path(out_dir).expanduser().resolve()
    root = Path(DEFAULT_EXPORT_ROOT).resolve()
    if not is_valid_name(library.name):
        raise ExportError(
            f"library name {library.name!r} cannot be a folder name; pass --out to choose one"
        )
    target = (root / library.name).resolve()
    if target.parent != root:
        raise ExportError(f"library name {library.name!r} escapes {root}; pass --out")
    return target


def _check_replaceable(target: Path, force: bool) -> None:
    """Refuse to overwrite without --force, and never replace anything but an export."""
    if not target.exists() and not target.is_symlink():
        return
    if not force:
        raise ExportError(f"{target} already exists; pass --force to replace it")
    if target.is_symlink() or not target.is_dir():
        raise ExportError(f"{target} exists and is not a folder; refusing to replace it")
    if any(target.iterdir()) and not is_export(target):
        raise ExportError(
            f"{target} is not a skillforge export (no {MANIFEST}); refusing to replace it"
        )


def _staging_folder(target: Path) -> Path:
    """An empty hidden folder next to `target` (same filesystem, so the final rename is atomic)."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        folder = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
        umask = os.umask(0)
        os.umask(umask)
        folder.chmod(0o777 & ~umask)  # a normal folder once in place, not mkdtemp's 0o700
        return folder
    except (FileExistsError, NotADirectoryError):
        raise ExportError(f"cannot write to {target.parent}: a file is in the way") from None
    except OSError as error:
        reason = error.strerror or str(error)
        raise ExportError(f"cannot write to {target.parent}: {reason}") from None


def write_library_onnx(
    library: SkillLibrary, path: Path, tolerance: float = PARITY_TOLERANCE
) -> ParityCheck:
    """Every skill in one ONNX graph (observation and skill index in, action out), written to
    `path` and checked against the PyTorch policy like the library file of an export: what
    the library's registered model runs. A failed check is an ExportError."""
    observations = parity_observations(library)
    module, args = _library_module(library, observations)
    return _write_checked(library, "onnx", path, None, module, args, observations, tolerance)


def _library_module(library: SkillLibrary, observations: np.ndarray) -> tuple[nn.Module, tuple]:
    """The library file's module and example arguments (two rows, skills 0 and 1)."""
    module = LibraryPolicy(library.policy, library.n_skills).eval()
    return module, (torch.from_numpy(observations[:2]), torch.tensor([0, 1]))


def _write_and_check(
    library: SkillLibrary,
    fmt: str,
    skills: list[int],
    observations: np.ndarray,
    folder: Path,
    tolerance: float,
) -> tuple[list[str], list[ParityCheck]]:
    """Write every file of the export into `folder` and compare each with the PyTorch policy."""
    suffix = ".onnx" if fmt == "onnx" else ".pt"
    example = torch.from_numpy(observations[:2])
    jobs: list[tuple[str, int | None, nn.Module, tuple]] = [
        (f"skill-{skill:02d}{suffix}", skill, library.skill(skill), (example,)) for skill in skills
    ]
    jobs.append((f"library{suffix}", None, *_library_module(library, observations)))
    checks = [
        _write_checked(library, fmt, folder / name, skill, module, args, observations, tolerance)
        for name, skill, module, args in jobs
    ]
    return [check.file for check in checks], checks


def _write_checked(
    library: SkillLibrary,
    fmt: str,
    path: Path,
    skill: int | None,
    module: nn.Module,
    example_args: tuple,
    observations: np.ndarray,
    tolerance: float,
) -> ParityCheck:
    """Write one file (skill `skill`'s, or with None the library file) and compare its
    actions with the PyTorch policy's on `observations` (the library file: with every skill)."""
    save, load = (
        (save_onnx, onnx_runner) if fmt == "onnx" else (save_torchscript, torchscript_runner)
    )
    name = path.name
    try:
        save(module, example_args, path, file_metadata(library, skill))
        run = load(path)
    except Exception as error:  # the exporter's own failures: one line, nothing kept
        raise ExportError(f"{fmt} export of {name} failed: {first_line(error)}") from None
    if skill is None:
        n_skills = library.n_skills
        obs = np.tile(observations, (n_skills, 1))
        skill_ids = np.repeat(np.arange(n_skills), len(observations))  # (n_skills * rows,)
    else:
        obs, skill_ids = observations, np.full(len(observations), skill)
    diff = max_abs_diff(run, library, obs, skill_ids, per_skill=skill is not None)
    check = ParityCheck(name, skill, len(obs), diff, bool(diff <= tolerance))
    if not check.passed:
        raise ExportError(
            f"parity check failed: {name} differs from the PyTorch policy by {diff:.3g} "
            f"(max abs) > {tolerance:g} on {len(obs):,} observations; nothing was written"
        )
    return check


def _commit(staging: Path, target: Path) -> None:
    """Move the finished `staging` folder to `target`; a previous export there is removed
    only once the new one is in place (and put back if the move fails)."""
    for path in staging.iterdir():
        with open(path, "rb") as handle:
            os.fsync(handle.fileno())
    previous = None
    if target.exists():
        previous = Path(
            tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent)
        )
        os.replace(target, previous)
    try:
        os.replace(staging, target)
    except OSError as error:
        if previous is not None:
            os.replace(previous, target)
        raise ExportError(f"cannot move the export into {target}: {error.strerror}") from None
    if previous is not None:
        shutil.rmtree(previous, ignore_errors=True)
