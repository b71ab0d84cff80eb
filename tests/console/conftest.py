"""Fixtures for the console tests: a real SQLite store in tmp_path and a clock the test moves."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from centre.web.console import Console
from centre.web.permissions import Role
from centre.web.store import SqliteConsoleStore
from centre.web.throttle import Throttle

CHEAP_N = 2**12  # scrypt cost for tests: the same code path, a 256th of the memory
PASSWORD = "mooncake-lantern-42"


class Clock:
    """Injected into Console: time moves only when the test says so."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteConsoleStore]:
    s = await SqliteConsoleStore.open(tmp_path / "console.db")
    try:
        yield s
    finally:
        await s.close()


@pytest.fixture
async def console(store: SqliteConsoleStore, clock: Clock) -> Console:
    c = Console(
        store,
        clock=clock,
        throttle=Throttle(free_failures=3, base_lockout=30.0, max_lockout=600.0),
        idle=600.0,
        absolute=3600.0,
        scrypt_n=CHEAP_N,
    )
    await c.add_user("cli:test", "alice", PASSWORD, Role.OFFICER)
    return c
