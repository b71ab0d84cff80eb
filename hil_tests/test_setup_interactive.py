"""``compound-gw setup`` with its questions answered from a pipe (English): the readers tapped
when the wizard asks in plain words (the checkpoint, the guard's wristband, the route), a valid
config and patrol data file at the end, no answers file involved. A pipe is not a terminal:
taps cannot be skipped with Enter there, every answer comes from the lines given.
(The same at a real terminal, in Chinese, with typos: hil_tests/test_setup_tty.py.)"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

from gateway.config.model import load_config
from hil_tests.sims.osdp_reader import ReaderBench

REPO = Path(__file__).resolve().parents[1]


def run_interactive(config: Path, stdin_lines: list[str], bench: ReaderBench) -> tuple[int, str]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gateway.setup",
            "setup",
            "--config",
            str(config),
            "--data-dir",
            "data",
            "--runtime-dir",
            "run",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write("\n".join(stdin_lines) + "\n")
    proc.stdin.close()
    out = []
    try:
        for line in proc.stdout:
            out.append(line)
            if "tap a wristband on the reader at checkpoint 'front-gate'" in line:
                bench.reader("a", 1).tap("0badcafe01")
            if "tap the next guard's wristband on any reader" in line:
                bench.reader("a", 1).tap("04a1b2c3d4e5f6")
            if "Walk the route now" in line:
                bench.reader("a", 1).tap("0badcafe01")
        rc = proc.wait(60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        proc.stdout.close()
    return rc, "".join(out)


async def test_interactive_setup(tmp_path: Path) -> None:
    with ReaderBench(tmp_path / "bench", {"a": 1}, install_mode=(("a", 1),)) as bench:
        config = tmp_path / "site" / "gateway.toml"
        answers = [
            "gw-int-01",  # gateway id
            "Interactive Compound",  # compound
            "",  # township
            "",  # time zone (default)
            bench.lines["a"].host_path,  # ports to scan: a path the listing does not show
            "gate-bus",  # bus name
            "osdp",  # wired to it
            "",  # centre: enroll later
            "front-gate",  # checkpoints in tapping order (asked after the scan)
            "g-017",  # the guard whose wristband was tapped
            "Zhang San",
            "n",  # no other guard
            "",  # route id: main
            "",  # route name
            "",  # checkpoints on the route: all (1)
            "1",  # every 2 hours at night
            "y",  # use it
            "",  # cameras: none
        ]
        rc, out = await asyncio.to_thread(run_interactive, config, answers, bench)
        assert rc == 0, out
        assert "gate-bus/1: OSDP reader vendor" in out
        assert "gate-bus/1: pairing with install key (SCBK-D)" in out
        assert "tapped: reader gate-bus/1 is checkpoint 'front-gate'" in out
        assert "@@setup" not in out  # machine lines only for scripts
        assert "enrolled: g-017 Zhang San" in out
        assert "1. front-gate (start)" in out
        assert "22:00 - 00:00" in out  # tomorrow's rounds previewed
        cfg = load_config(config)
        (point,) = cfg.checkpoints.points
        assert (point.id, point.bus, point.address) == ("front-gate", "gate-bus", 1)
        assert cfg.gateway.compound == "Interactive Compound" and not cfg.sync.enabled
        assert [(g.wristband, g.guard) for g in cfg.checkpoints.roster] == [
            ("04a1b2c3d4e5f6", "g-017")
        ]
        assert [r.checkpoints for r in cfg.patrol.routes] == [("front-gate",)]
        (sched,) = cfg.patrol.schedules
        assert (sched.route, sched.every_hours, sched.start, sched.end) == (
            "main",
            2,
            "22:00",
            "06:00",
        )
        assert "warning:" not in out
