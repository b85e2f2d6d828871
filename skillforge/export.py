"""Export a skill library to files that run without skillforge: ONNX or TorchScript.

An export folder holds one file per skill (observation in, deterministic action out), one
library file (observation and skill index in, so one session serves every skill) and
`manifest.json`. Every file carries its own metadata. Before anything is moved into place,
each file's actions are compared with the PyTorch policy's on real environment states; a
mismatch, like any other failure, leaves no files behind and a previous export untouched.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlparse, urlunparse

import numpy as np
import torch
from torch import nn

from skillforge import registry, tracking
from skillforge.config import is_valid_name
from skillforge.envs import make_env
from skillforge.errors import ExportError, first_line
from skillforge.library import SkillLibrary
from skillforge.nets import TanhGaussianPolicy

FORMATS = ("onnx", "torchscript")
PARITY_TOLERANCE = 1e-5
"""Largest accepted |exported action - PyTorch action|, in action units."""
PARITY_REAL_OBSERVATIONS = 1024
"""Observations visited in the library's environment, compared in every parity check."""
PARITY_RANDOM_OBSERVATIONS = 256
"""Random observations around (and well beyond) the visited ones, compared as well."""
PARITY_EPISODE_STEPS = 100
"""Steps per rollout episode: short episodes cover more skills and more resets."""
ONNX_OPSET = 18
"""The oldest opset the exporter writes; onnxruntime >= 1.14 runs it."""
MANIFEST = "manifest.json"
MANIFEST_FORMAT = "skillforge-export"
MANIFEST_VERSION = 1
DEFAULT_ROOT = "exports"


class LibraryPolicy(nn.Module):
    """Every skill in one module: observation (batch, obs_dim) float32 and skill (batch,)
    int64 in, deterministic action (batch, action_dim) out."""

    def __init__(self, policy: TanhGaussianPolicy, n_skills: int) -> None:
        super().__init__()
        self.policy = policy
        self.register_buffer("skill_codes", torch.eye(n_skills))  # (n_skills, n_skills) one-hot

    def forward(self, obs: torch.Tensor, skill: torch.Tensor) -> torch.Tensor:
        one_hot = self.skill_codes[skill]  # (batch, n_skills)
        return self.policy.deterministic(torch.cat([obs, one_hot], dim=-1))


