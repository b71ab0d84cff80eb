"""Simulated Modbus RTU relay boards on one serial line (a pymodbus server).

Several boards share one line, as on a real RS-485 bus; each answers only its own address
(a frame for an address nobody has is met with silence, as on a real bus). Profiles follow
``drivers.relays`` but are written independently here, from the boards' public manuals, so a
misreading in the driver is not silently mirrored by the simulator:

* ``coils``: FC01 read coils, FC05 (0xFF00 on / 0x0000 off, other values refused with
  exception 3), FC15.
* ``waveshare_v2``: as ``coils`` plus coil 0x00FF (all relays), value 0x5500 (flip), and the
  timed flash at 0x0200+n (on now, off after value x 100 ms) and 0x0400+n (off now, on
  after). The flash timer really runs: the coil releases in the simulator when it expires,
  whatever the master does (or whether it still exists).
* ``holding``: FC06 to register ``register_base + n`` with 0x0100 (on) / 0x0200 (off), FC03
  reads 1/0 per channel.

Every coil change is recorded with a monotonic timestamp (:attr:`SimBoard.changes`), and a
board can be made slow (``delay_s``) or silent (``silent``) at any moment::

    boards = [SimBoard(1, "waveshare_v2"), SimBoard(2, "coils")]
    async with RelayBoardSim(port_path, boards, baudrate=9600):
        ...
        boards[1].silent = True
"""

from __future__ import annotations

import asyncio
import struct
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar

from pymodbus.constants import ExcCodes
from pymodbus.exceptions import NoSuchIdException
from pymodbus.framer import FramerType
from pymodbus.pdu import ExceptionResponse, ModbusPDU
from pymodbus.pdu.bit_message import ReadCoilsResponse, WriteMultipleCoilsResponse
from pymodbus.pdu.register_message import ReadHoldingRegistersResponse
from pymodbus.server import ModbusSerialServer
from pymodbus.simulator import DataType, SimData, SimDevice

PROFILES = ("coils", "waveshare_v2", "holding")
FLASH_ON_BASE = 0x0200
FLASH_OFF_BASE = 0x0400
ALL_COILS = 0x00FF
FLIP = 0x5500
ON, OFF = 0xFF00, 0x0000
HOLD_ON, HOLD_OFF = 0x0100, 0x0200


@dataclass(frozen=True, slots=True)
class CoilChange:
    """One relay changing state: when (time.monotonic()), which, and why."""

    t: float
    address: int
    channel: int
    on: bool
    cause: str  # "write", "flash", "flash-expired", "flip", "all"


@dataclass
class SimBoard:
    """One simulated board; flip ``silent``/``delay_s`` at any time to inject faults."""

    address: int
    profile: str = "coils"
    channels: int = 8
    register_base: int = 1
    silent: bool = False
    delay_s: float = 0.0
    stuck: set[int] = field(default_factory=set)  # welded relays: writes are acked, ignored
    coils: list[bool] = field(default_factory=list)
    changes: list[CoilChange] = field(default_factory=list)
    requests: int = 0
    flash_writes: list[tuple[int, int]] = field(default_factory=list)  # (channel, units)
    _timers: dict[int, asyncio.TimerHandle] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.profile not in PROFILES:
            raise ValueError(f"unknown profile {self.profile!r}")
        if not self.coils:
            self.coils = [False] * self.channels

    # -- state changes (all recorded) ----------------------------------------------------------

    def set(self, channel: int, on: bool, cause: str = "write") -> None:
        if channel in self.stuck:
            return
        if self.coils[channel] != on:
            self.coils[channel] = on
            self.changes.append(CoilChange(time.monotonic(), self.address, channel, on, cause))

    def _cancel_timer(self, channel: int) -> None:
        handle = self._timers.pop(channel, None)
        if handle is not None:
            handle.cancel()

    def _flash(self, channel: int, units: int, *, on_first: bool) -> None:
        self._cancel_timer(channel)
        self.set(channel, on_first, "flash")
        self.flash_writes.append((channel, units if on_first else -units))

        def expire() -> None:
            self._timers.pop(channel, None)
            self.set(channel, not on_first, "flash-expired")

        loop = asyncio.get_running_loop()
        self._timers[channel] = loop.call_later(units * 0.1, expire)

    def write_coil(self, address: int, value: int) -> int | None:
        """Apply an FC05 write; returns an exception code or None."""
        wave = self.profile == "waveshare_v2"
        if wave and FLASH_ON_BASE <= address < FLASH_ON_BASE + self.channels:
            self._flash(address - FLASH_ON_BASE, value, on_first=True)
            return None
        if wave and FLASH_OFF_BASE <= address < FLASH_OFF_BASE + self.channels:
            self._flash(address - FLASH_OFF_BASE, value, on_first=False)
            return None
        targets: list[int]
        if wave and address == ALL_COILS:
            targets = list(range(self.channels))
        elif 0 <= address < self.channels:
            targets = [address]
        else:
            return ExcCodes.ILLEGAL_ADDRESS
        if value not in (ON, OFF) and not (wave and value == FLIP):
            return ExcCodes.ILLEGAL_VALUE
        for ch in targets:
            self._cancel_timer(ch)
            if value == FLIP:
                self.set(ch, not self.coils[ch], "flip")
            else:
                self.set(ch, value == ON, "all" if address == ALL_COILS else "write")
        return None

    def write_coils(self, address: int, bits: list[bool]) -> int | None:
        if address < 0 or address + len(bits) > self.channels:
            return ExcCodes.ILLEGAL_ADDRESS
        for i, bit in enumerate(bits):
            self._cancel_timer(address + i)
            self.set(address + i, bool(bit))
        return None

    def write_register(self, register: int, value: int) -> int | None:
        ch = register - self.register_base
        if not 0 <= ch < self.channels:
            return ExcCodes.ILLEGAL_ADDRESS
        if value not in (HOLD_ON, HOLD_OFF):
            return ExcCodes.ILLEGAL_VALUE
        self.set(ch, value == HOLD_ON)
        return None

    def close(self) -> None:
        for ch in list(self._timers):
            self._cancel_timer(ch)

    def on_intervals(self, channel: int) -> list[tuple[float, float | None]]:
        """(on time, off time or None) for each time ``channel`` was on."""
        out: list[tuple[float, float | None]] = []
        for c in self.changes:
            if c.channel != channel:
                continue
            if c.on:
                out.append((c.t, None))
            elif out and out[-1][1] is None:
                out[-1] = (out[-1][0], c.t)
        return out


