"""The centre's side: the queue's rules and the operator's command line."""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path

import pytest

from centre.cli import main as centre_main
from centre.commands.channel import parse_ack
from centre.commands.store import CommandRepository, NewCommand, SqliteCommandStore
from centre.pki import CentrePaths
from tests.sync.conftest import Centre, enroll


def new(cid: str, now: float, ttl: float = 120.0) -> NewCommand:
    return NewCommand(cid, "broadcast.start", "", now, now + ttl, f"env-{cid}".encode())


async def open_store(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> CommandRepository:
    """The command queue on this test's backend (``backend`` fixture: SQLite, PostgreSQL)."""
    if backend == "postgres":
        from centre.commands.pg_store import PostgresCommandStore

        return await PostgresCommandStore.open(request.getfixturevalue("pg_dsn"))
    return await SqliteCommandStore.open(tmp_path / "c.db")


async def test_sequence_per_gateway_and_statuses_only_move_forward(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    store = await open_store(backend, tmp_path, request)
    try:
        t = 1000.0
        a1 = await store.enqueue("gw-a", lambda s: new("a1", t), now=t, issued_by="x")
        b1 = await store.enqueue("gw-b", lambda s: new("b1", t), now=t, issued_by="x")
        a2 = await store.enqueue("gw-a", lambda s: new("a2", t), now=t, issued_by="x")
        assert (a1.seq, b1.seq, a2.seq) == (1, 1, 2)
        assert [r.command_id for r in await store.deliverable("gw-a", now=t)] == ["a1", "a2"]
        await store.mark_delivered("a1", now=t + 1)
        rec = await store.record_ack("gw-a", "a1", "on", "", now=t + 2)
        assert rec is not None and rec.status == "on"
        rec = await store.record_ack("gw-a", "a1", "received", "", now=t + 3)  # late, out of order
        assert rec is not None and (rec.status, rec.received_at) == ("on", t + 3)
        await store.record_ack("gw-a", "a1", "done", "duration", now=t + 4)
        rec = await store.record_ack("gw-a", "a1", "failed", "late", now=t + 5)
        assert rec is not None and (rec.status, rec.reason) == ("done", "duration")
        # another gateway cannot speak for gw-a's command
        assert await store.record_ack("gw-b", "a2", "refused", "x", now=t) is None
        (a2now,) = [r for r in await store.commands(gateway_id="gw-a") if r.command_id == "a2"]
        assert a2now.status == "queued"
        # an unreadable envelope's refusal is matched by its digest
        digest = hashlib.sha256(b"env-a2").hexdigest()
        rec = await store.record_ack("gw-a", "", "refused", "bad_encoding: x", now=t, digest=digest)
        assert rec is not None and (rec.command_id, rec.status) == ("a2", "refused")
        assert len(await store.acks("gw-a")) == 5
    finally:
        await store.close()


async def test_waiting_commands_expire_and_are_never_handed_out(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    store = await open_store(backend, tmp_path, request)
    try:
        t = 1000.0
        await store.enqueue("gw-a", lambda s: new("short", t, ttl=10), now=t, issued_by="x")
        await store.enqueue("gw-a", lambda s: new("long", t, ttl=100), now=t, issued_by="x")
        (short,) = [r for r in await store.commands() if r.command_id == "short"]
        assert short.shown_status(t + 5) == "queued" and short.shown_status(t + 11) == "expired"
        assert [r.command_id for r in await store.deliverable("gw-a", now=t + 11)] == ["long"]
        (short,) = [r for r in await store.commands() if r.command_id == "short"]
        assert (short.status, short.delivered_at, short.finished_at) == ("expired", None, t + 11)
        await store.mark_delivered("short", now=t + 12)  # too late: stays expired
        (short,) = [r for r in await store.commands() if r.command_id == "short"]
        assert short.status == "expired"
    finally:
        await store.close()


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        ('{"type":"ack","command_id":"c1","stage":"on"}', True),
        ('{"type":"ack","command_id":"c1","stage":"refused","code":"expired","reason":"x"}', True),
        ('{"type":"ack","command_id":"c1","stage":"exploded"}', False),
        ('{"type":"ack","command_id":"c1","stage":"on","stage":"on"}', False),
        ('{"type":"ack","command_id":"c1","stage":"on","extra":1}', False),
        ('{"type":"ack","command_id":1,"stage":"on"}', False),
        ("not json", False),
    ],
)
def test_ack_parsing_is_strict(text: str, ok: bool) -> None:
    assert (parse_ack(text) is not None) is ok


async def test_cli_broadcast_and_commands(
    centre: Centre, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    await enroll(centre, tmp_path / "gw1", gateway_id="gw-rose-01", compound="Rose Garden")
    await enroll(centre, tmp_path / "gw2", gateway_id="gw-lily-01", compound="Lily Court")
    data = str(centre.paths.root)

    def run(*args: str) -> tuple[int, str, str]:
        code = centre_main(["--data", data, *args])
        out, err = capsys.readouterr()
        return code, out, err

    loop = asyncio.get_running_loop()
    code, out, _ = await loop.run_in_executor(
        None,
        lambda: run(
            "broadcast", "--compound", "Rose Garden", "--zones", "1,2", "--seconds", "90",
            "--message", "fire-drill", "--status", "Exercise", "--json",
        ),
    )  # fmt: skip
    assert code == 0
    (rec,) = json.loads(out)
    assert (rec["gateway_id"], rec["seq"], rec["status"]) == ("gw-rose-01", 1, "queued")
    assert rec["expires_at"] - rec["issued_at"] == 120
    code, out, _ = await loop.run_in_executor(
        None, lambda: run("broadcast", "--all", "--zones", "3", "--seconds", "5", "--message",
                          "t", "--ttl", "30")
    )  # fmt: skip
    assert code == 0 and out.count("queued ") == 2
    code, out, _ = await loop.run_in_executor(None, lambda: run("commands", "--json"))
    rows = json.loads(out)
    assert sorted((r["gateway_id"], r["seq"]) for r in rows) == [
        ("gw-lily-01", 1),
        ("gw-rose-01", 1),
        ("gw-rose-01", 2),
    ]
    code, out, _ = await loop.run_in_executor(None, lambda: run("commands"))
    assert code == 0 and "zones 1,2 90s fire-drill [Exercise]" in out
    rose = ["--compound", "Rose Garden", "--seconds", "5"]
    for bad, why in [
        (["--compound", "Nowhere", "--seconds", "5", "--zones", "1", "--message", "m"], "no enr"),
        ([*rose, "--zones", "1,x", "--message", "m"], "--zones"),
        ([*rose, "--zones", "1", "--message", "a b"], "--message"),
        ([*rose, "--zones", "1", "--message", "m", "--ttl", "7200"], "--ttl"),
    ]:
        code, _, err = await loop.run_in_executor(None, lambda b=bad: run("broadcast", *b))
        assert code == 2 and why in err, (bad, err)


def test_command_key_file_is_private(centre_dir: tuple[CentrePaths, str]) -> None:
    paths, _ = centre_dir
    assert paths.command_key.stat().st_mode & 0o777 == 0o600
