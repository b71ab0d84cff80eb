"""SUN messages as readers pass them (gateway/credentials/payload.py) and the per-site band
check (gateway/credentials/bands.py), against an independent band (hil_tests/sims/ntag424.py)
that is itself checked against the AN12196 vectors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.credentials.bands import (
    BAD_MAC,
    BAD_PICC_DATA,
    MALFORMED,
    REPLAY,
    SUN_NOT_CONFIGURED,
    UNVERIFIED_BAND,
    BandVerifier,
    band_file_read_key,
)
from gateway.credentials.payload import MAX_PAYLOAD, SunMessage, parse_reader_payload
from gateway.credentials.sun import SunError, diversify_key
from hil_tests.sims.ntag424 import SimBand, an10922, picc_data, sun_mac

VECTORS = json.loads(
    (Path(__file__).resolve().parents[1] / "vectors" / "ntag424_sun.json").read_text("utf-8")
)
H = bytes.fromhex
MASTER = H("8f2a61c4d93b07e5a1f04c6b2d9e7310")
UID = H("04de5f1eacc040")


# ---- the simulated band is genuine ---------------------------------------------------


@pytest.mark.parametrize("v", VECTORS["sun"], ids=lambda v: v["name"])
def test_sim_band_math_matches_an12196(v: dict[str, Any]) -> None:
    mac_input = H(v["mac_input"])
    assert sun_mac(H(v["sdm_file_read_key"]), H(v["uid"]), v["read_ctr"], mac_input) == H(
        v["sdmmac"]
    )
    if "enc_picc_data" in v:
        pad = H(v["picc_plaintext"])[11:]
        assert picc_data(H(v["sdm_meta_read_key"]), H(v["uid"]), v["read_ctr"], pad) == H(
            v["enc_picc_data"]
        )


@settings(max_examples=50, deadline=None)
@given(st.binary(min_size=16, max_size=16), st.binary(min_size=7, max_size=7))
def test_sim_band_diversification_agrees_with_the_gateway(master: bytes, uid: bytes) -> None:
    assert an10922(master, uid) == diversify_key(master, uid) == band_file_read_key(master, uid)


# ---- parsing what a reader passes ------------------------------------------------------


def test_query_and_full_url_parse_alike() -> None:
    band = SimBand(MASTER, UID)
    short = parse_reader_payload(band.read())
    band.counter -= 1
    full = parse_reader_payload(band.read(full_url=True))
    assert isinstance(short, SunMessage) and isinstance(full, SunMessage)
    assert len(band.read()) <= 64  # fits an OSDP card read
    assert short.picc_data is not None and full.picc_data is not None
    assert short.mac_input == full.mac_input == b""


def test_plain_mirror_parses_uid_and_counter() -> None:
    msg = parse_reader_payload(SimBand(MASTER, UID, counter=0x3C, plain=True).read())
    assert msg is not None and msg.uid == UID and msg.read_ctr == 0x3D


def test_enc_file_data_is_maced_from_its_first_digit_to_the_mac() -> None:
    msg = parse_reader_payload(b"picc_data=" + b"00" * 16 + b"&enc=ABCD&cmac=" + b"11" * 8)
    assert msg is not None and msg.mac_input == b"ABCD&cmac="


def test_a_uid_read_is_not_a_sun_message() -> None:
    assert parse_reader_payload(UID) is None
    assert parse_reader_payload(b"") is None


@pytest.mark.parametrize(
    ("data", "field"),
    [
        (b"cmac=0011", "sdmmac"),
        (b"picc_data=00&cmac=" + b"00" * 8, "picc_data"),
        (b"picc_data=" + b"zz" * 16 + b"&cmac=" + b"00" * 8, "picc_data"),
        (b"uid=" + b"00" * 7 + b"&cmac=" + b"00" * 8, "payload"),
        (b"cmac=" + b"00" * 8 + b"&cmac=" + b"00" * 8, "cmac"),
        (b"picc_data=" + b"00" * 16 + b"&uid=" + b"00" * 7 + b"&ctr=000001&cmac=" + b"00" * 8,
         "picc_data"),
        (b"cmac=\x00" + b"00" * 8, "payload"),
        (b"cmac=" + b"0" * MAX_PAYLOAD, "payload"),
        (b"uid=" + b"00" * 7 + b"&ctr=1&cmac=" + b"00" * 8, "read_ctr"),
    ],
)
def test_malformed_sun_messages_raise_sun_error_naming_the_part(data: bytes, field: str) -> None:
    with pytest.raises(SunError) as err:
        parse_reader_payload(data)
    assert err.value.kind == "malformed" and err.value.field == field


PARTS = st.sampled_from(
    [b"cmac=", b"picc_data=", b"uid=", b"ctr=", b"enc=", b"&", b"?", b"=", b"00" * 8,
     b"0" * 32, b"04de5f1eacc040", b"000001", b"\xff", b"\x00", b"https://x/t"]
)  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.binary(max_size=200), st.lists(PARTS, max_size=12).map(b"".join)))
def test_hostile_card_data_parses_or_raises_only_sun_error(data: bytes) -> None:
    try:
        msg = parse_reader_payload(data)
    except SunError as exc:
        assert exc.kind == "malformed" and exc.as_dict()["field"] == exc.field
        return
    assert msg is None or len(msg.mac) == 8


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=200), st.lists(PARTS, max_size=12).map(b"".join)))
def test_hostile_card_data_never_verifies_and_never_raises(data: bytes) -> None:
    check = BandVerifier(MASTER, require_verified=True).check(data)
    assert not check.verified and check.refusal is not None


# ---- the band check -------------------------------------------------------------------


@pytest.mark.parametrize("plain", [False, True])
def test_five_reads_verify_replay_refused_gap_counted(plain: bool) -> None:
    band = SimBand(MASTER, UID, plain=plain)
    bands = BandVerifier(MASTER)
    msgs = [band.read() for _ in range(5)]
    checks = [bands.check(m) for m in msgs]
    assert [(c.verified, c.uid, c.counter, c.gap) for c in checks] == [
        (True, UID.hex(), n, 0) for n in range(1, 6)
    ]
    replay = bands.check(msgs[2])
    assert replay.refusal == REPLAY and replay.detail == {"last_counter": 5}
    band.skip(3)
    gap = bands.check(band.read())
    assert gap.verified and gap.counter == 9 and gap.gap == 3
    assert bands.counters == {UID.hex(): 9}


def test_a_learned_counter_makes_older_messages_replays() -> None:
    band = SimBand(MASTER, UID)
    old = band.read()
    bands = BandVerifier(MASTER)
    bands.learn(UID.hex(), 7)
    bands.learn(UID.hex(), 3)  # history out of order: the highest counts
    for junk in (True, -1, 1 << 24, "9", None):
        assert bands.learn(UID.hex(), junk) is False
    assert bands.learn("", 9) is False
    assert bands.check(old).refusal == REPLAY
    band.skip(6)
    assert bands.check(band.read()).counter == 8


def test_forged_mac_and_wrong_site_are_refused_without_moving_the_counter() -> None:
    bands = BandVerifier(MASTER)
    forger = SimBand(MASTER, UID)
    forger.file_key = bytes(16)
    forged = bands.check(forger.read())
    assert forged.refusal == BAD_MAC and forged.uid == UID.hex() and not forged.verified
    other_site = bands.check(SimBand(bytes(16), UID).read())
    assert other_site.refusal == BAD_PICC_DATA and other_site.uid is None
    assert bands.counters == {}
    # The genuine band's next read is still its first.
    assert bands.check(SimBand(MASTER, UID, counter=1).read()).gap == 0


def test_uid_only_reads_by_site_policy() -> None:
    assert BandVerifier(MASTER).check(UID).refusal is None
    assert not BandVerifier(MASTER).check(UID).verified
    strict = BandVerifier(MASTER, require_verified=True).check(UID)
    assert strict.refusal == UNVERIFIED_BAND and strict.uid == UID.hex()


def test_sun_without_a_site_key_and_malformed_are_refused() -> None:
    assert BandVerifier(None).check(SimBand(MASTER, UID).read()).refusal == SUN_NOT_CONFIGURED
    bad = BandVerifier(MASTER).check(b"picc_data=12&cmac=" + b"00" * 8)
    assert bad.refusal == MALFORMED and bad.detail["sun_error"]["field"] == "picc_data"


def test_every_refusal_reason_is_documented() -> None:
    from gateway.credentials import bands

    doc = (Path(__file__).resolve().parents[2] / "docs" / "credentials.md").read_text("utf-8")
    reasons = [v for k, v in vars(bands).items() if k.isupper() and isinstance(v, str)
               and k != "META_KEY_LABEL"]  # fmt: skip
    assert len(reasons) == 6
    assert [r for r in reasons if f"reason: {r}" not in doc] == []
    assert "compound/sdm-meta-read-key/v1" in doc
