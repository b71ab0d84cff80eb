"""A 4G modem over serial AT commands: signal (AT+CSQ), registration (AT+CREG?), operator.

Two layers:

- :class:`AtParser` is the sans-IO core. ``send(command)`` gives the bytes to write and opens a
  transaction; ``receive_data(bytes)`` takes whatever the port produced, in any chunking;
  ``next_event()`` yields :class:`AtResponse` (a finished transaction), :class:`Unsolicited`
  (a line nobody asked for, e.g. ``+CREG: 2`` or ``RING``) or :class:`Stray` (a final result code
  that belongs to a transaction we already gave up on), or ``None`` when it needs more bytes.
- :class:`ModemLink` moves bytes between a pyserial port and the parser without blocking the
  event loop: the port is opened in a thread, then read through ``loop.add_reader`` on its file
  descriptor. A vanished port (USB pulled) surfaces as :class:`ModemError` from
  the pending :meth:`ModemLink.command` and marks the link closed; reconnecting is the caller's
  state machine (see ``gateway.health.services.ModemMonitor``).

    link = await ModemLink.open("/dev/ttyUSB2")
    reply = await link.command("AT+CSQ", timeout=2.0)
    signal = parse_csq(reply)   # Signal(rssi=21, ber=99, dbm=-71)
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections import deque
from dataclasses import dataclass
from typing import Any, Final


class ModemError(Exception):
    """The modem port failed: could not open, vanished, or no answer in time.

    Shaped like ``gateway.errors.DeviceError`` (``reason`` plus fields) without importing the
    gateway (drivers sit below it). The one error type of this module: whatever bytes a modem
    sends, :meth:`AtParser.receive_data`, the ``parse_*`` decoders and :meth:`ModemLink.command`
    raise a ModemError (decoding problems as its :class:`AtReplyError`) and nothing else.
    """

    def __init__(self, reason: str, **fields: object) -> None:
        super().__init__(reason)
        self.reason = reason
        self.fields = fields


class AtUsageError(ModemError):
    """We were about to break the AT protocol (a bug on our side): local protocol error."""


class AtReplyError(ModemError):
    """The modem's reply broke the AT protocol or could not be decoded: remote protocol error."""


# Final result codes (3GPP TS 27.007 / V.250). ``+CME ERROR: n`` and ``+CMS ERROR: n`` also end one.
_FINAL_OK: Final = frozenset({"OK"})
_FINAL_ERROR: Final = frozenset({"ERROR", "NO CARRIER", "NO DIALTONE", "BUSY", "NO ANSWER"})
_FINAL_ERROR_PREFIXES: Final = ("+CME ERROR:", "+CMS ERROR:")
# Lines a modem may send at any moment. While a command runs, a line with one of these prefixes
# is still its response if the command itself asks for that prefix (AT+CREG? -> +CREG: 0,1).
_URC_PREFIXES: Final = ("+", "^", "RING", "RDY", "NORMAL POWER DOWN", "POWERED DOWN")
MAX_LINE: Final = 1024  # a line longer than this is garbage (or a modem gone mad): cut it


@dataclass(frozen=True, slots=True)
class AtResponse:
    """A finished transaction: the information lines and the final result code."""

    command: str
    lines: tuple[str, ...]
    final: str  # "OK", "ERROR", "+CME ERROR: 10", ...

    @property
    def ok(self) -> bool:
        return self.final in _FINAL_OK


@dataclass(frozen=True, slots=True)
class Unsolicited:
    """A line the modem sent on its own (unsolicited result code)."""

    line: str


@dataclass(frozen=True, slots=True)
class Stray:
    """A line with no open transaction that is not a URC: a late reply to an abandoned command."""

    line: str


AtEvent = AtResponse | Unsolicited | Stray


def _response_prefix(command: str) -> str | None:
    """``AT+CREG?`` -> ``+CREG:``; ``ATI`` -> None (free-form information lines)."""
    m = re.match(r"AT([+^][A-Z0-9]+)", command.upper())
    return f"{m.group(1)}:" if m else None


