"""A PN532 on a serial port (HSU) as a card link: ``activate`` a band, ``exchange`` APDUs.

    link = Pn532Link.open("/dev/ttyUSB0")         # wakes the chip, SAMConfiguration
    uid = link.activate(timeout_s=15)              # InListPassiveTarget, 106 kbps type A
    reply = link.exchange(apdu)                    # InDataExchange with target 1
    Ev2Transport(link)                             # gateway/checkpoints/ev2link.py

Frames (PN532 User Manual §6.2): ``00 00 FF LEN LCS TFI PD.. DCS 00`` with LEN + LCS = 0 and
TFI + PD.. + DCS = 0 (mod 256), TFI D4 host to chip, D5 back; ACK ``00 00 FF 00 FF 00``;
NACK ``00 00 FF FF 00 00``; the error frame ``00 00 FF 01 FF 7F 81 00``. Every command is
answered with an ACK, then its response frame. Normal frames only (data up to 254 bytes):
the transport keeps APDUs to 128 data bytes. The codec (:func:`encode_frame`,
:class:`FrameReader`) is sans-IO; :class:`Pn532Link` does the serial I/O, with a deadline
per reply.

Errors: :class:`Pn532Error` (a :class:`~gateway.checkpoints.ev2link.LinkError`, so the
transport's documented family): no reply, a garbled or unexpected frame, the error frame,
an InDataExchange status other than 00 (``status``: 01 timeout, 02 CRC, 13 framing, ...),
no ISO 14443-4 band within the timeout.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Final, Protocol

from gateway.checkpoints.ev2link import LinkError

HOST_TFI: Final = 0xD4
CHIP_TFI: Final = 0xD5
CMD_SAM_CONFIGURATION: Final = 0x14
CMD_RF_CONFIGURATION: Final = 0x32
CMD_IN_DATA_EXCHANGE: Final = 0x40
CMD_IN_LIST_PASSIVE_TARGET: Final = 0x4A
ACK: Final = b"\x00\x00\xff\x00\xff\x00"
NACK: Final = b"\x00\x00\xff\xff\x00\x00"
WAKEUP: Final = b"\x55\x55" + bytes(14)  # HSU: leave power-down before the first command
SEL_RES_ISO14443_4: Final = 0x20
REPLY_TIMEOUT_S: Final = 1.0
POLL_PAUSE_S: Final = 0.05
BAUD: Final = 115200


class Pn532Error(LinkError):
    """The PN532 failed or answered something that is not a PN532 reply."""


def encode_frame(data: bytes, tfi: int = HOST_TFI) -> bytes:
    """A normal information frame carrying ``tfi || data``."""
    body = bytes((tfi,)) + data
    if len(body) > 255:
        raise Pn532Error(f"{len(body)} bytes do not fit a normal frame", check="length")
    return (
        b"\x00\x00\xff"
        + bytes((len(body), -len(body) & 0xFF))
        + body
        + bytes((-sum(body) & 0xFF, 0))
    )


@dataclass(frozen=True, slots=True)
class Frame:
    """One frame from the PN532: ``kind`` ack, nack, error or data; ``data`` after the TFI."""

    kind: str
    tfi: int = 0
    data: bytes = b""


class FrameReader:
    """Bytes in (``feed``), frames out (``next_frame``; None until a whole one arrived).

    Noise before a start code (``00 FF``) is skipped; a frame whose checksums fail raises
    Pn532Error once and is dropped."""

    def __init__(self) -> None:
        self.buf = bytearray()

    def feed(self, data: bytes) -> None:
        self.buf += data

    def next_frame(self) -> Frame | None:
        start = self.buf.find(b"\x00\xff")
        if start < 0:
            del self.buf[: max(0, len(self.buf) - 1)]
            return None
        del self.buf[:start]
        if len(self.buf) < 4:
            return None
        n, lcs = self.buf[2], self.buf[3]
        if (n, lcs) == (0x00, 0xFF):
            del self.buf[:4]
            return Frame("ack")
        if (n, lcs) == (0xFF, 0x00):
            del self.buf[:4]
            return Frame("nack")
        if (n + lcs) & 0xFF or n == 0:
            del self.buf[:2]
            raise Pn532Error("a frame whose length checksum fails", check="lcs")
        if len(self.buf) < 4 + n + 1:
            return None
        body = bytes(self.buf[4 : 4 + n])
        dcs = self.buf[4 + n]
        del self.buf[: 4 + n + 1]
        if (sum(body) + dcs) & 0xFF:
            raise Pn532Error("a frame whose data checksum fails", check="dcs")
        if body == b"\x7f":
            return Frame("error")
        return Frame("data", body[0], body[1:])


class SerialPort(Protocol):
    def write(self, data: bytes) -> int | None: ...
    def read(self, size: int = 1) -> bytes: ...


@dataclass(frozen=True, slots=True)
class Target:
    """A band InListPassiveTarget found: target number, SENS_RES, SEL_RES, UID, ATS."""

    tg: int
    sens_res: bytes
    sel_res: int
    uid: bytes
    ats: bytes


def parse_list_passive(data: bytes) -> Target | None:
    """The first target of an InListPassiveTarget reply (after D5 4B); None if none."""
    try:
        if data[0] == 0:
            return None
        tg, sens, sel, n = data[1], data[2:4], data[4], data[5]
        uid = data[6 : 6 + n]
        if len(uid) != n:
            raise IndexError
        ats = data[6 + n : 6 + n + data[6 + n]] if len(data) > 6 + n else b""
        return Target(tg, bytes(sens), sel, bytes(uid), bytes(ats))
    except IndexError:
        raise Pn532Error("a short InListPassiveTarget reply", check="length") from None


class Pn532Link:
    """A PN532 in HSU mode on ``port`` (a pyserial ``Serial`` or alike, with a short read
    timeout); see the module docstring."""

    def __init__(self, port: SerialPort, *, reply_timeout_s: float = REPLY_TIMEOUT_S) -> None:
        self.port = port
        self.reply_timeout_s = reply_timeout_s
        self.reader = FrameReader()
        self.target: Target | None = None

    @classmethod
    def open(cls, path: str, *, baud: int = BAUD) -> Pn532Link:
        """Open ``path``, wake the PN532, configure it; Pn532Error if it does not answer."""
        import serial  # pyserial: only where a real port is opened

        try:
            port: Any = serial.Serial(path, baud, timeout=0.02)
        except (OSError, ValueError, serial.SerialException) as exc:
            raise Pn532Error(f"cannot open {path}: {exc}") from exc
        link = cls(port)
        try:
            link.begin()
        except Exception:
            port.close()
            raise
        return link

    def begin(self) -> None:
        """Wake-up, SAMConfiguration (normal mode) and RFConfiguration MxRtyPassiveActivation
        (so InListPassiveTarget answers "none" instead of waiting for a band forever)."""
        self._write(WAKEUP)
        self.command(CMD_SAM_CONFIGURATION, b"\x01\x14\x01")
        self.command(CMD_RF_CONFIGURATION, b"\x05\xff\x01\x02")

    def close(self) -> None:
        close = getattr(self.port, "close", None)
        if close is not None:
            close()

    def _write(self, data: bytes) -> None:
        try:
            self.port.write(data)
        except Exception as exc:
            raise Pn532Error(f"the serial port failed: {exc}") from exc

    def _frame(self, deadline: float) -> Frame:
        while True:
            frame = self.reader.next_frame()
            if frame is not None:
                return frame
            if time.monotonic() > deadline:
                raise Pn532Error("the PN532 did not answer", check="timeout")
            try:
                # One byte (returns as soon as it arrives, or at the port's short timeout),
                # then whatever else is waiting: no fixed wait per reply.
                chunk = self.port.read(1)
                waiting = getattr(self.port, "in_waiting", 0) if chunk else 0
                if isinstance(waiting, int) and waiting > 0:
                    chunk += self.port.read(waiting)
            except Exception as exc:
                raise Pn532Error(f"the serial port failed: {exc}") from exc
            self.reader.feed(chunk)

    def command(self, cmd: int, data: bytes = b"") -> bytes:
        """Send ``cmd`` with ``data``; the response's data after its command byte."""
        self.reader = FrameReader()  # nothing stale is taken for this command's reply
        self._write(encode_frame(bytes((cmd,)) + data))
        deadline = time.monotonic() + self.reply_timeout_s
        first = self._frame(deadline)
        if first.kind != "ack":
            raise Pn532Error(f"no ACK for command {cmd:02X} ({first.kind})", check="ack")
        reply = self._frame(deadline)
        if reply.kind == "error":
            raise Pn532Error(f"the PN532 sent its error frame for {cmd:02X}", check="error")
        if reply.kind != "data" or reply.tfi != CHIP_TFI or reply.data[:1] != bytes((cmd + 1,)):
            raise Pn532Error(f"an unexpected reply to {cmd:02X}", check="reply")
        return reply.data[1:]

    def activate(self, timeout_s: float) -> bytes:
        """Poll for one ISO 14443-4 type A band at 106 kbps until ``timeout_s``; its UID."""
        deadline = time.monotonic() + timeout_s
        while True:
            target = parse_list_passive(self.command(CMD_IN_LIST_PASSIVE_TARGET, b"\x01\x00"))
            if target is not None:
                if not target.sel_res & SEL_RES_ISO14443_4:
                    raise Pn532Error(
                        f"the card {target.uid.hex()} does not speak ISO 14443-4: not an NTAG 424",
                        check="card",
                    )
                self.target = target
                return target.uid
            if time.monotonic() > deadline:
                raise Pn532Error(f"no band within {timeout_s:g} s", check="timeout")
            time.sleep(POLL_PAUSE_S)

    def exchange(self, apdu: bytes) -> bytes:
        """InDataExchange of ``apdu`` with the active band; its reply."""
        if self.target is None:
            raise Pn532Error("no band activated", check="state")
        reply = self.command(CMD_IN_DATA_EXCHANGE, bytes((self.target.tg,)) + apdu)
        if not reply:
            raise Pn532Error("an empty InDataExchange reply", check="length")
        status = reply[0] & 0x3F
        if status:
            self.target = None
            raise Pn532Error(
                f"InDataExchange failed with status {status:02X}", check="status", status=status
            )
        if reply[0] & 0x40:
            raise Pn532Error("the band's reply needs chaining (MI set)", check="chaining")
        return reply[1:]
