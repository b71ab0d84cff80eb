"""The resident phone survey, stored: contact lists, monthly draws, calls, reveals (audited).

    async with await SqliteSurveyStore.open(data_dir / FILENAME) as survey:
        imp = await survey.import_residents(raw, compounds=enrolled, imported_by="duty-1", now=t)
        draw = await survey.draw("2026-11", drawn_by="clerk-1", now=t)   # 20 per compound
        sheet = await survey.sheet("2026-11")          # masked numbers, outcomes so far
        phone = await survey.reveal("2026-11", resident_id, by="clerk-1", now=t)  # audited
        await survey.record("2026-11", resident_id, "satisfied", "", by="clerk-1", now=t)
        rates = await survey.rates("2026-11")          # {compound: SurveyRate}

Theory of operation
-------------------
* **Contact list**: each import is parsed whole by
  :func:`centre.bulletins.residents.parse_residents_csv` and written in one transaction; the
  latest import is the current list (older ones stay, with who imported them and the file's
  SHA-256).
* **Draw**: once per month, from the current list, by
  :func:`centre.bulletins.survey.draw_sample` with a seed from the operating system's random
  source, stored beside the sample with the list it was drawn from; :meth:`verify_draw` draws
  again from the stored list and seed and compares (an auditor's check). A second draw of the
  same month is refused.
* **Reveal**: the call sheet shows numbers masked; revealing one returns it and appends a row
  (month, resident, compound, who, when) to ``survey_reveals``. Triggers refuse any UPDATE or
  DELETE of that table and of ``survey_outcomes``: the trail is append-only.
* **Outcomes**: each recording appends; a resident's latest outcome counts. The rate per
  compound is :func:`centre.bulletins.survey.rate` over the sample (satisfied among reached;
  nobody reached: unknown).
"""

from __future__ import annotations

import hashlib
import secrets
import sqlite3
from collections.abc import Callable, Collection
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Final, Self, TypeVar

from centre.bulletins.model import parse_month
from centre.bulletins.residents import ResidentImportError, parse_residents_csv
from centre.bulletins.survey import (
    DEFAULT_PER_COMPOUND,
    OUTCOMES,
    Resident,
    SurveyRate,
    draw_sample,
    mask_phone,
    rate,
)
from centre.errors import BadRequest, CentreError
from centre.sqlite_worker import SqliteWorker, atomic, connect_durable

T = TypeVar("T")