@dataclass(frozen=True)
class ParityCheck:
    """One exported file against the PyTorch policy."""

    file: str
    skill: int | None
    """The skill of a per-skill file; None for the library file (checked on every skill)."""
    rows: int
    """Observation rows compared (the library file: every observation with every skill)."""
    max_abs_diff: float
    passed: bool


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
    with `checkpoint`, of a checkpoint file. See `export_library` for the other options."""
    from skillforge.pipeline import load_library

    _check_format(fmt)
    if checkpoint is not None:
        if reference is not None:
            raise ExportError("pass a library name or --from-checkpoint, not both")
        if log_to_mlflow:
            raise ExportError("--log-to-mlflow needs a library from the MLflow store")
        library = SkillLibrary.from_checkpoint(checkpoint)
        source = {"checkpoint": str(Path(checkpoint).resolve())}
    else:
        info = tracking.find_library(reference, tracking_uri)
        library = load_library(info.run_id, tracking_uri)
        source = {
            "run_id": info.run_id,
            "tracking_uri": _without_credentials(tracking.resolve_tracking_uri(tracking_uri)),
            "experiment": info.experiment,
            "registered_models": [
                skill.model_uri for skill in registry.library_skills(info, tracking_uri)
            ],
        }
    return export_library(
        library,
        out_dir,
        fmt,
        skills,
        force,
        source=source,
        log_to_mlflow=log_to_mlflow,
        tracking_uri=tracking_uri,
    )


def export_library(
    library: SkillLibrary,
    out_dir: str | os.PathLike | None = None,
    fmt: str = "onnx",
    skills: Sequence[int] | None = None,
    force: bool = False,
    *,
    source: dict | None = None,
    log_to_mlflow: bool = False,
    tracking_uri: str | None = None,
    tolerance: float = PARITY_TOLERANCE,
) -> ExportResult:
    """Write `library` to `out_dir` (default `exports/<library>/`) as `fmt` files, verified.

    :param skills: skills that get their own file (default: all); the library file always
        serves every skill, with the library's own indices.
    :param force: replace an existing export folder (only once the new one is complete).
    :param source: where the library came from, recorded in the manifest.
    :param log_to_mlflow: also log the ONNX files to the library's run as MLflow models.
    :param tolerance: largest accepted max-abs difference from the PyTorch actions.
    :raises ExportError: on a refusal or a failed check; nothing is left half-written.
    """
    _check_format(fmt)
    if log_to_mlflow and fmt != "onnx":
        raise ExportError("--log-to-mlflow logs ONNX models; use it with --format onnx")
    if log_to_mlflow and not library.run_id:
        raise ExportError("--log-to-mlflow needs a library from the MLflow store")
    selected = _check_skills(library, skills)
    target = _target_folder(library, out_dir)
    _check_replaceable(target, force)
    observations = parity_observations(library)
    staging = _staging_folder(target)
    try:
        files, checks = _write_and_check(library, fmt, selected, observations, staging, tolerance)
        models = []
        if log_to_mlflow:
            models = _log_models(library, staging, files, observations, tracking_uri)
        manifest = _manifest(library, fmt, checks, tolerance, source, models, staging)
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        _commit(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return ExportResult(target, fmt, [*files, MANIFEST], checks, manifest)


def parity_observations(
    library: SkillLibrary,
    real: int = PARITY_REAL_OBSERVATIONS,
    random: int = PARITY_RANDOM_OBSERVATIONS,
    seed: int = 0,
) -> np.ndarray:
    """(real + random, obs_dim) float32 observations: first states visited in the library's
    environment, alternately by its skills and by random actions, then random vectors drawn
    around them with three times their spread (inputs a deployed skill may still meet)."""
    env = make_env(library.spec.env_id)
    env.action_space.seed(seed)
    visited: list[np.ndarray] = []
    episode = 0
    try:
        while len(visited) < real:
            obs, _ = env.reset(seed=seed + episode)
            skill = (episode // 2) % library.n_skills
            for _ in range(min(PARITY_EPISODE_STEPS, real - len(visited))):
                visited.append(np.asarray(obs, dtype=np.float32))
                by_skill = episode % 2 == 0
                action = library.act(obs, skill) if by_skill else env.action_space.sample()
                obs, _, terminated, truncated, _ = env.step(action)
                if terminated or truncated:
                    break
            episode += 1
    finally:
        env.close()
    states = np.stack(visited)  # (real, obs_dim)
    rng = np.random.default_rng(seed)
    spread = 3 * states.std(axis=0) + 1
    noise = states.mean(axis=0) + spread * rng.standard_normal((random, states.shape[1]))
    return np.concatenate([states, noise.astype(np.float32)])


def _check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise ExportError(f"unknown format {fmt!r}; choose one of: {', '.join(FORMATS)}")


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
    root = Path(DEFAULT_ROOT).resolve()
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
    if any(target.iterdir()) and not _is_export(target):
        raise ExportError(
            f"{target} is not a skillforge export (no {MANIFEST}); refusing to replace it"
        )


def _is_export(folder: Path) -> bool:
    try:
        return json.loads((folder / MANIFEST).read_text()).get("format") == MANIFEST_FORMAT
    except (OSError, ValueError, AttributeError):
        return False


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


def _write_and_check(
    library: SkillLibrary,
    fmt: str,
    skills: list[int],
    observations: np.ndarray,
    folder: Path,
    tolerance: float,
) -> tuple[list[str], list[ParityCheck]]:
    """Write every file of the export into `folder` and compare each with the PyTorch policy."""
    save, load = (_save_onnx, _onnx_runner) if fmt == "onnx" else (_save_torchscript, _ts_runner)
    suffix = ".onnx" if fmt == "onnx" else ".pt"
    n_skills = library.n_skills
    example = torch.from_numpy(observations[:2])
    jobs: list[tuple[str, int | None, nn.Module, tuple]] = [
        (f"skill-{skill:02d}{suffix}", skill, library.skill(skill), (example,)) for skill in skills
    ]
    library_module = LibraryPolicy(library.policy, n_skills).eval()
    jobs.append((f"library{suffix}", None, library_module, (example, torch.tensor([0, 1]))))
    every_skill = np.repeat(np.arange(n_skills), len(observations))  # (n_skills * rows,)
    files, checks = [], []
    for name, skill, module, example_args in jobs:
        path = folder / name
        try:
            save(module, example_args, path, _file_metadata(library, skill))
            run = load(path)
        except Exception as error:  # the exporter's own failures: one line, nothing kept
            raise ExportError(f"{fmt} export of {name} failed: {first_line(error)}") from None
        if skill is None:
            obs, skill_ids = np.tile(observations, (n_skills, 1)), every_skill
        else:
            obs, skill_ids = observations, np.full(len(observations), skill)
        diff = _max_abs_diff(run, library, obs, skill_ids, per_skill=skill is not None)
        check = ParityCheck(name, skill, len(obs), diff, bool(diff <= tolerance))
        if not check.passed:
            raise ExportError(
                f"parity check failed: {name} differs from the PyTorch policy by {diff:.3g} "
                f"(max abs) > {tolerance:g} on {len(obs):,} observations; nothing was written"
            )
        files.append(name)
        checks.append(check)
    return files, checks


def _max_abs_diff(
    run: Callable[..., np.ndarray],
    library: SkillLibrary,
    obs: np.ndarray,
    skills: np.ndarray,
    per_skill: bool,
) -> float:
    """Max |exported - PyTorch| over every row; one row alone, then the rest as one batch
    (the batch dimension is dynamic). NaN, a wrong shape or a crash count as infinite."""
    expected = library.act(obs, skills)  # (rows, action_dim)
    parts = []
    for rows in (slice(0, 1), slice(1, None)):
        inputs = (obs[rows],) if per_skill else (obs[rows], skills[rows].astype(np.int64))
        parts.append(np.asarray(run(*inputs)))
    actual = np.concatenate(parts)
    if actual.shape != expected.shape or not np.all(np.isfinite(actual)):
        return float("inf")
    return float(np.max(np.abs(actual - expected)))


def _file_metadata(library: SkillLibrary, skill: int | None) -> dict[str, str]:
    """What a file says about itself, read back with no other file at hand."""
    spec = library.spec
    observation = f"observation float32 [batch, {spec.obs_dim}]"
    if skill is None:
        description = (
            f"All {spec.n_skills} skills of library {library.name} ({spec.env_id}): observation "
            f"and skill index in, deterministic action out."
        )
        inputs = f"{observation}; skill int64 [batch] in 0..{spec.n_skills - 1}"
    else:
        description = (
            f"Skill {skill} of {spec.n_skills} of library {library.name} ({spec.env_id}): "
            "observation in, deterministic action out."
        )
        inputs = observation
    return {
        **registry.library_tags(library, library.run_id),
        "skill": "all" if skill is None else str(skill),
        "inputs": inputs,
        "outputs": f"action float32 [batch, {spec.action_dim}]",
        "description": description,
    }


@contextlib.contextmanager
def _quiet_exporter():
    """The exporters warn about deprecations and optional packages (torchvision): not ours."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def _save_onnx(module: nn.Module, args: tuple, path: Path, metadata: dict[str, str]) -> None:
    import onnx

    batch = torch.export.Dim("batch")
    names = ["observation", "skill"][: len(args)]
    with _quiet_exporter(), torch.no_grad():
        program = torch.onnx.export(
            module,
            args,
            dynamo=True,
            opset_version=ONNX_OPSET,
            input_names=names,
            output_names=["action"],
            dynamic_shapes=tuple({0: batch} for _ in args),
            external_data=False,
            verbose=False,
        )
    model = program.model_proto
    props = {prop.key: prop.value for prop in model.metadata_props}
    onnx.helper.set_model_props(model, {**props, **metadata})
    model.doc_string = metadata["description"]
    onnx.checker.check_model(model)
    onnx.save(model, path)


