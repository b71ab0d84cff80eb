"""The push outbox: every message part a group robot is owed, and every attempt to deliver it.

Theory of operation
-------------------
A day's bulletin for one group is split into parts once and stored, keyed by (day, group, part
number), before anything is sent; enqueueing the same day and group again keeps the stored parts
(a bulletin re-rendered after a restart cannot renumber or duplicate what was already sent).
A part moves ``pending`` → ``sending`` (an attempt row is written *before* the POST) → ``sent``
or back to ``pending`` with the reply's errcode/errmsg, or ``failed`` once retrying cannot help.

Exactly once: a part marked ``sent`` is never offered again, and a part is offered only when
every part before it was sent, so a restart resumes at the first unsent part. The one window
no store can close is a crash between the robot's reply and this file's commit (milliseconds):
such a part is found ``sending`` at the next open, is offered again and is flagged ``in_doubt``
so the console can say it may have reached the group twice.

Alerts (:mod:`centre.push.scan`) are messages too, keyed by the alert instead of a day
(``alert:tamper:a42``) and marked with their ``kind`` and ``subject`` (the compounds); the scan
stores them with its cursors (``push_cursors``) and the outages it opened or closed
(``push_outages``) in one transaction (:meth:`PushOutbox.commit_scan`), so what a scan found is
owed exactly once. Older files get the two columns at open (``daily`` for what they hold).

The attempts also pace the robot across restarts: their start times are what
:class:`~centre.push.plan.Pacer` counts (a failed attempt is still a message to the robot).

    outbox = await PushOutbox.open(data_dir / "push.db")
    await outbox.enqueue("2026-11-02", "district leaders", parts, now=t)
    part = await outbox.next_part("2026-11-02", "district leaders")
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from centre.sqlite_worker import SqliteWorker, atomic, connect_durable

FILENAME: Final = "push.db"

PENDING: Final = "pending"
SENDING: Final = "sending"
SENT: Final = "sent"
FAILED: Final = "failed"

# Outcomes of one attempt.
OK: Final = "ok"
ERRCODE: Final = "errcode"
MALFORMED: Final = "malformed"
NETWORK: Final = "network"
INTERRUPTED: Final = "interrupted"

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS push_parts (
    day         TEXT NOT NULL,
    grp         TEXT NOT NULL,
    part        INTEGER NOT NULL,
    parts       INTEGER NOT NULL,
    content     TEXT NOT NULL,
    state       TEXT NOT NULL DEFAULT 'pending',
    attempts    INTEGER NOT NULL DEFAULT 0,
    errcode     INTEGER,
    detail      TEXT NOT NULL DEFAULT '',
    in_doubt    INTEGER NOT NULL DEFAULT 0,
    enqueued_at REAL NOT NULL,
    sent_at     REAL,
    PRIMARY KEY (day, grp, part)
);
CREATE TABLE IF NOT EXISTS push_attempts (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    day         TEXT NOT NULL,
    grp         TEXT NOT NULL,
    part        INTEGER NOT NULL,
    started_at  REAL NOT NULL,
    finished_at REAL,
    outcome     TEXT,
    errcode     INTEGER,
    detail      TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS push_attempts_grp ON push_attempts (grp, started_at);
CREATE TABLE IF NOT EXISTS push_cursors (
    source   TEXT PRIMARY KEY,
    position INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS push_outages (
    gateway_id   TEXT NOT NULL,
    since        REAL NOT NULL,
    opened_at    REAL NOT NULL,
    recovered_at REAL,
    PRIMARY KEY (gateway_id, since)
);
"""
# Added with the alerts (centre/push/alerts.py): what a message is, and whom it is about. A
# ``daily`` message's key (``day``) is its patrol day; an alert's is the alert's own key.
_COLUMNS_ADDED: Final = (
    ("kind", "TEXT NOT NULL DEFAULT 'daily'"),
    ("subject", "TEXT NOT NULL DEFAULT ''"),
)
DAILY: Final = "daily"