FILENAME: Final = "bulletins.db"
MAX_REMARKS: Final = 500
MAX_PER_COMPOUND: Final = 500

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS resident_imports (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    imported_by TEXT NOT NULL,
    imported_at REAL NOT NULL,
    sha256      TEXT NOT NULL,
    rows        INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS residents (
    import_id INTEGER NOT NULL REFERENCES resident_imports (id),
    id        TEXT NOT NULL,
    compound  TEXT NOT NULL,
    phone     TEXT NOT NULL,
    PRIMARY KEY (import_id, id)
);
CREATE TABLE IF NOT EXISTS survey_draws (
    month        TEXT PRIMARY KEY,
    seed         INTEGER NOT NULL,
    per_compound INTEGER NOT NULL,
    import_id    INTEGER NOT NULL REFERENCES resident_imports (id),
    drawn_by     TEXT NOT NULL,
    drawn_at     REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS survey_sample (
    month       TEXT NOT NULL REFERENCES survey_draws (month),
    resident_id TEXT NOT NULL,
    compound    TEXT NOT NULL,
    phone       TEXT NOT NULL,
    position    INTEGER NOT NULL,
    PRIMARY KEY (month, resident_id)
);
CREATE TABLE IF NOT EXISTS survey_outcomes (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    month       TEXT NOT NULL,
    resident_id TEXT NOT NULL,
    outcome     TEXT NOT NULL,
    remarks     TEXT NOT NULL,
    recorded_by TEXT NOT NULL,
    recorded_at REAL NOT NULL,
    FOREIGN KEY (month, resident_id) REFERENCES survey_sample (month, resident_id)
);
CREATE TABLE IF NOT EXISTS survey_reveals (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    month       TEXT NOT NULL,
    resident_id TEXT NOT NULL,
    compound    TEXT NOT NULL,
    revealed_by TEXT NOT NULL,
    revealed_at REAL NOT NULL
);
CREATE TRIGGER IF NOT EXISTS survey_reveals_no_update BEFORE UPDATE ON survey_reveals
BEGIN SELECT RAISE(ABORT, 'survey_reveals is append-only'); END;
CREATE TRIGGER IF NOT EXISTS survey_reveals_no_delete BEFORE DELETE ON survey_reveals
BEGIN SELECT RAISE(ABORT, 'survey_reveals is append-only'); END;
CREATE TRIGGER IF NOT EXISTS survey_outcomes_no_update BEFORE UPDATE ON survey_outcomes
BEGIN SELECT RAISE(ABORT, 'survey_outcomes is append-only'); END;
CREATE TRIGGER IF NOT EXISTS survey_outcomes_no_delete BEFORE DELETE ON survey_outcomes
BEGIN SELECT RAISE(ABORT, 'survey_outcomes is append-only'); END;
"""


class SurveyRefused(CentreError):
    status = 409
    code = "survey_refused"


class NotInSample(CentreError):
    status = 404
    code = "not_in_sample"


@dataclass(frozen=True, slots=True)
class ResidentImport:
    id: int
    imported_by: str
    imported_at: float
    sha256: str
    rows: int


@dataclass(frozen=True, slots=True)
class Draw:
    month: str
    seed: int
    per_compound: int
    import_id: int
    drawn_by: str
    drawn_at: float
    sampled: int


@dataclass(frozen=True, slots=True)
class CallRow:
    """One resident on the call sheet (the number masked)."""

    compound: str
    resident_id: str
    masked: str
    position: int
    outcome: str | None
    remarks: str
    recorded_by: str
    recorded_at: float | None
    reveals: int


@dataclass(frozen=True, slots=True)
class Reveal:
    id: int
    month: str
    resident_id: str
    compound: str
    revealed_by: str
    revealed_at: float


def _month(month: str) -> str:
    try:
        parse_month(month)
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    return month


class SurveySql:
    """The survey's logic in SQL both backends speak (``?`` placeholders). A backend gives
    :attr:`db`, :meth:`_run`, :meth:`_tx` (one transaction, holding the survey's writes
    still) and :attr:`INTEGRITY` (its constraint-violation errors): :class:`SqliteSurveyStore`
    in ``bulletins.db``, or :class:`centre.bulletins.pg_store.PostgresSurveyStore` on the
    centre's PostgreSQL."""

    db: Any  # a backend's plumbing comes first in the subclass's bases
    INTEGRITY: tuple[type[Exception], ...] = ()

    async def _run(self, fn: Callable[[], T]) -> T:
        raise NotImplementedError

    def _tx(self) -> AbstractContextManager[Any]:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- contact list ----------------------------------------------------------------------

    async def import_residents(
        self, raw: bytes, *, compounds: Collection[str], imported_by: str, now: float
    ) -> ResidentImport:
        """Parse and store ``raw`` as the current list; :class:`ResidentImportError` (only) for a
        file refused, and then nothing was written."""
        digest = hashlib.sha256(raw).hexdigest()
        compounds = frozenset(compounds)

        def op() -> ResidentImport:
            residents = parse_residents_csv(raw, compounds=compounds)
            with self._tx():
                cur = self.db.execute(
                    "INSERT INTO resident_imports (imported_by, imported_at, sha256, rows)"
                    " VALUES (?, ?, ?, ?) RETURNING id",
                    (imported_by, now, digest, len(residents)),
                )
                import_id = int(cur.fetchone()[0])
                try:
                    self.db.executemany(
                        "INSERT INTO residents (import_id, id, compound, phone)"
                        " VALUES (?, ?, ?, ?)",
                        [(import_id, r.id, r.compound, r.phone) for r in residents],
                    )
                except self.INTEGRITY as exc:
                    raise ResidentImportError(f"the list could not be stored: {exc}") from None
            return ResidentImport(import_id, imported_by, now, digest, len(residents))

        return await self._run(op)

    def _residents(self, import_id: int) -> list[Resident]:
        found = self.db.execute(
            "SELECT id, compound, phone FROM residents WHERE import_id = ? ORDER BY id",
            (import_id,),
        ).fetchall()
        return [Resident(*r) for r in found]

    # -- draw ------------------------------------------------------------------------------

    async def draw(
        self,
        month: str,
        *,
        drawn_by: str,
        now: float,
        per_compound: int = DEFAULT_PER_COMPOUND,
        seed: int | None = None,
    ) -> Draw:
        """Draw the month's sample from the current list (once per month)."""
        month = _month(month)
        if not 1 <= per_compound <= MAX_PER_COMPOUND:
            raise BadRequest(f"per_compound must be 1 to {MAX_PER_COMPOUND}")
        seed = secrets.randbits(62) if seed is None else seed

        def op() -> Draw:
            with self._tx():
                if self.db.execute(
                    "SELECT 1 FROM survey_draws WHERE month = ?", (month,)
                ).fetchone():
                    raise SurveyRefused(f"the sample of {month} was already drawn")
                last = self.db.execute(
                    "SELECT id FROM resident_imports ORDER BY id DESC LIMIT 1"
                ).fetchone()
                if last is None:
                    raise SurveyRefused("no resident contact list has been imported")
                import_id = int(last[0])
                sample = draw_sample(
                    self._residents(import_id), per_compound=per_compound, seed=seed
                )
                self.db.execute(
                    "INSERT INTO survey_draws (month, seed, per_compound, import_id, drawn_by,"
                    " drawn_at) VALUES (?, ?, ?, ?, ?, ?)",
                    (month, seed, per_compound, import_id, drawn_by, now),
                )
                rows = [
                    (month, r.id, compound, r.phone, i)
                    for compound, people in sample.items()
                    for i, r in enumerate(people)
                ]
                self.db.executemany(
                    "INSERT INTO survey_sample (month, resident_id, compound, phone, position)"
                    " VALUES (?, ?, ?, ?, ?)",
                    rows,
                )
            return Draw(month, seed, per_compound, import_id, drawn_by, now, len(rows))

        return await self._run(op)

    async def drawn(self, month: str) -> Draw | None:
        month = _month(month)

        def op() -> Draw | None:
            row = self.db.execute(
                "SELECT month, seed, per_compound, import_id, drawn_by, drawn_at,"
                " (SELECT COUNT(*) FROM survey_sample s WHERE s.month = d.month)"
                " FROM survey_draws d WHERE month = ?",
                (month,),
            ).fetchone()
            return None if row is None else Draw(*row)

        return await self._run(op)

    async def verify_draw(self, month: str) -> bool:
        """Draw again from the stored list and seed: the same residents in the same order?"""
        month = _month(month)

        def op() -> bool:
            row = self.db.execute(
                "SELECT seed, per_compound, import_id FROM survey_draws WHERE month = ?", (month,)
            ).fetchone()
            if row is None:
                return False
            again = draw_sample(self._residents(int(row[2])), per_compound=row[1], seed=row[0])
            stored = self.db.execute(
                "SELECT compound, resident_id FROM survey_sample WHERE month = ?"
                " ORDER BY compound, position",
                (month,),
            ).fetchall()
            redrawn = [(c, r.id) for c in sorted(again) for r in again[c]]
            return [tuple(s) for s in stored] == redrawn

        return await self._run(op)

    # -- the call sheet --------------------------------------------------------------------

    async def sheet(self, month: str) -> list[CallRow]:
        month = _month(month)

        def op() -> list[CallRow]:
            found = self.db.execute(
                """
                SELECT s.compound, s.resident_id, s.phone, s.position,
                       o.outcome, o.remarks, o.recorded_by, o.recorded_at,
                       (SELECT COUNT(*) FROM survey_reveals v
                         WHERE v.month = s.month AND v.resident_id = s.resident_id)
                FROM survey_sample s
                LEFT JOIN survey_outcomes o ON o.id = (
                    SELECT MAX(id) FROM survey_outcomes x
                     WHERE x.month = s.month AND x.resident_id = s.resident_id)
                WHERE s.month = ?
                ORDER BY s.compound, s.position
                """,
                (month,),
            ).fetchall()
            return [
                CallRow(c, rid, mask_phone(phone), pos, out, rem or "", by or "", at, n)
                for c, rid, phone, pos, out, rem, by, at, n in found
            ]

        return await self._run(op)

    async def reveal(self, month: str, resident_id: str, *, by: str, now: float) -> str:
        """The resident's full number; the reveal is recorded before it is returned."""
        month = _month(month)

        def op() -> str:
            with self._tx():
                row = self.db.execute(
                    "SELECT compound, phone FROM survey_sample WHERE month = ? AND resident_id = ?",
                    (month, resident_id),
                ).fetchone()
                if row is None:
                    raise NotInSample("that resident is not in this month's sample")
                self.db.execute(
                    "INSERT INTO survey_reveals (month, resident_id, compound, revealed_by,"
                    " revealed_at) VALUES (?, ?, ?, ?, ?)",
                    (month, resident_id, row[0], by, now),
                )
            return str(row[1])

        return await self._run(op)

    async def reveals(self, month: str) -> list[Reveal]:
        month = _month(month)

        def op() -> list[Reveal]:
            found = self.db.execute(
                "SELECT id, month, resident_id, compound, revealed_by, revealed_at"
                " FROM survey_reveals WHERE month = ? ORDER BY id",
                (month,),
            ).fetchall()
            return [Reveal(*r) for r in found]

        return await self._run(op)

    async def record(
        self, month: str, resident_id: str, outcome: str, remarks: str, *, by: str, now: float
    ) -> None:
        month = _month(month)
        if outcome not in OUTCOMES:
            raise BadRequest(f"outcome must be one of {', '.join(OUTCOMES)}")
        remarks = remarks.strip()
        if len(remarks) > MAX_REMARKS:
            raise BadRequest(f"remarks are at most {MAX_REMARKS} characters")

        def op() -> None:
            with self._tx():
                if not self.db.execute(
                    "SELECT 1 FROM survey_sample WHERE month = ? AND resident_id = ?",
                    (month, resident_id),
                ).fetchone():
                    raise NotInSample("that resident is not in this month's sample")
                self.db.execute(
                    "INSERT INTO survey_outcomes (month, resident_id, outcome, remarks,"
                    " recorded_by, recorded_at) VALUES (?, ?, ?, ?, ?, ?)",
                    (month, resident_id, outcome, remarks, by, now),
                )

        await self._run(op)

    async def rates(self, month: str) -> dict[str, SurveyRate]:
        """Per compound of the month's sample: sampled, reached, satisfied (latest outcomes)."""
        rows = await self.sheet(month)
        by: dict[str, list[str | None]] = {}
        for r in rows:
            by.setdefault(r.compound, []).append(r.outcome)
        return {c: rate(outcomes) for c, outcomes in sorted(by.items())}


class SqliteSurveyStore(SqliteWorker, SurveySql):
    """The survey's tables in SQLite (WAL, synchronous=FULL), one worker thread."""

    THREAD_NAME_PREFIX = "centre-survey"
    CLOSED_MESSAGE = "survey store is closed"
    INTEGRITY = (sqlite3.IntegrityError,)

    def _connect(self) -> sqlite3.Connection:
        db = connect_durable(self._path)
        db.executescript(_SCHEMA)
        return db

    def _tx(self) -> AbstractContextManager[Any]:
        return atomic(self.db)


def township_rates(
    rates: dict[str, SurveyRate], township_of: dict[str, str]
) -> dict[str, SurveyRate]:
    """Pool compound rates per township (satisfied among reached across its compounds)."""
    out: dict[str, SurveyRate] = {}
    for compound, r in rates.items():
        t = township_of.get(compound, "")
        p = out.get(t, SurveyRate(0, 0, 0))
        out[t] = SurveyRate(p.sampled + r.sampled, p.reached + r.reached, p.satisfied + r.satisfied)
    return dict(sorted(out.items()))


__all__ = [
    "FILENAME",
    "CallRow",
    "Draw",
    "NotInSample",
    "ResidentImport",
    "Reveal",
    "SqliteSurveyStore",
    "SurveyRefused",
    "SurveySql",
    "township_rates",
]
