"""The console's accounts, sessions and audit log on PostgreSQL, for several centre processes.

The same queries as the SQLite default (:class:`centre.web.store.ConsoleSql`) on the main
repository's pool plumbing (:class:`centre.pg_store.PgWorker`), in the centre's database. The
tables (and the video patrol's, :class:`PostgresVideoPatrolStore`, which live in
``console.db`` on SQLite) have their own numbered, forward-only migrations
(:data:`CONSOLE_PG_MIGRATIONS`, version in ``schema_version`` row ``console``): the console
is not part of the main repository's schema, which the SQLite file ``centre.db`` mirrors
table for table.

What several processes add:

* **One login everywhere.** Sessions are rows: a session opened through one centre process
  (or host) is good on every other, and a logout or a disabled account ends it everywhere.
* **One audit chain.** An append takes a transaction-scoped advisory lock before it reads the
  chain's head, so two processes appending at once still make one unbroken chain; triggers
  refuse UPDATE and DELETE on the audit table, as SQLite's do.

    store = await PostgresConsoleStore.open(dsn)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final, TypeVar

import psycopg

from centre.pg_store import PgWorker, migrate_postgres
from centre.web.store import ConsoleSql
from centre.web.video_patrol import VideoPatrolSql

T = TypeVar("T")

STORE: Final = "console"  # this store's row in schema_version
AUDIT_LOCK: Final = 0x63656E7472650002  # pg_advisory_xact_lock key: "centre" + 2

CONSOLE_PG_MIGRATIONS: Final = (
    # 1: the tables of console.db, in PostgreSQL's types (REAL is 8 bytes in SQLite)
    """
    CREATE TABLE console_users (
        name          TEXT COLLATE "C" PRIMARY KEY,
        role          TEXT COLLATE "C" NOT NULL,
        township      TEXT COLLATE "C",
        compound      TEXT COLLATE "C",
        password_hash TEXT NOT NULL,
        disabled      INTEGER NOT NULL DEFAULT 0,
        created       DOUBLE PRECISION NOT NULL
    );
    CREATE TABLE console_sessions (
        id_hash   TEXT COLLATE "C" PRIMARY KEY,
        "user"    TEXT COLLATE "C" NOT NULL REFERENCES console_users(name),
        created   DOUBLE PRECISION NOT NULL,
        last_seen DOUBLE PRECISION NOT NULL,
        client    TEXT NOT NULL
    );
    CREATE INDEX console_sessions_user ON console_sessions("user");
    CREATE TABLE console_audit (
        seq     BIGINT PRIMARY KEY,
        at      DOUBLE PRECISION NOT NULL,
        "user"  TEXT COLLATE "C" NOT NULL,
        action  TEXT COLLATE "C" NOT NULL,
        target  TEXT COLLATE "C" NOT NULL,
        outcome TEXT COLLATE "C" NOT NULL,
        client  TEXT NOT NULL,
        prev    TEXT NOT NULL,
        digest  TEXT NOT NULL
    );
    CREATE FUNCTION console_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN RAISE EXCEPTION 'the audit log is append-only'; END $$;
    CREATE TRIGGER console_audit_no_update BEFORE UPDATE OR DELETE ON console_audit
        FOR EACH ROW EXECUTE FUNCTION console_audit_append_only();
    CREATE TRIGGER console_audit_no_truncate BEFORE TRUNCATE ON console_audit
        FOR EACH STATEMENT EXECUTE FUNCTION console_audit_append_only();
    CREATE TABLE console_acks (
        alert_id TEXT COLLATE "C" PRIMARY KEY,
        "user"   TEXT COLLATE "C" NOT NULL,
        at       DOUBLE PRECISION NOT NULL,
        comment  TEXT NOT NULL
    );
    CREATE TABLE console_assignments (
        seq      BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        alert_id TEXT COLLATE "C" NOT NULL,
        township TEXT COLLATE "C" NOT NULL,
        "user"   TEXT COLLATE "C" NOT NULL,
        at       DOUBLE PRECISION NOT NULL
    );
    """,
    # 2: the video patrol's sessions, steps and verdicts (console.db's video_patrol_* tables)
    """
    CREATE TABLE video_patrol_sessions (
        session_id TEXT COLLATE "C" PRIMARY KEY,
        opened_by  TEXT COLLATE "C" NOT NULL,
        opened_at  DOUBLE PRECISION NOT NULL,
        sample     BIGINT
    );
    CREATE TABLE video_patrol_steps (
        session_id   TEXT COLLATE "C" NOT NULL REFERENCES video_patrol_sessions(session_id),
        position     BIGINT NOT NULL,
        township     TEXT COLLATE "C" NOT NULL,
        compound     TEXT COLLATE "C" NOT NULL,
        gateway_id   TEXT COLLATE "C" NOT NULL,
        command_id   TEXT COLLATE "C",
        requested_at DOUBLE PRECISION,
        PRIMARY KEY (session_id, position)
    );
    CREATE TABLE video_patrol_verdicts (
        session_id TEXT COLLATE "C" NOT NULL,
        position   BIGINT NOT NULL,
        township   TEXT COLLATE "C" NOT NULL,
        compound   TEXT COLLATE "C" NOT NULL,
        gateway_id TEXT COLLATE "C" NOT NULL,
        verdict    TEXT COLLATE "C" NOT NULL,
        sha256     TEXT COLLATE "C",
        note       TEXT NOT NULL,
        judged_by  TEXT COLLATE "C" NOT NULL,
        judged_at  DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (session_id, position)
    );
    CREATE INDEX video_patrol_verdicts_at ON video_patrol_verdicts (judged_at);
    """,
)
CONSOLE_PG_SCHEMA_VERSION: Final = len(CONSOLE_PG_MIGRATIONS)


def migrate_console(conn: psycopg.Connection[Any]) -> tuple[int, int]:
    """Bring the console's tables up to date; (version before, version after)."""
    return migrate_postgres(conn, store=STORE, migrations=CONSOLE_PG_MIGRATIONS)


class _ConsoleTables(PgWorker):
    """A store whose tables are the console's migrations (row ``console``)."""

    def _migrate(self, conn: psycopg.Connection[Any]) -> None:
        migrate_console(conn)


class PostgresVideoPatrolStore(_ConsoleTables, VideoPatrolSql):
    """:class:`~centre.web.video_patrol.VideoPatrolSql` on the centre's PostgreSQL: sessions,
    their order and verdicts are shared by every centre process."""

    WHAT = "video patrol store"
    THREAD_NAME_PREFIX = "centre-pg-video-patrol"

    async def schema_version(self) -> int:
        """The console tables' schema version (they include the video patrol's)."""

        def run() -> int:
            row = self.db.execute(
                "SELECT version FROM schema_version WHERE store = ?", (STORE,)
            ).fetchone()
            return int(row[0]) if row else 0

        return await self._run(run)


class PostgresConsoleStore(_ConsoleTables, ConsoleSql):
    """:class:`~centre.web.store.ConsoleStore` on the centre's PostgreSQL."""

    WHAT = "console store"
    THREAD_NAME_PREFIX = "centre-pg-console"

    def _atomic(self, fn: Callable[[Any], T]) -> T:
        with self.db.conn.transaction():
            self.db.execute("SELECT pg_advisory_xact_lock(?)", (AUDIT_LOCK,))
            return fn(self.db)
