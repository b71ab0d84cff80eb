"""The console store on both backends, and two centre processes sharing it on PostgreSQL.

Two stores opened on one PostgreSQL database stand for two ``compound-centre serve``
processes (or hosts) behind one address: a login through one is good on the other, a logout or
a disabled account ends it everywhere, and audit records appended through both at once make
one unbroken chain.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest

from centre.bulletins.pg_store import BULLETINS_PG_SCHEMA_VERSION
from centre.web.audit import AuditEntry, verify
from centre.web.console import Console
from centre.web.errors import ConsoleError
from centre.web.permissions import Role
from centre.web.pg_store import CONSOLE_PG_SCHEMA_VERSION, PostgresConsoleStore
from centre.web.store import AckRecord, Assignment, SqliteConsoleStore
from tests.console.conftest import CHEAP_N, PASSWORD, Clock
from tests.pg_cluster import BACKENDS

ROOT = Path(__file__).resolve().parents[2]

Opener = Callable[[], Awaitable[Any]]


@pytest.fixture(params=BACKENDS)
async def opener(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Opener]:
    """Opens another store on the same database each call (closed after the test)."""
    opened: list[Any] = []
    if request.param == "postgres":
        dsn = request.getfixturevalue("pg_dsn")

        async def open_one() -> Any:
            opened.append(await PostgresConsoleStore.open(dsn))
            return opened[-1]
    else:

        async def open_one() -> Any:
            opened.append(await SqliteConsoleStore.open(tmp_path / "console.db"))
            return opened[-1]

    try:
        yield open_one
    finally:
        for s in opened:
            await s.close()


def console(store: Any, clock: Clock) -> Console:
    return Console(store, clock=clock, scrypt_n=CHEAP_N)


async def test_accounts_and_sessions_are_shared_by_every_process(opener: Opener) -> None:
    clock = Clock()
    a, b = console(await opener(), clock), console(await opener(), clock)
    await a.add_user("cli:test", "alice", PASSWORD, Role.OFFICER)
    with pytest.raises(ConsoleError) as taken:
        await b.add_user("cli:test", "alice", PASSWORD, Role.CLERK)
    assert taken.value.code == "user_exists"
    assert [acc.user.role for acc in await b.store.list_users()] == [Role.OFFICER]

    login = await a.login("alice", PASSWORD, client="10.0.0.1")
    assert (await b.session(login.session_id, client="10.0.0.2")).name == "alice"
    await b.logout(login.session_id, client="10.0.0.2")
    with pytest.raises(ConsoleError) as gone:
        await a.session(login.session_id, client="10.0.0.1")
    assert gone.value.code == "no_session"

    again = await b.login("alice", PASSWORD, client="10.0.0.2")
    assert await a.store.set_disabled("alice", True)
    with pytest.raises(ConsoleError):
        await b.session(again.session_id, client="10.0.0.2")
    assert not await a.store.set_disabled("nobody", True)


async def test_audit_appends_from_two_processes_make_one_chain(opener: Opener) -> None:
    a, b = await opener(), await opener()

    async def append(store: Any, who: str, n: int) -> None:
        for i in range(n):
            await store.append_audit(
                AuditEntry(1_800_000_000.0 + i, who, "login", f"user:{who}", "ok", "local")
            )

    await asyncio.gather(append(a, "a", 25), append(b, "b", 25), append(a, "c", 10))
    records = await b.audit_records()
    assert [r.seq for r in records] == list(range(1, 61))
    assert sorted(r.user for r in records) == ["a"] * 25 + ["b"] * 25 + ["c"] * 10
    report = verify(records)
    assert report.ok, report


async def test_acks_once_and_the_latest_assignment_stands(opener: Opener) -> None:
    a, b = await opener(), await opener()
    assert await a.acknowledge(AckRecord("al-1", "alice", 1.0, "checked"))
    assert not await b.acknowledge(AckRecord("al-1", "bob", 2.0, "again"))
    assert (await b.acks())["al-1"] == AckRecord("al-1", "alice", 1.0, "checked")
    await a.assign(Assignment("al-1", "North", "alice", 1.0))
    await b.assign(Assignment("al-1", "South", "bob", 2.0))
    assert (await a.assignments())["al-1"].township == "South"


async def test_the_audit_table_refuses_update_and_delete_on_postgres(pg_dsn: str) -> None:
    store = await PostgresConsoleStore.open(pg_dsn)
    try:
        await store.append_audit(AuditEntry(1.0, "alice", "login", "user:alice", "ok", "local"))
    finally:
        await store.close()
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        for sql in (
            "UPDATE console_audit SET outcome = 'refused'",
            "DELETE FROM console_audit",
            "TRUNCATE console_audit",
        ):
            with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
                conn.execute(sql)
        assert conn.execute("SELECT outcome FROM console_audit").fetchall() == [("ok",)]


def test_migrate_brings_the_console_tables_and_reports_them(pg_dsn: str, tmp_path: Path) -> None:
    data = tmp_path / "centre"
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}

    def cli(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "centre.cli", "--data", str(data), *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
            check=False,
        )

    assert cli("init").returncode == 0
    (data / "centre.toml").write_text(f'[database]\ndsn = "{pg_dsn}"\n', encoding="utf-8")
    check = cli("migrate", "--check")
    assert check.returncode == 1 and "console" in check.stdout, check.stdout + check.stderr
    done = cli("migrate")
    assert done.returncode == 0, done.stderr
    for store, latest in (
        ("console", CONSOLE_PG_SCHEMA_VERSION),
        ("bulletins", BULLETINS_PG_SCHEMA_VERSION),
    ):
        assert any(
            line.startswith(f"{store} ") and line.endswith(f"0 -> {latest}")
            for line in done.stdout.splitlines()
        ), done.stdout
    assert cli("migrate", "--check").returncode == 0
    # The console CLI writes to the same database: an account made there is in PostgreSQL.
    made = cli("users", "add", "zhang.wei", "--role", "officer", stdin=f"{PASSWORD}\n")
    assert made.returncode == 0, made.stdout + made.stderr
    assert not (data / "console.db").exists()
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        assert conn.execute("SELECT name, role FROM console_users").fetchall() == [
            ("zhang.wei", "officer")
        ]
