"""A throwaway PostgreSQL for the tests: one cluster per test session, one database per test.

``pg_cluster`` (session scope) runs Debian's ``initdb`` and ``pg_ctl`` on a temp folder, the
server listening only on a unix socket in that folder (no TCP; the port, chosen free, names the
socket), and stops and removes it when the session ends, whatever happened. PostgreSQL refuses
to run as root, so as root the binaries run as the ``postgres`` system user (``runuser``),
owner of the temp folder. ``pg_dsn`` (function scope) creates a fresh database on that cluster
and drops it after the test. Without the binaries the fixture FAILS: ``make bootstrap``
installs them (Debian's postgresql package).

Registered for every test folder by the root conftest.py (``pytest_plugins``).
"""

from __future__ import annotations

import contextlib
import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

PG_USER = "postgres"  # the system user the server runs as (when we are root)


@dataclass(frozen=True)
class PgCluster:
    socket_dir: Path
    port: int
    # How to drive the server (set by :func:`throwaway_cluster`): the ``pg_ctl`` command line up
    # to the action (runuser prefix, -D, -l) and the server options given at start.
    pg_ctl: tuple[str, ...] = ()
    options: str = ""

    def dsn(self, dbname: str = "postgres") -> str:
        return f"host={self.socket_dir} port={self.port} user={PG_USER} dbname={dbname}"

    def restart(self, down_s: float = 0.0) -> None:
        """Stop the server (``-m fast``: sessions are cut, as when an operator restarts it)
        and start it again, ``down_s`` seconds later; returns once it accepts connections.
        Blocking (call it with ``asyncio.to_thread`` from a test on the loop). For the fault
        tests; every other test on the session's cluster sees a healthy server after it."""
        if not self.pg_ctl:
            raise ClusterUnavailable("this cluster was not started by throwaway_cluster()")
        subprocess.run(
            [*self.pg_ctl, "-m", "fast", "-w", "-t", "60", "stop"],
            check=True, capture_output=True, cwd="/", timeout=90,
        )  # fmt: skip
        time.sleep(down_s)
        subprocess.run(
            [*self.pg_ctl, "-o", self.options, "-w", "-t", "60", "start"],
            check=True, capture_output=True, cwd="/", timeout=90,
        )  # fmt: skip


class ClusterUnavailable(Exception):
    """The throwaway cluster could not be started; the message says why and what to do."""


def _binaries() -> tuple[str, str]:
    """initdb and pg_ctl: from PATH, else Debian's /usr/lib/postgresql/<version>/bin."""
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if initdb and pg_ctl:
        return initdb, pg_ctl
    for bindir in sorted(
        glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]), reverse=True
    ):
        if os.access(f"{bindir}/initdb", os.X_OK) and os.access(f"{bindir}/pg_ctl", os.X_OK):
            return f"{bindir}/initdb", f"{bindir}/pg_ctl"
    raise ClusterUnavailable(
        "PostgreSQL's initdb and pg_ctl were not found (neither on PATH nor in "
        "/usr/lib/postgresql/*/bin): `make bootstrap` installs Debian's postgresql package"
    )


