"""The main repository on both backends (SQLite, PostgreSQL): idempotent ingest, a refused
rewrite kept in its alert, concurrent ingest from two connections, schema migrations that
lose nothing, and the DSN's password kept out of logs and output."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from centre.cli import main
from centre.database import DATABASE_ENV, redact_dsn
from centre.errors import CentreError, Conflict
from centre.pg_store import PG_MIGRATIONS, PostgresRepository, migrate_postgres
from centre.pki import CentrePaths, init_centre
from centre.store import (
    _MIGRATIONS,
    JOURNAL_REWRITTEN,
    SCHEMA_VERSION,
    SqliteRepository,
    SqlRepository,
    migrate_sqlite,
    sqlite_schema_version,
)
from tests.centre.test_store_and_cli import ev, ingest, registered
from tests.pg_cluster import OpenRepo
from wire import Batch, encode


async def test_the_same_events_twice_are_stored_once(open_repo: OpenRepo) -> None:
    repo = await registered(open_repo)
    try:
        first = await ingest(repo, [1, 2, 3])
        again = await ingest(repo, [1, 2, 3])  # the ack was lost: the same batch again
        overlap = await ingest(repo, [3, 4])  # another batch that overlaps
        assert (first.stored, first.duplicates) == (3, 0)
        assert (again.stored, again.duplicates, again.watermark) == (0, 3, 3)
        assert (overlap.stored, overlap.duplicates, overlap.watermark) == (1, 1, 4)
        assert await repo.event_seqs("gw-01") == [1, 2, 3, 4]
        g = await repo.gateway("gw-01")
        assert g is not None and g.event_count == 4
    finally:
        await repo.close()


async def test_a_rewritten_seq_is_refused_and_kept_in_an_alert(open_repo: OpenRepo) -> None:
    repo = await registered(open_repo)
    try:
        await ingest(repo, [1, 2, 3])
        held = (await repo.event_bodies("gw-01"))[2]
        edited = [ev(2), ev(3), ev(4)]
        edited[0]["payload"] = {"n": "edited"}
        b = Batch.build("gw-01", "b-edit", edited, head_seq=10, created_at=0.0)
        with pytest.raises(Conflict) as info:
            await repo.ingest(b, envelope=b"{}", signature=b"s" * 64, key_id="kid", now=5.0)
        assert info.value.fields["seq"] == 2
        # Nothing of the refused batch is stored (not even seq 4), the held version is intact...
        assert await repo.event_seqs("gw-01") == [1, 2, 3]
        assert (await repo.event_bodies("gw-01"))[2] == held
        # ... and the refused version is kept, whole, in the alert.
        [alert] = await repo.alerts(kind_prefix=JOURNAL_REWRITTEN)
        assert (alert.gateway_id, alert.compound, alert.seq) == ("gw-01", "Rose", 2)
        assert alert.details["sent"]["payload"] == {"n": "edited"}
        assert alert.details["batch_id"] == "b-edit" and len(alert.details["held_sha256"]) == 64
        # The same refusal again records nothing new.
        with pytest.raises(Conflict):
            await repo.ingest(b, envelope=b"{}", signature=b"s" * 64, key_id="kid", now=6.0)
        assert len(await repo.alerts(kind_prefix=JOURNAL_REWRITTEN)) == 1
    finally:
        await repo.close()


async def test_two_connections_ingesting_one_gateway_lose_nothing_and_double_nothing(
    open_repo: OpenRepo,
) -> None:
    """Two repositories (two connection pools, as two centre processes have) take overlapping
    batches of one gateway at once: every seq stored once, every event counted once."""
    a = await registered(open_repo)
    b: SqlRepository = await open_repo()
    n = 300
    try:

        async def send(repo: SqlRepository, lo: int, hi: int, tag: str) -> tuple[int, int]:
            events = [ev(s) for s in range(lo, hi + 1)]
            batch = Batch.build("gw-01", f"{tag}{lo}", events, head_seq=n, created_at=0.0)
            r = await repo.ingest(batch, envelope=b"{}", signature=b"s", key_id="k", now=1.0)
            return r.stored, r.duplicates

        jobs = []
        for lo in range(1, n + 1, 20):
            jobs.append(send(a, lo, min(n, lo + 29), "a"))  # 30-event batches, overlapping
            jobs.append(send(b, lo, min(n, lo + 19), "b"))
        results = await asyncio.gather(*jobs)
        sent = sum(
            min(n, lo + 29) - lo + 1 + min(n, lo + 19) - lo + 1 for lo in range(1, n + 1, 20)
        )
        assert sum(s for s, _ in results) == n
        assert sum(s + d for s, d in results) == sent
        assert await a.event_seqs("gw-01") == list(range(1, n + 1))
        g = await b.gateway("gw-01")
        assert g is not None and (g.event_count, g.watermark, g.highest) == (n, n, n)
        assert (await b.state("gw-01")).gaps == ()
    finally:
        await b.close()
        await a.close()


async def test_tap_tally_agrees_on_both_backends(open_repo: OpenRepo) -> None:
    repo = await registered(open_repo)
    try:
        events = [ev(s) for s in range(1, 6)]
        for e, band, verified in zip(
            events, ["A", "A", "B", "C", "C"], [True, None, False, True, None], strict=True
        ):
            e["payload"] = {
                "wristband": band,
                **({} if verified is None else {"verified": verified}),
            }
        batch = Batch.build("gw-01", "b1", events, head_seq=5, created_at=0.0)
        await repo.ingest(batch, envelope=b"{}", signature=b"s", key_id="k", now=1.0)
        [tally] = await repo.tap_tally(since=0.0, until=2e9)
        # Unverified: seq 2 (A, no flag), 3 (B, false), 5 (C, no flag) -> 3 taps, 3 bands.
        assert (tally.gateway_id, tally.taps, tally.unverified, tally.unverified_bands) == (
            "gw-01", 5, 3, 3,
        )  # fmt: skip
    finally:
        await repo.close()


# -- migrations ---------------------------------------------------------------------------


def _dump_sqlite(path: Path, tables: list[str]) -> dict[str, list[tuple[Any, ...]]]:
    db = sqlite3.connect(path)
    try:
        return {t: sorted(db.execute(f"SELECT * FROM {t}").fetchall(), key=repr) for t in tables}
    finally:
        db.close()


V2_TABLES = ["tokens", "gateways", "events", "batches", "skipped", "alerts"]


def _fill_v2(execute: Any) -> None:
    """Rows in every table schema version 2 has (``execute(sql, params)``, ``?`` marks)."""
    execute(
        "INSERT INTO tokens VALUES (?, ?, ?, ?, ?, ?, ?)",
        ("h1", "玫瑰园", "北街道", 1.5, 100.25, 2.5, "gw-01"),
    )
    execute(
        "INSERT INTO gateways VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        ("gw-01", "玫瑰园", "北街道", "fp", "cert", "pub", "kid", 2.5, None, None, 9.75,
         3, 5, 7, 4),
    )  # fmt: skip
    for seq in (1, 2, 3, 5):
        body = encode(ev(seq)).decode()
        execute(
            "INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            ("gw-01", seq, "tap", "evidence", 1_790_000_000.125 + seq, body, "b1", 9.5,
             seq - 1, f"{seq:064x}"),
        )  # fmt: skip
    execute(
        "INSERT INTO batches VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        ("gw-01", "b1", 9.5, 1, 5, 4, 4, "kid", b"\x00sig\xff", b"\x78\x9cenvelope"),
    )
    execute("INSERT INTO skipped VALUES (?, ?, ?, ?)", ("gw-01", 4, 4, "b1"))
    execute(
        "INSERT INTO alerts (alert_key, kind, gateway_id, compound, seq, at, raised_at, details)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        ("journal.deleted/gw-01/4", "journal.deleted", "gw-01", "玫瑰园", 4, 9.0, 9.5, "{}"),
    )


async def test_a_sqlite_database_at_version_2_is_upgraded_and_loses_nothing(
    tmp_path: Path,
) -> None:
    path = tmp_path / "centre.db"
    db = sqlite3.connect(path, isolation_level=None)
    assert migrate_sqlite(db, upto=2) == (0, 2)
    _fill_v2(db.execute)
    db.close()
    before = _dump_sqlite(path, V2_TABLES)
    assert sqlite_schema_version(path) == 2 and sum(map(len, before.values())) == 9

    repo = await SqliteRepository.open(path)  # opening migrates
    try:
        assert sqlite_schema_version(path) == SCHEMA_VERSION == 6
        assert _dump_sqlite(path, V2_TABLES) == before
        # The upgraded store works on: the held events, then a new batch beside them.
        assert await repo.event_seqs("gw-01") == [1, 2, 3, 5]
        r = await ingest(repo, [6])
        assert (r.stored, r.watermark) == (1, 6)
    finally:
        await repo.close()


async def test_a_postgres_database_at_version_2_is_upgraded_and_loses_nothing(
    pg_dsn: str,
) -> None:
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        assert migrate_postgres(conn, upto=2) == (0, 2)
        _fill_v2(lambda sql, params: conn.execute(sql.replace("?", "%s"), params))

    def dump() -> dict[str, list[tuple[Any, ...]]]:
        with psycopg.connect(pg_dsn) as conn:
            return {
                t: sorted(conn.execute(f"SELECT * FROM {t}").fetchall(), key=repr)
                for t in V2_TABLES
            }

    before = dump()
    repo = await PostgresRepository.open(pg_dsn)
    try:
        assert dump() == before
        assert await repo.event_seqs("gw-01") == [1, 2, 3, 5]
        r = await ingest(repo, [6])
        assert (r.stored, r.watermark) == (1, 6)
    finally:
        await repo.close()
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        n = len(PG_MIGRATIONS)
        assert migrate_postgres(conn) == (n, n)  # nothing left to do


async def test_both_backends_have_the_same_tables_and_columns(tmp_path: Path, pg_dsn: str) -> None:
    """A migration added to one backend and not the other fails here."""
    assert len(PG_MIGRATIONS) == len(_MIGRATIONS) == SCHEMA_VERSION
    await (await SqliteRepository.open(tmp_path / "c.db")).close()  # opening migrates
    lite = sqlite3.connect(tmp_path / "c.db")
    tables = [r[0] for r in lite.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    sqlite_cols = {
        (t, r[1]) for t in tables if t != "sqlite_sequence"
        for r in lite.execute(f"PRAGMA table_info({t})")
    }  # fmt: skip
    lite.close()
    await (await PostgresRepository.open(pg_dsn)).close()
    with psycopg.connect(pg_dsn) as conn:
        pg_cols = {
            (t, c)
            for t, c in conn.execute(
                "SELECT table_name, column_name FROM information_schema.columns"
                " WHERE table_schema = 'public' AND table_name <> 'schema_version'"
            ).fetchall()
        }
    assert pg_cols == sqlite_cols


def test_migrate_command_upgrades_and_check_says_when_one_is_pending(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "c"
    init_centre(
        CentrePaths(data), hostnames=["localhost"], ips=["127.0.0.1"], now=time.time(), name="T"
    )
    db = sqlite3.connect(data / "centre.db", isolation_level=None)
    migrate_sqlite(db, upto=2)
    db.close()
    assert main(["--data", str(data), "migrate", "--check"]) == 1
    assert f"{SCHEMA_VERSION - 2} migration(s) pending" in capsys.readouterr().out
    assert main(["--data", str(data), "migrate"]) == 0
    said = capsys.readouterr().out
    assert f"main (SQLite {data / 'centre.db'}): schema version 2 -> {SCHEMA_VERSION}" in said
    assert main(["--data", str(data), "migrate", "--check"]) == 0
    assert "up to date" in capsys.readouterr().out


def test_migrate_and_serve_on_postgres_never_show_the_password(
    tmp_path: Path,
    pg_dsn: str,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = tmp_path / "c"
    init_centre(
        CentrePaths(data), hostnames=["localhost"], ips=["127.0.0.1"], now=time.time(), name="T"
    )
    secret = "pw-never-shown-7f3a"
    dsn = f"{pg_dsn} password={secret}"  # trust auth: accepted, never checked
    (data / "centre.toml").write_text(f"[database]\ndsn = {dsn!r}\n".replace("'", '"'))
    caplog.set_level(logging.DEBUG)
    assert main(["--data", str(data), "migrate", "--check"]) == 1  # an empty database
    assert main(["--data", str(data), "migrate"]) == 0
    assert main(["--data", str(data), "migrate", "--check"]) == 0
    assert main(["--data", str(data), "token", "create", "--compound", "Rose"]) == 0
    assert main(["--data", str(data), "gateways"]) == 0
    out = capsys.readouterr().out
    n = len(PG_MIGRATIONS)
    assert "PostgreSQL" in out and f"schema version 0 -> {n}" in out and "password=***" in out
    assert secret not in out and secret not in caplog.text
    # The bulletins read the configured repository (no centre.db needed).
    out_dir = tmp_path / "out"
    assert main(["--data", str(data), "bulletin", "daily", "--date", "2026-11-28",
                 "--out", str(out_dir)]) == 0  # fmt: skip
    assert any(out_dir.iterdir()) and not (data / "centre.db").exists()
    capsys.readouterr()
    # The alert pusher still reads centre.db directly: it refuses, rather than push nothing.
    assert main(["--data", str(data), "push", "alerts"]) == 2
    assert "not supported yet" in capsys.readouterr().err
    # The token went to PostgreSQL, not to a SQLite file.
    with psycopg.connect(pg_dsn) as conn:
        assert conn.execute("SELECT compound FROM tokens").fetchall() == [("Rose",)]
    # The environment names the database too (and wins over the file).
    (data / "centre.toml").write_text('[database]\ndsn = "host=/nonexistent dbname=x"\n')
    monkeypatch.setenv(DATABASE_ENV, dsn)
    assert main(["--data", str(data), "migrate", "--check"]) == 0
    assert f"schema version {len(PG_MIGRATIONS)}" in capsys.readouterr().out


def test_redacted_dsns_keep_everything_but_the_password() -> None:
    assert redact_dsn("postgresql://centre:hunter2@db.example:5432/centre?sslmode=require") == (
        "postgresql://centre:***@db.example:5432/centre?sslmode=require"
    )
    assert redact_dsn("postgresql://c@db/x?password=hunter2&sslmode=verify-full") == (
        "postgresql://c@db/x?password=***&sslmode=verify-full"
    )
    assert redact_dsn("host=db user=c password='hun ter2' dbname=x") == (
        "host=db user=c password=*** dbname=x"
    )
    assert redact_dsn("host=db dbname=x") == "host=db dbname=x"


async def test_an_unreachable_database_is_a_clear_error_without_the_password(
    tmp_path: Path,
) -> None:
    dsn = f"host={tmp_path} port=1 dbname=x user=centre password=pw-not-shown"
    with pytest.raises(CentreError) as info:
        await PostgresRepository.open(dsn)
    assert "cannot use the main repository's PostgreSQL" in info.value.reason
    assert "password=***" in info.value.reason and "pw-not-shown" not in info.value.reason


def test_without_postgresql_binaries_the_cluster_says_make_bootstrap(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The fixture fails (never skips) with this message when Debian's package is missing."""
    from tests import pg_cluster

    monkeypatch.setattr(pg_cluster.shutil, "which", lambda name: None)
    monkeypatch.setattr(pg_cluster.glob, "glob", lambda pattern: [])
    with pytest.raises(pg_cluster.ClusterUnavailable, match="make bootstrap"):
        pg_cluster._binaries()


async def test_connections_the_server_dropped_are_replaced_not_failed(pg_dsn: str) -> None:
    """After the server ends every session (as a restart does), the next calls succeed."""
    repo = await PostgresRepository.open(pg_dsn, pool_size=2)
    try:
        await repo.create_token("h", "Rose", "", 0.0, 1e12)
        await asyncio.gather(repo.gateways(), repo.gateways())  # both connections in the pool
        with psycopg.connect(pg_dsn, autocommit=True) as admin:
            ended = admin.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            ).fetchone()
        assert ended is not None and ended[0] >= 1
        for _ in range(3):
            assert await repo.gateways() == []
        await repo.create_token("h2", "Rose", "", 0.0, 1e12)
    finally:
        await repo.close()
