"""The node's USB console never freezes the node (issue 14, item 15), under real MicroPython.

The WebAssembly port's own ``sys.stdin`` behaves like a console whose host hung up: ``poll``
says readable, ``read(1)`` returns ``''``. Before the fix ``Console.readline`` looped on that
forever and the node's loop never ran; the script's cases are in tests/firmware/mpy/t_console.py,
with a damaged settings.json (which crashed the node into a reset loop) beside them.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.firmware._mpy import CPYTHON_SHIM, FIRMWARE, HOST_SHIM, MPY_TESTS, run_mpy

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


# -- the console's parser: provision.handle, on the same module under CPython --------------------


@pytest.fixture(scope="module")
def provision_mod() -> Iterator[tuple[ModuleType, ModuleType]]:
    added = [str(FIRMWARE), str(HOST_SHIM), str(CPYTHON_SHIM)]
    before = set(sys.modules)
    sys.path[:0] = added
    try:
        import provision  # type: ignore[import-not-found]
        import settings  # type: ignore[import-not-found]

        yield provision, settings
    finally:
        for p in added:
            sys.path.remove(p)
        for name in set(sys.modules) - before:
            del sys.modules[name]


ODD = "\u00b2\u0663\uff13\U0001d7d1"
words = st.one_of(
    st.sampled_from(["show", "set", "save", "reboot", "help", "SET", "address", "baud", "scbk",
                     "install", "numbered", "serial", "vendor", "key", "on", "off"]),
    st.text(st.sampled_from("0123456789abcdefx_-" + ODD), max_size=40),
    st.integers(min_value=-(10**60), max_value=10**60).map(str),
    st.text(max_size=20),
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(line=st.lists(words, max_size=4).map(" ".join))
def test_console_lines_get_a_reply_never_an_exception(
    provision_mod: tuple[ModuleType, ModuleType], line: str
) -> None:
    provision, settings_mod = provision_mod
    with tempfile.TemporaryDirectory() as tmp:
        s = settings_mod.Settings.load(str(Path(tmp) / "settings.json"))
        started = time.monotonic()
        reply, action = provision.handle(s, line)
        assert time.monotonic() - started < 1.0
    assert isinstance(reply, str) and action in (None, "saved", "reboot")
    assert reply == "" or reply.startswith(("ok", "error")), reply
