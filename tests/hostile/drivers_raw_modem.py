"""A raw AT modem on a pty that answers every command line with the bytes a test chose.

``answer(command) -> bytes`` (default: ``b"\\r\\nOK\\r\\n"``) is written back for each line the
gateway sends (ended by CR). The gateway side opens ``modem.path`` with the production
``ModemLink``::

    with RawModem() as modem:
        modem.answer = lambda cmd: b"\\r\\n+CSQ: \\xff\\xfe,99\\r\\nOK\\r\\n"
"""

from __future__ import annotations

import os
import select
import threading
import tty
from collections.abc import Callable
from types import TracebackType


class RawModem:
    def __init__(self) -> None:
        self.answer: Callable[[str], bytes] = lambda cmd: b"\r\nOK\r\n"
        self.commands: list[str] = []
        self._master, self._slave = os.openpty()
        tty.setraw(self._master)
        tty.setraw(self._slave)
        os.set_blocking(self._master, False)
        self.path = os.ttyname(self._slave)
        self._stop_r, self._stop_w = os.pipe()
        self._thread = threading.Thread(target=self._run, name="raw-modem", daemon=True)

    def __enter__(self) -> RawModem:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        os.write(self._stop_w, b"x")
        self._thread.join(timeout=5)
        for fd in (self._master, self._slave, self._stop_r, self._stop_w):
            os.close(fd)

    def _run(self) -> None:
        buf = b""
        while True:
            ready, _, _ = select.select([self._master, self._stop_r], [], [], 1.0)
            if self._stop_r in ready:
                return
            if self._master not in ready:
                continue
            try:
                buf += os.read(self._master, 4096)
            except BlockingIOError:
                continue
            except OSError:
                return
            while (cut := buf.find(b"\r")) >= 0:
                line = buf[:cut].decode("ascii", "replace").strip()
                buf = buf[cut + 1 :]
                if line:
                    self.commands.append(line)
                    reply = self.answer(line)
                    # Large replies: write in pieces as the pty drains.
                    view = memoryview(reply)
                    while view:
                        try:
                            n = os.write(self._master, view)
                        except BlockingIOError:
                            select.select([], [self._master], [], 0.5)
                            continue
                        except OSError:
                            return
                        view = view[n:]