@dataclass(frozen=True, slots=True)
class Part:
    """One message owed to a group: part ``part`` of ``parts`` of the day's bulletin."""

    day: str
    group: str
    part: int
    parts: int
    content: str
    state: str
    attempts: int
    errcode: int | None
    detail: str
    in_doubt: bool
    enqueued_at: float
    sent_at: float | None
    kind: str = DAILY  # daily, or an alert kind (centre/push/alerts.py)
    subject: str = ""  # an alert's compound(s), for the console


@dataclass(frozen=True, slots=True)
class Owed:
    """One alert message owed to one group, as the scan stores it (see :meth:`commit_scan`)."""

    key: str
    group: str
    kind: str
    subject: str
    parts: list[str]


@dataclass(frozen=True, slots=True)
class Outage:
    """A gateway silent since ``since`` (its last contact), recorded once when first seen."""

    gateway_id: str
    since: float
    opened_at: float
    recovered_at: float | None


@dataclass(frozen=True, slots=True)
class Attempt:
    """One POST of one part, as recorded (``outcome`` None: never finished, e.g. a crash)."""

    id: int
    day: str
    group: str
    part: int
    started_at: float
    finished_at: float | None
    outcome: str | None
    errcode: int | None
    detail: str


_PART_COLUMNS: Final = (
    "day, grp, part, parts, content, state, attempts, errcode, detail, in_doubt, enqueued_at,"
    " sent_at, kind, subject"
)


def _part(row: tuple[object, ...]) -> Part:
    fields = list(row)
    fields[9] = bool(fields[9])
    return Part(*fields)  # type: ignore[arg-type]


