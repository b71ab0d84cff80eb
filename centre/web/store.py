"""Where the console keeps accounts, sessions and the audit log: a Protocol and two backends.

:class:`ConsoleStore` is what :class:`centre.web.console.Console` needs. The queries are
shared (:class:`ConsoleSql`, ``?`` placeholders). :class:`SqliteConsoleStore`, the default,
follows :class:`centre.sqlite_worker.SqliteWorker`: one connection on one thread, a 0600 file
(``console.db``), WAL, ``synchronous=FULL``. :class:`centre.web.pg_store.PostgresConsoleStore`
keeps the same tables on the centre's PostgreSQL, so several centre processes (and hosts)
share accounts, sessions and one audit chain (docs/scale.md); :func:`open_console_store`
picks the one the centre's configuration names.

Sessions are stored by the sha256 of their id, so a copy of the file does not let anyone in.
The audit table has no update or delete path here, and triggers refuse UPDATE and DELETE from
anyone else. (``"user"`` is quoted everywhere: a reserved word in PostgreSQL.)
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, Self, TypeVar

from centre.sqlite_worker import SqliteWorker, connect_durable
from centre.web.audit import GENESIS, AuditEntry, AuditRecord, seal
from centre.web.errors import ConsoleError
from centre.web.permissions import Role, User

T = TypeVar("T")

CONSOLE_DB = "console.db"  # the SQLite default's file in the centre's data directory

_SCHEMA = """
CREATE TABLE IF NOT EXISTS console_users (
    name TEXT PRIMARY KEY,
    role TEXT NOT NULL,
    township TEXT,
    compound TEXT,
    password_hash TEXT NOT NULL,
    disabled INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS console_sessions (
    id_hash TEXT PRIMARY KEY,
    "user" TEXT NOT NULL REFERENCES console_users(name),
    created REAL NOT NULL,
    last_seen REAL NOT NULL,
    client TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS console_sessions_user ON console_sessions("user");
CREATE TABLE IF NOT EXISTS console_audit (
    seq INTEGER PRIMARY KEY,
    at REAL NOT NULL,
    "user" TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    outcome TEXT NOT NULL,
    client TEXT NOT NULL,
    prev TEXT NOT NULL,
    digest TEXT NOT NULL
);
CREATE TRIGGER IF NOT EXISTS console_audit_no_update BEFORE UPDATE ON console_audit
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS console_audit_no_delete BEFORE DELETE ON console_audit
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TABLE IF NOT EXISTS console_acks (
    alert_id TEXT PRIMARY KEY,
    "user" TEXT NOT NULL,
    at REAL NOT NULL,
    comment TEXT NOT NULL
);
-- Alerts handed to a township's people: every assignment is kept, the latest one stands.
CREATE TABLE IF NOT EXISTS console_assignments (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    alert_id TEXT NOT NULL,
    township TEXT NOT NULL,
    "user" TEXT NOT NULL,
    at REAL NOT NULL
);
"""


@dataclass(frozen=True, slots=True)
class Account:
    """A stored account: the :class:`User` plus its password hash."""

    user: User
    password_hash: str
    created: float


@dataclass(frozen=True, slots=True)
class Assignment:
    """An alert handed to a township: by whom and when (the latest one stands)."""

    alert_id: str
    township: str
    user: str
    at: float


@dataclass(frozen=True, slots=True)
class AckRecord:
    """Who acknowledged an alert, when, and what they wrote."""

    alert_id: str
    user: str
    at: float
    comment: str


@dataclass(frozen=True, slots=True)
class SessionRecord:
    id_hash: str
    user: str
    created: float
    last_seen: float
    client: str


class ConsoleStore(Protocol):
    async def add_user(self, account: Account) -> None:
        """Store a new account; ConsoleError ``user_exists`` if the name is taken."""

    async def get_user(self, name: str) -> Account | None: ...

    async def list_users(self) -> list[Account]: ...

    async def set_password(self, name: str, password_hash: str) -> bool: ...

    async def set_disabled(self, name: str, disabled: bool) -> bool: ...

    async def put_session(self, session: SessionRecord) -> None: ...

    async def get_session(self, id_hash: str) -> SessionRecord | None: ...

    async def touch_session(self, id_hash: str, now: float) -> None: ...

    async def drop_session(self, id_hash: str) -> None: ...

    async def drop_user_sessions(self, name: str) -> int: ...

    async def append_audit(self, entry: AuditEntry) -> AuditRecord:
        """Append ``entry`` as the next link of the chain, atomically."""

    async def audit_records(self) -> list[AuditRecord]:
        """Every record, in ``seq`` order."""

    async def acknowledge(self, ack: AckRecord) -> bool:
        """Store ``ack``; False if the alert was already acknowledged (the first one stands)."""

    async def acks(self) -> dict[str, AckRecord]: ...

    async def assign(self, assignment: Assignment) -> None:
        """Keep ``assignment``; it replaces an earlier one for the same alert on screen."""

    async def assignments(self) -> dict[str, Assignment]:
        """The latest assignment of each alert."""

    async def close(self) -> None: ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(self, *exc_info: object) -> None: ...


def _account(row: Any) -> Account:
    user = User(
        name=row["name"],
        role=Role(row["role"]),
        township=row["township"],
        compound=row["compound"],
        disabled=bool(row["disabled"]),
    )
    return Account(user, row["password_hash"], row["created"])


def _audit(r: Any) -> AuditRecord:
    return AuditRecord(
        r["seq"],
        r["at"],
        r["user"],
        r["action"],
        r["target"],
        r["outcome"],
        r["client"],
        r["prev"],
        r["digest"],
    )


class ConsoleSql:
    """The console store's logic in SQL both backends speak (``?`` placeholders; the
    PostgreSQL store translates them). A backend gives :attr:`db` (the connection of the
    worker thread running the call), :meth:`_run` (run a function on a worker thread) and
    :meth:`_atomic` (a function inside one transaction that holds the audit chain's lock, so
    two processes appending at once still make one chain)."""

    db: Any  # a backend's plumbing comes first in the subclass's bases

    async def _run(self, fn: Callable[[], T]) -> T:
        raise NotImplementedError

    def _atomic(self, fn: Callable[[Any], T]) -> T:
        raise NotImplementedError

    async def _exec(self, sql: str, params: tuple[Any, ...]) -> int:
        """One statement; the number of rows it changed."""

        def run() -> int:
            return int(self.db.execute(sql, params).rowcount)

        return await self._run(run)

    async def add_user(self, account: Account) -> None:
        u = account.user
        added = await self._exec(
            "INSERT INTO console_users"
            " (name, role, township, compound, password_hash, disabled, created)"
            " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO NOTHING",
            (
                u.name,
                u.role.value,
                u.township,
                u.compound,
                account.password_hash,
                int(u.disabled),
                account.created,
            ),
        )
        if added != 1:
            raise ConsoleError("user_exists", f"there is already an account {u.name!r}")

    async def get_user(self, name: str) -> Account | None:
        def run() -> Account | None:
            row = self.db.execute("SELECT * FROM console_users WHERE name = ?", (name,)).fetchone()
            return None if row is None else _account(row)

        return await self._run(run)

    async def list_users(self) -> list[Account]:
        def run() -> list[Account]:
            rows = self.db.execute("SELECT * FROM console_users ORDER BY name").fetchall()
            return [_account(r) for r in rows]

        return await self._run(run)

    async def set_password(self, name: str, password_hash: str) -> bool:
        changed = await self._exec(
            "UPDATE console_users SET password_hash = ? WHERE name = ?", (password_hash, name)
        )
        return changed == 1

    async def set_disabled(self, name: str, disabled: bool) -> bool:
        changed = await self._exec(
            "UPDATE console_users SET disabled = ? WHERE name = ?", (int(disabled), name)
        )
        return changed == 1

    async def put_session(self, session: SessionRecord) -> None:
        s = session
        await self._exec(
            'INSERT INTO console_sessions (id_hash, "user", created, last_seen, client)'
            " VALUES (?, ?, ?, ?, ?)",
            (s.id_hash, s.user, s.created, s.last_seen, s.client),
        )

    async def get_session(self, id_hash: str) -> SessionRecord | None:
        def run() -> SessionRecord | None:
            row = self.db.execute(
                "SELECT * FROM console_sessions WHERE id_hash = ?", (id_hash,)
            ).fetchone()
            if row is None:
                return None
            return SessionRecord(
                row["id_hash"], row["user"], row["created"], row["last_seen"], row["client"]
            )

        return await self._run(run)

    async def touch_session(self, id_hash: str, now: float) -> None:
        await self._exec(
            "UPDATE console_sessions SET last_seen = ? WHERE id_hash = ?", (now, id_hash)
        )

    async def drop_session(self, id_hash: str) -> None:
        await self._exec("DELETE FROM console_sessions WHERE id_hash = ?", (id_hash,))

    async def drop_user_sessions(self, name: str) -> int:
        return await self._exec('DELETE FROM console_sessions WHERE "user" = ?', (name,))

    async def append_audit(self, entry: AuditEntry) -> AuditRecord:
        def tx(db: Any) -> AuditRecord:
            row = db.execute(
                "SELECT seq, digest FROM console_audit ORDER BY seq DESC LIMIT 1"
            ).fetchone()
            seq, prev = (1, GENESIS) if row is None else (row["seq"] + 1, row["digest"])
            rec = seal(seq, entry, prev)
            db.execute(
                "INSERT INTO console_audit"
                ' (seq, at, "user", action, target, outcome, client, prev, digest)'
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    rec.seq,
                    rec.at,
                    rec.user,
                    rec.action,
                    rec.target,
                    rec.outcome,
                    rec.client,
                    rec.prev,
                    rec.digest,
                ),
            )
            return rec

        return await self._run(lambda: self._atomic(tx))

    async def audit_records(self) -> list[AuditRecord]:
        def run() -> list[AuditRecord]:
            rows = self.db.execute("SELECT * FROM console_audit ORDER BY seq").fetchall()
            return [_audit(r) for r in rows]

        return await self._run(run)

    async def acknowledge(self, ack: AckRecord) -> bool:
        added = await self._exec(
            'INSERT INTO console_acks (alert_id, "user", at, comment)'
            " VALUES (?, ?, ?, ?) ON CONFLICT (alert_id) DO NOTHING",
            (ack.alert_id, ack.user, ack.at, ack.comment),
        )
        return added == 1

    async def assign(self, assignment: Assignment) -> None:
        await self._exec(
            'INSERT INTO console_assignments (alert_id, township, "user", at)'
            " VALUES (?, ?, ?, ?)",
            (assignment.alert_id, assignment.township, assignment.user, assignment.at),
        )

    async def assignments(self) -> dict[str, Assignment]:
        def run() -> dict[str, Assignment]:
            rows = self.db.execute("SELECT * FROM console_assignments ORDER BY seq").fetchall()
            return {
                r["alert_id"]: Assignment(r["alert_id"], r["township"], r["user"], r["at"])
                for r in rows  # later rows overwrite earlier ones: the latest stands
            }

        return await self._run(run)

    async def acks(self) -> dict[str, AckRecord]:
        def run() -> dict[str, AckRecord]:
            rows = self.db.execute("SELECT * FROM console_acks").fetchall()
            return {
                r["alert_id"]: AckRecord(r["alert_id"], r["user"], r["at"], r["comment"])
                for r in rows
            }

        return await self._run(run)


class SqliteConsoleStore(SqliteWorker, ConsoleSql):
    """:class:`ConsoleStore` in ``console.db`` (the default)."""

    THREAD_NAME_PREFIX = "centre-console"
    CLOSED_MESSAGE = "console store is closed"

    # _atomic (SqliteWorker's) is BEGIN IMMEDIATE: the write lock is taken before the audit
    # head is read, so the CLI and a running server appending at once still make one chain.

    def _connect(self) -> sqlite3.Connection:
        db = connect_durable(self._path)
        db.row_factory = sqlite3.Row
        db.executescript(_SCHEMA)
        return db

