"""Explanations of missed rounds, the month's case imports and the resident survey on
PostgreSQL, shared by every centre process (issue 19).

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

import contextlib
from collections.abc import Callable, Iterator
from typing import Any, Final, TypeVar

import psycopg

from centre.bulletins.case_store import CaseSql
from centre.bulletins.explanations import ExplanationSql
from centre.bulletins.survey_store import SurveySql
from centre.pg_store import PgWorker, migrate_postgres

T = TypeVar("T")

STORE: Final = "bulletins"  # this store's row in schema_version
CASES_LOCK: Final = 0x63656E7472650003  # pg_advisory_xact_lock key: "centre" + 3
SURVEY_LOCK: Final = 0x63656E7472650004  # pg_advisory_xact_lock key: "centre" + 4

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
    # 3: the resident survey (bulletins.db's resident and survey tables); outcomes and reveals
    # are append-only, as there
    """
    CREATE TABLE resident_imports (
        id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        imported_by TEXT NOT NULL,
        imported_at DOUBLE PRECISION NOT NULL,
        sha256      TEXT NOT NULL,
        rows        BIGINT NOT NULL
    );
    CREATE TABLE residents (
        import_id BIGINT NOT NULL REFERENCES resident_imports (id),
        id        TEXT COLLATE "C" NOT NULL,
        compound  TEXT COLLATE "C" NOT NULL,
        phone     TEXT NOT NULL,
        PRIMARY KEY (import_id, id)
    );
    CREATE TABLE survey_draws (
        month        TEXT COLLATE "C" PRIMARY KEY,
        seed         BIGINT NOT NULL,
        per_compound BIGINT NOT NULL,
        import_id    BIGINT NOT NULL REFERENCES resident_imports (id),
        drawn_by     TEXT NOT NULL,
        drawn_at     DOUBLE PRECISION NOT NULL
    );
    CREATE TABLE survey_sample (
        month       TEXT COLLATE "C" NOT NULL REFERENCES survey_draws (month),
        resident_id TEXT COLLATE "C" NOT NULL,
        compound    TEXT COLLATE "C" NOT NULL,
        phone       TEXT NOT NULL,
        position    BIGINT NOT NULL,
        PRIMARY KEY (month, resident_id)
    );
    CREATE TABLE survey_outcomes (
        id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        month       TEXT COLLATE "C" NOT NULL,
        resident_id TEXT COLLATE "C" NOT NULL,
        outcome     TEXT NOT NULL,
        remarks     TEXT NOT NULL,
        recorded_by TEXT NOT NULL,
        recorded_at DOUBLE PRECISION NOT NULL,
        FOREIGN KEY (month, resident_id) REFERENCES survey_sample (month, resident_id)
    );
    CREATE TABLE survey_reveals (
        id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        month       TEXT COLLATE "C" NOT NULL,
        resident_id TEXT COLLATE "C" NOT NULL,
        compound    TEXT COLLATE "C" NOT NULL,
        revealed_by TEXT NOT NULL,
        revealed_at DOUBLE PRECISION NOT NULL
    );
    CREATE FUNCTION survey_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN RAISE EXCEPTION '% is append-only', TG_TABLE_NAME; END $$;
    CREATE TRIGGER survey_reveals_append_only BEFORE UPDATE OR DELETE ON survey_reveals
        FOR EACH ROW EXECUTE FUNCTION survey_append_only();
    CREATE TRIGGER survey_outcomes_append_only BEFORE UPDATE OR DELETE ON survey_outcomes
        FOR EACH ROW EXECUTE FUNCTION survey_append_only();
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


class PostgresSurveyStore(_BulletinTables, SurveySql):
    """:class:`~centre.bulletins.survey_store.SurveySql` on the centre's PostgreSQL: one
    contact list, one draw per month and one call sheet whichever host a clerk works on."""

    WHAT = "survey store"
    THREAD_NAME_PREFIX = "centre-pg-survey"
    INTEGRITY = (psycopg.IntegrityError,)

    @contextlib.contextmanager
    def _tx(self) -> Iterator[None]:
        # Two draws of one month at once: the second waits, then finds the first.
        with self.db.conn.transaction():
            self.db.execute("SELECT pg_advisory_xact_lock(?)", (SURVEY_LOCK,))
            yield


class PostgresExplanationStore(_BulletinTables, ExplanationSql):
    """:class:`~centre.bulletins.explanations.ExplanationStore` on the centre's PostgreSQL."""

    WHAT = "explanation store"
    THREAD_NAME_PREFIX = "centre-pg-bulletins"