class _SimPDU(ModbusPDU):
    """Base of the simulator's request handlers: finds the board, applies delay/silence."""

    sim: ClassVar[RelayBoardSim]
    rtu_frame_size = 8

    async def _board(self, device_id: int) -> SimBoard:
        board = self.sim.boards.get(device_id)
        if board is None or board.silent:
            # With ignore_missing_devices the server then stays silent, like a real bus.
            raise NoSuchIdException(f"no board {device_id}")
        board.requests += 1
        # A real slave knows a request has ended only after 3.5 silent character times.
        await asyncio.sleep(self.sim.turnaround_s + board.delay_s)
        if board.silent:
            raise NoSuchIdException(f"board {device_id} went silent")
        return board

    def _exc(self, code: int) -> ModbusPDU:
        return ExceptionResponse(self.function_code, code)


class _ReadCoils(_SimPDU):
    function_code = 1

    def decode(self, data: bytes) -> None:
        self.address, self.count = struct.unpack(">HH", data[:4])

    async def datastore_update(self, context: Any, device_id: int) -> ModbusPDU:
        board = await self._board(device_id)
        if board.profile == "holding":
            return self._exc(ExcCodes.ILLEGAL_FUNCTION)
        if self.count < 1 or self.address + self.count > board.channels:
            return self._exc(ExcCodes.ILLEGAL_ADDRESS)
        bits = board.coils[self.address : self.address + self.count]
        return ReadCoilsResponse(bits=list(bits), dev_id=device_id)


class _WriteCoil(_SimPDU):
    function_code = 5

    def decode(self, data: bytes) -> None:
        self.address, self.value = struct.unpack(">HH", data[:4])

    def encode(self) -> bytes:
        return struct.pack(">HH", self.address, self.value)

    async def datastore_update(self, context: Any, device_id: int) -> ModbusPDU:
        board = await self._board(device_id)
        if board.profile == "holding":
            return self._exc(ExcCodes.ILLEGAL_FUNCTION)
        if board.profile == "coils" and self.value not in (ON, OFF):
            return self._exc(ExcCodes.ILLEGAL_VALUE)
        code = board.write_coil(self.address, self.value)
        if code is not None:
            return self._exc(code)
        echo = _WriteCoil()
        echo.address, echo.value, echo.dev_id = self.address, self.value, device_id
        return echo


