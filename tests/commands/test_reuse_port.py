"""Two real ``compound-centre serve`` processes on one PostgreSQL and one port (SO_REUSEPORT,
issue 19): the gateway's command channel lands on whichever the kernel hands it to; an operator's
``compound-centre broadcast``, typed in a third process, reaches it through the database and its
NOTIFY, and the relays go on and the command ends ``done``.

Real parts: the throwaway PostgreSQL cluster (tests/pg_cluster.py), two ``serve`` subprocesses
on one data directory, the CLI as a subprocess, the gateway's real command channel, broadcast
controller and a simulated Modbus board on a virtual serial line. The in-process centre of the
``centre`` fixture (same data, same database, another port) only enrolls the gateway and reads
the command's status; the gateway never connects to it. No timing asserts: generous timeouts.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.commands.channel import Phase
from tests.commands.rig import GW, command_rig
from tests.sync.conftest import Centre

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 90.0  # two interpreters importing the centre on a loaded 2-core machine


@pytest.fixture
def centre_backend() -> str:
    return "postgres"


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve(data: Path, port: int, port_file: Path, *extra: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "centre.cli", "--data", str(data), "serve", "--host",
         "127.0.0.1", "--port", str(port), "--port-file", str(port_file), *extra],
        cwd=ROOT, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip


def _wait_serving(proc: subprocess.Popen[bytes], port_file: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while not port_file.exists():
        if proc.poll() is not None:
            _, err = proc.communicate()
            raise AssertionError(f"serve exited {proc.returncode}: {err.decode()[-2000:]}")
        assert time.monotonic() < deadline, "serve did not start listening"
        time.sleep(0.1)


@contextlib.contextmanager
def serving(*procs: subprocess.Popen[bytes]) -> Iterator[None]:
    try:
        yield
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
        for p in procs:
            try:
                p.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.communicate()


async def test_two_serve_processes_on_one_port_deliver_a_cli_broadcast(
    centre: Centre, tmp_path: Path
) -> None:
    data = centre.paths.root
    port = _free_port()
    files = [tmp_path / "a.port", tmp_path / "b.port"]
    a = _serve(data, port, files[0], "--reuse-port")
    b = _serve(data, port, files[1], "--reuse-port")
    with serving(a, b):
        for proc, f in zip((a, b), files, strict=True):
            _wait_serving(proc, f)
            assert int(f.read_text()) == port
        async with command_rig(centre, tmp_path, centre_url=f"https://127.0.0.1:{port}") as rig:
            # Connected to A or B, not to the fixture's centre: that one only enrolled it.
            deadline = time.monotonic() + 60
            while rig.channel.phase != Phase.CONNECTED:
                assert time.monotonic() < deadline, rig.channel.last_error
                if rig.channel_task.done():
                    rig.channel_task.result()
                await asyncio.sleep(0.05)
            assert GW not in centre.running.commands.connections
            cli = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "centre.cli", "--data", str(data), "broadcast",
                "--compound", "Rose Garden", "--zones", "1", "--seconds", "0.5",
                "--message", "drill", "--status", "Exercise", "--json",
                cwd=ROOT, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            )  # fmt: skip
            stdout, stderr = await asyncio.wait_for(cli.communicate(), 120)
            assert cli.returncode == 0, stderr.decode()
            (row,) = json.loads(stdout)
            assert row["gateway_id"] == GW
            rec = await rig.wait_status(row["command_id"], "done", timeout=90)
            assert rec.received_at is not None and rec.on_at is not None
            assert any(c.on for c in rig.board.changes)
            accepted = await rig.events("command.accepted")
            assert [e["command_id"] for e in accepted] == [row["command_id"]]
        assert a.poll() is None and b.poll() is None  # both still serving


def test_without_reuse_port_a_second_serve_on_the_port_is_refused(
    centre: Centre, tmp_path: Path
) -> None:
    """The option is what lets the second process bind: without it, it exits with an error
    (a stray second centre on a port in use is refused, in words, not silently sharing it)."""
    port = _free_port()
    first = _serve(centre.paths.root, port, tmp_path / "a.port")
    with serving(first):
        _wait_serving(first, tmp_path / "a.port")
        second = _serve(centre.paths.root, port, tmp_path / "b.port")
        with serving(second):
            _, err = second.communicate(timeout=START_TIMEOUT_S)
            assert second.returncode == 2
            assert "already in use" in err.decode() and "--reuse-port" in err.decode()
            assert not (tmp_path / "b.port").exists()
