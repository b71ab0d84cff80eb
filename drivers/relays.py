"""Relay boards as a capability: profiles, the Modbus operations each profile needs, pure.

The gateway drives relays through :class:`RelayBank` and never sees a Modbus frame. What a
profile means on the wire is decided here, as plain data (:class:`ModbusOp`), so it can be
tested without a bus; :mod:`drivers.relay_modbus` is the only module that turns those
operations into pymodbus calls::

    spec = BoardSpec(name="amp-board", address=1, profile="waveshare_v2")
    ops = write_ops(spec, {0: True, 1: True}, hold_s=95.0)   # flash-on, 950 units each
    state = await bank.write({0: True, 1: True}, hold_s=95.0)  # verified by read-back

Profiles
    ``coils``         plain coils: FC01 read, FC05 one coil (0xFF00/0x0000), FC15 a run.
    ``waveshare_v2``  as ``coils``, plus the board's own timed "flash-on" at coil
                      0x0200+n, value in 100 ms units (FC05 with a value write_coil cannot
                      send): the relay releases by itself even if the gateway dies.
    ``holding``       holding-register boards: register ``register_base + n`` takes FC06
                      command values (0x0100 on, 0x0200 off); FC03 reads 1 (on) or 0 (off).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Literal, Protocol

Profile = Literal["coils", "waveshare_v2", "holding"]
PROFILES: tuple[Profile, ...] = ("coils", "waveshare_v2", "holding")

FC_READ_COILS = 0x01
FC_READ_HOLDING = 0x03
FC_WRITE_COIL = 0x05
FC_WRITE_REGISTER = 0x06
FC_WRITE_COILS = 0x0F

COIL_ON = 0xFF00
COIL_OFF = 0x0000

WAVESHARE_FLASH_ON_BASE = 0x0200
WAVESHARE_FLASH_OFF_BASE = 0x0400
WAVESHARE_FLASH_UNIT_S = 0.1
# The flash value is a 16-bit count of 100 ms units: about 109 minutes at most.
WAVESHARE_FLASH_MAX_UNITS = 0xFFFF

HOLDING_CMD_ON = 0x0100
HOLDING_CMD_OFF = 0x0200


class RelayBoardError(Exception):
    """A relay board did not answer, answered wrongly, or did not take a write.

    Shaped like ``gateway.errors.DeviceError`` (``reason`` plus fields) without importing
    the gateway (drivers sit below it); the gateway turns it into a DeviceError.
    """

    def __init__(self, reason: str, **fields: object) -> None:
        super().__init__(reason)
        self.reason = reason
        self.fields = fields

    def as_dict(self) -> dict[str, object]:
        return {"error": type(self).__name__, "reason": self.reason, **self.fields}


class Priority(IntEnum):
    """Queue order on a port: lower runs first. Off outranks on, both outrank polling."""

    OFF = 0
    ON = 1
    CONTROL = 2
    POLL = 5


@dataclass(frozen=True, slots=True)
class BoardSpec:
    """One relay board on a bus: its Modbus address and what kind of board it is."""

    name: str
    address: int
    profile: Profile = "coils"
    channels: int = 8
    coil_base: int = 0
    register_base: int = 1

    def __post_init__(self) -> None:
        if not 1 <= self.address <= 247:
            raise ValueError(f"{self.name}: address {self.address} is outside 1..247")
        if self.profile not in PROFILES:
            raise ValueError(f"{self.name}: unknown profile {self.profile!r}")
        if not 1 <= self.channels <= 32:
            raise ValueError(f"{self.name}: channels {self.channels} is outside 1..32")

    @property
    def hardware_timer(self) -> bool:
        """Whether the board can release a relay by itself after a set time."""
        return self.profile == "waveshare_v2"


@dataclass(frozen=True, slots=True)
class ModbusOp:
    """One Modbus transaction to run against a board (pure data; the adapter runs it).

    ``value`` is the raw 16-bit word for FC05/FC06; ``bits`` the coil values for FC15;
    ``count`` the number of coils/registers to read for FC01/FC03.
    """

    function: int
    address: int
    value: int = 0
    count: int = 0
    bits: tuple[bool, ...] = ()


def _check_channels(spec: BoardSpec, channels: Iterable[int]) -> None:
    for ch in channels:
        if not 0 <= ch < spec.channels:
            raise ValueError(f"{spec.name}: channel {ch} is outside 0..{spec.channels - 1}")


def flash_units(hold_s: float) -> int:
    """The Waveshare flash value for ``hold_s`` seconds, rounded up, within the 16-bit range."""
    if hold_s <= 0:
        raise ValueError("hold time must be positive")
    return min(WAVESHARE_FLASH_MAX_UNITS, max(1, math.ceil(hold_s / WAVESHARE_FLASH_UNIT_S - 1e-9)))


def _runs(channels: Sequence[int]) -> list[list[int]]:
    """Split sorted channel numbers into runs of consecutive numbers."""
    runs: list[list[int]] = []
    for ch in channels:
        if runs and ch == runs[-1][-1] + 1:
            runs[-1].append(ch)
        else:
            runs.append([ch])
    return runs


def write_ops(
    spec: BoardSpec, states: Mapping[int, bool], *, hold_s: float | None = None
) -> list[ModbusOp]:
    """The operations that set ``states`` ({channel: on}) on the board.

    Channels not named are never touched. With ``hold_s`` on a board with a hardware timer,
    each channel switched on gets the board's timed flash-on so the board itself releases it
    after ``hold_s`` (rounded up to 100 ms); elsewhere ``hold_s`` is ignored (the caller's own
    timer is the only one).
    """
    _check_channels(spec, states)
    if not states:
        return []
    ops: list[ModbusOp] = []
    if spec.profile == "holding":
        for ch in sorted(states):
            cmd = HOLDING_CMD_ON if states[ch] else HOLDING_CMD_OFF
            ops.append(ModbusOp(FC_WRITE_REGISTER, spec.register_base + ch, value=cmd))
        ops.sort(key=lambda op: 0 if _is_off(op) else 1)
        return ops
    timed = hold_s is not None and spec.hardware_timer
    plain: dict[int, bool] = {}
    for ch in sorted(states):
        if timed and states[ch]:
            assert hold_s is not None
            ops.append(
                ModbusOp(FC_WRITE_COIL, WAVESHARE_FLASH_ON_BASE + ch, value=flash_units(hold_s))
            )
        else:
            plain[ch] = states[ch]
    for run in _runs(sorted(plain)):
        if len(run) == 1:
            ch = run[0]
            value = COIL_ON if plain[ch] else COIL_OFF
            ops.append(ModbusOp(FC_WRITE_COIL, spec.coil_base + ch, value=value))
        else:
            bits = tuple(plain[ch] for ch in run)
            ops.append(ModbusOp(FC_WRITE_COILS, spec.coil_base + run[0], bits=bits))
    # Offs first: a board that is switched over never has both sets on at once.
    ops.sort(key=lambda op: 0 if _is_off(op) else 1)
    return ops


def _is_off(op: ModbusOp) -> bool:
    if op.function == FC_WRITE_COIL:
        return op.value == COIL_OFF
    if op.function == FC_WRITE_COILS:
        return not any(op.bits)
    if op.function == FC_WRITE_REGISTER:
        return op.value == HOLDING_CMD_OFF
    return False


def read_op(spec: BoardSpec) -> ModbusOp:
    """The one operation that reads every channel's state."""
    if spec.profile == "holding":
        return ModbusOp(FC_READ_HOLDING, spec.register_base, count=spec.channels)
    return ModbusOp(FC_READ_COILS, spec.coil_base, count=spec.channels)