class _WriteCoils(_SimPDU):
    function_code = 15
    rtu_frame_size = 0
    rtu_byte_count_pos = 6

    def decode(self, data: bytes) -> None:
        self.address, self.count, nbytes = struct.unpack(">HHB", data[:5])
        raw = data[5 : 5 + nbytes]
        self.bits = [bool(raw[i // 8] >> (i % 8) & 1) for i in range(self.count)]

    async def datastore_update(self, context: Any, device_id: int) -> ModbusPDU:
        board = await self._board(device_id)
        if board.profile == "holding":
            return self._exc(ExcCodes.ILLEGAL_FUNCTION)
        code = board.write_coils(self.address, list(self.bits))
        if code is not None:
            return self._exc(code)
        return WriteMultipleCoilsResponse(address=self.address, count=self.count, dev_id=device_id)


class _ReadHolding(_SimPDU):
    function_code = 3

    def decode(self, data: bytes) -> None:
        self.address, self.count = struct.unpack(">HH", data[:4])

    async def datastore_update(self, context: Any, device_id: int) -> ModbusPDU:
        board = await self._board(device_id)
        if board.profile != "holding":
            return self._exc(ExcCodes.ILLEGAL_FUNCTION)
        first = self.address - board.register_base
        if self.count < 1 or first < 0 or first + self.count > board.channels:
            return self._exc(ExcCodes.ILLEGAL_ADDRESS)
        regs = [int(on) for on in board.coils[first : first + self.count]]
        return ReadHoldingRegistersResponse(registers=regs, dev_id=device_id)


class _WriteRegister(_SimPDU):
    function_code = 6

    def decode(self, data: bytes) -> None:
        self.address, self.value = struct.unpack(">HH", data[:4])

    def encode(self) -> bytes:
        return struct.pack(">HH", self.address, self.value)

    async def datastore_update(self, context: Any, device_id: int) -> ModbusPDU:
        board = await self._board(device_id)
        if board.profile != "holding":
            return self._exc(ExcCodes.ILLEGAL_FUNCTION)
        code = board.write_register(self.address, self.value)
        if code is not None:
            return self._exc(code)
        echo = _WriteRegister()
        echo.address, echo.value, echo.dev_id = self.address, self.value, device_id
        return echo


_HANDLERS: tuple[type[_SimPDU], ...] = (
    _ReadCoils,
    _WriteCoil,
    _WriteCoils,
    _ReadHolding,
    _WriteRegister,
)


class RelayBoardSim:
    """A pymodbus RTU server on ``port`` answering for ``boards``. Use as an async context."""

    def __init__(self, port: str, boards: list[SimBoard], *, baudrate: int = 9600) -> None:
        self.port = port
        self.baudrate = baudrate
        self.boards = {b.address: b for b in boards}
        # 3.5 character times (10 bits each) at the line's baud; fixed 1.75 ms above 19200.
        self.turnaround_s = 35.0 / baudrate if baudrate <= 19200 else 0.00175
        if len(self.boards) != len(boards):
            raise ValueError("two simulated boards share an address")
        self._server: ModbusSerialServer | None = None

    def _handler_classes(self) -> list[type[ModbusPDU]]:
        # The server builds request objects with no arguments, so each simulator gets its
        # own subclasses that know it.
        return [type(cls.__name__, (cls,), {"sim": self}) for cls in _HANDLERS]

    async def start(self) -> None:
        placeholder = [
            SimDevice(
                id=address,
                simdata=[SimData(address=0, count=1, values=0, datatype=DataType.REGISTERS)],
            )
            for address in self.boards
        ]
        self._server = ModbusSerialServer(
            placeholder,
            framer=FramerType.RTU,
            port=self.port,
            baudrate=self.baudrate,
            ignore_missing_devices=True,
            custom_pdu=self._handler_classes(),
        )
        await self._server.serve_forever(background=True)

    async def stop(self) -> None:
        for board in self.boards.values():
            board.close()
        if self._server is not None:
            await self._server.shutdown()
            self._server = None

    async def __aenter__(self) -> RelayBoardSim:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


def main(argv: list[str] | None = None) -> None:
    """Run simulated boards on a serial path until interrupted (demo and manual tests).

    python -m hil_tests.sims.relay_board /tmp/bench/tty-relays-dev 1:waveshare_v2 2:coils
    """
    import argparse

    ap = argparse.ArgumentParser(description="simulated Modbus RTU relay boards")
    ap.add_argument("port", help="device end of a virtual serial line")
    ap.add_argument("boards", nargs="+", help="ADDRESS:PROFILE, e.g. 1:waveshare_v2")
    ap.add_argument("--baud", type=int, default=9600)
    args = ap.parse_args(argv)
    boards = []
    for spec in args.boards:
        address, _, profile = spec.partition(":")
        boards.append(SimBoard(int(address), profile or "coils"))

    async def serve() -> None:
        async with RelayBoardSim(args.port, boards, baudrate=args.baud):
            print("READY", flush=True)
            last = 0
            while True:
                await asyncio.sleep(0.2)
                changes = sorted((c for b in boards for c in b.changes), key=lambda c: c.t)
                for c in changes[last:]:
                    print(
                        f"board {c.address} relay {c.channel} {'ON' if c.on else 'off'} "
                        f"({c.cause})",
                        flush=True,
                    )
                last = len(changes)

    try:
        asyncio.run(serve())
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
