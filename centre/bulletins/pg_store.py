"""Explanations of missed rounds and the month's case imports on PostgreSQL, shared by every
centre process (issue 19).

The same queries as the SQLite default (:class:`centre.bulletins.explanations.ExplanationSql`)
on the main repository's pool plumbing (:class:`centre.pg_store.PgWorker`), in the centre's
database. The tables have their own numbered, forward-only migrations
(:data:`BULLETINS_PG_MIGRATIONS`, version in ``schema_version`` row ``bulletins``). An
explanation given through a link on one centre host is in every host's bulletin, and a link
still works once per compound and day whichever host receives it (the primary key of
``explanation_links_used`` decides, inside the transaction that records the explanations).

    store = await PostgresExplanationStore.open(dsn)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final, TypeVar

import psycopg

from centre.bulletins.case_store import CaseSql
from centre.bulletins.explanations import ExplanationSql
from centre.pg_store import PgWorker, migrate_postgres

T = TypeVar("T")

STORE: Final = "bulletins"  # this store's row in schema_version
CASES_LOCK: Final = 0x63656E7472650003  # pg_advisory_xact_lock key: "centre" + 3

BULLETINS_PG_MIGRATIONS: Final = (
    # 1: the tables of bulletins.db's explanations, in PostgreSQL's types
    """
    CREATE TABLE explanations (
        id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        compound    TEXT COLLATE "C" NOT NULL,
        round_id    TEXT COLLATE "C" NOT NULL,
        text        TEXT NOT NULL,
        given_by    TEXT NOT NULL DEFAULT '',
        recorded_by TEXT NOT NULL,
        recorded_at DOUBLE PRECISION NOT NULL
    );
    CREATE INDEX explanations_round ON explanations (compound, round_id);
    CREATE TABLE explanation_links_used (
        compound TEXT COLLATE "C" NOT NULL,
        day      TEXT COLLATE "C" NOT NULL,
        used_at  DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (compound, day)
    );
    """,
    # 2: the month's reported cases, versioned imports (bulletins.db's case tables)
    """
    CREATE TABLE case_imports (
        id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        month       TEXT COLLATE "C" NOT NULL,
        version     BIGINT NOT NULL,
        imported_by TEXT NOT NULL,
        imported_at DOUBLE PRECISION NOT NULL,
        sha256      TEXT NOT NULL,
        rows        BIGINT NOT NULL,
        preventable BIGINT NOT NULL,
        total       BIGINT NOT NULL,
        replaced_version     BIGINT,
        replaced_preventable BIGINT,
        replaced_total       BIGINT,
        UNIQUE (month, version)
    );
    CREATE TABLE case_rows (
        import_id BIGINT NOT NULL REFERENCES case_imports (id),
        compound  TEXT COLLATE "C" NOT NULL,
        day       TEXT COLLATE "C" NOT NULL,
        category  TEXT COLLATE "C" NOT NULL,
        count     BIGINT NOT NULL CHECK (count >= 0),
        PRIMARY KEY (import_id, compound, day, category)
    );
    """,
)
BULLETINS_PG_SCHEMA_VERSION: Final = len(BULLETINS_PG_MIGRATIONS)


def migrate_bulletins(conn: psycopg.Connection[Any]) -> tuple[int, int]:
    """Bring the explanation tables up to date; (version before, version after)."""
    return migrate_postgres(conn, store=STORE, migrations=BULLETINS_PG_MIGRATIONS)


class _BulletinTables(PgWorker):
    """A store whose tables are the bulletins' migrations (row ``bulletins``)."""

    def _migrate(self, conn: psycopg.Connection[Any]) -> None:
        migrate_bulletins(conn)

    def _atomic(self, fn: Callable[[Any], T]) -> T:
        with self.db.conn.transaction():
            return fn(self.db)


class PostgresCaseStore(_BulletinTables, CaseSql):
    """:class:`~centre.bulletins.case_store.CaseSql` on the centre's PostgreSQL: a month's
    case imports are one versioned history whichever host the clerk imports on."""

    WHAT = "case store"
    THREAD_NAME_PREFIX = "centre-pg-cases"
    INTEGRITY = (psycopg.IntegrityError,)

    def _atomic(self, fn: Callable[[Any], T]) -> T:
        # Two imports of one month at once: the second waits and takes the next version.
        with self.db.conn.transaction():
            self.db.execute("SELECT pg_advisory_xact_lock(?)", (CASES_LOCK,))
            return fn(self.db)


class PostgresExplanationStore(_BulletinTables, ExplanationSql):
    """:class:`~centre.bulletins.explanations.ExplanationStore` on the centre's PostgreSQL."""

    WHAT = "explanation store"
    THREAD_NAME_PREFIX = "centre-pg-bulletins"
