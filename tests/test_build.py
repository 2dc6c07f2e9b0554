"""The pure-Python modules are the source of truth; the compiled build is the same code."""

from __future__ import annotations

import importlib
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _compiled_list() -> list[str]:
    text = (ROOT / "setup.py").read_text()
    block = text.split("COMPILED = [", 1)[1].split("]", 1)[0]
    return [line.strip().strip('",') for line in block.splitlines() if line.strip()]


def test_the_source_tree_holds_no_compiled_module() -> None:
    # The editable install would import a compiled module instead of the edited .py next to it.
    assert not list((ROOT / "gateway").rglob("*.so"))


def test_every_compiled_module_exists_as_python() -> None:
    assert all((ROOT / path).is_file() for path in _compiled_list())


def test_the_modules_run_are_the_build_under_test() -> None:
    # `make test-compiled` sets GATEWAY_COMPILED=1 and must import the compiled modules;
    # `make test` must import the .py files of this checkout.
    compiled = os.environ.get("GATEWAY_COMPILED") == "1"
    for path in _compiled_list():
        module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
        assert str(module.__file__).endswith(".so" if compiled else ".py"), module.__file__
