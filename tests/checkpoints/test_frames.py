"""The OSDP frame sniffer, the whole-frame gate, CRC and backoff: pure pieces of the driver."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.osdp_bus import (
    REPLY_CCRYPT,
    Backoff,
    FrameSniffer,
    complete_prefix,
    frame_time_s,
    missing_bytes,
    osdp_crc16,
)

# Captured on this machine: a PDID reply from address 1 and an SC CCRYPT reply from address 5
# (libosdp 3.2.9), and a CP's ID command with the leading 0xFF mark byte.
PDID = bytes.fromhex("538114000445bebafe0101afbeaddeaddead89fa")
CCRYPT = bytes.fromhex(
    "53852b000e03120176beba0100afbeadde478d7aa05d83f3eaea0a1be29d5ea29c12e3ea262d2a4af87330"
)
ID_CMD = bytes.fromhex("ff530109000461006023")
STREAM = PDID + ID_CMD + CCRYPT


def test_crc_matches_captured_frames() -> None:
    for frame in (PDID, CCRYPT, ID_CMD[1:]):
        assert osdp_crc16(frame[:-2]) == frame[-2] | frame[-1] << 8


def _feed_in_pieces(pieces: list[bytes]) -> tuple[list, FrameSniffer]:  # type: ignore[type-arg]
    s = FrameSniffer()
    out = []
    for p in pieces:
        out += s.feed(p)
    return out, s


def test_sniffer_finds_frames_whole_and_byte_by_byte() -> None:
    whole, s1 = _feed_in_pieces([STREAM])
    single, s2 = _feed_in_pieces([bytes([b]) for b in STREAM])
    assert whole == single
    assert [(f.address, f.reply, f.code) for f in whole] == [
        (1, True, 0x45), (1, False, 0x61), (5, True, REPLY_CCRYPT),
    ]  # fmt: skip
    assert whole[2].sc_block_type == 0x12
    assert s1.bad_frames == s2.bad_frames == 0


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(1, len(STREAM)), max_size=10))
def test_sniffer_is_chunking_independent(cuts: list[int]) -> None:
    points = sorted(set(cuts))
    pieces = [STREAM[a:b] for a, b in zip([0, *points], [*points, len(STREAM)], strict=True)]
    got, s = _feed_in_pieces(pieces)
    assert [f.code for f in got] == [0x45, 0x61, REPLY_CCRYPT]
    assert s.bad_frames == 0


def test_damaged_frame_is_counted_and_the_next_one_still_found() -> None:
    damaged = bytearray(PDID)
    damaged[8] ^= 0x10
    got, s = _feed_in_pieces([bytes(damaged) + CCRYPT])
    assert [f.code for f in got] == [REPLY_CCRYPT]
    assert s.bad_frames >= 1


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=300))
def test_sniffer_survives_garbage(noise: bytes) -> None:
    s = FrameSniffer()
    s.feed(noise)
    # Noise can leave a plausible header claiming up to 1440 bytes; past that, clean frames
    # are found again.
    got = s.feed(PDID * 80)
    assert any(f.code == 0x45 for f in got)


def test_complete_prefix_holds_back_partial_frames_only() -> None:
    assert complete_prefix(STREAM) == len(STREAM)
    for cut in range(len(PDID)):
        assert complete_prefix(PDID[:cut]) == 0  # a frame in flight
    assert complete_prefix(b"\xff\xff" + PDID[:6]) == 2  # mark bytes pass, the frame waits
    assert complete_prefix(PDID + CCRYPT[:10]) == len(PDID)
    assert complete_prefix(b"\x53\x01\x02\x00\x04") == 5  # length 2: not a header, pass on


def test_backoff_grows_to_its_cap_with_bounded_jitter() -> None:
    b = Backoff(0.5, 8.0, 2.0, 0.2, random.Random(7))
    delays = [b.next() for _ in range(8)]
    nominal = [0.5, 1, 2, 4, 8, 8, 8, 8]
    for d, n in zip(delays, nominal, strict=True):
        assert 0.8 * n <= d <= 1.2 * n
    b.reset()
    assert 0.4 <= b.next() <= 0.6


def test_frame_time_is_ten_bits_per_character() -> None:
    assert abs(frame_time_s(96, 9600) - 0.1) < 1e-12


def test_missing_bytes_counts_what_the_held_back_frame_still_needs() -> None:
    assert missing_bytes(b"") == 0
    assert missing_bytes(PDID) == 0  # whole: nothing held back
    assert missing_bytes(PDID[:1]) == 3  # SOM only: the header's other 3 bytes at least
    assert missing_bytes(PDID[:3]) == 1
    for cut in range(4, len(PDID)):
        assert missing_bytes(PDID[:cut]) == len(PDID) - cut  # its declared length
    assert missing_bytes(PDID + CCRYPT[:10]) == len(CCRYPT) - 10
    assert missing_bytes(b"\x53\x01\x02\x00\x04") == 0  # not a header: passed on, not held
