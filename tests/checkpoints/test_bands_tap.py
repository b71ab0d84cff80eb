"""NTAG 424 DNA bands in the tap decision and the [checkpoints] band policy keys."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from drivers.checkpoints import Feedback
from gateway.checkpoints.config import CheckpointsSection, load_band_master_key
from gateway.checkpoints.core import TAP, TAP_REFUSED, TAP_REPEAT, Point, TapDecider
from gateway.config import write_secret_file
from gateway.config.schema import parse_section
from gateway.credentials.bands import BandVerifier
from gateway.errors import ConfigError
from hil_tests.sims.ntag424 import SimBand

MASTER = bytes.fromhex("8f2a61c4d93b07e5a1f04c6b2d9e7310")
UID = bytes.fromhex("04de5f1eacc040")


def decider(require: bool = False, window: float = 10.0) -> TapDecider:
    return TapDecider.build([Point("north-gate", "a", 1)], {UID.hex(): "g-017"}, window,
                            BandVerifier(MASTER, require))  # fmt: skip


def read(d: TapDecider, data: bytes, now: float, **kw: object):  # type: ignore[no-untyped-def]
    return d.decide(bus="a", address=1, data=data, bits=len(data) * 8, card_format="raw",
                    now=now, **kw)  # type: ignore[arg-type]  # fmt: skip


def test_a_verified_read_is_a_tap_of_the_band_uid_with_its_counter() -> None:
    band = SimBand(MASTER, UID)
    dec = decider()
    d = read(dec, band.read(), 100.0)
    assert (d.kind, d.feedback) == (TAP, Feedback.ACCEPTED)
    assert d.payload["wristband"] == UID.hex() and d.payload["guard"] == "g-017"
    assert (d.payload["verified"], d.payload["counter"], d.payload["counter_gap"]) == (True, 1, 0)
    # The next read inside the window is a repeat, and its counter is kept too.
    r = read(dec, band.read(), 101.0)
    assert r.kind == TAP_REPEAT and r.payload["counter"] == 2


def test_a_replay_is_refused_red_even_inside_the_dedupe_window() -> None:
    band = SimBand(MASTER, UID)
    dec = decider()
    msg = band.read()
    assert read(dec, msg, 100.0).kind == TAP
    d = read(dec, msg, 100.5)
    assert (d.kind, d.feedback) == (TAP_REFUSED, Feedback.REFUSED)
    assert d.payload["reason"] == "replay" and d.payload["last_counter"] == 1
    assert bytes.fromhex(d.payload["card_data"]) == msg


def test_a_refused_read_delivered_late_shows_nothing() -> None:
    d = read(decider(require=True), UID, 100.0, held=True, held_gap_s=None)
    assert (d.kind, d.feedback) == (TAP_REFUSED, None)
    assert d.payload["reason"] == "unverified_band" and d.payload["time_uncertain"] is True


def test_uid_only_reads_are_unverified_taps_unless_the_site_requires_verified() -> None:
    d = read(decider(), UID, 100.0)
    assert (d.kind, d.payload["verified"]) == (TAP, False) and "counter" not in d.payload
    assert read(decider(require=True), UID, 100.0).kind == TAP_REFUSED


def parse(data: dict) -> CheckpointsSection:  # type: ignore[type-arg]
    return parse_section(CheckpointsSection, data, "checkpoints")


def test_require_verified_bands_needs_a_band_key() -> None:
    with pytest.raises(ConfigError) as err:
        parse({"require_verified_bands": True})
    assert err.value.key == "checkpoints.require_verified_bands"
    assert "band_key_file" in err.value.detail
    assert parse({}).require_verified_bands is False and parse({}).band_key_file == ""


def test_band_key_file_must_be_private_and_16_bytes(tmp_path: Path) -> None:
    assert load_band_master_key(parse({}), tmp_path) is None
    section = parse({"band_key_file": "keys/bands.key", "require_verified_bands": True})
    with pytest.raises(ConfigError) as err:
        load_band_master_key(section, tmp_path)
    assert err.value.key == "checkpoints.band_key_file"
    write_secret_file(tmp_path / "keys" / "bands.key", MASTER)
    assert load_band_master_key(section, tmp_path) == MASTER
    os.chmod(tmp_path / "keys" / "bands.key", 0o644)
    with pytest.raises(ConfigError, match="mode 0644"):
        load_band_master_key(section, tmp_path)
    write_secret_file(tmp_path / "keys" / "bands.key", MASTER[:8])
    with pytest.raises(ConfigError) as err:
        load_band_master_key(section, tmp_path)
    assert err.value.key == "checkpoints.band_key_file"


async def test_counter_table_is_journaled_and_outlives_pruned_taps(tmp_path: Path) -> None:
    from gateway.checkpoints.service import BANDS_COUNTERS, CheckpointService
    from gateway.clock import SystemClock
    from gateway.journal import Journal

    section = parse({"band_key_file": "k", "points": []})
    band = SimBand(MASTER, UID)
    journal = await Journal.open(tmp_path / "j.db", gateway_id="gw-test")
    try:
        first = CheckpointService(section, journal, SystemClock(), buses=[],
                                  band_master_key=MASTER)  # fmt: skip
        assert await first.checkpoint_counters() is False  # nothing to keep yet
        old = band.read()
        band.skip(4)
        assert first.decider.bands.check(band.read()).counter == 6
        assert await first.checkpoint_counters() is True
        # Only the table is in the journal (the taps themselves were pruned long since).
        kinds = [e.kind for e in await journal.read_after(0)]
        assert kinds == [BANDS_COUNTERS]
        second = CheckpointService(section, journal, SystemClock(), buses=[],
                                   band_master_key=MASTER)  # fmt: skip
        assert await second.load_counters() == 1
        assert second.decider.bands.counters == {UID.hex(): 6}
        assert second.decider.bands.check(old).refusal == "replay"
    finally:
        await journal.close()
