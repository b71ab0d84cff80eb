"""Who may import whom (docs/ARCHITECTURE.md): a layer crossing fails here, not in review."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# package -> top-level packages of ours it must never import
FORBIDDEN = {
    "wire": {"gateway", "drivers", "centre", "hil_tests", "tests", "i18n"},
    "i18n": {"gateway", "drivers", "wire", "centre", "hil_tests", "tests"},
    "drivers": {"gateway", "centre", "hil_tests", "tests", "i18n"},
    "centre": {"gateway", "drivers", "hil_tests", "tests"},
    "gateway": {"centre", "hil_tests", "tests"},
    "firmware_mpy": {"gateway", "drivers", "wire", "centre", "hil_tests", "tests", "i18n"},
}


def imported_tops(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    tops: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            tops.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            tops.add(node.module.split(".")[0])
    return tops


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_no_layer_crossing(package: str) -> None:
    files = sorted((ROOT / package).rglob("*.py"))
    assert files, f"no Python files under {package}/"
    crossings = [
        f"{f.relative_to(ROOT)} imports {sorted(imported_tops(f) & FORBIDDEN[package])}"
        for f in files
        if imported_tops(f) & FORBIDDEN[package]
    ]
    assert not crossings, "\n".join(crossings)


def test_the_checker_sees_a_crossing(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("from gateway.journal import Journal\nimport centre.app\n")
    assert imported_tops(bad) & FORBIDDEN["drivers"] == {"gateway", "centre"}
