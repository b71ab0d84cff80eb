"""Taps for enrolment: which reader was tapped, with which wristband, and when.

Used by the setup wizard (guards, walking a route) and by ``compound-gw guards add`` when the
daemon is not running. Two sources, one shape (:class:`WristbandTap`):

- :class:`ReaderTaps` opens the reader buses itself (the daemon must not hold them)::

      async with ReaderTaps(specs) as taps:
          await taps.wait_online(30.0)
          tap = await taps.next_tap(60.0)        # None after the timeout

- :func:`next_unknown_wristband` reads the daemon's journal for the next ``unknown_wristband``
  event (the daemon holds the readers and journals every tap it does not know).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FEEDBACK_FLUSH_S = 0.5
JOURNAL_POLL_S = 0.25


@dataclass(frozen=True, slots=True)
class WristbandTap:
    bus: str
    address: int
    wristband: str  # raw card data, lower-case hex (as the roster and tap events have it)
    mono_time: float


class ReaderTaps:
    """Every reader bus open at once; taps come out in arrival order with the wristband."""

    def __init__(self, specs: Any) -> None:
        from drivers.osdp_bus import OsdpBus

        self.buses = {s.name: OsdpBus(s) for s in specs}
        self.online: dict[tuple[str, int], bool] = {
            (s.name, r.address): False for s in specs for r in s.readers
        }
        self._taps: asyncio.Queue[WristbandTap] = asyncio.Queue()
        self._changed = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> ReaderTaps:
        for bus in self.buses.values():
            await bus.start()
            self._tasks.append(asyncio.create_task(self._pump(bus)))
        return self

    async def __aexit__(self, *exc: object) -> None:
        # The last light is only queued: let a few poll cycles carry it out before closing.
        await asyncio.sleep(FEEDBACK_FLUSH_S)
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for bus in self.buses.values():
            await bus.aclose()

    async def _pump(self, bus: Any) -> None:
        from drivers.checkpoints import CardRead, NodeTap, ReaderStatus
        from gateway.checkpoints.core import FRESH_NODE_TAP_S

        async for item in bus.events():
            if isinstance(item, CardRead):
                tap = WristbandTap(item.bus, item.address, item.data.hex(), time.monotonic())
                self._taps.put_nowait(tap)
            elif isinstance(item, NodeTap) and (
                not item.age_lower_bound
                and not item.tapped_offline
                and item.age_s <= FRESH_NODE_TAP_S
            ):
                # Our node in numbered mode sends every tap as a tap record: a fresh one is the
                # wristband being held to the reader now. Held (old) taps enrol nobody.
                tap = WristbandTap(item.bus, item.address, item.wristband, time.monotonic())
                self._taps.put_nowait(tap)
            elif isinstance(item, ReaderStatus):
                self.online[(item.bus, item.address)] = item.online and item.sc_active
                self._changed.set()

    async def wait_online(self, timeout: float) -> list[tuple[str, int]]:
        """Wait until every reader is online in Secure Channel; returns those still offline."""
        deadline = time.monotonic() + timeout
        while not all(self.online.values()):
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), left)
        return [k for k, v in self.online.items() if not v]

    def drain(self) -> None:
        while not self._taps.empty():
            self._taps.get_nowait()

    async def next_tap(self, timeout: float) -> WristbandTap | None:
        try:
            return await asyncio.wait_for(self._taps.get(), max(0.0, timeout))
        except TimeoutError:
            return None

    async def feedback(self, tap: WristbandTap, ok: bool) -> None:
        from drivers.checkpoints import Feedback

        await self.buses[tap.bus].feedback(
            tap.address, Feedback.ACCEPTED if ok else Feedback.REFUSED
        )


def journal_last_seq(journal_path: Path) -> int:
    from gateway.journal import read_events

    tail = read_events(journal_path, last=1) if journal_path.exists() else []
    return tail[0].seq if tail else 0


def next_unknown_wristband(
    journal_path: Path, after_seq: int, timeout: float, known: set[str] | None = None
) -> tuple[WristbandTap, int] | None:
    """The first ``unknown_wristband`` the daemon journals after ``after_seq`` (blocking poll,
    read-only). Wristbands in ``known`` are passed over. Returns (tap, its seq) or None."""
    from gateway.checkpoints.core import UNKNOWN_WRISTBAND
    from gateway.journal import read_events

    deadline = time.monotonic() + timeout
    seq = after_seq
    while True:
        for ev in read_events(journal_path, after_seq=seq, limit=500):
            seq = ev.seq
            if ev.kind != UNKNOWN_WRISTBAND or not isinstance(ev.payload, dict):
                continue
            band = str(ev.payload.get("wristband", ""))
            bus, _, address = str(ev.payload.get("reader", "")).rpartition("/")
            if band and (known is None or band not in known):
                addr = int(address) if address.isdigit() else -1
                return WristbandTap(bus, addr, band, time.monotonic()), ev.seq
        if time.monotonic() >= deadline:
            return None
        time.sleep(JOURNAL_POLL_S)


__all__ = ["ReaderTaps", "WristbandTap", "journal_last_seq", "next_unknown_wristband"]
