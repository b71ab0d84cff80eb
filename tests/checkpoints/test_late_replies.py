"""Replies that answer a command libosdp no longer waits for are kept from it
(``drop_late_replies``): pure cases, a property, and the channel on a real pseudo-terminal."""

from __future__ import annotations

import os
import time

import serial
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.osdp_bus import FrameSniffer, SerialChannel, drop_late_replies, osdp_crc16


def frame(address: int, code: int, seq: int, *, reply: bool, data: bytes = b"") -> bytes:
    head = bytes([0x53, address | (0x80 if reply else 0), 0, 0, 0x04 | seq, code]) + data
    length = len(head) + 2
    head = head[:2] + bytes([length & 0xFF, length >> 8]) + head[4:]
    crc = osdp_crc16(head)
    return head + bytes([crc & 0xFF, crc >> 8])


POLL_2 = frame(2, 0x60, 1, reply=False)
ACK_2 = frame(2, 0x40, 1, reply=True)
LATE_ACK_1 = frame(1, 0x40, 3, reply=True)  # reader 1 answering its LED command, too late
STALE_ACK_2 = frame(2, 0x40, 3, reply=True)  # reader 2 answering an older command


def test_the_awaited_reply_passes_and_late_ones_are_dropped() -> None:
    assert drop_late_replies(ACK_2, (2, 1)) == (ACK_2, 0)
    assert drop_late_replies(LATE_ACK_1 + ACK_2, (2, 1)) == (ACK_2, 1)
    assert drop_late_replies(STALE_ACK_2 + ACK_2, (2, 1)) == (ACK_2, 1)
    assert drop_late_replies(LATE_ACK_1, (2, 1)) == (b"", 1)


def test_before_any_command_and_for_commands_nothing_is_dropped() -> None:
    assert drop_late_replies(LATE_ACK_1, None) == (LATE_ACK_1, 0)
    assert drop_late_replies(POLL_2, (1, 3)) == (POLL_2, 0)  # a command is no reply


def test_noise_and_damaged_frames_pass_unchanged_for_libosdp_to_count() -> None:
    damaged = bytearray(LATE_ACK_1)
    damaged[-1] ^= 0xFF
    for buf in (b"\xff\x00\x53", bytes(damaged), b"\x53\x81\xff\xff\x04", b"\x53"):
        assert drop_late_replies(buf, (2, 1)) == (buf, 0)
    assert drop_late_replies(b"\xff" + bytes(damaged) + ACK_2, (2, 1)) == (
        b"\xff" + bytes(damaged) + ACK_2, 0,
    )  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.binary(max_size=40),
            st.builds(
                frame, st.integers(0, 0x7E), st.integers(0x40, 0x7F), st.integers(0, 3),
                reply=st.booleans(), data=st.binary(max_size=16),
            ),
        ),
        max_size=8,
    ),
    st.one_of(st.none(), st.tuples(st.integers(0, 0x7E), st.integers(0, 3))),
)
def test_only_whole_unawaited_replies_are_ever_removed(
    pieces: list[bytes], command: tuple[int, int] | None
) -> None:
    """Never raises; only removes (what is left keeps its order); removes nothing when no
    command has been sent; and the well-formed replies left all answer ``command``."""
    buf = b"".join(pieces)
    out, dropped = drop_late_replies(buf, command)
    assert dropped >= 0
    assert (dropped == 0) == (out == buf)
    it = iter(buf)
    assert all(byte in it for byte in out)  # a subsequence of the input
    if command is None:
        assert out == buf
    clean = [
        p for p in pieces
        if len(p) >= 7 and p[0] == 0x53 and p[2] | p[3] << 8 == len(p) and FrameSniffer().feed(p)
    ]  # fmt: skip
    if len(clean) == len(pieces):  # only whole frames: each unawaited reply is gone
        expected = [
            p for p in pieces
            if not (p[1] & 0x80) or command is None or (p[1] & 0x7F, p[4] & 0x03) == command
        ]  # fmt: skip
        assert out == b"".join(expected)
        assert dropped == len(pieces) - len(expected)


def test_the_channel_keeps_a_late_reply_from_libosdp_on_a_real_pty() -> None:
    master, slave = os.openpty()
    port = serial.Serial(os.ttyname(slave), 115200, timeout=0)
    channel = SerialChannel(port, FrameSniffer(), lambda _r: None, 115200, drop_late_replies=True)
    try:
        assert channel.write(POLL_2) == len(POLL_2)
        assert os.read(master, 64) == POLL_2
        os.write(master, LATE_ACK_1 + ACK_2)
        got = b""
        deadline = time.monotonic() + 5
        while len(got) < len(ACK_2) and time.monotonic() < deadline:
            got += channel.read(4096)
            time.sleep(0.01)
        assert got == ACK_2
        assert channel.late_replies == 1
        assert channel.rx_bytes == len(LATE_ACK_1 + ACK_2)  # counted as received all the same
    finally:
        port.close()
        os.close(master)
        os.close(slave)
