"""docs/broadcast.md documents every config key and every event kind the code emits."""

from __future__ import annotations

import re
from pathlib import Path

from gateway.broadcast.config import BroadcastSection
from gateway.config.schema import documented_keys

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "broadcast.md").read_text()


def test_every_config_key_is_documented():
    missing = [k for k, _ in documented_keys(BroadcastSection, "broadcast") if f"`{k}`" not in DOC]
    assert not missing, missing


def test_every_key_has_a_doc_line_in_code():
    assert all(doc for _, doc in documented_keys(BroadcastSection, "broadcast"))


def test_every_event_kind_is_documented():
    kinds: set[str] = set()
    for path in (ROOT / "gateway" / "broadcast").glob("*.py"):
        kinds |= set(re.findall(r'"((?:broadcast|relay_board)\.[a-z_]+)"', path.read_text()))
    kinds -= {"broadcast.start", "broadcast.stop"}  # command actions, not events
    missing = sorted(k for k in kinds if f"`{k}`" not in DOC)
    assert not missing, missing
