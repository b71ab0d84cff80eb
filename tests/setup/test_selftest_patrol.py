"""Selftest fails a gateway that cannot do patrol work, and says how to fix each thing.

Issue 15: the wizard said "setup complete" and selftest said PASS on a gateway with no guard,
no route and no schedule. Now each missing piece, a reader out of Secure Channel and an
unsynchronised clock fail the selftest (exit 1), each with its fix in words.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from gateway.config.model import parse_config
from gateway.journal import read_events
from gateway.setup.selftest import judge

REPO = Path(__file__).resolve().parents[2]

EMPTY = """
[gateway]
id = "gw-st-01"
compound = "Rose Garden"
data_dir = "data"
runtime_dir = "run"
[sync]
enabled = false
"""


def test_selftest_on_an_empty_roster_fails_and_names_the_fixes(tmp_path: Path) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text(EMPTY)
    out = subprocess.run(
        [sys.executable, "-m", "gateway.setup", "selftest", "--config", str(config), "--no-taps"],
        capture_output=True, text=True, timeout=120, check=False, cwd=REPO,
        env={**os.environ, "COMPOUND_GW_LANG": "en"},
    )  # fmt: skip
    text = out.stdout + out.stderr
    assert out.returncode == 1, text
    assert "RESULT: FAIL" in text and "RESULT: PASS" not in text
    lines = text.splitlines()

    def fix_after(what: str) -> str:
        (i,) = [n for n, line in enumerate(lines) if line.endswith(what)]
        return lines[i + 1].strip()

    assert fix_after("no guard enrolled") == (
        "fix: run `compound-gw guards add` or `compound-gw setup --redo guards`"
    )
    assert "compound-gw patrol routes add" in fix_after("no patrol route")
    assert "compound-gw patrol schedules add" in fix_after("no patrol schedule")
    assert "compound-gw setup" in fix_after("no checkpoint reader configured")
    (event,) = [
        e
        for e in read_events(tmp_path / "data" / "journal.db", limit=100)
        if e.kind == "commissioning.report"
    ]
    body = event.payload["body"]
    assert body["passed"] is False
    assert body["patrol"] == {"guards": 0, "routes": 0, "schedules": 0}
    checks = [f["check"] for f in body["failures"]]
    assert checks[:4] == ["readers", "guards", "routes", "schedules"]


def _site(**extra: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "gateway": {"id": "gw-st-02", "compound": "Rose", "data_dir": "data"},
        "sync": {"enabled": False},
        "checkpoints": {
            "buses": [{"name": "bus0", "port": "/dev/null"}],
            "points": [{"id": "north-gate", "bus": "bus0", "address": 1}],
            "roster": [{"wristband": "04a1b2c3d4e5f6", "guard": "g-li"}],
        },
        "patrol": {
            "routes": [{"id": "perimeter", "checkpoints": ["north-gate"]}],
            "schedules": [
                {"id": "night", "route": "perimeter", "every_hours": 2.0, "start": "22:00",
                 "end": "06:00"}
            ],
        },
    }  # fmt: skip
    data.update(extra)
    return data


READER_OK = {"checkpoint": "north-gate", "secure_channel": True, "tapped": True}


def test_a_complete_site_passes_and_each_gap_fails_on_its_own() -> None:
    cfg = parse_config(_site())
    patrol, failures = judge(cfg, [READER_OK], [], [], {"up": False}, synced=True, taps=True)
    assert patrol == {"guards": 1, "routes": 1, "schedules": 1} and failures == []

    _, failures = judge(cfg, [READER_OK], [], [], {"up": False}, synced=False, taps=True)
    assert [f["check"] for f in failures] == ["clock"]

    out_of_sc = {**READER_OK, "secure_channel": False}
    _, failures = judge(cfg, [out_of_sc], [], [], {"up": False}, synced=True, taps=True)
    assert failures == [{"check": "reader_secure", "subject": "north-gate", "detail": ""}]

    bare = _site()
    bare["checkpoints"] = {**bare["checkpoints"], "roster": []}
    _, failures = judge(
        parse_config(bare), [READER_OK], [], [], {"up": False}, synced=True, taps=True
    )
    assert [f["check"] for f in failures] == ["guards"]
