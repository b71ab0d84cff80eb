"""The command queue on PostgreSQL, for several centre processes on one database (issue 19).

The same queue logic as the SQLite default (:class:`centre.commands.store.CommandSql`), on the
main repository's pool plumbing (:class:`centre.pg_store.PgWorker`; the tables are migration 5
of the shared schema). What several processes add:

* **Wake-up by NOTIFY.** Queuing a command sends ``NOTIFY centre_commands, '<gateway id>'``
  inside the same transaction, so it is delivered when (and only if) the command is committed.
  Every ``compound-centre serve`` process LISTENs (:meth:`PostgresCommandStore.listen`); the
  one holding that gateway's WebSocket sends it at once. No process polls the queue for news.
* **Acks** are rows like any other: whichever process an operator's page or CLI runs on reads
  them from the database.
* **Sequence numbers** come from one upsert on ``command_seq`` whose row lock lasts to the end
  of the transaction: two processes queuing for one gateway at once take seq n and n + 1.

    store = await PostgresCommandStore.open(dsn)
    listener = asyncio.create_task(store.listen(channel.wake))   # wake(gateway_id | None)
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Final, TypeVar

import psycopg

from centre.commands.store import CommandSql
from centre.database import redact_dsn
from centre.pg_store import PgWorker

T = TypeVar("T")

log = logging.getLogger("centre.commands")

CHANNEL: Final = "centre_commands"
LISTEN_RETRY_S: Final = (0.5, 1.0, 2.0, 5.0)  # a lost listening connection tries again


class PostgresCommandStore(PgWorker, CommandSql):
    """:class:`~centre.commands.store.CommandRepository` on PostgreSQL, with NOTIFY on queue."""

    WHAT = "command queue"
    THREAD_NAME_PREFIX = "centre-pg-commands"
    wakes_by_notify = True  # the channel need not poll this store for news

    def _notify(self, gateway_id: str) -> None:
        self.db.execute("SELECT pg_notify(?, ?)", (CHANNEL, gateway_id))

    async def listen(self, wake: Callable[[str | None], None]) -> None:
        """Call ``wake(gateway_id)`` for every command queued by any process, until cancelled.

        Runs on the event loop (psycopg's async connection). When the connection is lost (a
        database restart) notifications in the gap are lost too: ``wake(None)`` after every
        (re)connection makes the channel look at every connected gateway's queue once."""
        failures = 0
        while True:
            try:
                conn = await psycopg.AsyncConnection.connect(
                    self._dsn, autocommit=True, connect_timeout=15
                )
            except psycopg.OperationalError as exc:
                failures += 1
                wait = LISTEN_RETRY_S[min(failures, len(LISTEN_RETRY_S)) - 1]
                if failures == 1:
                    log.warning(
                        "command queue: cannot LISTEN on %s (%s); trying again",
                        redact_dsn(self._dsn),
                        str(exc).strip().splitlines()[0] if str(exc).strip() else "?",
                    )
                await asyncio.sleep(wait)
                continue
            try:
                async with conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    if failures:
                        log.info("command queue: listening again after %d failure(s)", failures)
                    failures = 0
                    wake(None)  # whatever was queued while nobody listened
                    async for note in conn.notifies():
                        wake(note.payload or None)
            except psycopg.OperationalError as exc:
                failures += 1
                log.warning(
                    "command queue: the listening connection was lost (%s); reconnecting",
                    str(exc).strip().splitlines()[0] if str(exc).strip() else "?",
                )
                await asyncio.sleep(LISTEN_RETRY_S[0])
