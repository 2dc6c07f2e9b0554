"""The package layout holds: imports point down the layers, and no module outgrows its job.

The layers are those of docs/architecture.md#layering, read from the bottom: a package may
import its own modules and those of the layers below it, never one above.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "gateway"
LAYERS = {
    "observability": 0,
    "store": 0,
    "http": 0,
    "config": 1,
    "auth": 2,
    "proxy": 3,
    "tokenservice": 4,
    "ops": 5,
    "cli": 6,
}
MAX_LINES = 400
MODULES = sorted(PACKAGE.rglob("*.py"))


def room(module: str) -> str:
    """``gateway.proxy.stages`` -> ``proxy``; ``gateway.cli`` -> ``cli``."""
    return module.split(".")[1]


def name_of(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts)


def imports_of(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name.startswith("gateway.")}


@pytest.mark.parametrize(
    "path", [p for p in MODULES if p.name != "__init__.py" or p.parent != PACKAGE], ids=name_of
)
def test_imports_point_down_the_layers(path: Path) -> None:
    module = name_of(path)
    here = room(module)
    upward = [
        imported
        for imported in imports_of(path)
        if room(imported) != here and LAYERS[room(imported)] >= LAYERS[here]
    ]
    assert not upward, f"{module} imports from its own layer or above: {sorted(upward)}"


@pytest.mark.parametrize("path", MODULES, ids=name_of)
def test_no_module_is_over_400_lines(path: Path) -> None:
    assert len(path.read_text().splitlines()) <= MAX_LINES


def test_every_package_has_a_layer() -> None:
    rooms = {room(name_of(p)) for p in MODULES if p.parent != PACKAGE or p.stem != "__init__"}
    assert rooms <= set(LAYERS), sorted(rooms - set(LAYERS))
