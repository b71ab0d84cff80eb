"""Small helpers shared by the health tests (unit and HIL): run services, wait for conditions."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from gateway.clock import SystemClock
from gateway.events import Event
from gateway.journal import Journal


@contextlib.asynccontextmanager
async def running(*services: Any) -> AsyncIterator[list[asyncio.Task[None]]]:
    """Run each service's ``run()`` as a task; cancel and await them all on exit.

    A task that crashed is re-raised on exit, so a test cannot pass over a crashing service.
    """
    tasks = [asyncio.create_task(s.run(), name=getattr(s, "name", "svc")) for s in services]
    try:
        yield tasks
    finally:
        crashed = [t for t in tasks if t.done() and not t.cancelled() and t.exception()]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if crashed:
            raise AssertionError(f"service crashed: {crashed[0].get_name()}") from (
                crashed[0].exception()
            )


async def wait_until(
    cond: Callable[[], Any], timeout: float = 30.0, interval: float = 0.02, what: str = ""
) -> float:
    """Poll ``cond`` until truthy; return the seconds it took, or fail naming ``what``."""
    start = time.monotonic()
    while True:
        if cond():
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or cond}")
        await asyncio.sleep(interval)


@contextlib.asynccontextmanager
async def open_journal(tmp_path: Path) -> AsyncIterator[Journal]:
    journal = await Journal.open(
        tmp_path / "data" / "journal.db", gateway_id="gw-test", clock=SystemClock()
    )
    try:
        yield journal
    finally:
        await journal.close()


async def events_of(journal: Journal, *kinds: str) -> list[Event]:
    return await journal.read_after(0, limit=100_000, kinds=list(kinds) if kinds else None)


def write_password(tmp_path: Path, name: str, password: str) -> Path:
    p = tmp_path / f"{name}.pass"
    p.write_text(password + "\n")
    p.chmod(0o600)
    return p
