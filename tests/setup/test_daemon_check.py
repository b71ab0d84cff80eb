"""A live daemon, judged from its status board: setup refuses to run beside it, selftest
goes through its control socket."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from gateway.setup.checks import DAEMON_STATUS_FRESH_S, running_daemon_pid


def board(path: Path, pid: int, updated: float) -> Path:
    path.write_text(json.dumps({"daemon": {"pid": pid, "updated": updated}}))
    return path


def test_live_daemon_seen(tmp_path: Path) -> None:
    status = board(tmp_path / "status.json", os.getpid(), 1000.0)
    assert running_daemon_pid(status, 1001.0) == os.getpid()


def test_stale_board_or_dead_pid_or_no_board_is_no_daemon(tmp_path: Path) -> None:
    status = board(tmp_path / "status.json", os.getpid(), 1000.0)
    assert running_daemon_pid(status, 1000.0 + DAEMON_STATUS_FRESH_S + 1) is None
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    board(status, child.pid, 1000.0)
    assert running_daemon_pid(status, 1001.0) is None
    assert running_daemon_pid(tmp_path / "missing.json", 1001.0) is None
    status.write_text("{broken")
    assert running_daemon_pid(status, 1001.0) is None
