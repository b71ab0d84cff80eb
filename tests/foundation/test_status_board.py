"""The status board writes only when something changed, or as a heartbeat (SD wear)."""

from __future__ import annotations

import json
from pathlib import Path

from gateway.daemon import STATUS_HEARTBEAT_S, StatusBoard


def test_board_writes_on_change_and_heartbeat_only(tmp_path: Path) -> None:
    board = StatusBoard(tmp_path / "status.json")
    board.publish("readers", [{"reader": "a", "online": True}])
    board.publish("daemon", {"pid": 1, "updated": 1.0})
    assert board.write(now=0.0) is True
    # Only the daemon's own timestamp moved: nothing worth writing yet.
    board.publish("daemon", {"pid": 1, "updated": 2.0})
    assert board.write(now=2.0) is False
    # A real change is written at once.
    board.publish("readers", [{"reader": "a", "online": False}])
    assert board.write(now=4.0) is True
    assert json.loads((tmp_path / "status.json").read_text())["readers"][0]["online"] is False
    # Unchanged, but the heartbeat is due: written so readers can tell the daemon is alive.
    board.publish("daemon", {"pid": 1, "updated": 40.0})
    assert board.write(now=4.0 + STATUS_HEARTBEAT_S) is True
    assert json.loads((tmp_path / "status.json").read_text())["daemon"]["updated"] == 40.0
    assert board.writes == 3
