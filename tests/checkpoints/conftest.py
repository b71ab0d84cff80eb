"""Fixtures: simulated reader buses, and a guard that no test leaves a thread behind."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

# Thread names used by libosdp's Python binding and the line emulator.
_OURS = ("cp", "osdp-cp", "pd", "Rs485Bus-bridge", "SerialLine-bridge")


@pytest.fixture(autouse=True)
def no_threads_left() -> Iterator[None]:
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + 3.0
    while True:
        left = [
            t for t in threading.enumerate()
            if t not in before and t.is_alive() and t.name in _OURS
        ]  # fmt: skip
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert not left, f"threads left behind: {[t.name for t in left]}"
