"""Acceptance (issue 21): NTAG 424 DNA wristbands verified on the tap path.

A simulated band (hil_tests/sims/ntag424.py, its own AN12196/AN10922 implementation) is
presented to a simulated OSDP reader with Secure Channel on a virtual RS-485 line; the tap
service runs as its own process (``python -m gateway.checkpoints``) with the real OSDP bus.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from hil_tests.sims.ntag424 import SimBand
from hil_tests.sims.osdp_reader import GREEN, RED, ReaderBench, ServiceProcess, journal_events

pytestmark = [pytest.mark.hil, pytest.mark.sim_only]

MASTER = bytes.fromhex("8f2a61c4d93b07e5a1f04c6b2d9e7310")
UID = bytes.fromhex("04de5f1eacc040")
OTHER_UID = bytes.fromhex("04aa11bb22cc33")
ROSTER = {UID.hex(): "g-001", OTHER_UID.hex(): "g-002"}
TIMEOUT = 15.0


def _wait_events(journal: Path, kinds: tuple[str, ...], n: int) -> list[Any]:
    deadline = time.monotonic() + TIMEOUT
    while True:
        got = [e for e in journal_events(journal) if e.kind in kinds]
        if len(got) >= n or time.monotonic() > deadline:
            return got
        time.sleep(0.1)


def _present(bench: ReaderBench, data: bytes, *, card_format: str = "raw") -> int | None:
    """Tap ``data`` on reader a/1; the LED colour the guard saw (None: nothing)."""
    sim = bench.reader("a", 1)
    t = sim.tap_data(data, card_format=card_format)
    led = sim.wait_led(None, after=t, timeout=TIMEOUT)
    return None if led is None else led.color


def test_sun_band_verifies_replay_refused_gap_recorded_clone_refused(tmp_path: Path) -> None:
    with ReaderBench(
        tmp_path, {"a": 1}, baud=115200, roster=ROSTER, dedupe_window_s=0.0,
        band_key=MASTER, require_verified_bands=True,
    ) as bench:  # fmt: skip
        journal = tmp_path / "journal.db"
        proc = ServiceProcess(bench.config_path, journal).start()
        try:
            assert proc.wait_online(["a/1"], 30)
            band = SimBand(MASTER, UID)
            messages = [band.read() for _ in range(5)]
            # Five taps, each its own SUN message: five verified taps, green each time.
            colors = [_present(bench, m) for m in messages]
            assert colors == [GREEN] * 5
            # The 3rd message again (recorded off the air and replayed): refused, red.
            assert _present(bench, messages[2]) == RED
            # The band was read twice by something else: accepted, the gap recorded.
            band.skip(2)
            assert _present(bench, band.read()) == GREEN
            # A UID-only clone of the provisioned band: refused here (verified bands only).
            assert _present(bench, band.uid_only()) == RED
            # A forger who pulled the site-wide PICCData key out of a band makes a message for
            # another band on the roster, but cannot know that band's own (diversified) key.
            forger = SimBand(MASTER, OTHER_UID)
            forger.file_key = bytes(16)
            assert _present(bench, forger.read()) == RED
            # Not even the PICCData key: the message does not decrypt.
            assert _present(bench, SimBand(bytes(16), OTHER_UID).read()) == RED
            # The guard's next genuine tap still counts.
            assert _present(bench, band.read()) == GREEN
            events = _wait_events(journal, ("tap", "tap.refused"), 11)
        finally:
            assert proc.stop() == 0

    taps = [e.payload for e in events if e.kind == "tap"]
    refused = [e.payload for e in events if e.kind == "tap.refused"]
    assert [p["counter"] for p in taps] == [1, 2, 3, 4, 5, 8, 9]
    assert all(p["verified"] is True and p["wristband"] == UID.hex() for p in taps)
    assert all(p["guard"] == "g-001" for p in taps)
    assert [p["counter_gap"] for p in taps] == [0, 0, 0, 0, 0, 2, 0]
    assert [p["reason"] for p in refused] == [
        "replay", "unverified_band", "bad_mac", "bad_picc_data",
    ]  # fmt: skip
    replay, clone, forged_ev, garbled = refused
    assert replay["counter"] == 3 and replay["last_counter"] == 5
    assert replay["wristband"] == UID.hex() and replay["verified"] is False
    assert bytes.fromhex(replay["card_data"]) == messages[2]
    assert clone["wristband"] == UID.hex() and clone["verified"] is False
    assert forged_ev["wristband"] == OTHER_UID.hex()
    assert forged_ev["sun_error"]["kind"] == "bad_mac"
    assert garbled["wristband"] == "" and garbled["sun_error"]["field"] == "picc_data"


def test_counters_survive_a_restart_and_uid_reads_are_unverified(tmp_path: Path) -> None:
    """The counter state is rebuilt from the journal: a message from before a restart is
    still a replay after it. At a site that accepts UID-only bands they tap ``verified: false``."""
    with ReaderBench(
        tmp_path, {"a": 1}, baud=115200, roster=ROSTER, dedupe_window_s=0.0, band_key=MASTER,
    ) as bench:  # fmt: skip
        journal = tmp_path / "journal.db"
        proc = ServiceProcess(bench.config_path, journal).start()
        band = SimBand(MASTER, UID, plain=True)
        try:
            assert proc.wait_online(["a/1"], 30)
            old = band.read()
            assert _present(bench, old) == GREEN
            assert _present(bench, band.read()) == GREEN
            assert _present(bench, OTHER_UID) == GREEN
        finally:
            assert proc.stop() == 0
        proc.status.unlink()  # the last run's reader table must not pass for the new one's
        proc.start()
        try:
            assert proc.wait_online(["a/1"], 30)
            assert _present(bench, old) == RED
            assert _present(bench, band.read()) == GREEN
            events = _wait_events(journal, ("tap", "tap.refused"), 5)
        finally:
            assert proc.stop() == 0
    summary = [(e.kind, e.payload["wristband"], e.payload["verified"], e.payload.get("counter"))
               for e in events]  # fmt: skip
    assert summary == [
        ("tap", UID.hex(), True, 1),
        ("tap", UID.hex(), True, 2),
        ("tap", OTHER_UID.hex(), False, None),
        ("tap.refused", UID.hex(), False, 1),
        ("tap", UID.hex(), True, 3),
    ]
