"""Faults on the centre's PostgreSQL (issue 19): the server restarted in the middle of ingest
and of command delivery; one of two centres on one database killed.

Real parts: the session's throwaway PostgreSQL cluster (tests/pg_cluster.py), restarted with
``pg_ctl -m fast`` (sessions cut, as an operator's restart does); the real centre (TLS on
loopback, repository and command queue on PostgreSQL); the gateway's real uploader and
journal; the command rig's real channel, verifier, broadcast controller and simulated board.
"Nothing lost or doubled" is judged by ``compound-centre verify`` (the CLI's main(), on the
same data directory and so the same DSN) and by the repository's own counts.

The cluster is shared by the session: every test here leaves it running (a restart returns
only once the server accepts connections again), so later tests see a healthy server.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from psycopg_pool import PoolTimeout

from centre.cli import main as centre_main
from centre.commands.issue import issue
from centre.commands.pg_store import PostgresCommandStore
from centre.faults import DATABASE_RETRY_AFTER_S, error_boundary
from gateway.clock import ManualClock
from gateway.events import TELEMETRY
from gateway.journal import Journal
from gateway.sync.config import SyncSection
from gateway.sync.uploader import Uploader
from hil_tests.netproxy import FaultProxy
from tests.commands.rig import GW, command_rig
from tests.pg_cluster import PgCluster
from tests.sync.conftest import Centre, enroll
from wire.commands import BroadcastStart

SYNC = SyncSection(
    batch_max_events=50,
    first_delay_max_s=0.0,
    backoff_initial_s=0.05,
    backoff_max_s=1.0,
    idle_poll_s=0.2,
    request_timeout_s=10.0,
)


@pytest.fixture
def centre_backend() -> str:
    return "postgres"


async def wait_for(predicate, timeout: float = 60.0, task=None) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not await predicate():
        if task is not None and task.done():
            task.result()
            raise AssertionError("the task stopped")
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)


async def verify(centre: Centre, capsys: pytest.CaptureFixture[str]) -> str:
    """``compound-centre verify --chain`` on the centre's data directory (its centre.toml names
    the PostgreSQL DSN); asserts exit status 0 and returns what it printed."""
    capsys.readouterr()
    args = ["--data", str(centre.paths.root), "verify", "--chain"]
    status = await asyncio.to_thread(centre_main, args)  # it runs its own event loop
    out = capsys.readouterr().out
    assert status == 0, out
    return out


@pytest.mark.parametrize(
    "exc",
    [
        psycopg.errors.AdminShutdown("terminating connection due to administrator command"),
        psycopg.OperationalError("connection failed: No such file or directory"),
        PoolTimeout("couldn't get a connection after 30.00 sec"),
    ],
)
async def test_the_database_out_of_reach_is_503_with_retry_after(
    exc: Exception, caplog: pytest.LogCaptureFixture
) -> None:
    """A request whose query the restart cut (or that found no connection) is told to come
    back, as a gateway's uploader understands, and logged as one line without traceback."""

    async def handler(request: web.Request) -> web.StreamResponse:
        raise exc

    resp = await error_boundary()(make_mocked_request("POST", "/api/v1/ingest"), handler)
    assert resp.status == 503
    assert resp.headers["Retry-After"] == str(DATABASE_RETRY_AFTER_S)
    body = json.loads(resp.body)
    assert body["error"] == "unavailable" and "socket" not in body["reason"]
    (rec,) = [r for r in caplog.records if r.name == "centre.http"]
    assert rec.levelno == logging.WARNING and rec.exc_info is None


