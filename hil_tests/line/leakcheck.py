"""Leak checks for bench tests: no new file descriptors, ptys or threads after a test.

    with no_leaks():
        ...   # AssertionError on the way out if a descriptor or thread was left behind

Used as an autouse fixture by the line and proxy tests; the lead may lift it into conftest.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterator

SETTLE_S = 2.0  # closing is sometimes one loop turn or thread exit away


def open_fds() -> dict[int, str]:
    """This process's descriptors and what they point at."""
    out: dict[int, str] = {}
    for name in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            out[int(name)] = os.readlink(f"/proc/self/fd/{name}")
    return out


def _is_pty(target: str) -> bool:
    return target == "/dev/ptmx" or target.startswith("/dev/pts/")


@contextlib.contextmanager
def no_leaks(settle_s: float = SETTLE_S) -> Iterator[None]:
    """Fail if the block leaves a thread, a pty or any other descriptor open."""
    fds_before = open_fds()
    threads_before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + settle_s
    while True:
        new_threads = [t for t in threading.enumerate() if t not in threads_before and t.is_alive()]
        fds_now = open_fds()
        new_fds = {fd: t for fd, t in fds_now.items() if fds_before.get(fd) != t}
        if (not new_threads and not new_fds) or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    ptys = {fd: t for fd, t in new_fds.items() if _is_pty(t)}
    assert not new_threads, f"threads left running: {new_threads}"
    assert not ptys, f"ptys left open: {ptys}"
    assert not new_fds, f"descriptors left open: {new_fds}"
