"""Rollouts and each target gateway's stage, in ``<centre>/rollouts.db`` (SQLite, durable), or
in the centre's PostgreSQL when one is configured (:mod:`centre.rollout.pg_store`)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, TypeVar

from centre.rollout.machine import ACTIVE, PENDING
from centre.sqlite_worker import SqliteWorker, connect_durable

T = TypeVar("T")

FILENAME: Final = "rollouts.db"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS rollouts (
    rollout_id    TEXT PRIMARY KEY,
    release_name  TEXT NOT NULL,
    release       INTEGER NOT NULL,
    version       TEXT NOT NULL,
    scope         TEXT NOT NULL,
    max_rollbacks INTEGER NOT NULL,
    healthy_after REAL NOT NULL,
    state         TEXT NOT NULL,
    created_by    TEXT NOT NULL,
    created_at    REAL NOT NULL,
    stopped_at    REAL,
    stopped_why   TEXT
);
CREATE TABLE IF NOT EXISTS rollout_gateways (
    rollout_id   TEXT NOT NULL REFERENCES rollouts(rollout_id),
    gateway_id   TEXT NOT NULL,
    stage        TEXT NOT NULL,
    changed_at   REAL NOT NULL,
    offered_at   REAL,
    installed_at REAL,
    PRIMARY KEY (rollout_id, gateway_id)
);
"""


@dataclass(frozen=True, slots=True)
class Rollout:
    rollout_id: str
    release_name: str
    release: int
    version: str
    scope: str
    max_rollbacks: int
    healthy_after: float
    state: str
    created_by: str
    created_at: float
    stopped_at: float | None
    stopped_why: str | None


@dataclass(frozen=True, slots=True)
class Target:
    rollout_id: str
    gateway_id: str
    stage: str
    changed_at: float
    offered_at: float | None
    installed_at: float | None


def _rollout(r: Any) -> Rollout:
    return Rollout(*tuple(r))


def _target(r: Any) -> Target:
    return Target(*tuple(r))


class RolloutSql:
    """The rollout store's logic in SQL both backends speak (``?`` placeholders). A backend
    gives :attr:`db`, :meth:`_run` and :meth:`_atomic` (a function inside one transaction):
    :class:`SqliteRolloutStore` in ``rollouts.db``, or
    :class:`centre.rollout.pg_store.PostgresRolloutStore` on the centre's PostgreSQL."""

    db: Any  # a backend's plumbing comes first in the subclass's bases

    async def _run(self, fn: Callable[[], T]) -> T:
        raise NotImplementedError

    def _atomic(self, fn: Callable[[Any], T]) -> T:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError

    async def create(self, rollout: Rollout, gateways: Sequence[str]) -> None:
        def tx(db: Any) -> None:
            db.execute(
                "INSERT INTO rollouts VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    rollout.rollout_id, rollout.release_name, rollout.release,
                    rollout.version, rollout.scope, rollout.max_rollbacks,
                    rollout.healthy_after, rollout.state, rollout.created_by,
                    rollout.created_at, None, None,
                ),
            )  # fmt: skip
            db.executemany(
                "INSERT INTO rollout_gateways VALUES (?,?,?,?,NULL,NULL)",
                [(rollout.rollout_id, g, PENDING, rollout.created_at) for g in gateways],
            )

        await self._run(lambda: self._atomic(tx))

    async def rollouts(self, limit: int = 100) -> list[Rollout]:
        def op() -> list[Rollout]:
            rows = self.db.execute(
                "SELECT * FROM rollouts ORDER BY created_at DESC, rollout_id LIMIT ?", (limit,)
            ).fetchall()
            return [_rollout(r) for r in rows]

        return await self._run(op)

    async def rollout(self, rollout_id: str) -> Rollout | None:
        def op() -> Rollout | None:
            r = self.db.execute(
                "SELECT * FROM rollouts WHERE rollout_id = ?", (rollout_id,)
            ).fetchone()
            return None if r is None else _rollout(r)

        return await self._run(op)

    async def targets(
        self, *, rollout_id: str | None = None, gateway_id: str | None = None
    ) -> list[Target]:
        def op() -> list[Target]:
            clauses, params = ["1=1"], []
            if rollout_id is not None:
                clauses.append("rollout_id = ?")
                params.append(rollout_id)
            if gateway_id is not None:
                clauses.append("gateway_id = ?")
                params.append(gateway_id)
            rows = self.db.execute(
                f"SELECT * FROM rollout_gateways WHERE {' AND '.join(clauses)}"
                " ORDER BY rollout_id, gateway_id",
                params,
            ).fetchall()
            return [_target(r) for r in rows]

        return await self._run(op)

    async def set_stage(
        self,
        rollout_id: str,
        gateway_id: str,
        stage: str,
        now: float,
        *,
        offered: bool = False,
        installed_at: float | None = None,
    ) -> None:
        def op() -> None:
            self.db.execute(
                "UPDATE rollout_gateways SET stage = ?, changed_at = ?,"
                " offered_at = CASE WHEN ? THEN ? ELSE offered_at END,"
                " installed_at = COALESCE(?, installed_at)"
                " WHERE rollout_id = ? AND gateway_id = ?",
                (stage, now, offered, now, installed_at, rollout_id, gateway_id),
            )

        await self._run(op)

    async def stop(self, rollout_id: str, state: str, why: str, now: float) -> bool:
        """Stop an active rollout; False if it was not active."""

        def op() -> bool:
            cur = self.db.execute(
                "UPDATE rollouts SET state = ?, stopped_at = ?, stopped_why = ?"
                " WHERE rollout_id = ? AND state = ?",
                (state, now, why, rollout_id, ACTIVE),
            )
            return cur.rowcount == 1

        return await self._run(op)


class SqliteRolloutStore(SqliteWorker, RolloutSql):
    """:class:`RolloutSql` in ``rollouts.db`` (the default)."""

    THREAD_NAME_PREFIX = "centre-rollouts"
    CLOSED_MESSAGE = "rollout store is closed"

    def _connect(self) -> sqlite3.Connection:
        db = connect_durable(self._path)
        db.row_factory = sqlite3.Row
        db.executescript(_SCHEMA)
        return db