async def test_postgres_restarted_mid_ingest_loses_and_doubles_nothing(
    centre: Centre,
    tmp_path: Path,
    pg_cluster: PgCluster,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.INFO)
    data = tmp_path / "gw"
    await enroll(centre, data)
    journal = await Journal.open(data / "journal.db", gateway_id="gw-rose-01", clock=ManualClock())
    uploader = Uploader(journal, ManualClock(), SYNC, data_dir=data, rng=random.Random(1))
    repo = centre.running.repo
    written = 0

    async def write(n: int) -> None:
        nonlocal written
        for _ in range(n):
            if written % 3 == 0:
                await journal.append("tap", {"checkpoint": f"cp-{written % 7}", "n": written})
            else:
                await journal.append("health.sample", {"cpu_c": 40 + written % 9}, cls=TELEMETRY)
            written += 1

    async def watermark() -> int:
        g = await repo.gateway("gw-rose-01")
        return 0 if g is None else g.watermark

    task = asyncio.create_task(uploader.run())
    try:
        await write(600)

        async def some_in() -> bool:
            return await watermark() >= 100

        await wait_for(some_in, task=task)
        # The journal keeps filling while the server is down (2 s) and coming back.
        before = await watermark()
        restart = asyncio.create_task(asyncio.to_thread(pg_cluster.restart, 2.0))
        while not restart.done():
            await write(20)
            await asyncio.sleep(0.05)
        await restart
        assert before < journal.last_seq, "nothing was left to upload across the restart"
        await write(300)

        async def caught_up() -> bool:
            return await watermark() >= journal.last_seq

        await wait_for(caught_up, timeout=120, task=task)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    try:
        last = journal.last_seq
        assert (await journal.stats())["unsynced"] == 0
        assert await repo.event_seqs("gw-rose-01") == list(range(1, last + 1))
        taps = await repo.events(compound="Rose Garden", kind="tap", limit=100_000)
        assert sorted(e["payload"]["n"] for e in taps) == list(range(0, written, 3))
        out = await verify(centre, capsys)
        assert f"gw-rose-01: ok: {last} events, highest {last}," in out
        # While the server was away the centre never failed as on a bug of its own (500): a
        # request either waited for the pool or was told to come back (503, see below).
        http = [r for r in caplog.records if r.name.startswith("centre.http")]
        assert not [r.getMessage() for r in http if r.levelno >= logging.ERROR]
    finally:
        await journal.close()


async def test_postgres_restarted_mid_command_delivery_delivers_each_once(
    centre: Centre,
    tmp_path: Path,
    pg_cluster: PgCluster,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.INFO, logger="centre.commands")
    async with command_rig(centre, tmp_path) as rig:
        channel = centre.running.commands
        assert isinstance(channel.store, PostgresCommandStore) and channel.notified
        # Only a NOTIFY (or the listener's wake-all on reconnecting) can send from here on.
        channel.poll_s = 3600.0
        channel.wake(GW)

        def start(n: int) -> BroadcastStart:
            return BroadcastStart((1 + n % 4,), 0.2, "drill", "Exercise")

        ids = [(await rig.order(start(i))).command_id for i in range(3)]  # before
        restart = asyncio.create_task(asyncio.to_thread(pg_cluster.restart, 2.0))
        refused = 0
        n = 3
        while not restart.done():  # during: an operator's order may fail; they try again
            try:
                ids.append((await rig.order(start(n))).command_id)
                n += 1
            except Exception:  # whatever the store raises with the server down
                refused += 1
            channel.wake(GW)  # the sender reads the queue with the server down: it must live
            await asyncio.sleep(0.1)
        await restart
        # The listener notices its lost connection and listens again (it wakes everyone then).
        async with asyncio.timeout(60):
            while "listening again" not in caplog.text:
                await asyncio.sleep(0.05)
        for i in range(3):  # after: sent only because of the NOTIFY (the poll is an hour)
            (rec,) = await issue(
                rig.store, [GW], rig.key, start(n + i), ttl_s=120, now=time.time(),
                issued_by="test",
            )  # fmt: skip
            ids.append(rec.command_id)
        for cid in ids:
            await rig.wait_status(cid, "done", timeout=90)
        accepted = [e["command_id"] for e in await rig.events("command.accepted")]
        assert len(set(accepted)) == len(accepted)  # none twice
        assert set(ids) <= set(accepted), (accepted, ids)  # every order that was taken
        # An order refused while the server went down may still have been committed (its
        # commit's reply lost with the connection): then it is queued and delivered once too.
        # Nothing else may arrive.
        extra = set(accepted) - set(ids)
        assert len(extra) <= refused, (extra, refused)
        for cid in extra:
            rec = await rig.store.command(cid)
            assert rec is not None and rec.status == "done", (cid, rec)
        assert not centre.running.commands._listener.done()  # type: ignore[union-attr]
    await verify(centre, capsys)


