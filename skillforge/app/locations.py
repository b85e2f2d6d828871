"""Where a library lives: its checkpoint folder and file, as recorded in its MLflow run and
checked before anything is read or written there."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from skillforge.core.config import PretrainConfig
from skillforge.core.errors import (
    CheckpointError,
    ConfigError,
    LibraryNotFound,
)
from skillforge.core.names import is_valid_name
from skillforge.rl.checkpoint import load_checkpoint
from skillforge.store import tracking
from skillforge.store.paths import sqlite_path

CHECKPOINT_FILE = "checkpoint.pt"


JOURNAL_FILE = "metrics.jsonl"
OWNER_FILE = "store"
"""In a library's checkpoint folder: the database of the sqlite store whose library it is."""


def default_library_name(env_id: str, n_skills: int, run_id: str) -> str:
    """`hopper-20sk-1a2b3c`: env, skill count and a piece of the run id (unique per run)."""
    return f"{env_id.split('-v')[0].lower()}-{n_skills}sk-{run_id[:6]}"


def checkpoint_root(checkpoint_dir: str | os.PathLike) -> Path:
    """The absolute checkpoint folder, checked writable (else a ConfigError) but not created:
    a refusal after this check leaves no empty folder (the first checkpoint makes it)."""
    text = os.fspath(checkpoint_dir)
    if not text.strip() or "\x00" in text:
        raise ConfigError(f"--checkpoint-dir must name a folder, got {text!r}")
    root = Path(os.path.expanduser(text)).resolve()  # like a shell: an unknown ~user stays
    try:
        existing = next(folder for folder in (root, *root.parents) if folder.exists())
        if not existing.is_dir():
            raise NotADirectoryError(20, f"{existing} is a file, not a folder")
        # a folder made and removed where the first missing one would go: nothing stays
        os.rmdir(tempfile.mkdtemp(dir=existing, prefix=".skillforge-write-test-"))
    except OSError as error:
        raise ConfigError(
            f"cannot write checkpoints to {root}: {error.strerror or error}"
        ) from None
    return root


def checkpoint_path_for(root: Path, name: str) -> Path:
    """`root/<name>/checkpoint.pt`, refusing any name that would land outside `root`."""
    if not is_valid_name(name):
        raise ConfigError(f"{name!r} is not a valid library name")
    path = (root / name / CHECKPOINT_FILE).resolve()
    if path.parent.parent != root.resolve():
        raise ConfigError(f"library {name!r} would be written outside {root}")
    return path


def refuse_leftover_checkpoint(path: Path) -> None:
    if path.exists():
        raise ConfigError(
            f"{path} already holds a checkpoint (of a library no longer in this store?); "
            "move it away or pick another --name"
        )


def set_library_location(client, run_id: str, config: PretrainConfig, path: Path) -> None:
    from mlflow.entities import RunTag

    tags = {
        tracking.TAG_LIBRARY: config.name,
        tracking.TAG_CHECKPOINT: str(path),
        tracking.TAG_CONFIG: json.dumps(config.to_dict()),
    }
    client.log_batch(run_id, tags=[RunTag(key, value) for key, value in tags.items()])
    client.set_tag(run_id, "mlflow.runName", config.name)


def library_location(client, run, info: tracking.LibraryInfo) -> tuple[PretrainConfig | None, str]:
    """The library's config as recorded at creation (None for libraries made before that
    was recorded) and its checkpoint path, checked: the name must be valid and the path
    `<folder>/<name>/checkpoint.pt`, whatever the store says."""
    tags = run.data.tags
    try:
        config = PretrainConfig.from_dict(json.loads(tags[tracking.TAG_CONFIG]))
    except KeyError:
        config = None  # a library made before the config tag existed
    except (ValueError, TypeError) as error:
        raise CheckpointError(
            f"run {run.info.run_id} has an unreadable {tracking.TAG_CONFIG} tag ({error})"
        ) from None
    name = info.name
    if not name and config is not None:  # killed before its default name was written
        name = default_library_name(config.env_id, config.n_skills, run.info.run_id)
    if not is_valid_name(name):
        raise LibraryNotFound(f"run {run.info.run_id} does not hold a library with a valid name")
    checkpoint = info.checkpoint
    if not checkpoint and tags.get(tracking.TAG_CHECKPOINT_ROOT):
        checkpoint = str(checkpoint_path_for(Path(tags[tracking.TAG_CHECKPOINT_ROOT]), name))
    path = Path(checkpoint)
    if not (path.is_absolute() and path.name == CHECKPOINT_FILE and path.parent.name == name):
        raise CheckpointError(
            f"library {name} records its checkpoint as {checkpoint or '(nothing)'}, not "
            f"<folder>/{name}/{CHECKPOINT_FILE}; refusing to read or write there"
        )
    if config is not None:
        config = config.replace(name=name)
        if not info.name:
            set_library_location(client, run.info.run_id, config, path)
    return config, str(path)


