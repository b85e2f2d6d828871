"""The layers of the package (README, "How the code is laid out"): every import points down,
there is no import circle between modules, and no module grows past ~400 lines."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "skillforge"
LAYERS = {  # a layer may import its own modules and any layer of a lower rank
    "core": 0,
    "rl": 1,
    "skills": 2,
    "evaluation": 3,
    "export": 3,
    "reuse": 3,
    "store": 3,
    "app": 4,
}
MAX_LINES = 400


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path) -> set[str]:
    """Every skillforge module `path` imports, at the top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:  # `from skillforge.store import tracking` is a module
                candidate = f"{node.module}.{alias.name}"
                is_module = (ROOT / Path(*candidate.split("."))).with_suffix(".py").exists()
                found.add(candidate if is_module else node.module)
    return {name for name in found if name.split(".")[0] == "skillforge"}


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}
GRAPH = {name: imported_modules(path) & MODULES.keys() for name, path in MODULES.items()}


def layer_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and parts[1] in LAYERS) else None


def test_every_module_belongs_to_a_layer():
    loose = [name for name in MODULES if name not in ("skillforge",) and layer_of(name) is None]
    assert loose == [], f"modules outside the layer folders: {loose}"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_point_down(module):
    layer = layer_of(module)
    if layer is None:  # the package's lazy public API may name any layer
        return
    upward = [
        target
        for target in GRAPH[module]
        if (other := layer_of(target)) is not None
        and other != layer
        and LAYERS[other] >= LAYERS[layer]
    ]
    assert upward == [], f"{module} ({layer}) imports a layer at or above its own: {upward}"
    assert "skillforge" not in GRAPH[module], f"{module} imports the package root"


def test_no_import_circle():
    state: dict[str, int] = {}  # 1 visiting, 2 done
    stack: list[str] = []

    def visit(module: str) -> None:
        state[module] = 1
        stack.append(module)
        for target in sorted(GRAPH[module]):
            if state.get(target) == 1:
                cycle = stack[stack.index(target) :] + [target]
                pytest.fail("import circle: " + " -> ".join(cycle))
            if target not in state:
                visit(target)
        stack.pop()
        state[module] = 2

    for module in sorted(MODULES):
        if module not in state and module != "skillforge":
            visit(module)


def test_every_imported_module_exists():
    for path in [*MODULES.values(), *sorted((ROOT / "cli").glob("*.py"))]:
        for target in imported_modules(path):
            assert target in MODULES, f"{path.name} imports {target}, which does not exist"


def test_cli_calls_the_commands_not_the_algorithms():
    """The CLI reaches the algorithms only through `skillforge.app`; besides, it reads the store
    (the UI process, the list of libraries) and the task names (to refuse a typo before torch
    loads)."""
    for path in sorted((ROOT / "cli").glob("*.py")):
        for target in imported_modules(path):
            allowed = (
                layer_of(target) in ("app", "core", "store") or target == "skillforge.reuse.tasks"
            )
            assert allowed, f"{path.name} imports {target}"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_modules_stay_small(module):
    lines = len(MODULES[module].read_text().splitlines())
    assert lines <= MAX_LINES, f"{module} has {lines} lines (split it by job)"