@contextlib.asynccontextmanager
async def serve(centre: Centre, tmp_path: Path, name: str) -> AsyncIterator[Process]:
    """A real ``compound-centre serve`` process on the centre's data directory (and so on its
    PostgreSQL); yields the process with ``.port`` set; SIGKILLed at the end if still alive."""
    port_file = tmp_path / f"{name}.port"
    log_file = (tmp_path / f"{name}.log").open("wb")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "centre.cli", "--data", str(centre.paths.root),
        "serve", "--port", "0", "--port-file", str(port_file),
        stdout=log_file, stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )  # fmt: skip
    try:
        async with asyncio.timeout(60):
            while not port_file.exists():
                if proc.returncode is not None:
                    raise AssertionError(f"{name} exited: {(tmp_path / f'{name}.log').read_text()}")
                await asyncio.sleep(0.1)
        yield Process(proc, int(port_file.read_text()))
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()
        log_file.close()


@dataclass
class Process:
    proc: asyncio.subprocess.Process
    port: int


async def test_a_centre_killed_its_gateway_reconnects_to_the_other_and_gets_pending_commands(
    centre: Centre, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two real ``compound-centre serve`` processes (A, B) on one PostgreSQL; the gateway
    reaches A through a loopback TCP proxy standing for the one address in front of both
    (hil_tests/netproxy.py). A is SIGKILLed (no goodbye: its sockets just die); commands
    queued meanwhile (here on a third, in-process centre, as an operator's console on another
    process would) are pending; the proxy now leads to B (what SO_REUSEPORT or HAProxy does
    once A's listener is gone); the gateway reconnects within its backoff and B delivers each
    pending command once. Real processes, not in-process centres: only a separate process can
    be killed the way a crash or OOM kill does it, without closing its WebSockets."""
    async with (
        serve(centre, tmp_path, "a") as a,
        serve(centre, tmp_path, "b") as b,
        FaultProxy(target=("127.0.0.1", a.port)) as proxy,
        command_rig(centre, tmp_path, centre_url=f"https://127.0.0.1:{proxy.port}") as rig,
    ):
        store = rig.store

        async def order(n: int) -> str:
            (rec,) = await issue(
                store, [GW], rig.key, BroadcastStart((1 + n % 4,), 0.2, "drill", "Exercise"),
                ttl_s=300, now=time.time(), issued_by="test",
            )  # fmt: skip
            return rec.command_id

        first = await order(0)  # delivered by A (woken by NOTIFY from this process's queue)
        await rig.wait_status(first, "done", timeout=60)
        a.proc.kill()
        await a.proc.wait()
        pending = [await order(n) for n in range(1, 4)]  # nobody holds the gateway now
        await asyncio.sleep(1.0)  # the gateway tries A (refused through the proxy), backs off
        for cid in pending:
            (rec,) = [r for r in await store.commands(gateway_id=GW) if r.command_id == cid]
            assert rec.status == "queued", rec
        proxy.target = ("127.0.0.1", b.port)
        for cid in pending:
            await rig.wait_status(cid, "done", timeout=90)
        accepted = [e["command_id"] for e in await rig.events("command.accepted")]
        assert accepted == [first, *pending]
        refused = await rig.events("command.refused")
        assert not refused, refused
        assert b.proc.returncode is None  # the survivor is still serving
    await verify(centre, capsys)


async def test_the_channel_outlives_database_errors_in_its_sender_and_ack_path(
    centre: Centre, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a restart does at an unlucky moment, made certain: the queue's read and an ack's
    write each fail twice as a cut connection does (the real store's methods, wrapped). The
    sender must not die (the command would sit queued while the WebSocket stays open), and
    the ack must not be lost (the gateway sends it once)."""
    async with command_rig(centre, tmp_path) as rig:
        store = rig.store
        failures = {"deliverable": 2, "record_ack": 2}

        def failing(name: str):  # type: ignore[no-untyped-def]
            real = getattr(store, name)

            async def call(*args, **kwargs):  # type: ignore[no-untyped-def]
                if failures[name] > 0:
                    failures[name] -= 1
                    raise psycopg.errors.AdminShutdown("terminating connection (test)")
                return await real(*args, **kwargs)

            return call

        for name in failures:
            monkeypatch.setattr(store, name, failing(name))
        rec = await rig.order(BroadcastStart((2,), 0.2, "drill", "Exercise"))
        await rig.wait_status(rec.command_id, "done", timeout=60)
        assert failures == {"deliverable": 0, "record_ack": 0}
        accepted = [e["command_id"] for e in await rig.events("command.accepted")]
        assert accepted == [rec.command_id]
        assert GW in centre.running.commands.connections  # the same link, never dropped
