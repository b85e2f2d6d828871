"""Names that end up in folder names and registered model names."""

from __future__ import annotations

RESERVED_NAMES = ("latest",)
"""Words a library cannot be called: `--resume latest` means the most recent library."""


def is_valid_name(name: str) -> bool:
    """Library names end up in model names and folder names: keep them boring."""
    allowed = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
    return 0 < len(name) <= 64 and name[0].isalnum() and set(name) <= allowed and ".." not in name


def skill_model_name(library: str, skill: int) -> str:
    """Registered model name of one skill. The library is part of the name because skill
    indices of two libraries are unrelated: `hopper-20sk-ab12cd.skill-03`."""
    return f"{library}.skill-{skill:02d}"


def library_model_name(library: str) -> str:
    """Registered model name of a whole library (every skill in one model: observation and
    skill index in): the library's own name, next to its `<library>.skill-NN` models."""
    return library


def agent_model_name(library: str, task: str) -> str:
    """Registered model name of a hierarchical agent (meta-controller and the library's skills
    in one model) trained on `task`: `hopper-20sk-ab12cd.agent-Hopper-v5`."""
    return f"{library}.agent-{task}"
