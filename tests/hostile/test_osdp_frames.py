"""Hostile bytes against the OSDP parsers we own in drivers/osdp_bus.py.

Their documented contract for bad input is not an exception: the sniffer counts damage in
``bad_frames`` and resynchronises, ``complete_prefix`` passes what starts no frame on, the
trackers ignore what they do not understand. So "the documented error, never anything else"
here means: no exception of any kind, the documented outcome, and never longer than 1 s.
"""

from __future__ import annotations

import time

from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.osdp_bus import (
    MAX_FRAME_LEN,
    OSDP_SOM,
    FrameSniffer,
    ReadDrainTracker,
    SniffedFrame,
    UnansweredCounter,
    complete_prefix,
    osdp_crc16,
)

# Timed in CPU seconds of the test's thread (time.thread_time): the 1 s bound is on the
# parser's own work; a loaded machine's scheduler pauses (seen at over 1 s) are not.
LIMIT_S = 1.0


def frame(address: int, code: int, data: bytes = b"", reply: bool = True) -> bytes:
    body = bytes([OSDP_SOM, address | (0x80 if reply else 0)])
    length = len(body) + 2 + 1 + 1 + len(data) + 2
    head = body + bytes([length & 0xFF, length >> 8, 0x04, code]) + data
    crc = osdp_crc16(head)
    return head + bytes([crc & 0xFF, crc >> 8])


CARD = b"\x00\x01\x30\x00\x04\xa1\xb2"
GOOD = frame(3, 0x40) + frame(5, 0x50, CARD) + frame(3, 0x60, reply=False)

# Noise, bytes that look like headers, headers claiming huge or tiny lengths, and good frames
# cut anywhere.
chunks = st.one_of(
    st.binary(max_size=256),
    st.builds(lambda n, lo, hi: bytes([OSDP_SOM, 0x83, lo, hi]) + b"\x00" * n,
              st.integers(0, 64), st.integers(0, 255), st.integers(0, 255)),
    st.builds(lambda cut: GOOD[:cut], st.integers(0, len(GOOD))),
    st.builds(lambda cut: GOOD[cut:], st.integers(0, len(GOOD))),
    st.just(bytes([OSDP_SOM]) * 64),
    st.just(bytes([OSDP_SOM, 0x80, 0xFF, 0xFF])),  # 65535 claimed
)
streams = st.lists(chunks, max_size=40)


@settings(max_examples=300, deadline=None)
@given(streams)
def test_sniffer_never_raises_counts_damage_and_stays_bounded(parts: list[bytes]) -> None:
    sniffer = FrameSniffer()
    started = time.thread_time()
    frames = []
    for part in parts:
        frames += sniffer.feed(part)
        assert len(sniffer._buf) < MAX_FRAME_LEN, "an unfinished frame grew past its maximum"
    assert time.thread_time() - started < LIMIT_S
    assert all(isinstance(f, SniffedFrame) for f in frames)
    assert all(0 <= f.address <= 0x7F and 0 <= f.code <= 0xFF for f in frames)
    assert sniffer.bad_frames >= 0 and sniffer.good_frames >= len(frames)


@settings(max_examples=200, deadline=None)
@given(streams, st.integers(0, 2**32))
def test_good_frames_are_found_after_any_noise(parts: list[bytes], seed: int) -> None:
    sniffer = FrameSniffer()
    noise = b"".join(parts)
    started = time.thread_time()
    # A quiet gap (what a line gives between transmissions) cannot be sent as bytes: feed
    # enough non-SOM filler to flush any claimed length, then the good frames.
    sniffer.feed(noise + b"\x00" * (MAX_FRAME_LEN + 8))
    got = sniffer.feed(GOOD)
    assert time.thread_time() - started < LIMIT_S
    assert [(f.address, f.reply, f.code) for f in got] == [
        (3, True, 0x40), (5, True, 0x50), (3, False, 0x60)
    ]


@settings(max_examples=300, deadline=None)
@given(st.lists(chunks, max_size=20).map(b"".join))
def test_complete_prefix_is_a_prefix_of_whole_frames_or_noise(buf: bytes) -> None:
    started = time.thread_time()
    cut = complete_prefix(buf)
    assert time.thread_time() - started < LIMIT_S
    assert 0 <= cut <= len(buf)
    # What is held back starts with a start-of-message that claims a frame not yet complete.
    rest = buf[cut:]
    if rest:
        assert rest[0] == OSDP_SOM
        if len(rest) >= 4:
            claimed = rest[2] | rest[3] << 8
            assert 7 <= claimed <= MAX_FRAME_LEN and claimed > len(rest)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 0x7F), st.booleans(), st.integers(0, 255),
                          st.sampled_from([None, 1, 2, 0x11, 0x18])),
                max_size=200))  # fmt: skip
def test_trackers_take_any_frame_sequence(seq: list[tuple[int, bool, int, int | None]]) -> None:
    drain = ReadDrainTracker(clock=lambda: 1.0)
    counter = UnansweredCounter()
    started = time.thread_time()
    for address, reply, code, sc in seq:
        f = SniffedFrame(address, reply, code, sc)
        drain.frame(f)
        counter.frame(f)
        if code == 0xEE:
            drain.link_changed(address)
        gap = drain.out_of_contact_s(address)
        assert gap is None or gap >= 0.0
    assert time.thread_time() - started < LIMIT_S
    commands = sum(1 for a, r, _c, _s in seq if not r and a != UnansweredCounter.BROADCAST)
    assert 0 <= counter.unanswered <= commands