def _onnx_runner(path: Path) -> Callable[..., np.ndarray]:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    names = [node.name for node in session.get_inputs()]

    def run(*arrays: np.ndarray) -> np.ndarray:
        return session.run(["action"], dict(zip(names, arrays, strict=True)))[0]

    return run


def _save_torchscript(module: nn.Module, args: tuple, path: Path, metadata: dict[str, str]) -> None:
    with _quiet_exporter(), torch.no_grad():
        traced = torch.jit.trace(module, args)
        torch.jit.save(traced, str(path), _extra_files={"metadata.json": json.dumps(metadata)})


def _ts_runner(path: Path) -> Callable[..., np.ndarray]:
    with _quiet_exporter():
        module = torch.jit.load(str(path), map_location="cpu")

    @torch.no_grad()
    def run(*arrays: np.ndarray) -> np.ndarray:
        return module(*(torch.from_numpy(array) for array in arrays)).numpy()

    return run


def _log_models(
    library: SkillLibrary,
    folder: Path,
    files: list[str],
    observations: np.ndarray,
    tracking_uri: str | None,
) -> list[str]:
    """Log the checked ONNX files to the library's run; returns their model URIs."""
    client = tracking.connect(tracking_uri)
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


def _manifest(
    library: SkillLibrary,
    fmt: str,
    checks: list[ParityCheck],
    tolerance: float,
    source: dict | None,
    mlflow_models: list[str],
    folder: Path,
) -> dict:
    from skillforge import __version__

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
        "versions": {"skillforge": __version__, **_package_versions(fmt)},
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


def _package_versions(fmt: str) -> dict[str, str | int]:
    versions: dict[str, str | int] = {"torch": torch.__version__}
    if fmt == "onnx":
        import onnx
        import onnxruntime

        versions.update(onnx=onnx.__version__, onnxruntime=onnxruntime.__version__)
        versions["opset"] = ONNX_OPSET
    return versions


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


def _without_credentials(uri: str) -> str:
    """A tracking URI fit for a manifest: no user name or password."""
    parts = urlparse(uri)
    if "@" not in parts.netloc:
        return uri
    return urlunparse(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))
