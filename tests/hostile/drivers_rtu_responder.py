"""A raw Modbus RTU relay board on a pty, written without pymodbus, that can answer wrongly.

The gateway's pymodbus client opens ``board.path``; this side reads its requests from the
pty master, checks their CRC and answers as a plain relay board (coils, FC01/05/15, and
holding registers, FC03/06 with 0x0100 on / 0x0200 off), unless ``answer`` is set: then
``answer(request_pdu)`` returns the reply PDU to send (address, function and data, the CRC is
added here), or None to stay silent. Every write the board takes is kept in ``writes``::

    with RawRtuBoard() as board:
        board.answer = lambda req: bytes([req[0], 0x03, 0x00])   # byte count 0
        port = ModbusRelayPort(board.path, ...)
"""

from __future__ import annotations

import os
import select
import struct
import threading
import tty
from collections.abc import Callable
from types import TracebackType

Answer = Callable[[bytes], bytes | None]


def crc16(data: bytes) -> bytes:
    """Modbus CRC-16 (poly 0xA001 reflected, init 0xFFFF), low byte first."""
    crc = 0xFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return struct.pack("<H", crc)


def _frame_size(buf: bytes) -> int | None:
    """Size of the request at the head of ``buf`` (None: need more; 0: not a request)."""
    if len(buf) < 2:
        return None
    fc = buf[1]
    if fc in (0x01, 0x03, 0x05, 0x06):
        return 8
    if fc == 0x0F:
        return None if len(buf) < 7 else 9 + buf[6]
    return 0


class RawRtuBoard:
    def __init__(self, address: int = 1) -> None:
        self.address = address
        self.coils: dict[int, bool] = {}
        self.registers: dict[int, int] = {}
        self.writes: list[tuple[int, int, int]] = []  # (function, address, value)
        self.answer: Answer | None = None
        self.requests = 0
        self._lock = threading.Lock()
        self._master, self._slave = os.openpty()
        tty.setraw(self._master)
        tty.setraw(self._slave)
        os.set_blocking(self._master, False)
        self.path = os.ttyname(self._slave)
        self._stop_r, self._stop_w = os.pipe()
        self._thread = threading.Thread(target=self._run, name="raw-rtu-board", daemon=True)

    def __enter__(self) -> RawRtuBoard:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        os.write(self._stop_w, b"x")
        self._thread.join(timeout=5)
        for fd in (self._master, self._slave, self._stop_r, self._stop_w):
            os.close(fd)

    def on_channels(self, *, register_base: int = 1, channels: int = 8) -> list[int]:
        """Channels the board holds on (coils, or holding registers from ``register_base``)."""
        with self._lock:
            coils = [c for c in range(channels) if self.coils.get(c)]
            regs = [c for c in range(channels) if self.registers.get(register_base + c)]
        return sorted(set(coils) | set(regs))

    # -- the board ---------------------------------------------------------------------------

    def _run(self) -> None:
        buf = b""
        while True:
            ready, _, _ = select.select([self._master, self._stop_r], [], [], 1.0)
            if self._stop_r in ready:
                return
            if self._master not in ready:
                continue
            try:
                buf += os.read(self._master, 4096)
            except BlockingIOError:
                continue
            except OSError:
                return
            while True:
                size = _frame_size(buf)
                if size is None:
                    break
                if size == 0 or size > 300:
                    buf = b""  # not a request we know: resynchronise on the next one
                    break
                if len(buf) < size:
                    break
                frame, buf = buf[:size], buf[size:]
                if crc16(frame[:-2]) != frame[-2:] or frame[0] != self.address:
                    continue
                reply = self._reply(frame[:-2])
                if reply is not None:
                    os.write(self._master, reply + crc16(reply))

    def _reply(self, req: bytes) -> bytes | None:
        with self._lock:
            self.requests += 1
            if self.answer is not None:
                return self.answer(req)
            return self._normal(req)

    def _normal(self, req: bytes) -> bytes | None:
        fc = req[1]
        addr, value = struct.unpack(">HH", req[2:6])
        if fc == 0x01:
            bits = [self.coils.get(addr + i, False) for i in range(value)]
            data = bytearray((len(bits) + 7) // 8)
            for i, on in enumerate(bits):
                if on:
                    data[i // 8] |= 1 << (i % 8)
            return req[:2] + bytes([len(data)]) + bytes(data)
        if fc == 0x03:
            regs = [self.registers.get(addr + i, 0) for i in range(value)]
            return req[:2] + bytes([2 * len(regs)]) + struct.pack(f">{len(regs)}H", *regs)
        if fc == 0x05:
            self.writes.append((fc, addr, value))
            if value in (0xFF00, 0x0000):
                self.coils[addr] = value == 0xFF00
            return req
        if fc == 0x06:
            self.writes.append((fc, addr, value))
            if value in (0x0100, 0x0200):
                self.registers[addr] = 1 if value == 0x0100 else 0
            return req
        if fc == 0x0F:
            count = value
            data = req[7:]
            for i in range(count):
                on = bool(data[i // 8] >> (i % 8) & 1)
                self.coils[addr + i] = on
                self.writes.append((fc, addr + i, 0xFF00 if on else 0))
            return req[:6]
        return None
