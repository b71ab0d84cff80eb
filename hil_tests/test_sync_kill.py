"""SIGKILL of the gateway and of the centre during upload: afterwards the centre holds every
event exactly once, sequence-complete, signatures valid (checked by ``compound-centre verify``).

Both sides are real processes: the centre is ``compound-centre serve``; the gateway side is
the journal + uploader run by :func:`gateway_main` below in its own Python process (the daemon
runs the same Uploader once the lead registers ``gateway.sync.service.build_services``).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.journal import read_status

REPO = Path(__file__).resolve().parent.parent
CENTRE_BIN = [sys.executable, "-m", "centre.cli"]
GATEWAY = "gw-kill-01"


# -- the gateway side, run as its own process ----------------------------------------------


def gateway_main(argv: list[str]) -> None:
    """``python -c 'from hil_tests.test_sync_kill import gateway_main; gateway_main([...])'``
    args: data_dir centre_url n_events; appends n events then runs until all are synced."""
    import logging

    from gateway.clock import SystemClock
    from gateway.events import TELEMETRY
    from gateway.journal import Journal
    from gateway.sync.config import SyncSection
    from gateway.sync.uploader import Uploader

    logging.basicConfig(level=logging.INFO, format="%(asctime)s gw %(message)s")
    data, url, n = Path(argv[0]), argv[1], int(argv[2])

    async def main() -> None:
        journal = await Journal.open(data / "journal.db", gateway_id=GATEWAY, clock=SystemClock())
        section = SyncSection(
            centre_url=url,
            batch_max_events=40,
            first_delay_max_s=0.0,
            backoff_initial_s=0.1,
            backoff_max_s=0.5,
            idle_poll_s=0.2,
            request_timeout_s=5.0,
            connect_timeout_s=2.0,
        )
        uploader = Uploader(journal, SystemClock(), section, data_dir=data, rng=random.Random())
        task = asyncio.create_task(uploader.run())
        for i in range(n):
            if i % 5 == 0:
                await journal.append("tap", {"checkpoint": f"cp-{i % 9}", "n": i})
            else:
                await journal.append("health.sample", {"n": i, "temp_c": 47.25}, cls=TELEMETRY)
            if i % 50 == 0:
                await asyncio.sleep(0.01)  # a steady producer, not one burst
        print("appended", flush=True)
        quiet_since = None
        while True:
            await asyncio.sleep(0.1)
            if task.done():
                task.result()
            if (await journal.stats())["unsynced"] == 0:
                quiet_since = quiet_since or time.monotonic()
                if time.monotonic() - quiet_since > 1.0:
                    break
            else:
                quiet_since = None
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await journal.close()
        print("synced", flush=True)

    asyncio.run(main())


# -- test plumbing ---------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Proc:
    def __init__(self, args: list[str], log: Path) -> None:
        self.log = log
        self.fh = open(log, "ab")  # noqa: SIM115 - closed in stop()
        self.p = subprocess.Popen(
            args,
            cwd=REPO,
            stdout=self.fh,
            stderr=subprocess.STDOUT,
            env=os.environ | {"PYTHONPATH": str(REPO)},
        )

    def kill(self) -> None:
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGKILL)
        self.p.wait(10)

    def stop(self) -> None:
        if self.p.poll() is None:
            self.p.terminate()
            try:
                self.p.wait(10)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait(10)
        self.fh.close()

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]


@pytest.fixture
def procs() -> Iterator[list[Proc]]:
    made: list[Proc] = []
    yield made
    for p in made:
        p.stop()


def run_cli(data: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CENTRE_BIN, "--data", str(data), *args],
        check=False,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        env=os.environ | {"PYTHONPATH": str(REPO)},
    )


def start_centre(data: Path, port: int, procs: list[Proc], log: Path) -> Proc:
    p = Proc([*CENTRE_BIN, "--data", str(data), "serve", "--port", str(port)], log)
    procs.append(p)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return p
        if p.p.poll() is not None:
            raise AssertionError("centre exited:\n" + p.tail())
        time.sleep(0.05)
    raise AssertionError("centre did not listen:\n" + p.tail())


def start_gateway(data: Path, url: str, n: int, procs: list[Proc], log: Path) -> Proc:
    args = [str(data), url, str(n)]
    code = f"from hil_tests.test_sync_kill import gateway_main; gateway_main({args!r})"
    p = Proc([sys.executable, "-c", code], log)
    procs.append(p)
    return p


def centre_watermark(db: Path) -> int:
    if not db.exists():
        return 0
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        row = conn.execute(
            "SELECT watermark FROM gateways WHERE gateway_id = ?", (GATEWAY,)
        ).fetchone()
        return int(row[0]) if row else 0
    finally:
        conn.close()


def wait_until(cond, timeout: float, what: str, *logs: Proc) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out: {what}\n" + "\n".join(p.tail() for p in logs))
        time.sleep(0.05)


@pytest.fixture
def setup(tmp_path: Path, procs: list[Proc]) -> tuple[Path, Path, int]:
    """An initialised centre, a provisioned gateway data dir, and the centre's port."""
    centre = tmp_path / "centre"
    assert run_cli(centre, "init").returncode == 0
    tok = run_cli(centre, "token", "create", "--compound", "Kill Court", "--json")
    assert tok.returncode == 0, tok.stderr
    info = json.loads(tok.stdout)
    port = free_port()
    c = start_centre(centre, port, procs, tmp_path / "centre.log")
    data = tmp_path / "gw"
    from gateway.sync.provision import provision

    asyncio.run(
        provision(
            f"https://127.0.0.1:{port}",
            info["token"],
            data_dir=data,
            gateway_id=GATEWAY,
            compound="Kill Court",
            ca_fingerprint=info["ca_fingerprint"],
        )
    )
    c.stop()
    procs.remove(c)
    return centre, data, port


