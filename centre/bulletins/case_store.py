"""The month's reported cases, stored: versioned imports, each whole or not at all, audited.

    async with await SqliteCaseStore.open(data_dir / FILENAME) as cases:
        imp = await cases.import_csv(raw, month="2026-11", compounds=enrolled,
                                     imported_by="duty-1", now=time.time())
        rows = await cases.rows("2026-11")          # the current version's rows
        history = await cases.imports("2026-11")    # every import of the month, oldest first

The file is parsed by :func:`centre.bulletins.cases.parse_cases_csv` (one
:class:`~centre.bulletins.cases.CaseImportError` naming row and column for the first bad row)
before anything is written; the rows are then written in one SQLite transaction, so a file that
fails at any point, in parsing or in storing, leaves the month exactly as it was. A corrected
file is a new version of the month: it replaces the previous one as the current figures, and the
old rows stay, so every version can be read back. Each import is the audit record: who, when, the
file's SHA-256, its row count and totals, and the totals of the version it replaced.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final, Self, TypeVar

from centre.bulletins.cases import (
    DEFAULT_CATEGORIES,
    CaseCategory,
    CaseImportError,
    CaseRow,
    parse_cases_csv,
)
from centre.bulletins.model import parse_month
from centre.sqlite_worker import SqliteWorker, connect_durable

T = TypeVar("T")

FILENAME: Final = "bulletins.db"

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS case_imports (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    month       TEXT NOT NULL,
    version     INTEGER NOT NULL,
    imported_by TEXT NOT NULL,
    imported_at REAL NOT NULL,
    sha256      TEXT NOT NULL,
    rows        INTEGER NOT NULL,
    preventable INTEGER NOT NULL,
    total       INTEGER NOT NULL,
    replaced_version     INTEGER,
    replaced_preventable INTEGER,
    replaced_total       INTEGER,
    UNIQUE (month, version)
);
CREATE TABLE IF NOT EXISTS case_rows (
    import_id INTEGER NOT NULL REFERENCES case_imports (id),
    compound  TEXT NOT NULL,
    day       TEXT NOT NULL,
    category  TEXT NOT NULL,
    count     INTEGER NOT NULL CHECK (count >= 0),
    PRIMARY KEY (import_id, compound, day, category)
)
"""


@dataclass(frozen=True, slots=True)
class CaseImport:
    """One import of a month's cases (the audit record)."""

    id: int
    month: str
    version: int
    imported_by: str
    imported_at: float
    sha256: str
    rows: int
    preventable: int
    total: int
    replaced_version: int | None
    replaced_preventable: int | None
    replaced_total: int | None


_IMPORT_COLUMNS: Final = (
    "id, month, version, imported_by, imported_at, sha256, rows, preventable, total,"
    " replaced_version, replaced_preventable, replaced_total"
)


