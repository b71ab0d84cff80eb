"""Durability with a real process kill: every acknowledged event survives SIGKILL."""

from __future__ import annotations

import os
import random
import select
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gateway.journal import check_integrity

CHILD = Path(__file__).with_name("journal_child.py")
ROOT = Path(__file__).resolve().parents[2]


def run_until_killed(path: Path, rng: random.Random) -> set[int]:
    """Start the child, let it append for a random while, SIGKILL it; return the acked seqs."""
    proc = subprocess.Popen(
        [sys.executable, str(CHILD), str(path), str(rng.choice([1, 8, 32]))],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    buf = b""
    deadline = time.monotonic() + 20
    while b"ready\n" not in buf:
        r, _, _ = select.select([fd], [], [], 0.5)
        if r:
            chunk = os.read(fd, 65536)
            if not chunk:
                raise AssertionError(proc.stderr.read().decode() if proc.stderr else "child died")
            buf += chunk
        assert time.monotonic() < deadline, "child never became ready"
    kill_at = time.monotonic() + rng.uniform(0.005, 0.25)
    while time.monotonic() < kill_at:
        r, _, _ = select.select([fd], [], [], max(0.0, kill_at - time.monotonic()))
        if r:
            buf += os.read(fd, 65536)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    buf += proc.stdout.read()  # whatever it acknowledged before it died
    proc.stdout.close()
    if proc.stderr:
        proc.stderr.close()
    lines = buf.decode().split("\n")
    # The last line may be cut mid-write by the kill: only whole lines count as acknowledged.
    return {int(x) for x in lines[:-1] if x.strip().isdigit()}


def check_after_kill(path: Path, acked: set[int]) -> None:
    conn = sqlite3.connect(path)
    try:
        seqs = [r[0] for r in conn.execute("SELECT seq FROM events ORDER BY seq")]
    finally:
        conn.close()
    missing = acked - set(seqs)
    assert not missing, f"acknowledged events lost: {sorted(missing)[:10]}"
    assert seqs == list(range(1, len(seqs) + 1)), "sequence has a gap"
    assert check_integrity(path, full=True) == "ok"


def kill_loop(tmp_path: Path, kills: int, seed: int) -> int:
    """Kill the child ``kills`` times, checking after each; returns the acknowledged count."""
    rng = random.Random(seed)
    path = tmp_path / "journal.db"
    all_acked: set[int] = set()
    for _ in range(kills):
        all_acked |= run_until_killed(path, rng)
        check_after_kill(path, all_acked)
    assert len(all_acked) > kills, "the child should have acknowledged events"
    return len(all_acked)


def test_acknowledged_events_survive_sigkill(tmp_path: Path) -> None:
    assert kill_loop(tmp_path, kills=20, seed=20261128) > 20


@pytest.mark.slow
def test_acknowledged_events_survive_200_sigkills(tmp_path: Path) -> None:
    assert kill_loop(tmp_path, kills=200, seed=7) > 200
