"""Several centre processes on one PostgreSQL (issue 19): a command queued on one is sent by
the one holding the gateway's WebSocket, woken by NOTIFY (not by polling), and its acks are
read back on the first.

Real parts: the throwaway PostgreSQL cluster (tests/pg_cluster.py), two real centres (TLS,
channel, queue) on one data directory and one database, the gateway's real command channel,
broadcast controller and a simulated Modbus board on a virtual serial line.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from centre.commands.issue import issue
from centre.commands.pg_store import PostgresCommandStore
from centre.commands.store import NewCommand
from centre.server import running_centre
from tests.commands.rig import GW, command_rig
from tests.sync.conftest import Centre
from wire.commands import BroadcastStart


@pytest.fixture
def centre_backend() -> str:
    return "postgres"


def new(cid: str, now: float) -> NewCommand:
    return NewCommand(cid, "broadcast.start", "", now, now + 120, f"env-{cid}".encode())


async def test_two_processes_queuing_for_one_gateway_take_distinct_seqs(pg_dsn: str) -> None:
    a = await PostgresCommandStore.open(pg_dsn)
    b = await PostgresCommandStore.open(pg_dsn)
    try:
        now = time.time()
        recs = await asyncio.gather(
            *(
                store.enqueue("gw-a", lambda s, i=i: new(f"c{i}", now), now=now, issued_by="t")
                for i in range(40)
                for store in [(a, b)[i % 2]]
            )
        )
        assert sorted(r.seq for r in recs) == list(range(1, 41))
        assert [r.seq for r in await a.deliverable("gw-a", now=now)] == list(range(1, 41))
    finally:
        await a.close()
        await b.close()


async def test_queuing_notifies_every_listener_with_the_gateway(pg_dsn: str) -> None:
    listener = await PostgresCommandStore.open(pg_dsn)
    writer = await PostgresCommandStore.open(pg_dsn)
    woken: list[str | None] = []
    task = asyncio.create_task(listener.listen(woken.append))
    try:
        async with asyncio.timeout(10):
            while None not in woken:  # listening: it first wakes everyone once
                await asyncio.sleep(0.01)
        now = time.time()
        await writer.enqueue("gw-north-3", lambda s: new("n1", now), now=now, issued_by="t")
        async with asyncio.timeout(10):
            while "gw-north-3" not in woken:
                await asyncio.sleep(0.01)
        # A transaction that does not commit sends nothing.
        with pytest.raises(RuntimeError):
            await writer.enqueue("gw-ghost", _fails, now=now, issued_by="t")
        await writer.enqueue("gw-after", lambda s: new("n2", now), now=now, issued_by="t")
        async with asyncio.timeout(10):
            while "gw-after" not in woken:
                await asyncio.sleep(0.01)
        assert "gw-ghost" not in woken
        assert [r.command_id for r in await writer.commands()] in (["n1", "n2"], ["n2", "n1"])
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await listener.close()
        await writer.close()


def _fails(seq: int) -> NewCommand:
    raise RuntimeError("the issuer failed after taking a seq")


async def test_a_command_queued_on_one_centre_is_sent_by_the_other(
    centre: Centre, tmp_path: Path
) -> None:
    """The gateway holds its WebSocket on centre A; an operator queues on centre B. A sends
    it, woken by B's NOTIFY: A's safety-net poll is set to an hour, so only the NOTIFY can
    have done it. The acks, written by A, are read on B."""
    async with command_rig(centre, tmp_path) as rig:
        a = centre.running.commands
        assert isinstance(a.store, PostgresCommandStore) and a.notified
        a.poll_s = 3600.0
        a.wake(GW)  # the sender goes round once, and waits again with the new poll period
        async with running_centre(centre.paths, host="127.0.0.1", port=0) as b:
            assert b.port != centre.running.port
            assert GW in a.connections and GW not in b.commands.connections
            await asyncio.sleep(0.5)  # A's sender is now waiting on its wake-up, not polling
            (rec,) = await issue(
                b.commands.store,
                [GW],
                rig.key,
                BroadcastStart((1,), 0.5, "drill", "Exercise"),
                ttl_s=60,
                now=time.time(),
                issued_by="operator-on-b",
            )
            deadline = time.monotonic() + 20
            while True:
                (seen,) = [
                    r
                    for r in await b.commands.store.commands(gateway_id=GW)
                    if r.command_id == rec.command_id
                ]
                if seen.status == "done":
                    break
                assert time.monotonic() < deadline, (seen.status, seen.reason)
                await asyncio.sleep(0.05)
            assert seen.received_at is not None and seen.on_at is not None
            assert any(c.on for c in rig.board.changes)
            accepted = await rig.events("command.accepted")
            assert [e["command_id"] for e in accepted] == [rec.command_id]