class PushOutbox(SqliteWorker):
    """The outbox in one SQLite file (WAL, synchronous=FULL), every call on one thread."""

    THREAD_NAME_PREFIX = "centre-push"
    CLOSED_MESSAGE = "push outbox is closed"

    def _connect(self) -> sqlite3.Connection:
        db = connect_durable(self._path)
        db.executescript(_SCHEMA)
        have = {row[1] for row in db.execute("PRAGMA table_info(push_parts)")}
        for name, decl in _COLUMNS_ADDED:
            if name not in have:
                db.execute(f"ALTER TABLE push_parts ADD COLUMN {name} {decl}")
        # An attempt left unfinished was cut short by a stop or a crash: whether the robot got
        # it is unknown, so the part is offered again and flagged.
        with atomic(db):
            db.execute(
                "UPDATE push_attempts SET outcome = ?, detail = 'centre stopped during the POST'"
                " WHERE outcome IS NULL",
                (INTERRUPTED,),
            )
            db.execute(
                "UPDATE push_parts SET state = ?, in_doubt = 1 WHERE state = ?", (PENDING, SENDING)
            )
        return db

    async def enqueue(self, day: str, group: str, parts: list[str], *, now: float) -> bool:
        """Store the parts of ``day``'s message to ``group``; False (and nothing changed) when
        that day and group were enqueued before."""
        if not parts:
            raise ValueError("nothing to enqueue")

        def op() -> bool:
            with atomic(self.db):
                row = self.db.execute(
                    "SELECT 1 FROM push_parts WHERE day = ? AND grp = ? LIMIT 1", (day, group)
                ).fetchone()
                if row is not None:
                    return False
                self.db.executemany(
                    "INSERT INTO push_parts (day, grp, part, parts, content, enqueued_at)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    [(day, group, i, len(parts), c, now) for i, c in enumerate(parts, start=1)],
                )
                return True

        return await self._run(op)

    async def next_part(self, day: str, group: str) -> Part | None:
        """The first part of ``day`` for ``group`` not yet sent (its state may be ``failed``:
        then nothing after it goes until it is retried), or None when all were sent."""

        def op() -> Part | None:
            row = self.db.execute(
                f"SELECT {_PART_COLUMNS} FROM push_parts WHERE day = ? AND grp = ? AND state != ?"
                " ORDER BY part LIMIT 1",
                (day, group, SENT),
            ).fetchone()
            return None if row is None else _part(row)

        return await self._run(op)

    async def retry_failed(self, day: str, group: str) -> int:
        """Offer the failed parts of ``day`` for ``group`` again (an operator fixed the cause)."""

        def op() -> int:
            cur = self.db.execute(
                "UPDATE push_parts SET state = ?, attempts = 0 WHERE day = ? AND grp = ?"
                " AND state = ?",
                (PENDING, day, group, FAILED),
            )
            return cur.rowcount

        return await self._run(op)

    async def begin_attempt(self, day: str, group: str, part: int, *, now: float) -> int:
        """Record that part ``part`` is about to be POSTed; returns the attempt's id."""

        def op() -> int:
            with atomic(self.db):
                cur = self.db.execute(
                    "UPDATE push_parts SET state = ?, attempts = attempts + 1"
                    " WHERE day = ? AND grp = ? AND part = ? AND state IN (?, ?)",
                    (SENDING, day, group, part, PENDING, FAILED),
                )
                if cur.rowcount != 1:
                    raise RuntimeError(f"part {part} of {day} for {group!r} is not waiting")
                cur = self.db.execute(
                    "INSERT INTO push_attempts (day, grp, part, started_at) VALUES (?, ?, ?, ?)",
                    (day, group, part, now),
                )
                assert cur.lastrowid is not None
                return cur.lastrowid

        return await self._run(op)

    async def finish_attempt(
        self,
        attempt_id: int,
        *,
        outcome: str,
        errcode: int | None,
        detail: str,
        give_up: bool,
        now: float,
    ) -> Part:
        """Record how attempt ``attempt_id`` ended; the part becomes ``sent``, or ``pending``
        again, or ``failed`` when ``give_up``. Returns the part as now stored."""

        def op() -> Part:
            with atomic(self.db):
                day, group, part = self.db.execute(
                    "SELECT day, grp, part FROM push_attempts WHERE id = ?", (attempt_id,)
                ).fetchone()
                self.db.execute(
                    "UPDATE push_attempts SET finished_at = ?, outcome = ?, errcode = ?,"
                    " detail = ? WHERE id = ?",
                    (now, outcome, errcode, detail, attempt_id),
                )
                state = SENT if outcome == OK else FAILED if give_up else PENDING
                self.db.execute(
                    "UPDATE push_parts SET state = ?, errcode = ?, detail = ?,"
                    " sent_at = CASE WHEN ? = 'sent' THEN ? ELSE sent_at END"
                    " WHERE day = ? AND grp = ? AND part = ?",
                    (state, errcode, detail, state, now, day, group, part),
                )
                row = self.db.execute(
                    f"SELECT {_PART_COLUMNS} FROM push_parts WHERE day = ? AND grp = ?"
                    " AND part = ?",
                    (day, group, part),
                ).fetchone()
                return _part(row)

        return await self._run(op)

    async def send_times(self, group: str, *, since: float) -> list[float]:
        """Start times of the attempts to ``group``'s robot after ``since`` (for pacing)."""

        def op() -> list[float]:
            rows = self.db.execute(
                "SELECT started_at FROM push_attempts WHERE grp = ? AND started_at > ?"
                " ORDER BY started_at",
                (group, since),
            ).fetchall()
            return [float(r[0]) for r in rows]

        return await self._run(op)

    async def parts(self, day: str | None = None, group: str | None = None) -> list[Part]:
        """Every stored part (of ``day``, of ``group``), by day, group and number."""

        def op() -> list[Part]:
            sql = f"SELECT {_PART_COLUMNS} FROM push_parts WHERE 1"
            args: list[str] = []
            if day is not None:
                sql, args = sql + " AND day = ?", [*args, day]
            if group is not None:
                sql, args = sql + " AND grp = ?", [*args, group]
            rows = self.db.execute(sql + " ORDER BY day, grp, part", args).fetchall()
            return [_part(r) for r in rows]

        return await self._run(op)

    async def attempts(self, day: str, group: str) -> list[Attempt]:
        """Every attempt at ``day``'s parts for ``group``, oldest first."""

        def op() -> list[Attempt]:
            rows = self.db.execute(
                "SELECT id, day, grp, part, started_at, finished_at, outcome, errcode, detail"
                " FROM push_attempts WHERE day = ? AND grp = ? ORDER BY id",
                (day, group),
            ).fetchall()
            return [Attempt(*r) for r in rows]

        return await self._run(op)

    # -- alerts (centre/push/alerts.py) ----------------------------------------------------

    async def cursors(self) -> dict[str, int]:
        """How far each alert source was scanned (empty before the first scan)."""

        def op() -> dict[str, int]:
            rows = self.db.execute("SELECT source, position FROM push_cursors").fetchall()
            return {str(r[0]): int(r[1]) for r in rows}

        return await self._run(op)

    async def open_outages(self) -> dict[str, Outage]:
        """The outages recorded and not yet over, by gateway."""

        def op() -> dict[str, Outage]:
            rows = self.db.execute(
                "SELECT gateway_id, since, opened_at, recovered_at FROM push_outages"
                " WHERE recovered_at IS NULL ORDER BY since"
            ).fetchall()
            return {str(r[0]): Outage(*r) for r in rows}

        return await self._run(op)

    async def commit_scan(
        self,
        owed: list[Owed],
        cursors: dict[str, int],
        *,
        opened: Sequence[tuple[str, float]] = (),
        recovered: Sequence[tuple[str, float, float]] = (),
        now: float,
    ) -> int:
        """Store what one scan found in one transaction: the messages owed (a key and group
        stored before is left as it was), the sources' new positions, the outages opened
        (gateway, since) and ended (gateway, since, at). A crash before the commit leaves the
        scan undone (the next one finds the same alerts); after it, nothing is found twice.
        Returns how many messages were newly owed."""

        def op() -> int:
            added = 0
            with atomic(self.db):
                for o in owed:
                    if not o.parts:
                        raise ValueError("nothing to enqueue")
                    row = self.db.execute(
                        "SELECT 1 FROM push_parts WHERE day = ? AND grp = ? LIMIT 1",
                        (o.key, o.group),
                    ).fetchone()
                    if row is not None:
                        continue
                    self.db.executemany(
                        "INSERT INTO push_parts (day, grp, part, parts, content, enqueued_at,"
                        " kind, subject) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        [
                            (o.key, o.group, i, len(o.parts), c, now, o.kind, o.subject)
                            for i, c in enumerate(o.parts, start=1)
                        ],
                    )
                    added += 1
                self.db.executemany(
                    "INSERT INTO push_cursors (source, position) VALUES (?, ?)"
                    " ON CONFLICT (source) DO UPDATE SET position = excluded.position",
                    sorted(cursors.items()),
                )
                self.db.executemany(
                    "INSERT OR IGNORE INTO push_outages (gateway_id, since, opened_at)"
                    " VALUES (?, ?, ?)",
                    [(gw, since, now) for gw, since in opened],
                )
                self.db.executemany(
                    "UPDATE push_outages SET recovered_at = ? WHERE gateway_id = ? AND since = ?",
                    [(at, gw, since) for gw, since, at in recovered],
                )
            return added

        return await self._run(op)

    async def owed_alerts(self, group: str) -> list[str]:
        """Keys of the alert messages to ``group`` with a part still waiting (not failed for
        good), oldest first: what a (restarted) scan loop must still deliver."""

        def op() -> list[str]:
            rows = self.db.execute(
                "SELECT day, MIN(rowid) AS first FROM push_parts WHERE grp = ? AND kind != ?"
                " AND state != ? GROUP BY day HAVING SUM(state = ?) = 0 ORDER BY first",
                (group, DAILY, SENT, FAILED),
            ).fetchall()
            return [str(r[0]) for r in rows]

        return await self._run(op)


__all__ = [
    "DAILY",
    "FAILED",
    "FILENAME",
    "PENDING",
    "SENDING",
    "SENT",
    "Attempt",
    "Outage",
    "Owed",
    "Part",
    "PushOutbox",
]
