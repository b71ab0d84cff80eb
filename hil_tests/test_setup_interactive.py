"""``compound-gw setup`` at the terminal: questions answered on stdin, the reader tapped when
the wizard asks in plain words, a valid config at the end (no answers file involved)."""

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
        [sys.executable, "-m", "gateway.setup", "setup", "--config", str(config)],
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
                bench.reader("a", 1).tap("04a1b2c3d4e5f6")
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
            "front-gate",  # checkpoints in tapping order
            "",  # zones: none
            "",  # amplifier: none
            "",  # cameras: none
            "",  # centre: enroll later
        ]
        rc, out = await asyncio.to_thread(run_interactive, config, answers, bench)
        assert rc == 0, out
        assert "gate-bus/1: OSDP reader vendor" in out
        assert "gate-bus/1: pairing with install key (SCBK-D)" in out
        assert "tapped: reader gate-bus/1 is checkpoint 'front-gate'" in out
        assert "@@setup" not in out  # machine lines only for scripts
        cfg = load_config(config)
        (point,) = cfg.checkpoints.points
        assert (point.id, point.bus, point.address) == ("front-gate", "gate-bus", 1)
        assert cfg.gateway.compound == "Interactive Compound" and not cfg.sync.enabled