def config_of_checkpoint(state: dict, name: str, checkpoint_path: str) -> PretrainConfig:
    """The config stored in a checkpoint, renamed to its library (a foreign or tampered
    checkpoint is a CheckpointError, never a traceback)."""
    try:
        int(state["step"])
        return PretrainConfig.from_dict({**dict(state["config"]), "name": name})
    except ConfigError as error:
        raise CheckpointError(f"{checkpoint_path} holds an invalid config ({error})") from None
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise CheckpointError(
            f"{checkpoint_path} does not hold a skillforge pretraining state ({error!r})"
        ) from None


def stored_checkpoint(client, run, checkpoint_path: str) -> dict | None:
    """The library's last complete checkpoint: the local file, else the copy in its MLflow
    artifacts; None if it never wrote one (a refusal if one was written but is gone)."""
    if Path(checkpoint_path).exists():
        return load_checkpoint(checkpoint_path)
    folder = tempfile.mkdtemp(prefix="skillforge-")
    try:
        local = client.download_artifacts(run.info.run_id, f"checkpoint/{CHECKPOINT_FILE}", folder)
    except Exception:
        local = None
    if local is not None:
        return load_checkpoint(local)
    written = run.data.tags.get(tracking.TAG_CHECKPOINT_STEP)
    if written:
        raise CheckpointError(
            f"the checkpoint of step {int(written):,} is gone from {checkpoint_path} and from "
            "the MLflow artifacts; cannot continue this library"
        )
    return None


def local_checkpoint(client, info: tracking.LibraryInfo) -> str:
    """The library's checkpoint file: local path if present, else downloaded from MLflow."""
    if info.checkpoint and Path(info.checkpoint).is_file():
        return info.checkpoint
    try:
        folder = tempfile.mkdtemp(prefix="skillforge-")
        return client.download_artifacts(info.run_id, f"checkpoint/{CHECKPOINT_FILE}", folder)
    except Exception:
        raise CheckpointError(
            f"library {info.name} has no checkpoint at {info.checkpoint or '(none recorded)'} "
            "and none in its MLflow artifacts"
        ) from None


def claim_checkpoint_folder(client, checkpoint_path: str | os.PathLike) -> None:
    """Record in the library's checkpoint folder which sqlite store it belongs to (server
    stores are not copied with `cp`: nothing to record)."""
    db = sqlite_path(client.tracking_uri)
    if db is None:
        return
    folder = Path(checkpoint_path).parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / OWNER_FILE).write_text(f"{db.resolve()}\n")
    except OSError:  # a full or read-only disk: the checkpoint write says so, in one line
        pass


def refuse_foreign_checkpoint(client, checkpoint_path: str | os.PathLike) -> None:
    """Only the store that wrote a checkpoint folder outside its own folder continues it: a
    copy of the store (`cp -r` leaves such folders shared) is refused in one line. A folder
    inside the store's folder, or whose store is gone (moved), becomes this store's."""
    db = sqlite_path(client.tracking_uri)
    folder = Path(checkpoint_path).parent
    owner_file = folder / OWNER_FILE
    if db is None or not owner_file.is_file():
        return
    db, owner = db.resolve(), Path(owner_file.read_text().strip())
    inside = db.parent in folder.resolve().parents
    if owner != db and owner.is_file() and not inside:
        raise ConfigError(
            f"the checkpoints in {folder} belong to the store {owner}, of which this store "
            f"is a copy; continue library {folder.name} there (or copy {folder} into this "
            "store's folder and point --checkpoint-dir at the copy)"
        )
    if owner != db:
        claim_checkpoint_folder(client, checkpoint_path)
