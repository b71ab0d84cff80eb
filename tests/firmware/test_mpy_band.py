"""A checkpoint node reading NTAG 424 DNA bands (firmware_mpy/sunread.py), under real
MicroPython (WebAssembly port): the APDU exchange goes through the node's PN532 driver to a
simulated PN532 and band (tests/firmware/mpy/t_band.py); the card data the node sends in
its osdp_RAW card read is then handed to the gateway's own verifier
(gateway/credentials/bands.py), which must accept every band read as genuine and in counter
order, and see the cards without a SUN message as the UID reads they were before."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from gateway.credentials.bands import BandVerifier
from gateway.credentials.payload import is_sun_payload, parse_reader_payload
from gateway.credentials.sun import SunError
from hil_tests.sims.ntag424 import SimBand
from tests.firmware._mpy import CPYTHON_SHIM, FIRMWARE, HOST_SHIM, MPY_TESTS, run_mpy

MASTER = bytes.fromhex("5f1e2d3c4b5a69788796a5b4c3d2e1f0")
UID = bytes.fromhex("04de5f1eacc040")
PLAIN_UID = bytes.fromhex("04a1b2c3d4e5f6")


def _reads(tmp_path: Path) -> None:
    band = SimBand(MASTER, UID)
    plain = SimBand(MASTER, PLAIN_UID, plain=True)
    urls = [band.read(full_url=True).decode() for _ in range(3)]
    plain_query = plain.read().decode()
    enc = urls[0].split("picc_data=")[1][:32]
    values = {
        "UID": UID.hex(),
        "PLAIN_UID": PLAIN_UID.hex(),
        "META_KEY": band.meta_key.hex(),
        "FILE_KEY": band.file_key.hex(),
        "URLS": urls,
        # extra parameters around the SUN part, which the node leaves out
        "PLAIN_URL": f"https://band.example/t?site=north&{plain_query}&v=2",
        "PLAIN_MAC": plain_query.rsplit("cmac=", 1)[1],
        # encrypted file data too: 97 bytes, more than one OSDP card read carries
        "LONG_URL": f"https://band.example/t?picc_data={enc}&enc={'AB' * 16}&cmac={'CD' * 8}",
    }
    (tmp_path / "band_reads.py").write_text(
        "".join(f"{k} = {v!r}\n" for k, v in values.items()), "utf-8"
    )


def test_node_sends_sun_messages_the_gateway_verifies(tmp_path: Path) -> None:
    _reads(tmp_path)
    proc = run_mpy(MPY_TESTS / "t_band.py", libs=[FIRMWARE, HOST_SHIM, MPY_TESTS, tmp_path])
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    summary = re.search(r"SUMMARY (\d+) passed (\d+) failed", proc.stdout)
    assert summary and (int(summary.group(1)), int(summary.group(2))) == (5, 0), out
    cards = {
        m[0]: bytes.fromhex(m[1])
        for m in re.findall(r"^CARD (\S+) ([0-9a-f]*)$", proc.stdout, re.M)
    }
    assert list(cards) == [
        "enc0",
        "enc1",
        "enc2",
        "plain",
        "uid4",
        "no_ndef",
        "no_sun",
        "too_long",
        "gone",
    ], out

    gateway = BandVerifier(MASTER, require_verified=True)
    for i in range(3):
        check = gateway.check(cards[f"enc{i}"])
        assert (check.sun, check.verified, check.uid, check.counter, check.refusal) == (
            True,
            True,
            UID.hex(),
            i + 1,
            None,
        ), check
    check = gateway.check(cards["plain"])
    assert (check.verified, check.uid, check.counter) == (True, PLAIN_UID.hex(), 1), check
    # a replay of the first read is refused: the node sent the band's message verbatim
    assert gateway.check(cards["enc0"]).refusal == "replay"
    # cards without a SUN message: the UID read as before (refused here, as UID-only)
    for name, uid in (
        ("uid4", "04112233"),
        ("no_ndef", "08998877"),
        ("no_sun", PLAIN_UID.hex()),
        ("too_long", UID.hex()),
        ("gone", UID.hex()),
    ):
        check = gateway.check(cards[name])
        assert (check.sun, check.uid, check.refusal) == (False, uid, "unverified_band"), name


@pytest.fixture(scope="module")
def sunread() -> Iterator[Any]:
    added = [str(FIRMWARE), str(CPYTHON_SHIM)]
    before = set(sys.modules)
    sys.path[:0] = added
    import sunread as module

    yield module
    for p in added:
        sys.path.remove(p)
    for name in set(sys.modules) - before:  # firmware module names must not leak
        if str(getattr(sys.modules[name], "__file__", "")).startswith(str(FIRMWARE)):
            del sys.modules[name]


_KEYS = st.sampled_from(
    ["picc_data", "PICC_DATA", "uid", "ctr", "enc", "cmac", "CMAC", "site", "v", "x"]
)
_VALUES = st.one_of(
    st.sampled_from(
        [
            "EF963FF7828658A599F3041510671E88",
            "94EED9EE65337086",
            "04DE5F1EACC040",
            "00003D",
            "ab" * 16,
        ]
    ),  # well-formed picc_data, cmac, uid, ctr, enc
    st.text(alphabet="0123456789ABCDEFabcdef=-_.%", max_size=34),
)


_BAND = "https://band.example/t?"
_UID, _CTR, _MAC = ("uid", "04DE5F1EACC040"), ("ctr", "00003D"), ("cmac", "94EED9EE65337086")


@settings(max_examples=150, deadline=None)
@example(
    params=[("site", "n"), ("picc_data", "EF963FF7828658A599F3041510671E88"), _MAC, ("v", "2")],
    host=_BAND,
)
@example(params=[_UID, ("x", "1"), _CTR, _MAC], host=_BAND)
@example(params=[("a", "b"), _UID, ("enc", "AB12"), _CTR, _MAC], host=_BAND)  # MAC input
@given(
    params=st.lists(st.tuples(_KEYS, _VALUES), max_size=7),
    host=st.sampled_from(["https://band.example/t?", "https://b.example/?", ""]),
)
def test_card_data_means_to_the_gateway_what_the_url_does(
    sunread: Any, params: list[tuple[str, str]], host: str
) -> None:
    """Whatever part of a band's URL the node sends, the gateway's parser reads the same SUN
    message from it as from the whole URL (MAC input included), or both see no SUN."""
    url = host + "&".join(f"{k}={v}" for k, v in params)
    try:
        data = sunread.card_data(url)
    except sunread.SunError as exc:
        assert exc.kind == "malformed"  # too long for one card read: the node sends the UID
        return
    if data is None:
        if host:
            assert not [k for k, _ in params if k.lower() == "cmac"]
        return
    assert len(data) <= sunread.MAX_CARD_DATA and is_sun_payload(data)
    try:
        whole = parse_reader_payload(url.encode())
    except SunError as exc:
        with pytest.raises(SunError) as part:
            parse_reader_payload(data)
        assert part.value.kind == exc.kind == "malformed"
        return
    assert whole is not None and parse_reader_payload(data) == whole


@settings(max_examples=150, deadline=None)
@given(
    ndef=st.one_of(
        st.binary(max_size=120),
        st.builds(
            lambda rest: bytes((0xD1, 1, len(rest) + 1, 0x55, 4)) + rest, st.binary(max_size=90)
        ),
        st.builds(
            lambda q: bytes((0xD1, 1, len(q) + 13, 0x55, 4)) + b"b.example/t?" + q.encode(),
            st.text(max_size=80),
        ),
    ),
    statuses=st.lists(
        st.sampled_from([b"\x90\x00", b"\x6a\x82", b"\x91\x00", b"", b"\x90"]),
        min_size=3,
        max_size=3,
    ),
)
def test_hostile_cards_give_bytes_none_or_oserror(
    sunread: Any, ndef: bytes, statuses: list[bytes]
) -> None:
    """A card that answers anything: the node gets card data fit for one card read, or None
    (send the UID), or OSError from the PN532 driver; never another exception."""
    replies = iter(statuses)

    class Chip:
        def data_exchange(self, tg: int, apdu: bytes, clock_ms: object) -> bytes:
            if apdu[1] == 0xA4:
                return next(replies, b"\x90\x00")
            off, n = (apdu[2] << 8) | apdu[3], apdu[4]
            return (len(ndef).to_bytes(2, "big") + ndef)[off : off + n] + b"\x90\x00"

    class Target:
        tg = 1

    got = sunread.read(Chip(), Target(), None)
    assert got is None or (len(got) <= 64 and is_sun_payload(got))
