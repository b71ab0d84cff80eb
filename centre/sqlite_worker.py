"""The plumbing the centre's SQLite stores share: one connection on one worker thread.

Every store keeps its calls off the event loop by running them on a single-thread executor
(so the connection is only ever used from that thread, one call at a time). A subclass names
its thread and says how to connect (schema, row factory, busy timeout); :func:`connect_durable`
gives it the file (created 0600 first) in WAL mode with ``synchronous=FULL``::

    class NoteStore(SqliteWorker):
        THREAD_NAME_PREFIX = "centre-notes"
        CLOSED_MESSAGE = "note store is closed"

        def _connect(self) -> sqlite3.Connection:
            db = connect_durable(self._path)
            db.executescript(_SCHEMA)
            return db

    async with await NoteStore.open(data_dir / "notes.db") as store:
        await store._run(lambda: store.db.execute("SELECT 1").fetchone())
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import ClassVar, Self, TypeVar

T = TypeVar("T")

DEFAULT_BUSY_TIMEOUT = 5.0
"""Seconds a connection waits for another writer's lock (sqlite3's own default)."""


def connect_durable(path: Path, *, timeout: float = DEFAULT_BUSY_TIMEOUT) -> sqlite3.Connection:
    """Open ``path`` in autocommit mode, WAL, ``synchronous=FULL``.

    The file is created 0600 before SQLite sees it: the centre's files hold token hashes,
    every compound's events and people's names, none of it for other local users. FULL
    because what the centre answers (an ack, a queued command) promises the row is stored.
    """
    if not path.exists():
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=timeout)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    return db


class atomic:  # lower case: used like a function, ``with atomic(db):``
    """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on any exception."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self.db.execute("ROLLBACK" if exc_type else "COMMIT")


class SqliteWorker:
    """One SQLite connection used only from one worker thread; subclasses add the queries.

    A subclass sets :attr:`THREAD_NAME_PREFIX` and :attr:`CLOSED_MESSAGE` and implements
    :meth:`_connect`; it runs each operation with ``await self._run(fn)``.
    """

    THREAD_NAME_PREFIX: ClassVar[str]
    CLOSED_MESSAGE: ClassVar[str]

    def __init__(self, path: Path) -> None:
        self._path = path
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=self.THREAD_NAME_PREFIX)
        self._db: sqlite3.Connection | None = None

    @classmethod
    async def open(cls, path: Path) -> Self:
        """Connect (on the worker thread) and return the ready store."""
        store = cls(path)
        await store._run(store._open)
        return store

    async def _run(self, fn: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn)

    def _connect(self) -> sqlite3.Connection:
        """Open the connection and bring the schema up to date (runs on the worker thread)."""
        raise NotImplementedError

    def _open(self) -> None:
        self._db = self._connect()

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError(self.CLOSED_MESSAGE)
        return self._db

    def _atomic(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """``fn(db)`` inside BEGIN IMMEDIATE ... COMMIT (on the worker thread): the write lock
        is taken first, so a read inside sees what no other writer can change before COMMIT."""
        db = self.db
        with atomic(db):
            return fn(db)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._db is not None:
            await self._run(self._db.close)
            self._db = None
        self._pool.shutdown(wait=True)
