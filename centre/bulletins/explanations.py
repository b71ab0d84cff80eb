"""Explanations of missed rounds: a tiny append-only store beside the centre's database.

An explanation is never edited or deleted: a correction is a new explanation, and the bulletin
shows them all in the order they were recorded. The default store is one SQLite file in the
centre's data directory (``bulletins.db``), every call on one worker thread; with a PostgreSQL
DSN configured, :func:`centre.database.open_explanation_store` gives
:class:`centre.bulletins.pg_store.PostgresExplanationStore` instead (the same queries, shared
by every centre process)::

    store = await SqliteExplanationStore.open(data_dir / "bulletins.db")
    e = await store.add("Rose Garden", "night@2026-11-02T02:00", "guard ill, no relief",
                        given_by="chief Wang", recorded_by="duty-officer", now=time.time())
    await store.all(compound="Rose Garden")
    await store.close()

A compound's manager may explain through a signed link instead (:mod:`centre.bulletins.links`):
:meth:`SqliteExplanationStore.add_via_link` records the day's explanations and the link's use in
one transaction, so a link works once per compound and day.
"""

from __future__ import annotations

import sqlite3
import unicodedata
from collections.abc import Callable, Sequence
from typing import Any, Final, Protocol, Self, TypeVar

from centre.bulletins.links import LINK_RECORDER, LinkUsed
from centre.bulletins.model import Explanation
from centre.errors import BadRequest
from centre.sqlite_worker import SqliteWorker, connect_durable

T = TypeVar("T")