def assert_complete(centre: Path, data: Path) -> None:
    last = read_status(data / "journal.db")["last_seq"]
    assert read_status(data / "journal.db")["unsynced"] == 0
    assert centre_watermark(centre / "centre.db") == last
    out = run_cli(centre, "verify")
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"{last} events, highest {last}" in out.stdout, out.stdout


def test_sigkill_gateway_during_upload(
    setup: tuple[Path, Path, int], procs: list[Proc], tmp_path: Path
) -> None:
    centre, data, port = setup
    c = start_centre(centre, port, procs, tmp_path / "centre.log")
    url = f"https://127.0.0.1:{port}"
    for round_ in range(2):
        gw = start_gateway(data, url, 1500, procs, tmp_path / f"gw{round_}.log")
        floor = centre_watermark(centre / "centre.db")
        wait_until(
            lambda f=floor: centre_watermark(centre / "centre.db") > f + 100,
            40,
            "upload started",
            gw,
            c,
        )
        gw.kill()  # mid-drain: batches in flight, appends pending
    gw = start_gateway(data, url, 100, procs, tmp_path / "gw-final.log")
    gw.p.wait(60)
    assert gw.p.returncode == 0, gw.tail()
    assert_complete(centre, data)


def test_sigkill_centre_during_upload(
    setup: tuple[Path, Path, int], procs: list[Proc], tmp_path: Path
) -> None:
    centre, data, port = setup
    url = f"https://127.0.0.1:{port}"
    c = start_centre(centre, port, procs, tmp_path / "centre0.log")
    gw = start_gateway(data, url, 2500, procs, tmp_path / "gw.log")
    for round_ in range(2):
        floor = centre_watermark(centre / "centre.db")
        wait_until(
            lambda f=floor: centre_watermark(centre / "centre.db") > f + 100,
            40,
            "upload moving",
            gw,
            c,
        )
        c.kill()  # mid-ingest: a transaction may be open, a reply half written
        time.sleep(0.5)
        c = start_centre(centre, port, procs, tmp_path / f"centre{round_ + 1}.log")
    gw.p.wait(90)
    assert gw.p.returncode == 0, gw.tail()
    assert_complete(centre, data)
