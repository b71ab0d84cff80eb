"""The engine is a sans-IO core: a test that fails if I/O or clock imports creep in."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import gateway.patrol.config
import gateway.patrol.engine
import gateway.patrol.report

FORBIDDEN = {
    "asyncio",
    "sqlite3",
    "sqlite_utils",
    "time",
    "socket",
    "serial",
    "threading",
    "subprocess",
    "os",
    "random",
    "gateway.journal",
    "gateway.clock",
    "aiohttp",
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


@pytest.mark.parametrize(
    "module", [gateway.patrol.engine, gateway.patrol.config, gateway.patrol.report]
)
def test_pure_modules_import_no_io(module: object) -> None:
    path = Path(module.__file__)  # type: ignore[attr-defined]
    bad = {
        name
        for name in _imports(path)
        if any(name == f or name.startswith(f + ".") for f in FORBIDDEN)
    }
    assert not bad, f"{path.name} imports {sorted(bad)}"


def test_the_checker_catches_a_forbidden_import(tmp_path: Path) -> None:
    sneaky = tmp_path / "sneaky.py"
    sneaky.write_text("from time import time\nimport asyncio.tasks\n")
    assert {"time", "asyncio.tasks"} <= _imports(sneaky)
