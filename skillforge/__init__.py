"""skillforge: reusable skills without a reward.

The public API, by layer (see "How the code is laid out" in the README):
`core` (configs, errors, envs) -> `rl` (DIAYN, SAC, the training loop) -> `skills` (frozen
libraries) -> `evaluation`, `export`, `reuse`, `store` (MLflow) -> `app` (the commands).

Heavy modules (torch, mlflow) load on first use, so `import skillforge` and the CLI stay fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from skillforge.core.threads import spin_briefly
from skillforge.core.versions import __version__

spin_briefly()  # before torch loads: idle threads let the cores go soon

_EXPORTS = {
    "PretrainConfig": "skillforge.core.config",
    "HierarchicalConfig": "skillforge.core.downstream_config",
    "SkillforgeError": "skillforge.core.errors",
    "make_env": "skillforge.core.envs",
    "resolve_env_id": "skillforge.core.envs",
    "LibrarySpec": "skillforge.rl.spec",
    "SkillLibrary": "skillforge.skills.library",
    "list_libraries": "skillforge.store.tracking",
    "export_library": "skillforge.export.writer",
    "pretrain": "skillforge.app.pretrain",
    "resume": "skillforge.app.pretrain",
    "register": "skillforge.app.pretrain",
    "load_library": "skillforge.app.load",
    "evaluate_stored": "skillforge.app.evaluate",
    "export_saved_library": "skillforge.app.export",
    "train_hierarchical": "skillforge.app.hierarchical",
    "SweepGrid": "skillforge.core.grid",
    "SweepOptions": "skillforge.app.sweep",
    "run_sweep": "skillforge.app.sweep",
}

__all__ = ["__version__", *_EXPORTS]

if TYPE_CHECKING:
    from skillforge.app.evaluate import evaluate_stored
    from skillforge.app.export import export_saved_library
    from skillforge.app.hierarchical import train_hierarchical
    from skillforge.app.load import load_library
    from skillforge.app.pretrain import pretrain, register, resume
    from skillforge.app.sweep import SweepOptions, run_sweep
    from skillforge.core.config import PretrainConfig
    from skillforge.core.downstream_config import HierarchicalConfig
    from skillforge.core.envs import make_env, resolve_env_id
    from skillforge.core.errors import SkillforgeError
    from skillforge.core.grid import SweepGrid
    from skillforge.export.writer import export_library
    from skillforge.rl.spec import LibrarySpec
    from skillforge.skills.library import SkillLibrary
    from skillforge.store.tracking import list_libraries


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'skillforge' has no attribute {name!r}")
