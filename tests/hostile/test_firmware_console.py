"""The node's USB console never freezes the node (issue 14, item 15), under real MicroPython.

The WebAssembly port's own ``sys.stdin`` behaves like a console whose host hung up: ``poll``
says readable, ``read(1)`` returns ``''``. Before the fix ``Console.readline`` looped on that
forever and the node's loop never ran; the script's cases are in tests/firmware/mpy/t_console.py,
with a damaged settings.json (which crashed the node into a reset loop) beside them.
"""

from __future__ import annotations

import re
import subprocess

import pytest

from tests.firmware._mpy import MPY_TESTS, run_mpy

HANG_S = 30.0


def test_console_at_eof_returns_and_the_node_loop_runs() -> None:
    try:
        proc = run_mpy(MPY_TESTS / "t_console.py", timeout=HANG_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"MicroPython did not finish within {HANG_S:g} s: the console spins at EOF")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    summary = re.search(r"SUMMARY (\d+) passed (\d+) failed", proc.stdout)
    assert summary is not None, out
    assert (int(summary[1]), int(summary[2])) == (5, 0), out
