"""Taps our own node held while the gateway was not polling reach the journal, once, with their
age: the real node firmware (MicroPython, WebAssembly port, tests/firmware/_live.py) on a
virtual serial line to the real checkpoint service (``python -m gateway.checkpoints``).

The node sends a held tap as an osdp_MFGREP tap record (docs/checkpoint-node.md, *Offline
taps*); before this, the gateway's driver ignored those records and such a tap vanished.
A repeated record is made the way a node makes one: it restarts from flash that still holds
the tap as not delivered (a lost confirmation, a torn "delivered" write), after a gateway
restart, so only the journal can tell the gateway it has that tap already.
"""

from __future__ import annotations

import os
import pty
import select
import shutil
import sqlite3
import threading
import time
import tty
from pathlib import Path
from typing import Any

import pytest

from gateway.config import write_secret_file
from gateway.errors import JournalError
from hil_tests.sims.osdp_reader import ServiceProcess, journal_events
from tests.firmware._live import LiveNode

pytestmark = [pytest.mark.hil, pytest.mark.sim_only]

ADDRESS = 1
KEY = bytes.fromhex("a1b2c3d4e5f60718293a4b5c6d7e8f90")
BAND_A = "04a1b2c3d4e5f6"
BAND_B = "04a1b2c3d4e5f7"
BAND_C = "04a1b2c3d4e5f8"
ROSTER = {BAND_A: "g-017", BAND_B: "g-018", BAND_C: "g-019"}
OFFLINE_AFTER_MS = 3000  # the node's "not polled" timer, shortened for the test
WAIT_S = 90.0  # bounds, not speeds: WebAssembly MicroPython on a busy 2-core machine is slow