def _reachable_temp(as_root: bool) -> str:
    """The temp folder, if every folder on its path lets others through (the postgres user
    must reach its cluster), else /tmp."""
    base = Path(tempfile.gettempdir()).resolve()
    if not as_root:
        return str(base)
    for p in (base, *base.parents):
        if not os.stat(p).st_mode & 0o001:
            return "/tmp"
    return str(base)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def throwaway_cluster(*, durable: bool = False) -> Iterator[PgCluster]:
    """A new PostgreSQL cluster in a temp folder for the block; stopped and removed after it,
    whatever happened. ``durable=False`` turns fsync off (tests judge logic, not durability);
    a benchmark that compares with SQLite's synchronous=FULL passes True."""
    initdb, pg_ctl = _binaries()
    as_root = os.geteuid() == 0
    prefix: list[str] = ["runuser", "-u", PG_USER, "--"] if as_root else []
    # Not under pytest's tmp folder: that one is 0700 root's, which the postgres user can't
    # enter; nor under a $TMPDIR the postgres user cannot reach. Short, too: a unix socket
    # path is at most 107 bytes.
    root = Path(tempfile.mkdtemp(prefix="compound-pg-", dir=_reachable_temp(as_root)))
    data, sock = root / "data", root / "sock"
    sock.mkdir()
    if as_root:
        try:
            pw = pwd.getpwnam(PG_USER)
        except KeyError:
            shutil.rmtree(root)
            raise ClusterUnavailable(
                f"no {PG_USER!r} system user to run PostgreSQL as (root is refused): "
                "`make bootstrap` installs Debian's postgresql package, which creates it"
            ) from None
        for p in (root, sock):
            os.chown(p, pw.pw_uid, pw.pw_gid)
    port = _free_port()
    log = root / "server.log"
    started = False
    try:
        try:
            subprocess.run(
                [*prefix, initdb, "-D", str(data), "-U", PG_USER, "--auth=trust",
                 "--encoding=UTF8", "--locale=C", "--no-sync"],
                check=True, capture_output=True, cwd="/", timeout=120,
            )  # fmt: skip
            options = f"-k {sock} -p {port} -c listen_addresses='' -c max_connections=200"
            if not durable:
                options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
            started = True
            subprocess.run(
                [*prefix, pg_ctl, "-D", str(data), "-l", str(log), "-o", options, "-w",
                 "-t", "60", "start"],
                check=True, capture_output=True, cwd="/", timeout=90,
            )  # fmt: skip
        except subprocess.CalledProcessError as exc:
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise ClusterUnavailable(
                f"starting the test PostgreSQL failed: {exc.cmd[len(prefix)]}: "
                f"{exc.stderr.decode(errors='replace')}\n{tail}"
            ) from None
        yield PgCluster(sock, port, (*prefix, pg_ctl, "-D", str(data), "-l", str(log)), options)
    finally:
        if started:
            subprocess.run(
                [*prefix, pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop"],
                capture_output=True, cwd="/", timeout=60, check=False,
            )  # fmt: skip
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    """One throwaway cluster for the session; FAILS (never skips) when it cannot start."""
    try:
        with throwaway_cluster() as cluster:
            yield cluster
    except ClusterUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)


_numbers = itertools.count(1)


@pytest.fixture
def pg_dsn(pg_cluster: PgCluster) -> Iterator[str]:
    """A fresh, empty database on the session's cluster (dropped after the test)."""
    import psycopg

    name = f"t{os.getpid()}_{next(_numbers)}"
    with psycopg.connect(pg_cluster.dsn(), autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield pg_cluster.dsn(name)
    finally:
        with (
            psycopg.connect(pg_cluster.dsn(), autocommit=True) as admin,
            contextlib.suppress(psycopg.Error),
        ):
            admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


BACKENDS = ("sqlite", "postgres")
OpenRepo = Callable[[], Awaitable[Any]]


@pytest.fixture
def centre_backend() -> str:
    """The main repository's backend under the real-centre fixture (tests/sync/conftest.py
    ``centre``): SQLite; a module that wants both overrides this fixture with
    ``params=BACKENDS`` (as tests/sync/test_end_to_end.py does)."""
    return "sqlite"


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """Each backend of the centre's main repository in turn (the test runs once per backend)."""
    return str(request.param)


@pytest.fixture
def open_repo(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> OpenRepo:
    """``await open_repo()``: the main repository on this test's backend; a second call opens
    another repository (its own connections) on the same database."""
    from centre.store import SqliteRepository

    if backend == "postgres":
        from centre.pg_store import PostgresRepository

        dsn = request.getfixturevalue("pg_dsn")

        async def open_pg() -> Any:
            return await PostgresRepository.open(dsn)

        return open_pg

    async def open_sqlite() -> Any:
        return await SqliteRepository.open(tmp_path / "c.db")

    return open_sqlite
