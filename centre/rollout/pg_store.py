"""Rollouts on PostgreSQL, shared by every centre process (issue 19).

The same queries as the SQLite default (:class:`centre.rollout.store.RolloutSql`) on the main
repository's pool plumbing (:class:`centre.pg_store.PgWorker`), in the centre's database, with
their own numbered, forward-only migrations (:data:`ROLLOUTS_PG_MIGRATIONS`, version in
``schema_version`` row ``rollouts``). Any centre process may offer a rollout's release to a
gateway and fold its update events into its stage: a stage is recomputed from the gateway's
events each time (the same answer from every process), and a rollout stops only while it is
still active, so two processes doing it at once agree. The release files themselves
(``<centre>/releases/``) must be the same on every host.

    store = await PostgresRolloutStore.open(dsn)
"""

from __future__ import annotations

from typing import Any, Final, TypeVar

import psycopg

from centre.pg_store import PgWorker, migrate_postgres
from centre.rollout.store import RolloutSql

T = TypeVar("T")

STORE: Final = "rollouts"  # this store's row in schema_version

ROLLOUTS_PG_MIGRATIONS: Final = (
    # 1: rollouts.db's tables, in PostgreSQL's types
    """
    CREATE TABLE rollouts (
        rollout_id    TEXT COLLATE "C" PRIMARY KEY,
        release_name  TEXT COLLATE "C" NOT NULL,
        release       BIGINT NOT NULL,
        version       TEXT COLLATE "C" NOT NULL,
        scope         TEXT NOT NULL,
        max_rollbacks BIGINT NOT NULL,
        healthy_after DOUBLE PRECISION NOT NULL,
        state         TEXT COLLATE "C" NOT NULL,
        created_by    TEXT NOT NULL,
        created_at    DOUBLE PRECISION NOT NULL,
        stopped_at    DOUBLE PRECISION,
        stopped_why   TEXT
    );
    CREATE TABLE rollout_gateways (
        rollout_id   TEXT COLLATE "C" NOT NULL REFERENCES rollouts(rollout_id),
        gateway_id   TEXT COLLATE "C" NOT NULL,
        stage        TEXT COLLATE "C" NOT NULL,
        changed_at   DOUBLE PRECISION NOT NULL,
        offered_at   DOUBLE PRECISION,
        installed_at DOUBLE PRECISION,
        PRIMARY KEY (rollout_id, gateway_id)
    );
    """,
)
ROLLOUTS_PG_SCHEMA_VERSION: Final = len(ROLLOUTS_PG_MIGRATIONS)


def migrate_rollouts(conn: psycopg.Connection[Any]) -> tuple[int, int]:
    """Bring the rollout tables up to date; (version before, version after)."""
    return migrate_postgres(conn, store=STORE, migrations=ROLLOUTS_PG_MIGRATIONS)


class PostgresRolloutStore(PgWorker, RolloutSql):
    """:class:`~centre.rollout.store.RolloutSql` on the centre's PostgreSQL."""

    WHAT = "rollout store"
    THREAD_NAME_PREFIX = "centre-pg-rollouts"

    def _migrate(self, conn: psycopg.Connection[Any]) -> None:
        migrate_rollouts(conn)
