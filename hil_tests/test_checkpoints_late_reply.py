"""One reader answers a green-light command after libosdp gave up waiting for it: its late
reply must not be taken for its neighbour's answer (which dropped that innocent reader
offline and cascaded along the bus), and the guard sees exactly one green light: the light
was sent again once the reader was back, seconds later, when the next person's tap may be
the one in front of it (the 500-tap patrol saw an unknown wristband followed by a green)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from hil_tests.sims.osdp_reader import GREEN, ReaderBench, ServiceProcess, journal_events

pytestmark = [pytest.mark.hil, pytest.mark.sim_only]

GUARDS = {f"{0x04A1B2C30000 + i:012x}": f"g-{i:03d}" for i in range(8)}
# libosdp waits 200 ms for an answer; this one comes well after it moved on to the next reader.
LATE_REPLY_S = 0.5


def _bus_counters(proc: ServiceProcess) -> dict[str, object]:
    try:
        board = json.loads(proc.status.read_text())
    except (OSError, ValueError):
        return {}
    buses = board.get("readers", {}).get("buses", [])
    return buses[0] if buses else {}


@pytest.mark.timeout(150)
def test_a_late_answer_to_a_light_never_lights_the_reader_again(tmp_path: Path) -> None:
    with ReaderBench(tmp_path, {"a": 4}, baud=9600, roster=GUARDS) as bench:
        journal = tmp_path / "journal.db"
        proc = ServiceProcess(bench.config_path, journal).start()
        try:
            ids = [f"a/{a}" for a in range(1, 5)]
            assert proc.wait_online(ids, 60), proc.readers_status()
            settled = max((e.seq for e in journal_events(journal)), default=0)
            slow, bands = bench.reader("a", 1), list(GUARDS)
            slow.late_led_reply_s = LATE_REPLY_S
            t = slow.tap(bands[0])
            assert slow.wait_led(GREEN, after=t, timeout=20), "no green for the tap"
            # The late answer may meet the next exchange on the shared line (a collision: a
            # damaged frame, a neighbour re-handshakes) or land in a gap (then it is kept from
            # libosdp: tests/checkpoints/test_late_replies.py). Either way the other readers
            # serve their guards, who tap again when they see nothing, as they are told to.
            for address in (2, 3, 4):
                sim = bench.reader("a", address)
                for _attempt in range(3):
                    t2 = sim.tap(bands[address])
                    if sim.wait_led(GREEN, after=t2, timeout=10):
                        break
                else:
                    raise AssertionError(f"no green at a/{address} in 3 taps")
            time.sleep(6)  # past the 5 s a light is owed: any repeated light would show by now
            greens = [led for led in slow.leds_since(t) if led.color == GREEN]
            assert len(greens) == 1, greens
            taps = [
                e for kind in ("tap", "tap.delivered_late")
                for e in journal_events(journal, kind) if e.seq > settled
            ]  # fmt: skip
            assert {e.payload["checkpoint"] for e in taps} == {f"cp-a-{a}" for a in range(1, 5)}
            assert "late_replies" in _bus_counters(proc), _bus_counters(proc)
        finally:
            assert proc.stop() == 0, proc.log_path.read_text()[-3000:]
