"""NTAG 424 DNA SUN verification and AN10922 diversification against published vectors."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.credentials.sun import (
    READ_CTR_MAX,
    SunError,
    aes_cmac,
    check_counter,
    decrypt_file_data,
    decrypt_picc_data,
    diversify_key,
    session_enc_key,
    session_mac_key,
    sv1,
    sv2,
    verify_encrypted,
    verify_plain,
)

VECTORS = json.loads(
    (Path(__file__).resolve().parents[1] / "vectors" / "ntag424_sun.json").read_text("utf-8")
)
H = bytes.fromhex


@pytest.mark.parametrize("v", VECTORS["rfc4493_cmac"], ids=lambda v: v["name"])
def test_cmac_matches_rfc_4493(v: dict[str, Any]) -> None:
    assert aes_cmac(H(v["key"]), H(v["message"])) == H(v["mac"])


ENCRYPTED = [v for v in VECTORS["sun"] if "enc_picc_data" in v]
PLAIN = [v for v in VECTORS["sun"] if "enc_picc_data" not in v]


@pytest.mark.parametrize("v", ENCRYPTED, ids=lambda v: v["name"])
def test_encrypted_sun_reads_verify_with_every_intermediate(v: dict[str, Any]) -> None:
    meta, file_key = H(v["sdm_meta_read_key"]), H(v["sdm_file_read_key"])
    picc = decrypt_picc_data(meta, v["enc_picc_data"])
    assert (picc.uid, picc.read_ctr) == (H(v["uid"]), v["read_ctr"])
    assert sv2(picc.uid, picc.read_ctr) == H(v["sv2"])
    assert session_mac_key(file_key, picc.uid, picc.read_ctr) == H(v["ses_mac_key"])
    read = verify_encrypted(meta, file_key, v["enc_picc_data"], v["sdmmac"], H(v["mac_input"]))
    assert (read.uid, read.read_ctr) == (H(v["uid"]), v["read_ctr"])
    if "enc_file_data" in v:
        assert sv1(picc.uid, picc.read_ctr) == H(v["sv1"])
        assert session_enc_key(file_key, picc.uid, picc.read_ctr) == H(v["ses_enc_key"])
        assert decrypt_file_data(file_key, read, v["enc_file_data"]) == H(v["file_data"])


@pytest.mark.parametrize("v", PLAIN, ids=lambda v: v["name"])
def test_plain_mirror_reads_verify(v: dict[str, Any]) -> None:
    read = verify_plain(H(v["sdm_file_read_key"]), v["uid"], v["read_ctr"], v["sdmmac"])
    assert read.read_ctr == v["read_ctr"]


def test_a_flipped_mac_bit_a_wrong_key_or_another_counter_is_refused() -> None:
    v = ENCRYPTED[0]
    meta, file_key = H(v["sdm_meta_read_key"]), H(v["sdm_file_read_key"])
    mac = bytearray(H(v["sdmmac"]))
    mac[3] ^= 0x01
    with pytest.raises(SunError) as err:
        verify_encrypted(meta, file_key, v["enc_picc_data"], bytes(mac))
    assert err.value.kind == "bad_mac"
    with pytest.raises(SunError) as err:
        verify_encrypted(b"\x01" * 16, file_key, v["enc_picc_data"], v["sdmmac"])
    assert err.value.kind == "bad_picc_data"
    p = PLAIN[0]
    with pytest.raises(SunError) as err:
        verify_plain(H(p["sdm_file_read_key"]), p["uid"], p["read_ctr"] + 1, p["sdmmac"])
    assert err.value.kind == "bad_mac"


@pytest.mark.parametrize("v", VECTORS["an10922_aes128"], ids=lambda v: v["name"])
def test_diversified_key_matches_an10922(v: dict[str, Any]) -> None:
    key = diversify_key(H(v["master_key"]), v["uid"], H(v["aid"]), H(v["system_identifier"]))
    assert key == H(v["diversified_key"])


def test_counter_rule() -> None:
    assert check_counter(None, 5).outcome == "first"
    assert (check_counter(5, 6).outcome, check_counter(5, 6).accepted) == ("next", True)
    gap = check_counter(5, 9)
    assert (gap.outcome, gap.accepted, gap.gap) == ("gap", True, 3)
    for again in (5, 4, 0):
        assert (check_counter(5, again).outcome, check_counter(5, again).accepted) == (
            "replay",
            False,
        )
    with pytest.raises(SunError):
        check_counter(5, READ_CTR_MAX + 1)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, READ_CTR_MAX), min_size=1, max_size=30))
def test_accepted_counters_rise_strictly_and_gaps_add_up(reads: list[int]) -> None:
    last: int | None = None
    accepted: list[int] = []
    gaps = 0
    for ctr in reads:
        c = check_counter(last, ctr)
        if c.accepted:
            accepted.append(ctr)
            gaps += c.gap
            last = ctr
        else:
            assert last is not None and ctr <= last
    assert accepted == sorted(set(accepted))
    assert gaps == (accepted[-1] - accepted[0] + 1 - len(accepted))


hostile = st.one_of(
    st.binary(max_size=64),
    st.text(max_size=64),
    st.integers(),
    st.none(),
    st.lists(st.integers(0, 255), max_size=20),
)


@settings(max_examples=300, deadline=None)
@given(hostile, hostile, hostile)
def test_hostile_sun_data_raises_only_sun_error_within_a_second(a: Any, b: Any, c: Any) -> None:
    key = bytes(16)
    started = time.monotonic()
    for call in (
        lambda: verify_encrypted(key, key, a, b, c if isinstance(c, bytes | str) else b""),
        lambda: verify_plain(key, a, b, c),
        lambda: diversify_key(key, a),
    ):
        try:
            call()
        except SunError:
            pass
    assert time.monotonic() - started < 1.0