class NodeLine:
    """A pty whose far end is the node's byte pipe: the service opens the pty like an RS-485
    adapter; a thread copies bytes both ways."""

    def __init__(self) -> None:
        self.master, self.slave = pty.openpty()
        tty.setraw(self.slave)
        tty.setraw(self.master)
        self.path = os.ttyname(self.slave)
        self.node: LiveNode | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._pump, daemon=True)
        self._thread.start()

    def attach(self, node: LiveNode | None) -> None:
        with self._lock:
            self.node = node

    def _pump(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                node = self.node
            fds = [self.master] + ([node.channel.rfd] if node is not None else [])
            try:
                ready, _, _ = select.select(fds, [], [], 0.05)
            except (OSError, ValueError):
                continue
            for fd in ready:
                try:
                    data = os.read(fd, 4096)
                except OSError:
                    continue
                if not data:
                    continue
                if fd == self.master:
                    if node is not None:
                        node.channel.write(data)
                else:
                    os.write(self.master, data)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        os.close(self.master)
        os.close(self.slave)


def start_node(flash: Path) -> tuple[LiveNode, str]:
    node = LiveNode(flash, "micropython")
    node.send(f"config {ADDRESS} {KEY.hex()} {OFFLINE_AFTER_MS}")
    return node, node.expect("ready", timeout=WAIT_S)


def tap(node: LiveNode, band: str) -> None:
    node.send(f"tap {band}")
    node.expect("tap ", timeout=WAIT_S)
    node.send("untap")


def write_config(root: Path, port: str) -> Path:
    write_secret_file(root / "keys" / "node.scbk", KEY)
    lines = ["[checkpoints]", "", "[[checkpoints.buses]]", 'name = "a"', f'port = "{port}"',
             "baud = 115200", "", "[[checkpoints.points]]", 'id = "cp-a-1"', 'bus = "a"',
             f"address = {ADDRESS}", 'key_file = "keys/node.scbk"', ""]  # fmt: skip
    for band, guard in ROSTER.items():
        lines += ["[[checkpoints.roster]]", f'wristband = "{band}"', f'guard = "{guard}"', ""]
    path = root / "checkpoints.toml"
    path.write_text("\n".join(lines))
    return path


def wait_until(cond, timeout: float = WAIT_S, what: str = "") -> Any:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = cond()
        if got:
            return got
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def of_band(journal: Path, band: str) -> list[Any]:
    try:
        events = journal_events(journal)
    except (OSError, sqlite3.Error, JournalError):
        return []  # not there yet, or created but its schema not yet in (the service starting)
    return [e for e in events if e.payload.get("wristband") == band]


@pytest.mark.timeout(600)
def test_a_tap_held_by_the_node_is_journaled_once_with_its_age(tmp_path: Path) -> None:
    line = NodeLine()
    journal = tmp_path / "journal.db"
    config = write_config(tmp_path, line.path)
    proc = ServiceProcess(config, journal)
    flash, snapshot = tmp_path / "flash", tmp_path / "flash-before-delivery"
    flash.mkdir()
    node: LiveNode | None = None
    try:
        # 1. The gateway is not running: the guard taps, the node keeps it on flash.
        node, ready = start_node(flash)
        line.attach(node)
        tap(node, BAND_A)
        time.sleep(2.5)  # the tap ages while nobody polls
        proc.start()
        (held,) = wait_until(lambda: of_band(journal, BAND_A), what="the held tap")
        p = held.payload
        assert held.kind == "tap", held  # credited: its age is exact (same node boot)
        assert p["node_tap"] == 1 and p["guard"] == "g-017" and p["checkpoint"] == "cp-a-1"
        assert p["age_s"] >= 2 and p["tapped_offline"] is True and p["buffered"] is True
        assert p["tapped_at"] <= held.wall_time - p["age_s"] + 0.001  # rounded to ms
        assert p["tapped_at"] > held.wall_time - p["age_s"] - 5  # arrival to journal: ms
        assert proc.stop() == 0, proc.log_path.read_text()[-3000:]

        # 2. The gateway is down again; the guard taps B; the node is restarted from flash
        # that still holds B as not delivered (a copy), and delivers it.
        time.sleep(OFFLINE_AFTER_MS / 1000 + 0.5)
        tap(node, BAND_B)
        time.sleep(0.5)
        line.attach(None)
        assert node.stop() == 0
        node = None
        shutil.copytree(flash, snapshot)
        node, ready = start_node(flash)
        # B waits; so may A, when the gateway stopped before the node saw A confirmed (the
        # last reply before a panel goes away never is): then A comes again and is dropped.
        waiting = int(ready.split()[2])
        assert waiting in (1, 2), ready
        line.attach(node)
        proc.start()
        (b,) = wait_until(lambda: of_band(journal, BAND_B), what="tap B")
        # From an earlier node boot: its age leaves out the node's downtime, so it is
        # evidence with a latest time, never credited at a time it may not have been made.
        assert b.kind == "tap.delivered_late" and b.payload["node_tap"] == 2
        assert b.payload["age_lower_bound"] is True and "tapped_before" in b.payload
        assert proc.stop() == 0, proc.log_path.read_text()[-3000:]
        line.attach(None)
        assert node.stop() == 0
        node = None

        # 3. The node comes back from the old flash and offers tap 2 again to a restarted
        # gateway: the journal has it, so it is dropped (and counted), not journaled twice.
        node, ready = start_node(snapshot)
        assert int(ready.split()[2]) == waiting, ready
        line.attach(node)
        proc.start()

        def dropped() -> bool:
            row = proc.readers_status().get("a/1", {})
            n = int(row.get("node_repeats_dropped", 0))  # type: ignore[call-overload]
            return n >= waiting  # in order: B's record is the last of them

        wait_until(dropped, what="the repeated tap record to arrive and be dropped")
        # A fresh tap now is a plain live tap: the path goes on.
        tap(node, BAND_C)
        wait_until(lambda: of_band(journal, BAND_C), what="the live tap C")
        assert len(of_band(journal, BAND_A)) == 1
        assert len(of_band(journal, BAND_B)) == 1, [e.kind for e in of_band(journal, BAND_B)]
        row = proc.readers_status()["a/1"]
        assert row["node_repeats_dropped"] == waiting and row["unknown_replies"] == 0
        assert proc.stop() == 0, proc.log_path.read_text()[-3000:]
    finally:
        proc.stop()
        line.attach(None)
        if node is not None:
            node.stop()
        line.close()


@pytest.mark.timeout(300)
def test_a_node_in_numbered_mode_delivers_live_taps_the_gateway_journals(tmp_path: Path) -> None:
    """With ``set numbered on`` (the mode docs/checkpoint-node.md recommends with this gateway)
    *every* tap is a tap record, age 0: a live tap, once, in the dedupe window like any other
    (before, every tap of such a node vanished)."""
    line = NodeLine()
    journal = tmp_path / "journal.db"
    proc = ServiceProcess(write_config(tmp_path, line.path), journal)
    flash = tmp_path / "flash"
    flash.mkdir()
    (flash / "settings.json").write_text('{"numbered_taps": true}')
    node: LiveNode | None = None
    try:
        node, _ready = start_node(flash)
        line.attach(node)
        proc.start()
        assert proc.wait_online(["a/1"], WAIT_S), proc.log_path.read_text()[-3000:]
        tap(node, BAND_A)
        (live,) = wait_until(lambda: of_band(journal, BAND_A), what="the numbered live tap")
        assert live.kind == "tap" and live.payload["node_tap"] == 1, live
        assert live.payload["age_s"] <= 2 and "buffered" not in live.payload
        assert live.payload["tapped_offline"] is False
        time.sleep(3.5)  # past the node's own 3 s repeat suppression, inside the 10 s window
        tap(node, BAND_A)
        wait_until(lambda: len(of_band(journal, BAND_A)) == 2, what="the second tap")
        assert [e.kind for e in of_band(journal, BAND_A)] == ["tap", "tap.repeat"]
        assert [e.payload["node_tap"] for e in of_band(journal, BAND_A)] == [1, 2]
        assert proc.stop() == 0, proc.log_path.read_text()[-3000:]
    finally:
        proc.stop()
        line.attach(None)
        if node is not None:
            node.stop()
        line.close()


@pytest.mark.timeout(600)
def test_a_numbered_node_enrols_a_wristband_while_the_daemon_is_stopped(tmp_path: Path) -> None:
    """`guards add` and the setup wizard open the readers themselves (ReaderTaps): a node in
    numbered mode sends the wristband held to it as a fresh tap record, and that enrols it
    (before, the wizard waited for a tap that never came)."""
    import asyncio

    from drivers.osdp_bus import BusSpec, ReaderSpec
    from gateway.patrol.taps import ReaderTaps

    line = NodeLine()
    flash = tmp_path / "flash"
    flash.mkdir()
    (flash / "settings.json").write_text('{"numbered_taps": true}')
    node: LiveNode | None = None
    try:
        node, _ready = start_node(flash)
        line.attach(node)
        live = node

        async def enrol() -> tuple[list[tuple[str, int]], Any]:
            specs = [BusSpec("a", line.path, 115200, (ReaderSpec(ADDRESS, KEY),))]
            async with ReaderTaps(specs) as taps:
                offline = await taps.wait_online(WAIT_S)
                await asyncio.to_thread(tap, live, BAND_B)
                return offline, await taps.next_tap(WAIT_S)

        offline, got = asyncio.run(enrol())
        assert offline == []
        assert got is not None and (got.bus, got.address, got.wristband) == ("a", 1, BAND_B)
    finally:
        line.attach(None)
        if node is not None:
            node.stop()
        line.close()
