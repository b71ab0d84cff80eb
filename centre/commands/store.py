"""The command queue: signed commands per gateway, their sequence and their status.

Own tables in the centre's database (``centre.db``), behind :class:`CommandRepository`; the
default :class:`SqliteCommandStore` runs every call on one worker thread, each write one
transaction. Status only moves forward::

    queued ──► delivered ──► on ──► done
       │           │          └───► failed
       │           └──► refused | done (a stop) | failed
       └──► expired   (not delivered before expires_at: never sent after that)

``delivered`` means sent on a connection; the gateway's ``received`` ack sets
``received_at``. A command sent but not acknowledged as received is sent again on the next
connection while still valid (the gateway refuses a true duplicate as ``replayed``)::

    store = await SqliteCommandStore.open(paths.database)
    queued = await store.enqueue("gw-rose-01", build, now=t, issued_by="cli")  # build(seq)
    await store.deliverable("gw-rose-01", now=t)     # marks the expired ones
    await store.record_ack("gw-rose-01", "cmd-…", "on", "", now=t)
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Protocol, Self, TypeVar

from centre.sqlite_worker import SqliteWorker, connect_durable
from centre.store import migrate_sqlite

T = TypeVar("T")

QUEUED: Final = "queued"
DELIVERED: Final = "delivered"
ON: Final = "on"
DONE: Final = "done"
FAILED: Final = "failed"
REFUSED: Final = "refused"
EXPIRED: Final = "expired"
FINAL: Final = frozenset({DONE, FAILED, REFUSED, EXPIRED})
RANK: Final = {QUEUED: 0, DELIVERED: 1, ON: 2, DONE: 3, FAILED: 3, REFUSED: 3, EXPIRED: 3}
SOUND: Final = "sound"  # proof of sound (confirmed / no_sound / not_checked): logged, no status
ACK_STAGES: Final = frozenset({"received", ON, DONE, FAILED, REFUSED, SOUND})
_WAITING: Final = "(status = 'queued' OR (status = 'delivered' AND received_at IS NULL))"


@dataclass(frozen=True, slots=True)
class NewCommand:
    """What the issuer builds once the sequence is known."""

    command_id: str
    action: str
    summary: str
    issued_at: float
    expires_at: float
    envelope: bytes


@dataclass(frozen=True, slots=True)
class CommandRecord:
    command_id: str
    gateway_id: str
    seq: int
    action: str
    summary: str
    issued_at: float
    expires_at: float
    envelope: bytes
    status: str
    reason: str
    issued_by: str
    delivered_at: float | None
    received_at: float | None
    on_at: float | None
    finished_at: float | None

    def shown_status(self, now: float) -> str:
        """What an operator sees: a command still waiting past its expiry *is* expired (the
        channel marks it so the next time it looks; it will never be sent)."""
        waiting = self.status == QUEUED or (self.status == DELIVERED and self.received_at is None)
        return EXPIRED if waiting and now > self.expires_at else self.status


class CommandRepository(Protocol):
    """What the command channel and the CLI need (each method one transaction)."""

    async def enqueue(
        self, gateway_id: str, build: Callable[[int], NewCommand], *, now: float, issued_by: str
    ) -> CommandRecord:
        """Take the gateway's next seq and store the command ``build(seq)`` made, atomically."""
        ...

    async def deliverable(self, gateway_id: str, *, now: float) -> list[CommandRecord]:
        """Commands to send now, by seq; waiting ones past their expiry become ``expired``."""
        ...

    async def mark_delivered(self, command_id: str, *, now: float) -> None: ...

    async def record_ack(
        self,
        gateway_id: str,
        command_id: str,
        stage: str,
        reason: str,
        *,
        now: float,
        digest: str = "",
    ) -> CommandRecord | None:
        """Log the ack (always) and move the command's status; the command is found by id, or
        by the envelope's SHA-256 when the gateway could not read an id out of it."""
        ...

    async def acks(self, gateway_id: str) -> list[tuple[str, str, str]]:
        """(command_id, stage, reason) of every ack from the gateway, oldest first."""
        ...

    async def commands(
        self, *, gateway_id: str | None = None, limit: int = 100
    ) -> list[CommandRecord]: ...

    async def command(self, command_id: str) -> CommandRecord | None:
        """One command by id, or None."""
        ...

    async def close(self) -> None: ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(self, *exc_info: object) -> None: ...