MAX_TEXT: Final = 2000
MAX_NAME: Final = 200
FILENAME: Final = "bulletins.db"

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS explanations (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    compound    TEXT NOT NULL,
    round_id    TEXT NOT NULL,
    text        TEXT NOT NULL,
    given_by    TEXT NOT NULL DEFAULT '',
    recorded_by TEXT NOT NULL,
    recorded_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS explanations_round ON explanations (compound, round_id);
-- One row per compound and day whose explanation link was used: a link works once.
CREATE TABLE IF NOT EXISTS explanation_links_used (
    compound    TEXT NOT NULL,
    day         TEXT NOT NULL,
    used_at     REAL NOT NULL,
    PRIMARY KEY (compound, day)
)
"""


class ExplanationStore(Protocol):
    """Where explanations live (append-only)."""

    async def add(
        self,
        compound: str,
        round_id: str,
        text: str,
        *,
        given_by: str,
        recorded_by: str,
        now: float,
    ) -> Explanation: ...

    async def all(self, compound: str | None = None) -> list[Explanation]: ...

    async def add_via_link(
        self,
        compound: str,
        day: str,
        round_ids: Sequence[str],
        text: str,
        *,
        given_by: str,
        now: float,
    ) -> list[Explanation]: ...

    async def link_used_at(self, compound: str, day: str) -> float | None: ...

    async def close(self) -> None: ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(self, *exc_info: object) -> None: ...


def clean_text(value: object, field: str, limit: int, *, required: bool) -> str:
    """Strip, refuse control characters (newlines and tabs allowed) and overlong values."""
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise BadRequest(f"{field} must be a string")
    text = value.strip()
    if required and not text:
        raise BadRequest(f"{field} is required")
    if len(text) > limit:
        raise BadRequest(f"{field} is longer than {limit} characters")
    for ch in text:
        if ch not in "\n\t" and unicodedata.category(ch) in ("Cc", "Cs"):
            raise BadRequest(f"{field} contains a control character")
    return text


class ExplanationSql:
    """The store's logic in SQL both backends speak (``?`` placeholders; the PostgreSQL store,
    :class:`centre.bulletins.pg_store.PostgresExplanationStore`, translates them). A backend
    gives :attr:`db`, :meth:`_run` and :meth:`_atomic` (a function inside one transaction)."""

    db: Any  # a backend's plumbing comes first in the subclass's bases

    async def _run(self, fn: Callable[[], T]) -> T:
        raise NotImplementedError

    def _atomic(self, fn: Callable[[Any], T]) -> T:
        raise NotImplementedError

    @staticmethod
    def _insert(db: Any, row: tuple[str, str, str, str, str, float]) -> Explanation:
        (new_id,) = db.execute(
            "INSERT INTO explanations (compound, round_id, text, given_by, recorded_by,"
            " recorded_at) VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
            row,
        ).fetchone()
        return Explanation(int(new_id), *row)

    async def add(
        self,
        compound: str,
        round_id: str,
        text: str,
        *,
        given_by: str,
        recorded_by: str,
        now: float,
    ) -> Explanation:
        text = clean_text(text, "text", MAX_TEXT, required=True)
        given_by = clean_text(given_by, "given_by", MAX_NAME, required=False)
        recorded_by = clean_text(recorded_by, "recorded_by", MAX_NAME, required=True)
        row = (compound, round_id, text, given_by, recorded_by, now)
        return await self._run(lambda: self._atomic(lambda db: self._insert(db, row)))

    async def all(self, compound: str | None = None) -> list[Explanation]:
        def op() -> list[Explanation]:
            sql = (
                "SELECT id, compound, round_id, text, given_by, recorded_by, recorded_at"
                " FROM explanations"
            )
            args: tuple[str, ...] = ()
            if compound is not None:
                sql += " WHERE compound = ?"
                args = (compound,)
            rows = self.db.execute(sql + " ORDER BY recorded_at, id", args).fetchall()
            return [Explanation(*r) for r in rows]

        return await self._run(op)

    async def add_via_link(
        self,
        compound: str,
        day: str,
        round_ids: Sequence[str],
        text: str,
        *,
        given_by: str,
        now: float,
    ) -> list[Explanation]:
        """One explanation for each of ``round_ids`` (the compound's missed rounds of ``day``)
        and the link's use, in one transaction; :class:`LinkUsed` if the link of this compound
        and day was used before (then nothing is written)."""
        text = clean_text(text, "text", MAX_TEXT, required=True)
        given_by = clean_text(given_by, "given_by", MAX_NAME, required=False)
        if not round_ids:
            raise BadRequest("no round to explain")

        def tx(db: Any) -> list[Explanation]:
            used = db.execute(
                "INSERT INTO explanation_links_used (compound, day, used_at)"
                " VALUES (?, ?, ?) ON CONFLICT (compound, day) DO NOTHING",
                (compound, day, now),
            )
            if used.rowcount != 1:
                raise LinkUsed(f"the link of {compound!r} for {day} was used")
            return [
                self._insert(db, (compound, round_id, text, given_by, LINK_RECORDER, now))
                for round_id in round_ids
            ]

        return await self._run(lambda: self._atomic(tx))

    async def link_used_at(self, compound: str, day: str) -> float | None:
        """When the link of ``compound`` and ``day`` was used, or None."""

        def op() -> float | None:
            row = self.db.execute(
                "SELECT used_at FROM explanation_links_used WHERE compound = ? AND day = ?",
                (compound, day),
            ).fetchone()
            return None if row is None else float(row[0])

        return await self._run(op)


class SqliteExplanationStore(SqliteWorker, ExplanationSql):
    """The default :class:`ExplanationStore`: SQLite (WAL, synchronous=FULL), one thread."""

    THREAD_NAME_PREFIX = "centre-bulletins"
    CLOSED_MESSAGE = "explanation store is closed"

    def _connect(self) -> sqlite3.Connection:
        # 0600: names of guards and chiefs, not for other local users. Plain tuples as rows.
        db = connect_durable(self._path)
        db.executescript(_SCHEMA)
        return db


__all__ = [
    "FILENAME",
    "ExplanationSql",
    "ExplanationStore",
    "SqliteExplanationStore",
    "clean_text",
]
