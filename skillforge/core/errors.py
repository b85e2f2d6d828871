"""Exceptions a user can cause. The CLI prints their message as one line and exits non-zero."""


class SkillforgeError(Exception):
    """Base class of every error caused by input, files or the tracking store."""


class ConfigError(SkillforgeError, ValueError):
    """An option value is out of range or inconsistent."""


class EnvError(SkillforgeError):
    """The environment is unknown or unsuitable."""


class CheckpointError(SkillforgeError):
    """A checkpoint is missing, truncated, foreign or unsafe."""


class LibraryNotFound(SkillforgeError):
    """No skill library matches a name or run id."""


class TrainingInterrupted(SkillforgeError):
    """Training stopped on request (Ctrl-C or SIGTERM) after writing a checkpoint."""

    def __init__(self, step: int, checkpoint_path: str, run_id: str | None = None):
        self.step = step
        self.checkpoint_path = checkpoint_path
        self.run_id = run_id
        super().__init__(f"interrupted at step {step:,}; checkpoint {checkpoint_path}")


class TrainingDiverged(SkillforgeError):
    """A loss or a weight became NaN or infinite."""


class ExportError(SkillforgeError):
    """An export was refused or failed its checks; nothing was written."""


def first_line(error: BaseException, limit: int = 300) -> str:
    """The first line of an exception's message (its type name if it has none), shortened
    to about `limit` characters at a word's end: what a one-line error may quote of a
    library's exception."""
    text = str(error).strip()
    return shortened(text.splitlines()[0], limit) if text else type(error).__name__


def shortened(text: str, limit: int) -> str:
    """`text` cut to about `limit` characters at the end of a word, marked with '...'."""
    if len(text) <= limit:
        return text
    return text[: limit + 1].rsplit(maxsplit=1)[0].rstrip(",;:") + "..."
