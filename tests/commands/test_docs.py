"""docs/commands.md documents every config key, event kind, refusal code and CLI command."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import wire.commands as wc
from centre.cli import build_parser
from gateway.commands.config import CommandsSection
from gateway.config.schema import documented_keys

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "commands.md").read_text()
API = (ROOT / "docs" / "centre-api.md").read_text()


def test_every_config_key_is_documented_with_a_doc_line() -> None:
    keys = documented_keys(CommandsSection, "commands")
    assert keys and all(doc for _, doc in keys)
    missing = [k for k, _ in keys if f"`{k.split('.')[-1]}`" not in DOC]
    assert not missing, missing


def test_every_event_kind_is_documented() -> None:
    kinds: set[str] = set()
    for path in (ROOT / "gateway" / "commands").glob("*.py"):
        kinds |= set(re.findall(r'"(command\.[a-z_]+)"', path.read_text()))
    assert {"command.received", "command.refused", "command.accepted"} <= kinds
    missing = sorted(k for k in kinds if f"`{k}`" not in DOC)
    assert not missing, missing


def test_every_refusal_code_is_documented() -> None:
    codes = [
        v
        for k, v in vars(wc).items()
        if k.isupper() and isinstance(v, str) and re.fullmatch(r"[a-z_]+", v)
    ]
    assert len(codes) >= 15
    missing = [c for c in codes if f"`{c}`" not in DOC]
    assert not missing, missing


def test_every_centre_command_of_ours_is_documented_in_both_docs() -> None:
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    ours = {"broadcast", "stop", "commands", "snapshot"}
    assert ours <= set(sub.choices)  # type: ignore[arg-type]
    for name in ours:
        assert f"compound-centre {name}" in DOC, name
        assert f"| `{name} " in API or f"| `{name}`" in API, name


def test_the_pure_rules_import_no_io() -> None:
    tree = ast.parse((ROOT / "wire" / "commands.py").read_text())
    imported = {
        (n.module or "").split(".")[0] if isinstance(n, ast.ImportFrom) else a.name.split(".")[0]
        for n in ast.walk(tree)
        if isinstance(n, ast.Import | ast.ImportFrom)
        for a in n.names
    }
    assert not imported & {"asyncio", "socket", "sqlite3", "time", "serial", "aiohttp", "os"}
