"""Manufacturer replies through the real path: a libosdp reader on a virtual serial line sends
osdp_MFGREPs, the real OSDP driver and service journal them in a real journal. A node's tap
record is a tap with its age, once, also across a gateway restart; another vendor's reply is
recorded as ``reader.reply_unknown`` and counted, never dropped silently."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

from osdp import Event

from drivers.node_reports import NODE_VENDOR_CODE, NumberedTap, encode_numbered_tap
from gateway.checkpoints.config import load_section_file
from gateway.checkpoints.core import READER_REPLY_UNKNOWN, TAP
from gateway.checkpoints.service import CheckpointService, make_buses
from gateway.clock import SystemClock
from gateway.journal import Journal
from hil_tests.sims.osdp_reader import ReaderBench, SimReader, journal_events

KNOWN = "04a1b2c3d4e5f6"
ROSTER = {KNOWN: "g-017"}


class Board:
    def __init__(self) -> None:
        self.sections: dict[str, Any] = {}

    def publish(self, section: str, value: Any) -> None:
        self.sections[section] = value


async def wait_for(pred, timeout: float = 20.0, what: str = "") -> None:  # type: ignore[no-untyped-def]
    try:
        async with asyncio.timeout(timeout):
            while not pred():
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"timed out after {timeout} s waiting for {what}") from None


def send_mfgrep(sim: SimReader, vendor: int, data: bytes) -> None:
    assert sim._pd is not None  # the simulator's own libosdp PD
    sim._pd.submit_event({"event": Event.ManufacturerReply, "vendor_code": vendor,
                          "data": data})  # fmt: skip


class Gateway:
    """The checkpoint service over one journal file; started and stopped like the daemon."""

    def __init__(self, bench: ReaderBench, path: Path) -> None:
        self.bench, self.path = bench, path
        self.task: asyncio.Task[None] | None = None
        self.journal: Journal | None = None
        self.board = Board()
        self.service: CheckpointService | None = None

    async def start(self) -> None:
        self.journal = await Journal.open(self.path, gateway_id="gw-test")
        section, base = load_section_file(self.bench.config_path)
        self.board = Board()
        self.service = CheckpointService(section, self.journal, SystemClock(), self.board,
                                         buses=make_buses(section, base))  # fmt: skip
        self.task = asyncio.create_task(self.service.run())

        def online() -> bool:
            rows = self.board.sections.get("readers", {}).get("readers", [])
            return bool(rows) and all(r["online"] for r in rows)

        await wait_for(online, what="the reader online")

    def row(self) -> dict[str, Any]:
        assert self.service is not None
        return dict(self.service.snapshot()["readers"][0])

    def bus(self) -> dict[str, Any]:
        assert self.service is not None
        return dict(self.service.snapshot()["buses"][0])

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
            self.task = None
        if self.journal is not None:
            await self.journal.close()
            self.journal = None


async def test_node_tap_records_are_journaled_once_and_unknown_replies_recorded(
    tmp_path: Path,
) -> None:
    bench = ReaderBench(tmp_path, {"a": 1}, baud=115200, roster=ROSTER)
    bench.start()
    sim = bench.reader("a", 1)
    path = tmp_path / "j.db"
    gw = Gateway(bench, path)
    try:
        await gw.start()
        record = encode_numbered_tap(NumberedTap(42, 125, 0b010, 0, bytes.fromhex(KNOWN)))

        def taps() -> list[Any]:
            return [e for e in journal_events(path) if e.payload.get("node_tap") == 42]

        send_mfgrep(sim, NODE_VENDOR_CODE, record)
        await wait_for(taps, what="the node's tap record to be journaled")
        (tap,) = taps()
        assert tap.kind == TAP and tap.payload["guard"] == "g-017"
        assert tap.payload["age_s"] == 125 and tap.payload["buffered"] is True
        # tapped 125 s before it arrived (arrival is a little before the journal's stamp;
        # tapped_at is rounded to the millisecond, so it may be up to 0.5 ms later)
        assert tap.wall_time - 127 < tap.payload["tapped_at"] <= tap.wall_time - 125 + 0.0005

        # Another vendor's reply, and a record of ours that is cut short: both recorded.
        send_mfgrep(sim, 0x00A1B2, bytes(range(60)))
        send_mfgrep(sim, NODE_VENDOR_CODE, record[:-2])

        def unknown() -> list[Any]:
            return journal_events(path, READER_REPLY_UNKNOWN)

        await wait_for(lambda: len(unknown()) == 2, what="two reader.reply_unknown events")
        first, second = unknown()
        assert (first.payload["vendor_code"], first.payload["reason"]) == ("00a1b2", "vendor")
        assert first.payload["length"] == 60 and first.payload["truncated"] is True
        assert first.payload["data"] == bytes(range(32)).hex()
        assert (second.payload["reason"], second.payload["reader"]) == ("length", "a/1")
        assert gw.bus()["unknown_replies"] == 2 and gw.row()["unknown_replies"] == 2

        # The node offers tap 42 again (its confirmation was lost): not journaled twice.
        send_mfgrep(sim, NODE_VENDOR_CODE, record)
        await wait_for(lambda: gw.row()["node_repeats_dropped"] == 1, what="the repeat dropped")
        await gw.stop()

        # A gateway restart: the node offers it once more, now from an earlier boot of its own.
        await gw.start()
        again = encode_numbered_tap(NumberedTap(42, 30, 0b011, 0, bytes.fromhex(KNOWN)))
        send_mfgrep(sim, NODE_VENDOR_CODE, again)
        await wait_for(lambda: gw.row()["node_repeats_dropped"] == 1, what="the repeat dropped")
        # and the next tap it held is journaled: the path is alive
        send_mfgrep(sim, NODE_VENDOR_CODE,
                    encode_numbered_tap(NumberedTap(43, 20, 0b010, 0, bytes.fromhex(KNOWN))))
        await wait_for(lambda: any(e.payload.get("node_tap") == 43 for e in journal_events(path)),
                       what="tap 43")  # fmt: skip
        assert len(taps()) == 1
        assert gw.row()["node_taps"] == 2
    finally:
        await gw.stop()
        bench.stop()
