"""A minimal paced null-modem for the broadcast tests: two raw ptys bridged by a thread.

Stand-in until the bench's own line emulator (``hil_tests.line``) is available; the HIL tests
prefer that one when it imports. Each byte reaches the far side one character time (10 bits
at ``baud``) after the previous one in the same direction, as on a real 8N1 line::

    with PtyLine(baud=9600) as line:
        line.host_path, line.device_path   # open with pyserial / pymodbus
"""

from __future__ import annotations

import os
import select
import threading
import time
import tty
from collections import deque


class PtyLine:
    def __init__(self, *, baud: int = 9600, paced: bool = True) -> None:
        self.char_s = 10.0 / baud if paced else 0.0
        self._fds: list[int] = []
        self._stop_r, self._stop_w = -1, -1
        self._thread: threading.Thread | None = None
        self.host_path = ""
        self.device_path = ""

    def start(self) -> PtyLine:
        m1, s1 = os.openpty()
        m2, s2 = os.openpty()
        for fd in (m1, s1, m2, s2):
            tty.setraw(fd)
        for fd in (m1, m2):
            os.set_blocking(fd, False)
        self._fds = [m1, s1, m2, s2]
        self.host_path, self.device_path = os.ttyname(s1), os.ttyname(s2)
        self._stop_r, self._stop_w = os.pipe()
        self._thread = threading.Thread(target=self._run, args=(m1, m2), daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            os.write(self._stop_w, b"x")
            self._thread.join(5)
            self._thread = None
        for fd in (*self._fds, self._stop_r, self._stop_w):
            if fd >= 0:
                os.close(fd)
        self._fds = []
        self._stop_r = self._stop_w = -1

    def __enter__(self) -> PtyLine:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self, a: int, b: int) -> None:
        pending: dict[int, deque[tuple[float, int]]] = {a: deque(), b: deque()}
        last_due = {a: 0.0, b: 0.0}
        peer = {a: b, b: a}
        while True:
            now = time.monotonic()
            waits = [q[0][0] - now for q in pending.values() if q]
            timeout = max(0.0, min(waits)) if waits else None
            ready, _, _ = select.select([a, b, self._stop_r], [], [], timeout)
            if self._stop_r in ready:
                return
            now = time.monotonic()
            for src in (a, b):
                if src in ready:
                    try:
                        data = os.read(src, 4096)
                    except OSError:
                        data = b""
                    for byte in data:
                        due = max(now, last_due[src]) + self.char_s
                        last_due[src] = due
                        pending[peer[src]].append((due, byte))
            now = time.monotonic()
            for dst, q in pending.items():
                out = bytearray()
                while q and q[0][0] <= now:
                    out.append(q.popleft()[1])
                if out:
                    try:
                        os.write(dst, bytes(out))
                    except OSError:
                        pass
