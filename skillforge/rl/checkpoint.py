"""Checkpoint files: atomic writes, and loads that never execute pickled code."""

from __future__ import annotations

import contextlib
import os
import pickle
import tempfile
import warnings
import zipfile
from pathlib import Path

import torch

from skillforge.core.errors import CheckpointError, first_line, shortened

FORMAT = "skillforge-checkpoint"
FORMAT_VERSION = 1
LIBRARY_FILE = "library-file"
"""The `kind` of a weights-only library file (no replay buffer, optimiser or generators)."""


class CheckpointWriteError(CheckpointError, OSError):
    """A checkpoint could not be written (disk full, read-only folder...); the previous
    checkpoint at the same path is intact. Also an OSError, with the original errno."""

    def __init__(self, errno: int | None, message: str) -> None:
        super().__init__(errno, message)
        self.message = message

    def __str__(self) -> str:
        return self.message


def save_checkpoint(state: dict, path: str | os.PathLike) -> Path:
    """Write `state` to `path` atomically: a temp file in the same folder, fsync, rename.

    A crash at any moment leaves either the previous file or the new one, never a mix. A
    failed write (disk full, read-only folder) raises CheckpointWriteError and leaves the
    previous file as it was, with no temp file behind.
    """
    path = Path(path)
    payload = {"format": FORMAT, "format_version": FORMAT_VERSION, **state}
    tmp_name = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as handle:
            torch.save(payload, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except (OSError, RuntimeError) as failure:
        error = _os_error_in(failure)
        if error is None:  # a RuntimeError of torch's own, not a failed write
            _unlink_quietly(tmp_name)
            raise
        _unlink_quietly(tmp_name)
        reason = error.strerror or str(error) or type(error).__name__
        kept = "the previous checkpoint is intact" if path.is_file() else "no checkpoint kept"
        raise CheckpointWriteError(
            error.errno, f"cannot write checkpoint {path}: {reason}; {kept}"
        ) from None
    except BaseException:
        _unlink_quietly(tmp_name)
        raise
    _fsync_dir(path.parent)
    return path


def _os_error_in(error: BaseException) -> OSError | None:
    """The OSError behind `error`: itself, or one torch's writer met and then reported as a
    RuntimeError of its zip container (a disk filling mid-file)."""
    while error is not None:
        if isinstance(error, OSError):
            return error
        error = error.__context__
    return None


def remove_stale_temp_files(path: str | os.PathLike) -> int:
    """Delete the temp files a killed writer left next to checkpoint `path`; returns how many.

    Only call it when no other process writes that checkpoint (one run per library).
    """
    path = Path(path)
    removed = 0
    for stale in path.parent.glob(f".{path.name}.*.tmp"):
        _unlink_quietly(str(stale))
        removed += 1
    return removed


def _unlink_quietly(name: str | None) -> None:
    if name is None:
        return
    with contextlib.suppress(OSError):
        Path(name).unlink(missing_ok=True)


def load_checkpoint(path: str | os.PathLike) -> dict:
    """Load a checkpoint with `weights_only=True` (no pickled code ever runs); any problem
    (missing, empty, truncated, foreign, unsafe) becomes a one-line CheckpointError."""
    path = Path(path)
    try:
        if not path.is_file():
            raise CheckpointError(f"checkpoint not found: {path}")
        if path.stat().st_size == 0:
            raise CheckpointError(f"checkpoint is empty: {path}")
        with warnings.catch_warnings():  # torch warns of the pickle protocol of a foreign file
            warnings.filterwarnings("ignore", "Detected pickle protocol", UserWarning)
            state = torch.load(path, map_location="cpu", weights_only=True)
    except CheckpointError:
        raise
    except pickle.UnpicklingError as error:
        raise CheckpointError(
            f"refusing to load {path}: it holds more than plain tensors "
            f"({_refused_content(error)}), and loading that could run code"
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as error:
        raise CheckpointError(
            f"checkpoint {path} is truncated or corrupt ({first_line(error, 200)})"
        ) from None
    except Exception as error:  # anything else a hostile file can provoke in the unpickler
        raise CheckpointError(
            f"cannot read checkpoint {path} ({type(error).__name__}: {first_line(error, 200)})"
        ) from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a skillforge checkpoint")
    if state.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has checkpoint format {state.get('format_version')}, "
            f"this skillforge reads {FORMAT_VERSION}"
        )
    return state


def _refused_content(error: pickle.UnpicklingError) -> str:
    """What torch's weights-only unpickler refused (`Unsupported operand 149`, `Trying to load
    unsupported GLOBAL posix.system ...`), without its advice to allow code execution."""
    for line in str(error).splitlines()[1:]:  # the first line is the advice
        line = line.split("WeightsUnpickler error:")[-1].strip()
        if line and not line.startswith(("Please file an issue", "Check the documentation")):
            return shortened(line.split(". ")[0].rstrip("."), 120)
    return "not plain tensors"


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
