"""skillforge: reusable skills without a reward.

Heavy modules (torch, mlflow) load on first use, so `import skillforge` and the CLI stay fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

_EXPORTS = {
    "PretrainConfig": "skillforge.config",
    "SkillLibrary": "skillforge.library",
    "LibrarySpec": "skillforge.library",
    "make_env": "skillforge.envs",
    "resolve_env_id": "skillforge.envs",
    "pretrain": "skillforge.pipeline",
    "load_library": "skillforge.pipeline",
    "list_libraries": "skillforge.tracking",
    "export_library": "skillforge.export",
    "export_saved_library": "skillforge.export",
    "SkillforgeError": "skillforge.errors",
}

__all__ = ["__version__", *_EXPORTS]

if TYPE_CHECKING:
    from skillforge.config import PretrainConfig
    from skillforge.envs import make_env, resolve_env_id
    from skillforge.errors import SkillforgeError
    from skillforge.export import export_library, export_saved_library
    from skillforge.library import LibrarySpec, SkillLibrary
    from skillforge.pipeline import load_library, pretrain
    from skillforge.tracking import list_libraries


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'skillforge' has no attribute {name!r}")