class CommandSql:
    """The queue's logic in SQL both backends speak (``?`` placeholders; the PostgreSQL store
    translates them). A backend gives :attr:`db` (the connection of the worker thread running
    the call), :meth:`_run` (run a function on a worker thread) and :meth:`_atomic` (a
    function inside one transaction), and may add :meth:`_notify` (tell other centre
    processes a gateway has something to send)."""

    db: Any  # a backend's plumbing comes first in the subclass's bases

    async def _run(self, fn: Callable[[], T]) -> T:
        raise NotImplementedError

    def _atomic(self, fn: Callable[[Any], T]) -> T:
        raise NotImplementedError

    def _notify(self, gateway_id: str) -> None:
        """Inside the enqueue transaction: nothing to do where one process serves."""

    def _one(self, command_id: str) -> CommandRecord:
        row = self.db.execute("SELECT * FROM commands WHERE command_id = ?", (command_id,))
        return _record(row.fetchone())

    # -- operations ---------------------------------------------------------------------------

    async def enqueue(
        self, gateway_id: str, build: Callable[[int], NewCommand], *, now: float, issued_by: str
    ) -> CommandRecord:
        def tx(db: Any) -> CommandRecord:
            # Take the next seq in one statement: the row stays locked to the end of the
            # transaction, so two processes queuing for one gateway never take the same seq.
            (seq,) = db.execute(
                "INSERT INTO command_seq (gateway_id, last_seq) VALUES (?, 1) "
                "ON CONFLICT (gateway_id) DO UPDATE SET last_seq = command_seq.last_seq + 1 "
                "RETURNING last_seq",
                (gateway_id,),
            ).fetchone()
            new = build(int(seq))
            db.execute(
                "INSERT INTO commands (command_id, gateway_id, seq, action, summary, "
                "issued_at, expires_at, envelope, status, issued_by) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    new.command_id,
                    gateway_id,
                    seq,
                    new.action,
                    new.summary,
                    new.issued_at,
                    new.expires_at,
                    new.envelope,
                    QUEUED,
                    issued_by,
                ),
            )
            self._notify(gateway_id)
            # Read back inside the transaction: once it commits nothing more can fail, so an
            # operator told "failed" was not also queued (only a lost commit reply can do that).
            return self._one(new.command_id)

        return await self._run(lambda: self._atomic(tx))

    async def deliverable(self, gateway_id: str, *, now: float) -> list[CommandRecord]:
        def op() -> list[CommandRecord]:
            # Read-only in the common case (polled for every connected gateway): the write
            # transaction only runs when something actually expired.
            rows = [
                _record(r)
                for r in self.db.execute(
                    f"SELECT * FROM commands WHERE gateway_id = ? AND {_WAITING} ORDER BY seq",
                    (gateway_id,),
                )
            ]
            late = [(now, r.command_id) for r in rows if r.expires_at < now]
            if late:
                self._atomic(
                    lambda db: db.executemany(
                        "UPDATE commands SET status = 'expired', finished_at = ?, "
                        "reason = 'not delivered before it expired' "
                        f"WHERE command_id = ? AND {_WAITING}",
                        late,
                    )
                )
            return [r for r in rows if r.expires_at >= now]

        return await self._run(op)

    async def mark_delivered(self, command_id: str, *, now: float) -> None:
        def op() -> None:
            self.db.execute(
                "UPDATE commands SET status = 'delivered', delivered_at = ? "
                "WHERE command_id = ? AND status = 'queued'",
                (now, command_id),
            )

        await self._run(op)

    async def record_ack(
        self,
        gateway_id: str,
        command_id: str,
        stage: str,
        reason: str,
        *,
        now: float,
        digest: str = "",
    ) -> CommandRecord | None:
        if stage not in ACK_STAGES:
            raise ValueError(f"unknown ack stage {stage!r}")

        def tx(db: Any) -> str | None:
            db.execute(
                "INSERT INTO command_acks (gateway_id, command_id, stage, reason, digest, "
                "received_at) VALUES (?, ?, ?, ?, ?, ?)",
                (gateway_id, command_id[:80], stage, reason[:500], digest[:64], now),
            )
            row = db.execute(
                "SELECT * FROM commands WHERE command_id = ? AND gateway_id = ?",
                (command_id, gateway_id),  # a gateway can only speak for its own commands
            ).fetchone()
            if row is None and digest:
                for candidate in db.execute(
                    "SELECT * FROM commands WHERE gateway_id = ? ORDER BY seq DESC LIMIT 100",
                    (gateway_id,),
                ):
                    if hashlib.sha256(candidate["envelope"]).hexdigest() == digest:
                        row = candidate
                        break
            if row is None:
                return None
            rec = _record(row)
            command_id_ = rec.command_id
            if stage == "received":
                db.execute(
                    "UPDATE commands SET received_at = coalesce(received_at, ?), "
                    "delivered_at = coalesce(delivered_at, ?), status = CASE status "
                    "WHEN 'queued' THEN 'delivered' ELSE status END WHERE command_id = ?",
                    (now, now, command_id_),
                )
            elif stage == SOUND:
                pass  # the fourth step is in command_acks; the status is the relays'
            elif (rec.status not in FINAL and RANK[stage] > RANK[rec.status]) or (
                # sent, then marked expired for want of a "received": the gateway's word that
                # it did act wins (its acks were what got lost)
                rec.status == EXPIRED and rec.delivered_at is not None and stage != REFUSED
            ):
                column = "on_at" if stage == ON else "finished_at"
                db.execute(
                    f"UPDATE commands SET status = ?, reason = ?, {column} = ? "
                    "WHERE command_id = ?",
                    (stage, reason[:500], now, command_id_),
                )
            return command_id_

        def op() -> CommandRecord | None:
            found = self._atomic(tx)
            return self._one(found) if found is not None else None

        return await self._run(op)

    async def acks(self, gateway_id: str) -> list[tuple[str, str, str]]:
        def op() -> list[tuple[str, str, str]]:
            rows = self.db.execute(
                "SELECT command_id, stage, reason FROM command_acks WHERE gateway_id = ? "
                "ORDER BY id",
                (gateway_id,),
            )
            return [(r[0], r[1], r[2]) for r in rows]

        return await self._run(op)

    async def commands(
        self, *, gateway_id: str | None = None, limit: int = 100
    ) -> list[CommandRecord]:
        def op() -> list[CommandRecord]:
            where, params = ("WHERE gateway_id = ?", [gateway_id]) if gateway_id else ("", [])
            rows = self.db.execute(
                f"SELECT * FROM commands {where} ORDER BY issued_at DESC, gateway_id LIMIT ?",
                [*params, limit],
            ).fetchall()
            return [_record(r) for r in rows]

        return await self._run(op)

    async def command(self, command_id: str) -> CommandRecord | None:
        def op() -> CommandRecord | None:
            row = self.db.execute(
                "SELECT * FROM commands WHERE command_id = ?", (command_id,)
            ).fetchone()
            return _record(row) if row else None

        return await self._run(op)


class SqliteCommandStore(SqliteWorker, CommandSql):
    """:class:`CommandRepository` on the centre's SQLite file (WAL, synchronous=FULL).

    One process serves the gateways; the CLI queues from another, and the channel finds its
    commands at its next look at the queue (``centre.commands.channel.POLL_S``)."""

    THREAD_NAME_PREFIX = "centre-commands"
    CLOSED_MESSAGE = "command store is closed"

    def _connect(self) -> sqlite3.Connection:
        # The CLI and the server write the same file: wait for each other's short transactions.
        db = connect_durable(self._path, timeout=10)
        db.row_factory = sqlite3.Row
        migrate_sqlite(db)  # the queue's tables are migration 5 of centre.db's schema
        return db


def _record(row: Any) -> CommandRecord:
    return CommandRecord(**{k: row[k] for k in row.keys()})  # noqa: SIM118 - Row has no iter