class CaseSql:
    """The case store's logic in SQL both backends speak (``?`` placeholders). A backend gives
    :attr:`db`, :meth:`_run`, :meth:`_atomic` (a function inside one transaction, which holds
    the month's versions still) and :attr:`INTEGRITY` (its constraint-violation errors):
    :class:`SqliteCaseStore` in ``bulletins.db``, or
    :class:`centre.bulletins.pg_store.PostgresCaseStore` on the centre's PostgreSQL."""

    db: Any  # a backend's plumbing comes first in the subclass's bases
    INTEGRITY: tuple[type[Exception], ...] = ()

    async def _run(self, fn: Callable[[], T]) -> T:
        raise NotImplementedError

    def _atomic(self, fn: Callable[[Any], T]) -> T:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def import_csv(
        self,
        raw: bytes,
        *,
        month: str,
        compounds: Collection[str],
        imported_by: str,
        now: float,
        categories: Sequence[CaseCategory] = DEFAULT_CATEGORIES,
    ) -> CaseImport:
        """Parse ``raw`` and store it as the month's new version; :class:`CaseImportError`
        (only) for a file refused, and then the month is unchanged."""
        try:
            parse_month(month)
        except ValueError as exc:
            raise CaseImportError(str(exc)) from None
        digest = hashlib.sha256(raw).hexdigest()
        compounds = frozenset(compounds)

        def op() -> CaseImport:
            # Parsing (up to 4 MiB) runs here, on the store's thread, not on the event loop.
            rows = parse_cases_csv(raw, month=month, compounds=compounds, categories=categories)
            return self._replace(month, rows, digest, imported_by, now, categories)

        return await self._run(op)

    async def replace_month(
        self,
        month: str,
        rows: Iterable[CaseRow],
        *,
        imported_by: str,
        now: float,
        sha256: str = "",
        categories: Sequence[CaseCategory] = DEFAULT_CATEGORIES,
    ) -> CaseImport:
        """Store already-parsed ``rows`` as the month's new version, in one transaction."""
        rows = list(rows)
        return await self._run(
            lambda: self._replace(month, rows, sha256, imported_by, now, categories)
        )

    def _replace(
        self,
        month: str,
        rows: Sequence[CaseRow],
        digest: str,
        imported_by: str,
        now: float,
        categories: Sequence[CaseCategory],
    ) -> CaseImport:
        preventable_ids = {c.id for c in categories if c.preventable}
        total = sum(r.count for r in rows)
        preventable = sum(r.count for r in rows if r.category in preventable_ids)

        def tx(db: Any) -> CaseImport:
            last = db.execute(
                "SELECT version, preventable, total FROM case_imports WHERE month = ?"
                " ORDER BY version DESC LIMIT 1",
                (month,),
            ).fetchone()
            version = 1 if last is None else int(last[0]) + 1
            prev = (None, None, None) if last is None else tuple(last)
            cur = db.execute(
                "INSERT INTO case_imports (month, version, imported_by, imported_at, sha256, rows,"
                " preventable, total, replaced_version, replaced_preventable, replaced_total)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                (month, version, imported_by, now, digest, len(rows), preventable, total, *prev),
            )
            import_id = int(cur.fetchone()[0])
            for n, r in enumerate(rows, start=1):
                try:
                    db.execute(
                        "INSERT INTO case_rows (import_id, compound, day, category, count)"
                        " VALUES (?, ?, ?, ?, ?)",
                        (import_id, r.compound, r.day, r.category, r.count),
                    )
                except self.INTEGRITY as exc:
                    # The transaction rolls back: nothing of this import is kept.
                    raise CaseImportError(f"row {n} could not be stored: {exc}") from None
            return CaseImport(
                import_id, month, version, imported_by, now, digest, len(rows), preventable, total,
                *prev,
            )  # fmt: skip

        return self._atomic(tx)

    async def rows(self, month: str) -> list[CaseRow]:
        """The current (latest) version's rows of ``month``; [] if never imported."""

        def op() -> list[CaseRow]:
            found = self.db.execute(
                "SELECT compound, day, category, count FROM case_rows WHERE import_id = ("
                " SELECT id FROM case_imports WHERE month = ? ORDER BY version DESC LIMIT 1)"
                " ORDER BY compound, day, category",
                (month,),
            ).fetchall()
            return [CaseRow(*r) for r in found]

        return await self._run(op)

    async def imports(self, month: str) -> list[CaseImport]:
        """Every import of ``month``, oldest first (the audit trail)."""

        def op() -> list[CaseImport]:
            found = self.db.execute(
                f"SELECT {_IMPORT_COLUMNS} FROM case_imports WHERE month = ? ORDER BY version",
                (month,),
            ).fetchall()
            return [CaseImport(*r) for r in found]

        return await self._run(op)

    async def imported(self, month: str) -> bool:
        """Whether ``month`` has case figures (else nobody can be "zero-incident")."""
        return bool(await self.imports(month))


class SqliteCaseStore(SqliteWorker, CaseSql):
    """Case imports in SQLite (WAL, synchronous=FULL), one worker thread."""

    THREAD_NAME_PREFIX = "centre-cases"
    CLOSED_MESSAGE = "case store is closed"
    INTEGRITY = (sqlite3.IntegrityError,)

    def _connect(self) -> sqlite3.Connection:
        db = connect_durable(self._path)
        db.executescript(_SCHEMA)
        return db


__all__ = ["FILENAME", "CaseImport", "CaseSql", "SqliteCaseStore"]
