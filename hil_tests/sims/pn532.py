"""A simulated PN532 in HSU mode on a real pseudo-terminal, with bands laid on its antenna.

    sim = SimPn532(SimApduReader(ApduChip(uid)))    # hil_tests/sims/ntag424.py
    sim.start()                                      # a thread on the pty's master side
    Pn532Link.open(sim.port)                         # the gateway's driver, on sim.port
    sim.stop()

It answers as the chip does (PN532 User Manual §6.2, §7): every well-formed command frame
with an ACK, then its response frame; a frame whose checksums fail with a NACK; wake-up
bytes (55 55 00 ..) skipped. Commands: GetFirmwareVersion (02), SAMConfiguration (14),
RFConfiguration (32), InListPassiveTarget (4A, one target, 106 kbps type A: the next band
presented, SENS_RES 0044, SEL_RES 20 (ISO 14443-4), its 7-byte UID, an ATS; none when no
band is waiting) and InDataExchange (40, the APDU to the band; status 01 "timeout" when the
band left the field). Anything else: the error frame. Independent of the gateway's code.

``fault``: a function that may rewrite each response frame on its way out (tests of a
garbled line).
"""

from __future__ import annotations

import os
import select
import threading
from collections.abc import Callable
from typing import Any

ACK = b"\x00\x00\xff\x00\xff\x00"
NACK = b"\x00\x00\xff\xff\x00\x00"
ERROR_FRAME = b"\x00\x00\xff\x01\xff\x7f\x81\x00"
ATS = bytes.fromhex("0675778102") + b"\x80"


def frame(data: bytes, tfi: int = 0xD5) -> bytes:
    body = bytes((tfi,)) + data
    return (
        b"\x00\x00\xff"
        + bytes((len(body), -len(body) & 0xFF))
        + body
        + bytes((-sum(body) & 0xFF, 0))
    )


class SimPn532:
    def __init__(self, reader: Any, *, fault: Callable[[bytes], bytes] | None = None) -> None:
        self.reader = reader  # SimApduReader: activate(timeout_s) and exchange(apdu)
        self.fault = fault
        self.master, self.slave = os.openpty()
        self.port = os.ttyname(self.slave)
        self.buf = bytearray()
        self.commands: list[int] = []
        self.active = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sim-pn532", daemon=True)

    def start(self) -> SimPn532:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        os.close(self.master)
        os.close(self.slave)

    def _run(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([self.master], [], [], 0.05)
            if not ready:
                continue
            try:
                self.buf += os.read(self.master, 1024)
            except OSError:
                return
            for out in self._frames():
                os.write(self.master, out)

    def _frames(self) -> list[bytes]:
        out = []
        while True:
            start = self.buf.find(b"\x00\xff")
            if start < 0 or len(self.buf) < start + 4:
                return out
            del self.buf[:start]
            n, lcs = self.buf[2], self.buf[3]
            if (n, lcs) in ((0x00, 0xFF), (0xFF, 0x00)):  # an ACK or NACK from the host
                del self.buf[:4]
                continue
            if (n + lcs) & 0xFF:
                del self.buf[:2]
                out.append(NACK)
                continue
            if len(self.buf) < 4 + n + 1:
                return out
            body = bytes(self.buf[4 : 4 + n])
            dcs = self.buf[4 + n]
            del self.buf[: 4 + n + 1]
            if (sum(body) + dcs) & 0xFF or not body or body[0] != 0xD4 or len(body) < 2:
                out.append(NACK)
                continue
            reply = self._command(body[1], body[2:])
            if self.fault is not None:
                reply = self.fault(reply)
            out.append(ACK + reply)

    def _command(self, cmd: int, data: bytes) -> bytes:
        self.commands.append(cmd)
        if cmd == 0x02:
            return frame(bytes((0x03, 0x32, 0x01, 0x06, 0x07)))
        if cmd in (0x14, 0x32):
            return frame(bytes((cmd + 1,)))
        if cmd == 0x4A and data[:2] == b"\x01\x00":
            try:
                uid = self.reader.activate(0)
            except Exception:
                self.active = False
                return frame(b"\x4b\x00")
            self.active = True
            return frame(b"\x4b\x01\x01\x00\x44\x20" + bytes((len(uid),)) + uid + ATS)
        if cmd == 0x40 and data[:1] == b"\x01":
            if not self.active:
                return frame(b"\x41\x27")  # not a valid target
            try:
                reply = self.reader.exchange(data[1:])
            except Exception:
                self.active = False
                return frame(b"\x41\x01")  # timeout: the band did not answer
            return frame(b"\x41\x00" + reply)
        return ERROR_FRAME
