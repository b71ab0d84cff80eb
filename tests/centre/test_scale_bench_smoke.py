"""bench/centre_scale.py runs end to end: 3 gateways with their own certificates over real mTLS
to a real ``compound-centre serve`` on SQLite, and its audit finds every event exactly once."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_scale_bench_smoke() -> None:
    out = subprocess.run(
        [sys.executable, "bench/centre_scale.py", "--gateways", "3", "--events-per-gateway",
         "120", "--batch-events", "50", "--rounds-per-day", "2", "--day", "2026-11-03",
         "--backends", "sqlite", "--no-bulletins"],
        cwd=REPO, capture_output=True, text=True, timeout=120, check=False,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.splitlines()
    assert lines[0].startswith("3 gateways x 120 events (batches of 50) = 360 events pushed")
    assert any(line.startswith("backend ") and "events/s" in line for line in lines)
    figures = next(line for line in lines if line.startswith("sqlite "))
    assert len(figures.split()) >= 10, figures
    # Seeded month (2 days x 2 rounds) + the pushed day, each gateway's seqs exactly 1..124.
    assert "audit sqlite: ok (372 events in the database" in out.stdout, out.stdout


def test_scale_bench_paced_mode_offers_the_rate() -> None:
    # 3 gateways x 3 batches of at most 50 at 300 events/s: one batch per gateway every 0.5 s.
    # A closed loop would push the 360 events in a fraction of a second (thousands/s).
    out = subprocess.run(
        [sys.executable, "bench/centre_scale.py", "--gateways", "3", "--events-per-gateway",
         "120", "--batch-events", "50", "--rounds-per-day", "2", "--day", "2026-11-03",
         "--backends", "sqlite", "--no-bulletins", "--rate", "300"],
        cwd=REPO, capture_output=True, text=True, timeout=120, check=False,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    assert "paced: 300 events/s offered (each gateway one batch every 0.5 s)" in out.stdout
    figures = next(line for line in out.stdout.splitlines() if line.startswith("sqlite "))
    events_per_s = float(figures.split()[1])
    assert 0 < events_per_s < 600, figures
    assert "audit sqlite: ok (372 events in the database" in out.stdout, out.stdout
