"""Layer rules: the decision core is sans-IO; the capability protocol knows nothing of libosdp;
drivers import nothing of the gateway."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def imported(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_core_is_sans_io() -> None:
    banned = {"asyncio", "serial", "sqlite3", "time", "socket", "osdp", "threading"}
    assert imported(ROOT / "gateway/checkpoints/core.py") & banned == set()


def test_capability_protocol_has_no_libosdp() -> None:
    assert "osdp" not in imported(ROOT / "drivers/checkpoints.py")


def test_drivers_do_not_import_the_gateway() -> None:
    for f in ("drivers/checkpoints.py", "drivers/osdp_bus.py"):
        assert "gateway" not in imported(ROOT / f)