class AtParser:
    """Sans-IO AT command/response framing. One command in flight at a time, as V.250 requires."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._events: deque[AtEvent] = deque()
        self._command: str | None = None
        self._prefix: str | None = None
        self._lines: list[str] = []

    @property
    def busy(self) -> bool:
        """True while a command awaits its final result code."""
        return self._command is not None

    def send(self, command: str) -> bytes:
        """Open a transaction for ``command`` (e.g. ``"AT+CSQ"``); return the bytes to write."""
        if self._command is not None:
            raise AtUsageError("an AT command is already in flight", command=self._command)
        cmd = command.strip()
        if not cmd.upper().startswith("AT") or "\r" in cmd or "\n" in cmd:
            raise AtUsageError("not a single AT command line", command=command)
        self._command, self._prefix, self._lines = cmd, _response_prefix(cmd), []
        return cmd.encode("ascii") + b"\r"

    def abort(self) -> None:
        """Give up on the open transaction (timeout); a late final code becomes :class:`Stray`."""
        self._command, self._prefix, self._lines = None, None, []

    def receive_data(self, data: bytes) -> None:
        """Feed bytes from the port, in any chunking."""
        self._buf += data
        while True:
            # Either CR or LF ends a line: modems send CRLF, some echo with a bare CR.
            cut = min(
                (i for i in (self._buf.find(b"\r"), self._buf.find(b"\n")) if i >= 0), default=-1
            )
            if cut < 0:
                if len(self._buf) > MAX_LINE:
                    raw = bytes(self._buf)
                    self._buf.clear()
                    raise AtReplyError("AT line too long", raw=raw[:64])
                return
            raw_line = bytes(self._buf[:cut])
            del self._buf[: cut + 1]
            line = raw_line.decode("ascii", errors="replace").strip()
            if line:
                self._line(line)

    def next_event(self) -> AtEvent | None:
        """The next complete event, or None when more bytes are needed."""
        return self._events.popleft() if self._events else None

    def _line(self, line: str) -> None:
        command = self._command
        if command is None:
            if line in _FINAL_OK or line in _FINAL_ERROR or line.startswith(_FINAL_ERROR_PREFIXES):
                self._events.append(Stray(line))
            elif line.startswith(_URC_PREFIXES):
                self._events.append(Unsolicited(line))
            else:
                self._events.append(Stray(line))
            return
        if line.upper() == command.upper():
            return  # command echo (ATE1, the default on most modems)
        if line in _FINAL_OK or line in _FINAL_ERROR or line.startswith(_FINAL_ERROR_PREFIXES):
            self._events.append(AtResponse(command, tuple(self._lines), line))
            self.abort()
            return
        if line.startswith(_URC_PREFIXES) and not (
            self._prefix is not None and line.upper().startswith(self._prefix)
        ):
            self._events.append(Unsolicited(line))
            return
        self._lines.append(line)


# --- decoding the three answers we use ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Signal:
    """AT+CSQ: rssi 0..31 (99 unknown), ber 0..7 (99 unknown); dbm is None when unknown."""

    rssi: int
    ber: int

    @property
    def dbm(self) -> int | None:
        return None if self.rssi == 99 or not 0 <= self.rssi <= 31 else -113 + 2 * self.rssi


REGISTRATION_NAMES: Final = {
    0: "not registered, not searching",
    1: "registered, home network",
    2: "not registered, searching",
    3: "registration denied",
    4: "unknown",
    5: "registered, roaming",
}


@dataclass(frozen=True, slots=True)
class Registration:
    """AT+CREG?: ``stat`` as in 27.007 (1 home, 5 roaming are registered)."""

    stat: int

    @property
    def registered(self) -> bool:
        return self.stat in (1, 5)

    @property
    def text(self) -> str:
        return REGISTRATION_NAMES.get(self.stat, f"stat {self.stat}")


@dataclass(frozen=True, slots=True)
class Operator:
    """AT+COPS?: the operator name (None when not registered) and access technology."""

    name: str | None
    act: int | None


def _info(resp: AtResponse, prefix: str) -> str:
    if not resp.ok:
        raise AtReplyError(f"{resp.command} failed: {resp.final}", final=resp.final)
    for line in resp.lines:
        if line.upper().startswith(prefix):
            return line[len(prefix) :].strip()
    raise AtReplyError(f"{resp.command}: no {prefix} line", lines=list(resp.lines))


MAX_INT_DIGITS = 9  # every AT field we read is small; a longer run of digits is line noise


def _ints(text: str, what: str) -> list[int]:
    parts = [p.strip() for p in text.split(",")]
    if any(len(p.lstrip("+-")) > MAX_INT_DIGITS for p in parts):
        raise AtReplyError(f"{what}: integer too long", raw=text[:80])
    try:
        return [int(p) for p in parts]
    except ValueError as exc:
        raise AtReplyError(f"{what}: not integers", raw=text[:80]) from exc


def parse_csq(resp: AtResponse) -> Signal:
    """``+CSQ: 21,99`` -> Signal(21, 99)."""
    vals = _ints(_info(resp, "+CSQ:"), "+CSQ")
    if len(vals) != 2:
        raise AtReplyError("+CSQ: expected rssi,ber", values=vals)
    return Signal(vals[0], vals[1])


def parse_creg(resp: AtResponse) -> Registration:
    """``+CREG: 0,1`` (or ``+CREG: 2,1,"1A2B","01C3D4E5",7``) -> Registration(1)."""
    parts = [p.strip().strip('"') for p in _info(resp, "+CREG:").split(",")]
    if len(parts) < 2:
        raise AtReplyError("+CREG: expected n,stat", raw=parts)
    try:
        return Registration(int(parts[1]))
    except ValueError as exc:
        raise AtReplyError("+CREG: stat is not an integer", raw=parts) from exc


def parse_cops(resp: AtResponse) -> Operator:
    """``+COPS: 0,0,"China Mobile",7`` -> Operator("China Mobile", 7); ``+COPS: 0``: none."""
    text = _info(resp, "+COPS:")
    m = re.fullmatch(r'\s*(\d+)\s*(?:,\s*(\d+)\s*,\s*"([^"]*)"\s*(?:,\s*(\d+))?)?\s*', text)
    if m is None:
        raise AtReplyError("+COPS: unreadable", raw=text)
    name = m.group(3)
    act = int(m.group(4)) if m.group(4) is not None else None
    return Operator(name if name else None, act)


# --- the transport -----------------------------------------------------------------------------


class ModemLink:
    """An open modem port driven from the event loop. Create with :meth:`open`."""

    def __init__(self, port: Any, path: str, loop: asyncio.AbstractEventLoop) -> None:
        self._port = port
        self.path = path
        self._loop = loop
        self._parser = AtParser()
        self._waiter: asyncio.Future[AtResponse] | None = None
        self._lock = asyncio.Lock()
        self.unsolicited: deque[str] = deque(maxlen=64)
        self.closed = False
        self.close_reason = ""
        loop.add_reader(port.fileno(), self._readable)

    @classmethod
    async def open(cls, path: str, baudrate: int = 115200) -> ModemLink:
        """Open the port in a thread (opening a USB-serial device can block for a while)."""
        import serial  # here: tools that never open a modem need not import pyserial

        def _open() -> Any:
            return serial.Serial(path, baudrate=baudrate, timeout=0, write_timeout=0)

        try:
            port = await asyncio.to_thread(_open)
        except (OSError, serial.SerialException) as exc:
            raise ModemError(f"cannot open modem port: {exc}", port=path) from exc
        return cls(port, path, asyncio.get_running_loop())

    def _readable(self) -> None:
        try:
            data = self._port.read(self._port.in_waiting or 1)
            if not data:
                # Readable with no data: the other end is gone (a pulled USB adapter, a closed pty).
                raise OSError("device reports readiness to read but returned no data")
            self._parser.receive_data(data)
        except AtReplyError:
            pass  # an over-long garbage line was dropped; events before it are still handed on
        except Exception as exc:  # pyserial raises SerialException, OSError or TypeError here
            self._fail(f"modem port vanished: {exc}")
            return
        while (ev := self._parser.next_event()) is not None:
            if isinstance(ev, AtResponse):
                if self._waiter is not None and not self._waiter.done():
                    self._waiter.set_result(ev)
            elif isinstance(ev, Unsolicited):
                self.unsolicited.append(ev.line)

    def _fail(self, reason: str) -> None:
        if self.closed:
            return
        self.close_reason = reason
        self._close_port()
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(ModemError(reason, port=self.path))

    def _close_port(self) -> None:
        self.closed = True
        with contextlib.suppress(Exception):
            self._loop.remove_reader(self._port.fileno())
        with contextlib.suppress(Exception):
            self._port.close()

    async def command(self, command: str, timeout: float = 2.0) -> AtResponse:
        """Send one AT command and wait for its final result code.

        Raises ModemError on timeout (the modem went silent) or if the port vanished.
        A reply of ERROR is *returned* (``resp.ok`` is False): the modem is alive.
        """
        async with self._lock:
            if self.closed:
                raise ModemError(f"modem port closed: {self.close_reason}", port=self.path)
            data = self._parser.send(command)
            self._waiter = self._loop.create_future()
            try:
                self._port.write(data)
            except Exception as exc:
                self._parser.abort()
                self._fail(f"modem port vanished: {exc}")
                raise ModemError(self.close_reason, port=self.path) from exc
            try:
                return await asyncio.wait_for(self._waiter, timeout)
            except TimeoutError as exc:
                self._parser.abort()
                raise ModemError(
                    f"no answer to {command} within {timeout:g} s", port=self.path
                ) from exc
            finally:
                self._waiter = None

    async def close(self) -> None:
        """Close the port (idempotent)."""
        if not self.closed:
            self.close_reason = "closed"
            self._close_port()
