"""The serial channel's two-step read path (pull, then release whole frames) and the hooks the
line-driven refresh thread waits on, over a real pseudo-terminal."""

from __future__ import annotations

import os
import select
import time
from collections.abc import Iterator

import pytest
import serial

from drivers.osdp_bus import (
    COMMAND_POLL,
    REPLY_ACK,
    FrameSniffer,
    SerialChannel,
    SniffedFrame,
    osdp_crc16,
)


def frame(address: int, code: int) -> bytes:
    body = bytes([0x53, address, 8, 0, 0x04, code])
    crc = osdp_crc16(body)
    return body + bytes([crc & 0xFF, crc >> 8])


@pytest.fixture
def pty() -> Iterator[tuple[int, serial.Serial]]:
    master, slave = os.openpty()
    port = serial.Serial(os.ttyname(slave), 115200, timeout=0)
    try:
        yield master, port
    finally:
        port.close()
        os.close(slave)
        os.close(master)


def wait_readable(fd: int) -> bool:
    readable, _, _ = select.select([fd], [], [], 2.0)
    return bool(readable)


def test_a_frame_in_two_pieces_is_ready_only_when_whole(pty: tuple[int, serial.Serial]) -> None:
    master, port = pty
    seen: list[SniffedFrame] = []
    channel = SerialChannel(port, FrameSniffer(), lambda _r: None, 115200, on_frame=seen.append)
    fd = channel.fileno()
    assert fd is not None
    ack = frame(0x81, REPLY_ACK)

    os.write(master, ack[:5])
    assert wait_readable(fd)
    assert channel.pull() == 5
    assert not channel.frames_ready()
    assert channel.partial_due() is not None
    assert channel.rx_frames == 0 and not seen  # nothing released while only pulled

    os.write(master, ack[5:])
    assert wait_readable(fd)
    channel.pull()
    assert channel.frames_ready()
    assert channel.read(4096) == ack
    assert channel.rx_bytes == len(ack)
    assert channel.rx_frames == 1
    assert seen == [SniffedFrame(1, True, REPLY_ACK, None)]
    assert not channel.frames_ready()
    assert channel.partial_due() is None


def test_a_stale_fragment_becomes_ready(pty: tuple[int, serial.Serial]) -> None:
    master, port = pty
    channel = SerialChannel(port, FrameSniffer(), lambda _r: None, 115200)
    header = bytes([0x53, 0x81, 200, 0])  # promises 200 bytes that never come
    os.write(master, header)
    fd = channel.fileno()
    assert fd is not None and wait_readable(fd)
    channel.pull()
    due = channel.partial_due()
    assert due is not None and not channel.frames_ready()
    time.sleep(max(0.0, due - time.monotonic()) + 0.01)
    assert channel.frames_ready()
    assert channel.read(4096) == header


def test_a_poll_sent_sets_the_next_poll_due(pty: tuple[int, serial.Serial]) -> None:
    _master, port = pty
    channel = SerialChannel(port, FrameSniffer(), lambda _r: None, 115200)
    assert channel.next_poll_due() is None
    before = time.monotonic()
    poll = frame(0x01, COMMAND_POLL)
    assert channel.write(b"\xff" + poll) == len(poll) + 1
    due = channel.next_poll_due()
    assert due is not None and due > before


def test_a_failed_port_has_nothing_to_wait_on(pty: tuple[int, serial.Serial]) -> None:
    _master, port = pty
    reasons: list[str] = []
    channel = SerialChannel(port, FrameSniffer(), reasons.append, 115200)
    port.close()
    assert channel.pull() == 0
    assert channel.failed is not None and len(reasons) == 1
    assert channel.fileno() is None
    assert channel.read(4096) == b""


def test_a_held_back_frame_is_due_after_the_wire_time_of_its_missing_bytes(
    pty: tuple[int, serial.Serial],
) -> None:
    """The refresh thread sleeps until then instead of waking for every paced byte."""
    master, port = pty
    channel = SerialChannel(port, FrameSniffer(), lambda _r: None, 9600)
    fd = channel.fileno()
    assert fd is not None
    ack = frame(0x81, REPLY_ACK)  # 8 bytes
    os.write(master, ack[:2])
    assert wait_readable(fd)
    assert channel.pull() == 2
    now = time.monotonic()
    # Header incomplete: 2 more bytes at least, the last of them reported by the descriptor.
    assert channel.held_frame_due(now) == pytest.approx(now + 10 / 9600)
    os.write(master, ack[2:5])
    assert wait_readable(fd)
    assert channel.pull() == 3
    assert channel.held_frame_due(now) == pytest.approx(now + 2 * 10 / 9600)
    due = channel.partial_due()
    assert due is not None and channel.held_frame_due(due) == due  # never past the stale point
    os.write(master, ack[5:])
    assert wait_readable(fd)
    channel.pull()
    assert channel.frames_ready()