def decode_read(spec: BoardSpec, values: Sequence[int] | Sequence[bool]) -> tuple[bool, ...]:
    """Channel states from the read's coils or registers (pymodbus pads coils to 8).

    The values are the board's answer, so a short one (a byte count of 0, fewer registers
    than asked) is the board's fault: :class:`RelayBoardError`, like every other bad answer.
    """
    if len(values) < spec.channels:
        raise RelayBoardError(
            f"read returned {len(values)} values, need {spec.channels}",
            board=spec.name,
            address=spec.address,
            values=len(values),
        )
    return tuple(bool(v) for v in values[: spec.channels])


def mismatches(expected: Mapping[int, bool], actual: Sequence[bool]) -> dict[int, bool]:
    """Channels whose read-back state differs from what was written: {channel: actual}."""
    return {ch: actual[ch] for ch, want in expected.items() if actual[ch] != want}


class RelayBank(Protocol):
    """One relay board, as the gateway sees it.

    ``write`` sets some channels, reads the board back and returns the state it read; it
    raises :class:`RelayBoardError` if the board did not answer in time or the read-back
    differs from what was written::

        state = await bank.write({0: True}, hold_s=95.0, priority=Priority.ON)
    """

    @property
    def spec(self) -> BoardSpec: ...

    async def read(self, *, priority: Priority = Priority.POLL) -> tuple[bool, ...]: ...

    async def write(
        self,
        states: Mapping[int, bool],
        *,
        hold_s: float | None = None,
        priority: Priority = Priority.CONTROL,
    ) -> tuple[bool, ...]: ...
