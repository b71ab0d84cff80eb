"""Hostile bytes against the setup probe's OSDP reply parsers (gateway/setup/probe.py).

Their documented outcome for anything that is not a good reply is ``None`` ("none yet"), and
for short identity data ``None``; so hostile input gives ``None`` or a reply, never an
exception, never longer than 1 s.
"""

from __future__ import annotations

import time

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.setup.probe import (
    OSDP_SOM,
    OsdpReply,
    osdp_crc16,
    parse_osdp_reply,
    parse_pdcap,
    parse_pdid,
)

LIMIT_S = 1.0


def reply(address: int, code: int, data: bytes) -> bytes:
    length = 6 + len(data) + 2
    head = bytes([OSDP_SOM, address | 0x80, length & 0xFF, length >> 8, 0x04, code]) + data
    crc = osdp_crc16(head)
    return head + bytes([crc & 0xFF, crc >> 8])


GOOD = reply(1, 0x45, bytes(range(12)))
chunks = st.one_of(
    st.binary(max_size=512),
    st.builds(lambda lo, hi, n: bytes([OSDP_SOM, 0x81, lo, hi, 0x04]) + b"\x53" * n,
              st.integers(0, 255), st.integers(0, 255), st.integers(0, 300)),
    st.builds(lambda cut: GOOD[:cut], st.integers(0, len(GOOD))),
    st.just(bytes([OSDP_SOM, 0x81, 0x00, 0x05]) * 200),  # many headers claiming 1280 bytes
)


@settings(max_examples=300, deadline=None)
@given(st.lists(chunks, max_size=16).map(b"".join), st.integers(0, 126))
def test_reply_parser_gives_none_or_a_reply_quickly(buf: bytes, address: int) -> None:
    started = time.monotonic()
    got = parse_osdp_reply(buf, address)
    assert time.monotonic() - started < LIMIT_S
    assert got is None or (isinstance(got, OsdpReply) and got.address == address)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2048))
def test_identity_and_capability_parsers_take_any_bytes(data: bytes) -> None:
    started = time.monotonic()
    pdid = parse_pdid(data)
    caps = parse_pdcap(data)
    assert time.monotonic() - started < LIMIT_S
    assert pdid is None or len(data) >= 12
    assert all(0 <= k <= 255 for k in caps)
