"""Simulated-hardware and daemon processes die with the test process that started them.

A killed pytest (CI timeout, Ctrl-C twice, the OOM killer) must not leave daemons polling
pseudo-terminals and loading the machine for the next run. Linux's ``PR_SET_PDEATHSIG`` sends
the child SIGKILL when its parent dies.

The signal fires when the *thread* that forked exits, not the process: a child started from a
worker thread (``asyncio.to_thread``) would be killed when that worker retires. So it is armed
only for children started from the main thread; others keep the old behaviour.
"""

from __future__ import annotations

import ctypes
import signal
import sys
import threading
from collections.abc import Callable

PR_SET_PDEATHSIG = 1


def _arm() -> None:  # runs in the child between fork and exec: no Python objects shared
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` for :class:`subprocess.Popen`, or None where it cannot be armed safely."""
    if not sys.platform.startswith("linux"):
        return None
    if threading.current_thread() is not threading.main_thread():
        return None
    return _arm
