"""The console's change signal: a version number that moves when something an operator sees moved.

Three things move it: a batch stored by ingest (:attr:`CentreService.ingest_listeners`), an
acknowledgement, and a change in the command queue or in which gateways hold their command
channel open, which a poller notices within :data:`POLL_S` (commands are also queued by the
CLI, from another process). Each server-sent-events stream waits on :meth:`Live.changed`::

    live = Live()
    service.ingest_listeners.append(lambda gw: live.bump())
    version = await live.changed(after=version, timeout=15.0)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Hashable
from typing import Final

from centre.faults import fault_text

log = logging.getLogger("centre.web.live")

POLL_S: Final = 0.5


class Live:
    def __init__(self) -> None:
        self.version = 0
        self._event = asyncio.Event()
        self.closing = False

    def bump(self) -> None:
        self.version += 1
        self._event.set()
        self._event = asyncio.Event()

    def close(self) -> None:
        """Wake every stream so it ends (the server is shutting down)."""
        self.closing = True
        self.bump()

    async def changed(self, *, after: int, timeout: float) -> int:
        """The version once it differs from ``after``, or the same one after ``timeout``."""
        if self.version != after:
            return self.version
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._event.wait(), timeout)
        return self.version

    async def watch(
        self, fingerprint: Callable[[], Awaitable[Hashable]], *, poll_s: float = POLL_S
    ) -> None:
        """Bump whenever ``fingerprint()`` gives a new value; runs until cancelled."""
        last: Hashable = None
        while True:
            try:
                now = await fingerprint()
            except Exception as exc:  # a closed store at shutdown, a locked file: try again
                log.warning("console live poll failed: %s", fault_text(exc))
                now = last
            if now != last:
                last = now
                self.bump()
            await asyncio.sleep(poll_s)
