"""Firmware unit tests, run under real MicroPython (WebAssembly port under Node.js).

Each case is a script in tests/firmware/mpy/; the harness exits non-zero on any uncaught
Python exception, and every script ends with a PASS/FAIL summary that we check too.
"""

from __future__ import annotations

import re

import pytest

from tests.firmware._mpy import MPY_TESTS, run_mpy

SCRIPTS = ["t_crypto", "t_frame", "t_pd", "t_tapstore", "t_pn532", "t_rs485",
           "t_indicator", "t_provision", "t_startup", "t_multidrop", "t_ota"]


def _check(proc, expected_min: int) -> None:
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    summaries = re.findall(r"SUMMARY (\d+) passed (\d+) failed", proc.stdout)
    assert summaries, out
    passed = sum(int(p) for p, _ in summaries)
    failed = sum(int(f) for _, f in summaries)
    assert failed == 0, out
    assert passed >= expected_min, out


@pytest.mark.parametrize("name", SCRIPTS)
def test_micropython_unit(name: str) -> None:
    _check(run_mpy(MPY_TESTS / f"{name}.py"), 1)


def test_offline_taps_survive_reset_and_arrive_once_in_order() -> None:
    """Three interpreters in a row, only /flash carried over: tap offline, reset,
    deliver in order exactly once, reset again, nothing re-delivered."""
    proc = run_mpy(MPY_TESTS / "t_offline_1.py", MPY_TESTS / "t_offline_2.py",
                   MPY_TESTS / "t_offline_3.py")
    _check(proc, 4)
    assert proc.stdout.count("SUMMARY") == 3


def test_harness_turns_exceptions_into_failure(tmp_path) -> None:
    """The package's own CLI exits 0 on an exception; our harness must not."""
    bad = tmp_path / "bad.py"
    bad.write_text("import osdp_frame\nraise RuntimeError('boom')\n")
    proc = run_mpy(bad)
    assert proc.returncode == 1
    assert "RuntimeError" in proc.stderr and "boom" in proc.stderr


def test_harness_carries_flash_between_interpreters(tmp_path) -> None:
    a = tmp_path / "a.py"
    a.write_text("open('/flash/x', 'w').write('kept')\nopen('/y', 'w').write('lost')\n")
    b = tmp_path / "b.py"
    b.write_text(
        "import os\nassert open('/flash/x').read() == 'kept'\n"
        "try:\n    os.stat('/y')\n    raise AssertionError('RAM file survived')\n"
        "except OSError:\n    pass\nprint('ok')\n"
    )
    proc = run_mpy(a, b)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"


def test_runs_on_micropython_not_cpython(tmp_path) -> None:
    s = tmp_path / "impl.py"
    s.write_text("import sys, aes128\nprint(sys.implementation.name, aes128.backend())\n")
    proc = run_mpy(s)
    assert proc.stdout.split() == ["micropython", "soft"]
