"""The bus scan finds a reader that answers later than the scan's window (gateway/setup/scan.py).

OSDP lets a reader take up to 200 ms to answer; the scan asks each address with a short window
so that 127 addresses take seconds, and must not lose a slow reader for it."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator

import pytest
import serial

from gateway.setup import probe
from gateway.setup.scan import OSDP_ANSWER_WINDOW_S, scan_osdp
from hil_tests.line import SerialLine

PDID = bytes.fromhex("0a0b0c") + bytes([7, 2]) + (0x1234).to_bytes(4, "little") + bytes([1, 2, 3])
PDCAP = bytes([0x09, 0x01, 0x01])  # communication security: AES-128 supported


def _reply(address: int, code: int, data: bytes) -> bytes:
    length = probe.OSDP_HEADER_LEN + 1 + len(data) + 2
    body = bytes([probe.OSDP_SOM, address | 0x80, length & 0xFF, length >> 8, 0x04, code]) + data
    crc = probe.osdp_crc16(body)
    return body + bytes([crc & 0xFF, crc >> 8])


class SlowReader:
    """A clear-text OSDP reader at ``address`` whose osdp_ID answer comes ``delay_s`` late."""

    def __init__(self, path: str, address: int, delay_s: float) -> None:
        self.port = serial.Serial(path, 9600, timeout=0.05)
        self.address, self.delay_s = address, delay_s
        self.asked: list[int] = []
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        buf = b""
        while not self._stop.is_set():
            buf += self.port.read(64)
            start = buf.find(bytes([probe.OSDP_SOM]))
            if start < 0:
                buf = b""
                continue
            buf = buf[start:]
            n = probe.osdp_frame_length(buf)
            if n is None or len(buf) < n:
                continue
            frame, buf = buf[:n], buf[n:]
            address, code = frame[1], frame[5]
            self.asked.append(address)
            if address != self.address:
                continue
            if code == probe.OSDP_ID:
                time.sleep(self.delay_s)
                self.port.write(_reply(address, probe.OSDP_PDID, PDID))
            elif code == probe.OSDP_CAP:
                self.port.write(_reply(address, probe.OSDP_PDCAP, PDCAP))

    def stop(self) -> None:
        self._stop.set()
        self.thread.join(timeout=5)
        self.port.close()


@pytest.fixture
def line(tmp_path: os.PathLike[str]) -> Iterator[SerialLine]:
    with SerialLine(host_link=os.path.join(tmp_path, "tty"), baud=9600) as ln:
        yield ln


@pytest.mark.parametrize("address", [2, 5])  # in the middle, and the last address asked
def test_a_reader_slower_than_the_window_is_still_found(line: SerialLine, address: int) -> None:
    delay = OSDP_ANSWER_WINDOW_S + 0.1  # late, but within the spec's 200 ms
    reader = SlowReader(line.device_path, address, delay)
    try:
        found = scan_osdp(line.host_path, 9600, range(0, 6))
    finally:
        reader.stop()
    assert [(r.address, r.serial, r.firmware, r.secure_channel) for r in found] == [
        (address, "00001234", "1.2.3", True)
    ]


def test_silence_is_asked_once(line: SerialLine) -> None:
    reader = SlowReader(line.device_path, 9, 0.0)  # nobody at the addresses asked
    try:
        found = scan_osdp(line.host_path, 9600, range(0, 6))
        time.sleep(0.2)
    finally:
        reader.stop()
    assert found == []
    assert reader.asked == [0, 1, 2, 3, 4, 5]


def test_reply_sources_names_every_well_formed_reply() -> None:
    buf = b"\x00garbage" + _reply(4, probe.OSDP_PDID, PDID) + b"\x53\x85\x01" + _reply(7, 0x40, b"")
    assert probe.osdp_reply_sources(buf) == {4, 7}
    assert probe.osdp_reply_sources(b"") == set()
