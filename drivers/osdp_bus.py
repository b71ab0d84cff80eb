"""OSDP reader bus: libosdp's ControlPanel on a pyserial port, bridged to asyncio.

Theory of operation
-------------------
One :class:`OsdpBus` owns one serial port (an RS-485 adapter) and every reader (OSDP PD) wired
to it. libosdp runs the protocol on its own refresh thread; it reads and writes the port
through :class:`SerialChannel` (non-blocking pyserial) and reports card reads and link
notifications through a callback that runs *on that thread*. The callback only hands the item
to the event loop with ``call_soon_threadsafe``; everything that may wait (opening the port,
stopping libosdp, submitting a command under libosdp's lock) runs in a worker thread, so the
loop never blocks.

Secure Channel is enforced for every reader (``LibFlag.EnforceSecure``): no reader is ever
online without its own SCBK, so a reader in install mode or with a wrong key never delivers a
card read. libosdp does not say *why* a handshake failed, so the channel also feeds the bytes
it receives to a tiny frame sniffer (:class:`FrameSniffer`, pure): a reader that answers the
challenge (``osdp_CCRYPT``) but never gets its secure channel up has a key mismatch, one that
never answers is absent. The sniffer also counts damaged frames (line noise).

Two state machines, both with named backoff constants and jitter:

* the **bus**: ``opening -> running -> (port lost) -> backoff -> opening ...``; a dead adapter
  (USB pulled) makes pyserial raise inside the channel, the bus tears libosdp down, marks its
  readers offline (``bus_lost``) and reopens with backoff; other buses are not affected;
* each **reader link**: libosdp parks an offline reader for minutes; the bus revives it
  (disable, then enable) on its own backoff schedule so a reader that comes back is online
  again within seconds.

Usage::

    bus = OsdpBus(BusSpec("north", "/dev/ttyUSB0", 9600, (ReaderSpec(1, scbk),)))
    await bus.start()
    async for item in bus.events(): ...
    await bus.feedback(1, Feedback.ACCEPTED)
    await bus.aclose()
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import random
import re
import select
import threading
import time
from collections import Counter, deque
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import osdp_sys  # type: ignore[import-not-found]  # the binding's C module has no stubs
import serial
from osdp import (
    CardFormat,
    Channel,
    Command,
    CommandLEDColor,
    CompletionStatus,
    Event,
    EventNotification,
    LibFlag,
    LogLevel,
    PDInfo,
    StatusReportType,
)

from drivers.checkpoints import (
    MAX_ADDRESS,
    MIN_ADDRESS,
    BusCounters,
    BusEvent,
    CardRead,
    Feedback,
    NodeTap,
    ReaderCounters,
    ReaderReport,
    ReaderStatus,
    UnknownReply,
)
from drivers.node_reports import NODE_VENDOR_CODE, NodeReportError, parse_numbered_tap

log = logging.getLogger(__name__)

SCBK_LENGTH = 16
# SCBK-D: the well-known default key of the OSDP spec that a reader in install mode accepts.
SCBK_DEFAULT = bytes(range(0x30, 0x40))

# -- bus reconnect (port lost / cannot open) ------------------------------------------------
BUS_BACKOFF_INITIAL_S = 0.5
BUS_BACKOFF_MAX_S = 30.0
BUS_BACKOFF_FACTOR = 2.0
BUS_BACKOFF_JITTER = 0.2  # +-20 %: buses unplugged together do not retry in lockstep
BUS_STABLE_S = 30.0  # running this long resets the bus backoff
# -- reader revival (libosdp parks an offline reader for 300 s; we retry sooner) -----------
READER_RETRY_INITIAL_S = 0.2
READER_RETRY_MAX_S = 30.0
READER_RETRY_FACTOR = 2.0
READER_RETRY_JITTER = 0.2
# ... but a reader that still answers with the right key is retried at least this often.
READER_RETRY_ANSWERING_MAX_S = 1.0
# A reader is retried only once libosdp has given up on it ("parked" it): libosdp said so
# (its offline notification), or it sent the reader nothing this long. While libosdp is still
# working through a handshake it is never this quiet: its 200 ms reply window and 800 ms
# pause before a retry, plus waiting its turn on a shared line. Restarting a handshake that is
# merely slow (a sluggish reader, a starved host) would restart it forever.
PARKED_QUIET_S = 2.5
# Disabling a reader (the first half of a revival) takes effect on libosdp's next refresh:
# wait for it at most this long before enabling it again.
REVIVE_DISABLE_WAIT_S = 1.0
# A reader that has not come online this long after the bus opened is reported offline.
# Covers 8 secure-channel handshakes at 9600 baud with margin.
READER_ONLINE_GRACE_S = 6.0
# A reader that drops out is reported offline only if it is not back this soon (noise can
# cost a secure-channel re-handshake without the reader being gone).
OFFLINE_DEBOUNCE_S = 3.0
# A reader answered the challenge (CCRYPT) but sent no RMAC_I this long after: the handshake
# failed, so the keys do not match (a wrong SCBK, or a reader still in install mode).
HANDSHAKE_FAIL_S = 1.0
# Replies seen this recently make an offline reader "link_errors" rather than "no_answer".
RECENT_REPLY_S = 15.0
# Damaged frames are logged at most this often per bus (they are counted always).
DAMAGE_LOG_S = 60.0
# How often the bus reconciles reader states with libosdp's own bitmasks.
SUPERVISE_TICK_S = 0.25
SERIAL_WRITE_TIMEOUT_S = 0.5
# A partial frame is held back at most its wire time plus this margin.
PARTIAL_FRAME_MARGIN_S = 0.05
# Pairing: retry a handshake that has not come up this long.
PAIR_REVIVE_S = 2.0
# Feedback a reader could not take yet (busy, dropping out, command flushed) is retried until
# confirmed by the reader or until this long after the tap was recorded: the guard is probably
# still standing there. Later, it would confuse the next guard.
FEEDBACK_DEADLINE_S = 5.0
# Feedback parts remembered while awaiting libosdp's completion (it queues 4 per reader).
MAX_FEEDBACK_IN_FLIGHT = 16
# libosdp's refresh cadence (the binding's own loop uses the same 20 ms). Our refresh thread
# is driven by the line instead (see ControlPanelThread): it refreshes when a whole frame
# arrives, a command is submitted or a poll falls due, and waits at most this long otherwise
# (libosdp's reply and retry timers are checked no later than this).
REFRESH_S = 0.02
# After a refresh that sent or took a frame, refresh again this soon: the reply freed the line,
# and a reader earlier in libosdp's round (one with an LED command queued) may use it now.
FOLLOW_UP_REFRESH_S = 0.001
# libosdp 3.2 polls an online reader once this long after its last POLL (compiled in:
# OSDP_PD_POLL_TIMEOUT_MS = 50, strictly greater, millisecond clock): wake up then.
LIBOSDP_POLL_INTERVAL_S = 0.051
# libosdp's own log lines, routed to ours: at most this many per message shape and bus in
# LIBOSDP_LOG_WINDOW_S; the rest are counted and the count is told with the next one shown.
LIBOSDP_LOG_BURST = 3
LIBOSDP_LOG_WINDOW_S = 60.0
# Feedback shown to the guard: LED colour, LED time and beep length in 100 ms units.
FEEDBACK_LED_TICKS = 15
SHORT_BEEP_TICKS = 1
LONG_BEEP_TICKS = 10

# OSDP reply codes the sniffer cares about.
REPLY_CCRYPT = 0x76
REPLY_RMAC_I = 0x78
REPLY_NAK = 0x41
REPLY_ACK = 0x40
COMMAND_POLL = 0x60
COMMAND_SCRYPT = 0x77
COMMAND_CHLNG = 0x76
COMMAND_KEYSET = 0x75
COMMAND_LED = 0x69
COMMAND_BUZ = 0x6A
# libosdp waits 200 ms for a reply; a CCRYPT later than this may have come after it gave up
# (its clock and ours differ by a refresh or two), so it says nothing of the key.
CCRYPT_PROMPT_S = 0.15
OSDP_SOM = 0x53
MAX_FRAME_LEN = 1440
MAX_SNIFFED_FRAMES = 10_000

_CARD_FORMATS = {
    CardFormat.Unspecified: "raw",
    CardFormat.Wiegand: "wiegand",
    CardFormat.ASCII: "ascii",
}

_FEEDBACK_STYLE = {
    Feedback.ACCEPTED: (CommandLEDColor.Green, SHORT_BEEP_TICKS),
    Feedback.UNKNOWN: (CommandLEDColor.Amber, LONG_BEEP_TICKS),
    Feedback.REFUSED: (CommandLEDColor.Red, LONG_BEEP_TICKS),
}


_FEEDBACK_PART = {int(Command.LED): "led", int(Command.Buzzer): "beep"}
_FEEDBACK_WIRE_CODE = {"led": COMMAND_LED, "beep": COMMAND_BUZ}


def _feedback_commands(feedback: Feedback) -> dict[str, dict[str, Any]]:
    """The LED and buzzer commands that show ``feedback`` to the guard."""
    color, beep = _FEEDBACK_STYLE[feedback]
    led = {
        "command": Command.LED,
        "reader": 0,
        "led_number": 0,
        "control_code": 2,  # temporary state, start its timer
        "on_color": color,
        "off_color": CommandLEDColor.Black,
        "on_count": FEEDBACK_LED_TICKS,
        "off_count": 0,
        "timer_count": FEEDBACK_LED_TICKS,
        "temporary": True,
    }
    buzzer = {
        "command": Command.Buzzer,
        "reader": 0,
        "control_code": 2,  # default tone
        "on_count": beep,
        "off_count": 1,
        "rep_count": 1,
    }
    return {"led": led, "beep": buzzer}


# ============================================================================ pure helpers


def osdp_crc16(data: bytes | bytearray) -> int:
    """OSDP's CRC-16 (CCITT polynomial 0x1021, initial value 0x1D0F, not reflected)."""
    crc = 0x1D0F
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
            crc &= 0xFFFF
    return crc


@dataclass(frozen=True, slots=True)
class SniffedFrame:
    """The clear-text header of one well-formed OSDP frame (payloads stay encrypted)."""

    address: int
    reply: bool
    code: int
    sc_block_type: int | None


class FrameSniffer:
    """Finds OSDP frames in a byte stream, checks them, and counts the damaged ones.

        sniffer = FrameSniffer()
        for frame in sniffer.feed(chunk): ...
        sniffer.bad_frames

    Pure: bytes in, frames out. Resynchronises on the next start-of-message after damage.
    Hostile input (noise, truncation, absurd lengths) never raises: it is counted in
    ``bad_frames`` (or, when it starts no frame, skipped), and the buffer never holds more than
    one frame's worth (:data:`MAX_FRAME_LEN`) of an unfinished frame.
    """

    def __init__(self) -> None:
        self._buf = bytearray()
        self.bad_frames = 0
        self.good_frames = 0

    def feed(self, data: bytes) -> list[SniffedFrame]:
        self._buf += data
        out: list[SniffedFrame] = []
        buf = self._buf
        while True:
            start = buf.find(OSDP_SOM)
            if start < 0:
                buf.clear()
                break
            if start:
                del buf[:start]
            if len(buf) < 5:
                break
            length = buf[2] | (buf[3] << 8)
            if length < 7 or length > MAX_FRAME_LEN:
                self.bad_frames += 1
                del buf[:1]
                continue
            if len(buf) < length:
                break
            frame = bytes(buf[:length])
            ctrl = frame[4]
            if ctrl & 0x04:
                ok = osdp_crc16(frame[:-2]) == (frame[-2] | (frame[-1] << 8))
            else:
                ok = (sum(frame[:-1]) + frame[-1]) & 0xFF == 0
            if not ok:
                self.bad_frames += 1
                del buf[:1]
                continue
            del buf[:length]
            self.good_frames += 1
            pos = 5
            sc_type: int | None = None
            if ctrl & 0x08:
                if pos + 1 >= len(frame):
                    self.bad_frames += 1
                    continue
                sc_len = frame[pos]
                sc_type = frame[pos + 1]
                pos += sc_len
            if pos >= len(frame) - (2 if ctrl & 0x04 else 1):
                self.bad_frames += 1
                continue
            out.append(SniffedFrame(frame[1] & 0x7F, bool(frame[1] & 0x80), frame[pos], sc_type))
        return out


@dataclass(slots=True)
class Backoff:
    """Exponential backoff with jitter; ``next()`` gives the next delay, ``reset()`` starts over.

        b = Backoff(0.5, 30.0, 2.0, 0.2); delay = b.next()
    """

    initial: float
    maximum: float
    factor: float
    jitter: float
    rng: random.Random = field(default_factory=random.Random)
    _current: float = 0.0

    def next(self) -> float:
        self._current = (
            self.initial if self._current == 0.0 else min(self.maximum, self._current * self.factor)
        )
        spread = self._current * self.jitter
        return max(0.0, self._current + self.rng.uniform(-spread, spread))

    def reset(self) -> None:
        self._current = 0.0


# ============================================================================ configuration


@dataclass(frozen=True, slots=True)
class ReaderSpec:
    """One reader on a bus: its OSDP address and its 16-byte secure-channel base key."""

    address: int
    scbk: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if not MIN_ADDRESS <= self.address <= MAX_ADDRESS:
            raise ValueError(f"OSDP address {self.address} is outside 0..126")
        if len(self.scbk) != SCBK_LENGTH:
            raise ValueError(f"reader {self.address}: SCBK must be 16 bytes")


@dataclass(frozen=True, slots=True)
class BusSpec:
    """A serial port and the readers wired to it."""

    name: str
    port: str
    baud: int
    readers: tuple[ReaderSpec, ...]
    log_level: str = "error"
    # The vendor code our checkpoint nodes put in their manufacturer replies (tap records).
    node_vendor: int = NODE_VENDOR_CODE

    def __post_init__(self) -> None:
        addresses = [r.address for r in self.readers]
        if len(set(addresses)) != len(addresses):
            raise ValueError(f"bus {self.name}: duplicate reader address")


_LOG_LEVELS = {
    "debug": LogLevel.Debug,
    "info": LogLevel.Info,
    "warning": LogLevel.Warning,
    "error": LogLevel.Error,
    "critical": LogLevel.Critical,
}


# ============================================================================ libosdp's log


_SYSLOG_TO_PY = {0: logging.ERROR, 1: logging.ERROR, 2: logging.ERROR, 3: logging.WARNING,
                 4: logging.INFO, 5: logging.DEBUG, 6: logging.DEBUG, 7: logging.DEBUG}  # fmt: skip
_DIGITS = re.compile(r"\d+")
# libosdp 3.2 calls back with (level, file, line, msg); later releases with (pd, level, msg,
# file, line) and export osdp_log_cb_emit, which tells the two apart.
_OLD_LOG_CB = ctypes.CFUNCTYPE(None, ctypes.c_int, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p)
_NEW_LOG_CB = ctypes.CFUNCTYPE(
    None, ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong
)
_LIB = ctypes.CDLL(osdp_sys.__file__)  # the binding's own copy of libosdp, already loaded
_NEW_STYLE_LOG = hasattr(_LIB, "osdp_log_cb_emit")
# libosdp copies its default logger into a context at setup: the callback is installed and the
# context set up under one lock, so every bus keeps its own callback.
_SETUP_LOCK = threading.Lock()
_libosdp_log = logging.getLogger("drivers.osdp_bus.libosdp")


class LibosdpLog:
    """libosdp's own log lines, routed to our logger with levels and a rate limit.

    Without this the library prints raw ``[ERROR] ... Going offline for 300 seconds`` lines on
    stderr (about one a second per refused reader, no syslog priority, on the installer's
    screen during pairing). libosdp's syslog levels map one step down (its ERROR is a link
    event we report as ``reader.state`` anyway: WARNING); lines below ``level`` are dropped;
    each message shape (digits ignored) is shown at most :data:`LIBOSDP_LOG_BURST` times per
    :data:`LIBOSDP_LOG_WINDOW_S` per bus, and the next one shown says how many were held back.

        log = LibosdpLog("north", "error"); cp = ControlPanelThread(infos, log, ...)
    """

    def __init__(self, bus: str, level: str = "error", *, clock: Callable[[], float] | None = None,
                 logger: logging.Logger | None = None) -> None:  # fmt: skip
        self.bus = bus
        self.threshold = int(_LOG_LEVELS.get(level, LogLevel.Error))
        self._clock = clock or time.monotonic
        self._logger = logger or _libosdp_log
        self._lock = threading.Lock()
        self._windows: dict[str, tuple[float, int, int]] = {}  # shape -> (start, shown, held)
        self.suppressed = 0
        self.emitted = 0
        self._c_callback: Any = None

    def install(self) -> None:
        """Make this the callback libosdp copies into the next context set up (hold
        :data:`_SETUP_LOCK`)."""
        if _NEW_STYLE_LOG:
            def new_style(_pd: int, level: int, msg: bytes | None, _file: bytes | None,
                          _line: int) -> None:  # fmt: skip
                self.line(level, msg)

            self._c_callback = _NEW_LOG_CB(new_style)
        else:
            def old_style(level: int, _file: bytes | None, _line: int, msg: bytes | None) -> None:
                self.line(level, msg)

            self._c_callback = _OLD_LOG_CB(old_style)
        _LIB.osdp_set_log_callback(self._c_callback)

    def line(self, level: int, msg: bytes | str | None) -> None:
        """One library line (libosdp's thread). Never raises into C."""
        try:
            if level > self.threshold or not msg:
                return
            text = msg.decode("utf-8", "replace") if isinstance(msg, bytes) else msg
            text = text.strip()
            shape = _DIGITS.sub("#", text)
            now = self._clock()
            with self._lock:
                start, shown, held = self._windows.get(shape, (now, 0, 0))
                if now - start >= LIBOSDP_LOG_WINDOW_S:
                    start, shown = now, 0
                if shown >= LIBOSDP_LOG_BURST:
                    self._windows[shape] = (start, shown, held + 1)
                    self.suppressed += 1
                    return
                self._windows[shape] = (start, shown + 1, 0)
                self.emitted += 1
            more = f" ({held} similar lines held back)" if held else ""
            self._logger.log(_SYSLOG_TO_PY.get(level, logging.DEBUG), "libosdp bus %s: %s%s",
                             self.bus, text, more)  # fmt: skip
        except Exception:  # a log line must never take the protocol thread down
            return


class ControlPanelThread:
    """libosdp's control panel (``osdp_sys``) with its refresh thread and its log routed to
    :class:`LibosdpLog`.

    Our own thin wrapper rather than ``osdp.ControlPanel``: that one resets libosdp's logger to
    stderr right before setup (so no callback can be installed), and keeps a second copy of
    every event in queues nobody reads.

    Given the readers' :class:`SerialChannel`, the refresh is driven by the line rather than a
    fixed 20 ms sleep: the thread waits (``select``) on the port and a wake pipe and refreshes
    libosdp when a whole frame has arrived, when a command is submitted or a reader enabled or
    disabled, when libosdp's next poll falls due, and at least every ``REFRESH_S``; after a
    refresh that moved a frame it refreshes again ``FOLLOW_UP_REFRESH_S`` later. Without a
    channel it refreshes every ``REFRESH_S``.

        cp = ControlPanelThread([PDInfo(...)], LibosdpLog("north"), on_event, on_done, channel)
        cp.start(); cp.status(); cp.submit_command(address, cmd); cp.teardown()
    """

    def __init__(
        self,
        infos: list[PDInfo],
        log: LibosdpLog,
        on_event: Callable[[int, dict[str, Any]], int] | None = None,
        on_completion: Callable[[int, dict[str, Any], int], None] | None = None,
        channel: SerialChannel | None = None,
    ) -> None:
        self.addresses = [int(i.address) for i in infos]
        self.log = log
        with _SETUP_LOCK:
            log.install()
            self._ctx: Any = osdp_sys.ControlPanel([i.get() for i in infos])
        if on_event is not None:
            self._ctx.set_event_callback(on_event)
        if on_completion is not None:
            self._ctx.set_command_completion_callback(on_completion)
        self._channel = channel
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self.refreshes = 0  # how often libosdp was refreshed (the bench reads it)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._refresh, name="osdp-cp", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """Make the refresh thread refresh libosdp now (a command is waiting)."""
        with contextlib.suppress(BlockingIOError, OSError):
            os.write(self._wake_w, b"w")  # a full pipe already says the same

    def _refresh_once(self) -> None:
        with self._lock:
            self._ctx.refresh()
        self.refreshes += 1

    def _refresh(self) -> None:
        if self._channel is None:
            while not self._stop.is_set():
                self._refresh_once()
                self._stop.wait(REFRESH_S)
            return
        self._line_driven(self._channel)

    def _line_driven(self, channel: SerialChannel) -> None:
        follow_up = False
        # Part of a frame is held back: its rest cannot be on the line before this, so until
        # then only the wake pipe is watched (at 9600 baud bytes trickle in one or two at a
        # time; waking for each cost the idle daemon most of its CPU).
        quiet_until = 0.0
        while not self._stop.is_set():
            now = time.monotonic()
            timeout = REFRESH_S
            if follow_up:
                timeout = FOLLOW_UP_REFRESH_S
            else:
                for due in (channel.next_poll_due(), channel.partial_due()):
                    if due is not None and due > now:
                        timeout = min(timeout, due - now)
            fd = channel.fileno()
            watch = [self._wake_r] if fd is None else [self._wake_r, fd]
            quiet = fd is not None and now < quiet_until
            if quiet:
                watch = [self._wake_r]
                timeout = min(timeout, quiet_until - now)
            try:
                readable, _, _ = select.select(watch, [], [], timeout)
            except (OSError, ValueError):  # the port went away under us: libosdp will see it
                readable = []
                self._stop.wait(timeout)
            if self._stop.is_set():
                return
            if self._wake_r in readable:
                with contextlib.suppress(BlockingIOError, OSError):
                    os.read(self._wake_r, 512)
            elif fd is not None and (fd in readable or (quiet and time.monotonic() >= quiet_until)):
                channel.pull()
                if not channel.frames_ready():
                    follow_up = False
                    quiet_until = channel.held_frame_due()
                    continue  # part of a frame: wait for the rest (or its stale deadline)
            moved = channel.rx_frames + channel.tx_bytes
            self._refresh_once()
            follow_up = channel.rx_frames + channel.tx_bytes != moved

    def teardown(self) -> None:
        self._stop.set()
        self.wake()
        if self._thread is not None:
            self._thread.join(5.0)
            self._thread = None
        with self._lock:
            self._ctx = None  # the binding tears libosdp's context down
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)
        self._wake_r = self._wake_w = -1

    def _index(self, address: int) -> int:
        return self.addresses.index(address)

    def status(self) -> int:
        with self._lock:
            return int(self._ctx.status())

    def sc_status(self) -> int:
        with self._lock:
            return int(self._ctx.sc_status())

    def submit_command(self, address: int, command: dict[str, Any]) -> bool:
        with self._lock:
            ok = bool(self._ctx.submit_command(self._index(address), command))
        self.wake()
        return ok

    def disable_pd(self, address: int) -> bool:
        with self._lock:
            ok = bool(self._ctx.disable_pd(self._index(address)))
        self.wake()
        return ok

    def enable_pd(self, address: int) -> bool:
        with self._lock:
            ok = bool(self._ctx.enable_pd(self._index(address)))
        self.wake()
        return ok

    def is_pd_enabled(self, address: int) -> bool:
        with self._lock:
            return bool(self._ctx.is_pd_enabled(self._index(address)))


def frame_time_s(n_bytes: int, baud: int) -> float:
    """Time ``n_bytes`` take on the wire at 8N1 (10 bits per character)."""
    return n_bytes * 10.0 / baud


# ============================================================================ the channel


def complete_prefix(buf: bytes | bytearray) -> int:
    """How many leading bytes of ``buf`` are whole OSDP frames or bytes that start none.

    libosdp 3.2 drops a frame that reaches it in two pieces (as bytes paced at 9600 baud do),
    so the channel hands it whole frames only. Pure.
    """
    pos = 0
    n = len(buf)
    while pos < n:
        start = buf.find(OSDP_SOM, pos)
        if start < 0:
            return n
        if start + 4 > n:
            return start
        length = buf[start + 2] | (buf[start + 3] << 8)
        if length < 7 or length > MAX_FRAME_LEN:
            pos = start + 1  # not a frame start: noise, pass it on
            continue
        if start + length > n:
            return start
        pos = start + length
    return n


def missing_bytes(buf: bytes | bytearray) -> int:
    """How many more bytes the frame held back at the end of ``buf`` needs at least (0: none is
    held back): to its declared length, or to its 4-byte header while the length is unknown.
    Pure."""
    cut = complete_prefix(buf)
    rest = len(buf) - cut
    if rest == 0:
        return 0
    if rest < 4:
        return 4 - rest
    length = buf[cut + 2] | (buf[cut + 3] << 8)
    return max(1, length - rest)


def _frame_ok(frame: bytes | bytearray) -> bool:
    """Whether one whole OSDP frame's CRC (or checksum) holds. Pure."""
    if frame[4] & 0x04:
        return osdp_crc16(frame[:-2]) == (frame[-2] | (frame[-1] << 8))
    return (sum(frame[:-1]) + frame[-1]) & 0xFF == 0


def drop_late_replies(buf: bytes | bytearray, command: tuple[int, int] | None) -> tuple[bytes, int]:
    """``buf`` without the well-formed replies that do not answer ``command``, and how many
    were dropped. Pure; never raises.

    ``command`` is the (address, sequence number) of the last command sent on the line, or
    ``None`` before the first. A reader that answers after libosdp has given up on it (a slow
    reader, a starved host) puts its reply on the line while libosdp waits for the next
    reader's answer; libosdp 3.2 takes that reply as the next reader's ("Invalid pd address")
    and drops the innocent reader offline. An answer to a command nobody waits for any more
    says nothing about the reader that is being asked, so it never reaches libosdp. Bytes that
    are not whole, intact frames (noise, damaged frames) pass unchanged: libosdp counts them.
    """
    if command is None:
        return bytes(buf), 0
    out = bytearray()
    dropped = 0
    pos = 0
    n = len(buf)
    while pos < n:
        start = buf.find(OSDP_SOM, pos)
        if start < 0 or start + 5 > n:
            out += buf[pos:]
            break
        length = buf[start + 2] | (buf[start + 3] << 8)
        if length < 7 or length > MAX_FRAME_LEN or start + length > n:
            out += buf[pos : start + 1]
            pos = start + 1
            continue
        frame = buf[start : start + length]
        out += buf[pos:start]
        pos = start + length
        if frame[1] & 0x80 and _frame_ok(frame):
            if (frame[1] & 0x7F, frame[4] & 0x03) != command:
                dropped += 1
                continue
        elif not _frame_ok(frame):
            # Not a frame after all (or a damaged one): pass its first byte and look again.
            out += frame[:1]
            pos = start + 1
            continue
        out += frame
    return bytes(out), dropped


class SerialChannel(Channel):
    """libosdp's byte channel over a pyserial port: non-blocking, never raises into libosdp.

    Received bytes are held back until they form whole frames (see :func:`complete_prefix`);
    a partial frame older than its own wire time plus a margin is released anyway, so noise
    that looks like a frame header cannot stall the line. A port error (the adapter vanished)
    is remembered and reported once through ``on_fail``; from then on reads return nothing and
    writes fail, until the bus tears the session down.

    The read path has two steps: :meth:`pull` moves what the port holds into the hold-back
    buffer, :meth:`_release` hands whole frames on to libosdp (the one place every received
    frame passes before libosdp sees it). ``read`` does both. The refresh thread waits on
    :meth:`fileno` and pulls itself, refreshing libosdp only once :meth:`frames_ready`.
    """

    def __init__(
        self,
        port: serial.Serial,
        sniffer: FrameSniffer,
        on_fail: Callable[[str], None],
        baud: int = 9600,
        on_frame: Callable[[SniffedFrame], None] | None = None,
        *,
        drop_late_replies: bool = False,
    ) -> None:
        super().__init__()
        self.port = port
        self.sniffer = sniffer
        self.on_fail = on_fail
        self.baud = baud
        # Called on libosdp's thread, in wire order, with every well-formed frame received and
        # every frame we sent (commands: reply=False), before libosdp acts on a received one.
        self.on_frame = on_frame
        self._tx_sniffer = FrameSniffer()
        self.failed: str | None = None
        self.rx_bytes = 0
        self.tx_bytes = 0
        self.rx_frames = 0  # well-formed frames released to libosdp
        # Bounded: a reader that is never asked for its frames must not grow without end.
        self.frames: deque[tuple[float, SniffedFrame]] = deque(maxlen=MAX_SNIFFED_FRAMES)
        self._frames_lock = threading.Lock()
        self._pending = bytearray()
        self._pending_since = 0.0
        self._ready = bytearray()
        # The control panel's side drops replies to commands libosdp no longer waits for
        # (see :func:`drop_late_replies`); a reader's side has no use for it.
        self._drop_late = drop_late_replies
        self._last_command: tuple[int, int] | None = None
        self.late_replies = 0
        # When the last POLL went to each address: libosdp polls it again a fixed time later.
        self._polled_at: dict[int, float] = {}

    def _fail(self, exc: BaseException) -> None:
        if self.failed is None:
            self.failed = f"{type(exc).__name__}: {exc}"
            self.on_fail(self.failed)

    def _partial_timeout(self) -> float:
        return PARTIAL_FRAME_MARGIN_S + frame_time_s(MAX_FRAME_LEN // 4, self.baud)

    # -- the hooks a refresh thread waits on (all on libosdp's thread) -----------------------

    def fileno(self) -> int | None:
        """The port's descriptor to wait on for received bytes (None once the port failed)."""
        if self.failed is not None:
            return None
        try:
            return int(self.port.fileno())
        except (serial.SerialException, OSError, TypeError, ValueError, AttributeError):
            return None

    def pull(self) -> int:
        """Move what the port holds into the hold-back buffer; release nothing. Returns the
        number of bytes taken (0 also once the port failed)."""
        if self.failed is not None:
            return 0
        try:
            data: bytes = self.port.read(4096)
        except (serial.SerialException, OSError, TypeError) as exc:
            # TypeError: pyserial after a concurrent close; all mean the port is gone.
            self._fail(exc)
            return 0
        if data:
            self.rx_bytes += len(data)
            if not self._pending:
                self._pending_since = time.monotonic()
            self._pending += data
        return len(data)

    def frames_ready(self, now: float | None = None) -> bool:
        """True when a read would hand libosdp something: a whole frame, bytes that start no
        frame, a stale fragment, or bytes released earlier and not yet read."""
        if self._ready:
            return True
        if not self._pending:
            return False
        if complete_prefix(self._pending) > 0:
            return True
        now = time.monotonic() if now is None else now
        return now - self._pending_since > self._partial_timeout()

    def partial_due(self) -> float | None:
        """When the fragment held back goes stale and is released anyway (None: none held)."""
        if not self._pending:
            return None
        return self._pending_since + self._partial_timeout() + 0.001

    def held_frame_due(self, now: float | None = None) -> float:
        """When the rest of the frame held back can first be here: the wire time of its missing
        bytes but one (the port's descriptor reports that one as it comes), and never after the
        fragment goes stale. Until then a refresh thread need not wake per byte."""
        now = time.monotonic() if now is None else now
        due = now + frame_time_s(max(0, missing_bytes(self._pending) - 1), self.baud)
        stale = self.partial_due()
        return due if stale is None else min(due, stale)

    def next_poll_due(self) -> float | None:
        """When libosdp next polls a reader it polled lately (None: none is due later than now;
        one already due waits for the line, and the reply that frees it wakes the thread)."""
        now = time.monotonic()
        upcoming = [
            t + LIBOSDP_POLL_INTERVAL_S
            for t in self._polled_at.values()
            if t + LIBOSDP_POLL_INTERVAL_S > now
        ]  # fmt: skip
        return min(upcoming) if upcoming else None

    # -- libosdp's side ----------------------------------------------------------------------

    def _release(self, now: float) -> None:
        """Hand the whole frames held back (and a stale fragment) on to libosdp's read buffer."""
        if not self._pending:
            return
        cut = complete_prefix(self._pending)
        if cut < len(self._pending) and now - self._pending_since > self._partial_timeout():
            cut = len(self._pending)  # a stale fragment: let libosdp reject it
        if not cut:
            return
        released = bytes(self._pending[:cut])
        del self._pending[:cut]
        self._pending_since = now
        if self._drop_late:
            released, late = drop_late_replies(released, self._last_command)
            self.late_replies += late
        self._ready += released
        frames = self.sniffer.feed(released)
        if frames:
            self.rx_frames += len(frames)
            with self._frames_lock:
                self.frames.extend((now, f) for f in frames)
            if self.on_frame is not None:
                for f in frames:
                    self.on_frame(f)

    def read(self, max_bytes: int) -> bytes:
        if self.failed is not None:
            return b""
        self.pull()
        if self.failed is not None:
            return b""
        self._release(time.monotonic())
        if not self._ready:
            return b""
        out = bytes(self._ready[:max_bytes])
        del self._ready[:max_bytes]
        return out

    def write(self, buf: bytes) -> int:
        if self.failed is not None:
            return -1
        try:
            n: int | None = self.port.write(buf)
        except serial.SerialTimeoutException:
            return 0  # try again on the next refresh
        except (serial.SerialException, OSError, TypeError) as exc:
            self._fail(exc)
            return -1
        written = len(buf) if n is None else n
        self.tx_bytes += written
        if self._drop_late and written > 0:
            self._note_command(buf)
        if written > 0:
            sent = self._tx_sniffer.feed(bytes(buf[:written]))
            if sent:
                now = time.monotonic()
                for f in sent:
                    if f.code == COMMAND_POLL:
                        self._polled_at[f.address] = now
                with self._frames_lock:
                    self.frames.extend((now, f) for f in sent)
                if self.on_frame is not None:
                    for f in sent:
                        self.on_frame(f)
        return written

    def _note_command(self, buf: bytes) -> None:
        """Remember the address and sequence number of the command libosdp just wrote."""
        start = buf.find(OSDP_SOM)
        if start >= 0 and start + 5 <= len(buf) and not buf[start + 1] & 0x80:
            self._last_command = (buf[start + 1] & 0x7F, buf[start + 4] & 0x03)

    def flush(self) -> None:
        # libosdp flushes to resynchronise after an error: drop what we hold back too.
        self._pending.clear()
        self._ready.clear()

    def take_frames(self) -> list[tuple[float, SniffedFrame]]:
        with self._frames_lock:
            frames = list(self.frames)
            self.frames.clear()
        return frames


# ============================================================================ one open session


class ReadDrainTracker:
    """Tells card reads a reader held while nobody listened from reads made just now. Pure.

    An OSDP reader keeps card reads it could not deliver (the daemon was down, the bus was
    lost, the link dropped) and hands them over on the first polls after the link comes back:
    their arrival time is not their tap time. libosdp's POLL gets the reader's oldest held
    event, or an ACK when it holds none. So after a link comes (back) up, a reader's reads are
    *held* until it has answered a POLL with an ACK; after that, a read is fresh. The codes
    are in clear even under Secure Channel. Fed on libosdp's thread, in wire order::

        tracker.frame(SniffedFrame(3, False, COMMAND_POLL, None)); tracker.frame(ack_from_3)
        tracker.drained(3)  # True: reads from reader 3 are fresh now
        tracker.out_of_contact_s(3)  # for a held read: how long the reader was not heard

    A tracker lives as long as one bus session: at its start nobody knows how long the readers
    were out of contact (the gateway or the bus was down), so that span is ``None``.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._last_command: dict[int, int] = {}
        self._drained: set[int] = set()
        self._last_heard: dict[int, float] = {}
        self._silent_since: dict[int, float | None] = {}

    def frame(self, frame: SniffedFrame) -> None:
        if not frame.reply:
            self._last_command[frame.address] = frame.code
            return
        if frame.code == REPLY_ACK and self._last_command.get(frame.address) == COMMAND_POLL:
            self._drained.add(frame.address)
            self._silent_since.pop(frame.address, None)
        if frame.address in self._drained:
            # Contact counts only on an established link: handshake replies after a gap do not
            # shorten the gap.
            self._last_heard[frame.address] = self._clock()

    def link_changed(self, address: int) -> None:
        """The link went down or (re)came up: what the reader holds comes next."""
        if address not in self._silent_since:
            self._silent_since[address] = self._last_heard.get(address)
        self._drained.discard(address)
        self._last_command.pop(address, None)

    def drained(self, address: int) -> bool:
        return address in self._drained

    def out_of_contact_s(self, address: int) -> float | None:
        """How long the reader went unheard before its link came back (None: unknown)."""
        since = self._silent_since.get(address)
        return None if since is None else max(0.0, self._clock() - since)


class UnansweredCounter:
    """Counts commands a reader never answered (the command or its reply was damaged or lost
    on the line): a command to an address still owing a reply means libosdp gave up waiting.
    Pure; fed on libosdp's thread, in wire order.

        counter.frame(poll_to_3); counter.frame(poll_to_3); counter.unanswered  # 1
    """

    BROADCAST = 0x7F

    def __init__(self) -> None:
        self._awaiting: set[int] = set()
        self.unanswered = 0

    def frame(self, frame: SniffedFrame) -> None:
        if frame.reply:
            self._awaiting.discard(frame.address)
        elif frame.address != self.BROADCAST:
            if frame.address in self._awaiting:
                self.unanswered += 1
            self._awaiting.add(frame.address)


class _Session:
    """An open port plus a running libosdp control panel (lives from open to teardown)."""

    def __init__(
        self,
        spec: BusSpec,
        on_event: Callable[[int, dict[str, Any]], int],
        on_fail: Callable[[str], None],
        on_completion: Callable[[int, dict[str, Any], int], None] | None = None,
        drain: ReadDrainTracker | None = None,
    ) -> None:
        self.spec = spec
        self.sniffer = FrameSniffer()
        self.drain = drain or ReadDrainTracker()
        self.exchanges = UnansweredCounter()
        # Commands put on the line, by (address, command code): a feedback command libosdp
        # reports failed may still have reached the reader (only its answer was lost).
        self.commands_sent: Counter[tuple[int, int]] = Counter()
        self.port = serial.Serial(
            spec.port,
            spec.baud,
            timeout=0,
            write_timeout=SERIAL_WRITE_TIMEOUT_S,
            exclusive=True,
        )
        self.channel = SerialChannel(
            self.port, self.sniffer, on_fail, spec.baud, on_frame=self._on_frame,
            drop_late_replies=True,
        )
        self.addresses = [r.address for r in spec.readers]
        infos = [
            PDInfo(
                r.address,
                self.channel,
                scbk=r.scbk,
                name=f"{spec.name}-{r.address}",
                flags=[LibFlag.EnforceSecure, LibFlag.EnableNotification],
            )
            for r in spec.readers
        ]
        try:
            self.cp = ControlPanelThread(
                infos, LibosdpLog(spec.name, spec.log_level), on_event, on_completion,
                channel=self.channel,
            )  # fmt: skip
            self.cp.start()
        except BaseException:
            self.port.close()
            raise
        self.closed = False

    def _on_frame(self, frame: SniffedFrame) -> None:
        self.drain.frame(frame)
        self.exchanges.frame(frame)
        if not frame.reply:
            self.commands_sent[(frame.address, frame.code)] += 1

    def masks(self) -> tuple[int, int]:
        """libosdp's online and secure-channel bitmasks (index = position in the reader list)."""
        return self.cp.status(), self.cp.sc_status()

    def revive(self, address: int) -> None:
        """Make libosdp retry a parked reader now: disable it, wait until libosdp's refresh
        has done so (libosdp refuses to enable a reader that is not disabled yet: a fixed
        pause left a reader disabled whenever a busy host ran the refresh late), enable it."""
        self.cp.disable_pd(address)
        deadline = time.monotonic() + REVIVE_DISABLE_WAIT_S
        while self.cp.is_pd_enabled(address) and time.monotonic() < deadline:
            time.sleep(REFRESH_S)
        self.cp.enable_pd(address)

    def submit(self, address: int, command: dict[str, Any]) -> bool:
        if self.closed or self.channel.failed is not None:
            return False
        return self.cp.submit_command(address, command)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        try:
            self.cp.teardown()
        finally:
            with contextlib.suppress(serial.SerialException, OSError):
                self.port.close()


# ============================================================================ reader links


@dataclass(slots=True)
class _ReaderLink:
    address: int
    online: bool = False
    sc_active: bool = False
    reason: str = "starting"
    reported: tuple[bool, bool, str] | None = None
    last_ccrypt: float = -1e9
    last_rmac: float = -1e9
    last_scrypt: float = -1e9
    last_chlng: float = -1e9
    # The last command libosdp sent the reader, or the end of our last revival of it.
    last_command: float = -1e9
    # When libosdp last said it went offline with the reader (its notification; our own
    # revival's disable says so too, but that is older than the revival's end).
    offline_said: float = -1e9
    ccrypt_prompt: bool = True
    last_reply: float = -1e9
    key_mismatch: bool = False
    up_once: bool = False
    next_revive: float = 0.0
    grace_until: float = 0.0
    retry: Backoff = field(
        default_factory=lambda: Backoff(
            READER_RETRY_INITIAL_S, READER_RETRY_MAX_S, READER_RETRY_FACTOR, READER_RETRY_JITTER
        )
    )
    card_reads: int = 0
    held_reads: int = 0
    node_taps: int = 0
    unknown_replies: int = 0
    offline_transitions: int = 0
    refusals: int = 0
    feedback: _PendingFeedback | None = None
    # Submitted feedback parts awaiting libosdp's completion, in its (FIFO) order.
    in_flight: deque[tuple[_PendingFeedback, str, _Session, int]] = field(
        default_factory=lambda: deque(maxlen=MAX_FEEDBACK_IN_FLIGHT)
    )
    feedback_lost: int = 0


def handshake_refused(link: _ReaderLink, now: float) -> bool:
    """The handshake's verdict on the key: True when the reader answered the challenge
    promptly and libosdp never went on to SCRYPT (its cryptogram did not match our key).

    If libosdp went on to SCRYPT, the reader's cryptogram proved the key: the handshake broke
    on the line (a reply too late, a damaged frame), not on the key. A late answer says
    nothing either: libosdp had already given up on it. And a reader that has already
    completed a handshake with this key on this opening of the bus holds the key: a later
    broken handshake is the line (noise, a starved host), never "key refused"."""
    return (
        not link.up_once
        and link.last_ccrypt > link.last_rmac
        and link.ccrypt_prompt
        and link.last_scrypt < link.last_ccrypt
        and now - link.last_ccrypt >= HANDSHAKE_FAIL_S
        and not (link.online and link.sc_active)
    )


def revive_due(link: _ReaderLink, now: float) -> bool:
    """Whether to make libosdp retry a reader that is not up: its retry time has come and
    libosdp has given up on it (told us so, or sent it nothing for :data:`PARKED_QUIET_S`).
    A handshake libosdp is still working through is never cut short."""
    if link.online and link.sc_active:
        return False
    if now < link.next_revive:
        return False
    parked = link.offline_said > link.last_command
    return parked or now - link.last_command >= PARKED_QUIET_S


@dataclass(slots=True)
class _PendingFeedback:
    """Feedback owed to a reader until it confirms it, or until ``deadline`` (monotonic)."""

    feedback: Feedback
    deadline: float
    parts: dict[str, str] = field(default_factory=lambda: {"led": "todo", "beep": "todo"})

    @property
    def done(self) -> bool:
        return all(state == "done" for state in self.parts.values())


class OsdpBus:
    """One OSDP bus as a :class:`drivers.checkpoints.CheckpointBus` (see the module docstring)."""

    def __init__(self, spec: BusSpec, *, rng: random.Random | None = None) -> None:
        self.name = spec.name
        self.spec = spec
        self._rng = rng or random.Random()
        self._links = {r.address: _ReaderLink(r.address) for r in spec.readers}
        self._index = [r.address for r in spec.readers]
        self._queue: asyncio.Queue[BusEvent | None] = asyncio.Queue()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._session: _Session | None = None
        self._drain = ReadDrainTracker()
        self._failed: asyncio.Event | None = None
        self._closing = False
        self._state = "stopped"
        self._opens = 0
        self._failures = 0
        self._last_error = ""
        self._bad_frames = 0
        self._unanswered = 0
        self._late_replies = 0
        self._damage_logged_at = -1e9
        self._damage_logged_at_count = 0
        self._naks = 0
        self._unknown_replies = 0
        self._rx = 0
        self._tx = 0
        self._backoff = Backoff(
            BUS_BACKOFF_INITIAL_S, BUS_BACKOFF_MAX_S, BUS_BACKOFF_FACTOR, BUS_BACKOFF_JITTER,
            self._rng,
        )

    # ------------------------------------------------------------------ public API

    @property
    def state(self) -> str:
        """``stopped``, ``opening``, ``running``, ``backoff`` or ``closed``."""
        return self._state

    async def start(self) -> None:
        """Start (or, after :meth:`aclose`, restart: a supervisor restarts crashed services)."""
        if self._task is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._failed = asyncio.Event()
        self._closing = False
        self._queue = asyncio.Queue()
        for link in self._links.values():
            link.reported = None  # a new run reports every reader's state afresh
        self._task = asyncio.create_task(self._run(), name=f"osdp-bus-{self.name}")

    async def events(self) -> AsyncIterator[BusEvent]:
        while True:
            item = await self._queue.get()
            if item is None:
                return
            yield item

    async def feedback(self, address: int, feedback: Feedback) -> bool:
        """Owe ``feedback`` to the reader: it is sent now if the reader can take it, and sent
        again (a reader that is busy or dropping out refuses or loses commands) until libosdp
        reports it done or :data:`FEEDBACK_DEADLINE_S` has passed. A newer feedback for the
        same reader replaces an older one not yet shown. False: no such reader, or the bus is
        not running."""
        link = self._links.get(address)
        if link is None:
            return False
        link.feedback = _PendingFeedback(feedback, time.monotonic() + FEEDBACK_DEADLINE_S)
        await self._push_feedback(link)
        return self._session is not None

    async def _push_feedback(self, link: _ReaderLink) -> None:
        """Submit the parts of the owed feedback that are not with libosdp yet."""
        pending = link.feedback
        if pending is None:
            return
        if time.monotonic() > pending.deadline:
            link.feedback = None
            if all(state in ("queued", "done") for state in pending.parts.values()):
                return  # with libosdp, and no failure reported: it goes out
            link.feedback_lost += 1
            log.warning("bus %s reader %d: %s feedback not shown within %.0f s (reader busy or "
                        "offline)", self.name, link.address, pending.feedback.value,
                        FEEDBACK_DEADLINE_S)  # fmt: skip
            return
        session = self._session
        if session is None or not (link.online and link.sc_active):
            return  # the next supervision tick tries again
        todo = [part for part, state in pending.parts.items() if state == "todo"]
        if not todo:
            return
        commands = _feedback_commands(pending.feedback)
        for part in todo:
            pending.parts[part] = "submitting"

        def submit() -> list[tuple[bool, int]]:
            done = []
            for part in todo:
                before = session.commands_sent[(link.address, _FEEDBACK_WIRE_CODE[part])]
                try:
                    done.append((session.submit(link.address, commands[part]), before))
                except Exception as exc:  # libosdp raises on a torn-down context
                    log.debug("bus %s reader %d: feedback not queued: %s", self.name,
                              link.address, exc)  # fmt: skip
                    done.append((False, before))
            return done

        results = await asyncio.to_thread(submit)
        for part, (ok, before) in zip(todo, results, strict=True):
            if pending.parts.get(part) != "submitting":
                continue
            if ok:
                pending.parts[part] = "queued"
                link.in_flight.append((pending, part, session, before))
            else:
                pending.parts[part] = "todo"

    def _on_completion(self, index: int, command: dict[str, Any], status: int) -> None:
        # libosdp's thread (only when the library reports completions): hand it over, with
        # how many such commands had gone out on the line by now (same thread, so in order).
        code = int(command.get("command", -1))
        session = self._session
        part = _FEEDBACK_PART.get(code)
        sent = 0
        if session is not None and part is not None and 0 <= index < len(self._index):
            sent = session.commands_sent[(self._index[index], _FEEDBACK_WIRE_CODE[part])]
        self._post(self._handle_completion, index, code, status, session, sent)

    def _handle_completion(
        self, index: int, code: int, status: int, session: _Session | None = None, sent: int = 0
    ) -> None:
        if index < 0 or index >= len(self._index):
            return
        link = self._links[self._index[index]]
        part = _FEEDBACK_PART.get(code)
        if part is None:
            return
        # Completions come in submission order; skip parts of feedback already replaced.
        while link.in_flight:
            pending, queued_part, queued_on, before = link.in_flight.popleft()
            if queued_part != part:
                continue
            if pending is link.feedback and pending.parts.get(part) == "queued":
                if status == CompletionStatus.Ok:
                    pending.parts[part] = "done"
                elif queued_on is session and sent > before:
                    # The command went out and only its answer was lost (a slow reader, a
                    # drop-out right after): the reader has most likely shown it. Sending it
                    # again would light the reader seconds later, when the next person's tap
                    # may be the one in front of it; a guard who saw nothing taps again.
                    pending.parts[part] = "done"
                    log.debug("bus %s reader %d: %s sent, answer lost; not sent again",
                              self.name, link.address, part)  # fmt: skip
                else:
                    pending.parts[part] = "todo"
                if pending.done:
                    link.feedback = None
            break

    def counters(self) -> tuple[BusCounters, list[ReaderCounters]]:
        session = self._session
        bad = self._bad_frames + (session.sniffer.bad_frames if session else 0)
        rx = self._rx + (session.channel.rx_bytes if session else 0)
        tx = self._tx + (session.channel.tx_bytes if session else 0)
        unanswered = self._unanswered + (session.exchanges.unanswered if session else 0)
        late = self._late_replies + (session.channel.late_replies if session else 0)
        bus = BusCounters(
            self.name, self._state, self._opens, self._failures, bad, self._naks, rx, tx,
            self._last_error, unanswered, late, self._unknown_replies,
        )
        readers = [
            ReaderCounters(
                self.name, link.address, link.online, link.sc_active, link.reason,
                link.card_reads, link.offline_transitions, link.refusals,
                held_reads=link.held_reads, feedback_lost=link.feedback_lost,
                node_taps=link.node_taps, unknown_replies=link.unknown_replies,
            )
            for link in self._links.values()
        ]
        return bus, readers

    async def aclose(self) -> None:
        self._closing = True
        if self._failed is not None:
            self._failed.set()
        if self._task is not None:
            task, self._task = self._task, None
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._close_session()
        self._state = "closed"
        # Nobody polls them any more: a closed bus has no reader online (status pages and
        # health read the counters after a stop too).
        for link in self._links.values():
            link.online = False
            link.sc_active = False
        self._queue.put_nowait(None)

    # ------------------------------------------------------------------ thread -> loop

    def _post(self, fn: Callable[..., None], *args: Any) -> None:
        loop = self._loop
        if loop is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop is closing: nothing to tell
            loop.call_soon_threadsafe(fn, *args)

    def _on_osdp_event(self, index: int, event: dict[str, Any]) -> int:
        # Runs on libosdp's thread: stamp the time, tell a held read from a fresh one (the
        # tracker is fed on this thread, in wire order), and hand it over.
        held = False
        gap: float | None = None
        if 0 <= index < len(self._index):
            address = self._index[index]
            kind = event.get("event")
            if kind == Event.CardRead:
                held = not self._drain.drained(address)
                gap = self._drain.out_of_contact_s(address) if held else None
            elif kind == Event.Notification and event.get("type") in (
                EventNotification.PeripheralDeviceStatus, EventNotification.SecureChannelStatus
            ):
                self._drain.link_changed(address)
        self._post(self._handle_osdp_event, index, event, time.monotonic(), held, gap)
        return 0

    def _on_channel_fail(self, reason: str) -> None:
        self._post(self._mark_failed, reason)

    def _mark_failed(self, reason: str) -> None:
        self._last_error = reason
        if self._failed is not None:
            self._failed.set()

    # ------------------------------------------------------------------ on the loop

    def _handle_osdp_event(
        self,
        index: int,
        event: dict[str, Any],
        mono: float,
        held: bool = False,
        gap: float | None = None,
    ) -> None:
        if index < 0 or index >= len(self._index):
            return
        address = self._index[index]
        link = self._links[address]
        kind = event.get("event")
        if kind == Event.CardRead:
            data = bytes(event.get("data", b""))
            fmt = _CARD_FORMATS.get(event.get("format", -1), f"format-{event.get('format')}")
            bits = int(event.get("length", len(data) * 8)) if fmt != "ascii" else len(data) * 8
            link.card_reads += 1
            if held:
                link.held_reads += 1
            self._queue.put_nowait(
                CardRead(self.name, address, data, bits, fmt, mono, held, gap)
            )
        elif kind == Event.ManufacturerReply:
            self._handle_mfgrep(link, event, mono)
        elif kind == Event.Notification:
            ntype, arg0 = event.get("type"), event.get("arg0")
            if ntype == EventNotification.PeripheralDeviceStatus:
                if not arg0:
                    link.offline_said = mono
                self._set_link(link, online=bool(arg0), sc_active=link.sc_active and bool(arg0),
                               now=mono)
            elif ntype == EventNotification.SecureChannelStatus:
                self._set_link(link, online=link.online, sc_active=bool(arg0), now=mono)
        elif kind == Event.Status:
            self._handle_status(link, event, mono)

    def _handle_mfgrep(self, link: _ReaderLink, event: dict[str, Any], mono: float) -> None:
        """Our node's tap record becomes a :class:`NodeTap`; anything else an
        :class:`UnknownReply`, counted and handed on (never dropped silently)."""
        vendor = event.get("vendor_code")
        data = event.get("data", b"")
        raw = bytes(data) if isinstance(data, bytes | bytearray) else b""
        try:
            if not isinstance(vendor, int):
                raise NodeReportError("vendor", -1, raw, "no vendor code")
            rec = parse_numbered_tap(vendor, raw, self.spec.node_vendor)
        except NodeReportError as exc:
            link.unknown_replies += 1
            self._unknown_replies += 1
            log.warning("bus %s reader %d: manufacturer reply not understood (%s), vendor "
                        "0x%06x, %d bytes: recorded", self.name, link.address, exc,
                        exc.vendor_code & 0xFFFFFF, len(raw))  # fmt: skip
            self._queue.put_nowait(
                UnknownReply(self.name, link.address, exc.vendor_code, raw, exc.reason, mono)
            )
            return
        link.node_taps += 1
        tap = NodeTap(
            self.name, link.address, rec.number, rec.uid, rec.age_s, rec.age_lower_bound,
            rec.tapped_offline, rec.may_repeat_raw, rec.waiting, mono,
        )  # fmt: skip
        self._queue.put_nowait(tap)

    def _handle_status(self, link: _ReaderLink, event: dict[str, Any], mono: float) -> None:
        if event.get("type") != StatusReportType.Local:
            return
        tamper: bool | None = None
        power: bool | None = None
        report = event.get("report")
        if isinstance(report, bytes | bytearray) and len(report) >= 2:
            tamper, power = bool(report[0]), bool(report[1])
        elif "mask" in event:
            mask = int(event["mask"])
            tamper, power = bool(mask & 1), bool(mask & 2)
        self._queue.put_nowait(ReaderReport(self.name, link.address, tamper, power, mono))

    def _set_link(self, link: _ReaderLink, *, online: bool, sc_active: bool, now: float) -> None:
        was_online = link.online
        link.online = online
        link.sc_active = sc_active
        if online and sc_active:
            link.reason = "secure_channel_active"
            link.key_mismatch = False
            link.up_once = True
            link.retry.reset()
        elif was_online:
            link.grace_until = now + OFFLINE_DEBOUNCE_S
            link.next_revive = now + self._revive_delay(link, now)
        if was_online and not online:
            link.offline_transitions += 1
        self._report(link, now)

    def _report_damage(self, session: _Session, now: float) -> None:
        """Log damaged frames (noise, or a device babbling on the bus) at most once a
        :data:`DAMAGE_LOG_S`, with how many since the last line."""
        bad = session.sniffer.bad_frames + session.exchanges.unanswered
        if bad > self._damage_logged_at_count and now - self._damage_logged_at >= DAMAGE_LOG_S:
            log.warning(
                "bus %s: %d damaged frames and %d unanswered commands so far on this opening "
                "(line noise, wiring, or a device sending garbage)",
                self.name, session.sniffer.bad_frames, session.exchanges.unanswered,
            )  # fmt: skip
            self._damage_logged_at = now
            self._damage_logged_at_count = bad

    def _revive_delay(self, link: _ReaderLink, now: float) -> float:
        """A reader that still answers with the right key (its handshake broke on timing or
        noise) is retried within a second: guards are waiting for its LED. One that is silent
        or refuses the key backs off to :data:`READER_RETRY_MAX_S`."""
        delay = link.retry.next()
        if not link.key_mismatch and now - link.last_reply < RECENT_REPLY_S:
            delay = min(delay, READER_RETRY_ANSWERING_MAX_S)
        return delay

    def _offline_reason(self, link: _ReaderLink, now: float) -> str:
        if link.key_mismatch:
            return "secure_channel_refused"
        if now - link.last_reply < RECENT_REPLY_S:
            return "link_errors"
        return "no_answer"

    def _report(self, link: _ReaderLink, now: float, *, force: bool = False) -> None:
        """Emit a ReaderStatus when the (online, sc, reason) triple changed.

        A reader is reported online only once it has handed over what it held (its first ACK
        to a POLL): from then on a read from it is a fresh tap. Until then it is not news."""
        up = link.online and link.sc_active
        if up and not self._drain.drained(link.address) and not force:
            return
        if not up and not force:
            # A reader whose very first handshake failed is refused now, not after the grace;
            # one that was up and dropped out gets the debounce (noise breaks handshakes too).
            refused_at_start = link.key_mismatch and not link.up_once
            if now < link.grace_until and not refused_at_start:
                return  # still coming up (or a short blip): not news yet
            link.reason = self._offline_reason(link, now)
        # Offline, the secure-channel flag is moot (libosdp raises it a moment before online).
        triple = (up, up, link.reason)
        if triple == link.reported:
            return
        if link.reason == "secure_channel_refused" and (
            link.reported is None or link.reported[2] != "secure_channel_refused"
        ):
            link.refusals += 1
        link.reported = triple
        self._queue.put_nowait(
            ReaderStatus(self.name, link.address, up, up, link.reason, now)
        )

    # ------------------------------------------------------------------ the bus state machine

    async def _run(self) -> None:
        while not self._closing:
            self._state = "opening"
            assert self._failed is not None
            self._failed.clear()
            try:
                self._drain = ReadDrainTracker()
                self._session = await asyncio.to_thread(
                    _Session, self.spec, self._on_osdp_event, self._on_channel_fail,
                    self._on_completion, self._drain,
                )
            except (serial.SerialException, OSError, ValueError, RuntimeError) as exc:
                self._failures += 1
                self._last_error = f"{type(exc).__name__}: {exc}"
                log.warning("bus %s: cannot open %s: %s", self.name, self.spec.port, exc)
                self._all_offline("bus_lost")
                await self._sleep_backoff()
                continue
            self._opens += 1
            self._damage_logged_at_count = 0
            self._state = "running"
            opened = time.monotonic()
            for link in self._links.values():
                link.reason = "starting"
                link.up_once = False
                link.grace_until = opened + READER_ONLINE_GRACE_S
                link.next_revive = opened + READER_ONLINE_GRACE_S
                link.retry.reset()
            log.info("bus %s: open on %s at %d baud", self.name, self.spec.port, self.spec.baud)
            try:
                await self._supervise()
            finally:
                await self._close_session()
            if self._closing:
                break
            self._failures += 1
            log.warning("bus %s: lost (%s); reopening with backoff", self.name, self._last_error)
            self._all_offline("bus_lost")
            if time.monotonic() - opened >= BUS_STABLE_S:
                self._backoff.reset()
            await self._sleep_backoff()

    async def _sleep_backoff(self) -> None:
        self._state = "backoff"
        delay = self._backoff.next()
        assert self._failed is not None
        with contextlib.suppress(TimeoutError):
            # _failed doubles as the "closing" wake-up here.
            await asyncio.wait_for(self._failed.wait(), delay)
        self._failed.clear()

    async def _supervise(self) -> None:
        assert self._failed is not None
        session = self._session
        assert session is not None
        while not self._closing:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._failed.wait(), SUPERVISE_TICK_S)
            if self._closing or session.channel.failed is not None:
                if session.channel.failed:
                    self._last_error = session.channel.failed
                return
            try:
                online_mask, sc_mask = await asyncio.to_thread(session.masks)
            except Exception as exc:
                self._last_error = f"{type(exc).__name__}: {exc}"
                return
            now = time.monotonic()
            self._report_damage(session, now)
            for seen_at, frame in session.channel.take_frames():
                link = self._links.get(frame.address)
                if link is None:
                    continue
                if not frame.reply:
                    link.last_command = max(link.last_command, seen_at)
                    if frame.code == COMMAND_SCRYPT:
                        link.last_scrypt = seen_at
                    elif frame.code == COMMAND_CHLNG:
                        link.last_chlng = seen_at
                    continue
                link.last_reply = seen_at
                if frame.code == REPLY_NAK:
                    self._naks += 1
                if frame.code == REPLY_CCRYPT:
                    link.last_ccrypt = seen_at
                    # Only a prompt answer was judged by libosdp: a late one (a starved reader
                    # or host) had already been given up on, so it says nothing of the key.
                    link.ccrypt_prompt = seen_at - link.last_chlng < CCRYPT_PROMPT_S
                elif frame.code == REPLY_RMAC_I:
                    link.last_rmac = seen_at
                    link.key_mismatch = False
            for link in self._links.values():
                if handshake_refused(link, now):
                    link.key_mismatch = True
            revive: list[int] = []
            for i, address in enumerate(self._index):
                link = self._links[address]
                online = bool(online_mask >> i & 1)
                sc = bool(sc_mask >> i & 1)
                if (online, sc) != (link.online, link.sc_active):
                    self._set_link(link, online=online, sc_active=sc, now=now)
                else:
                    self._report(link, now)  # news only when it changed (or has drained)
                    if revive_due(link, now):
                        revive.append(address)
                        link.next_revive = now + self._revive_delay(link, now)
            for link in self._links.values():
                if link.feedback is not None:
                    await self._push_feedback(link)
            for address in revive:
                try:
                    await asyncio.to_thread(session.revive, address)
                except Exception as exc:
                    log.warning("bus %s reader %d: revive failed: %s", self.name, address, exc)
                finally:
                    # Counts as libosdp's work on the reader: a fresh handshake starts now.
                    link = self._links[address]
                    link.last_command = max(link.last_command, time.monotonic())

    async def _close_session(self) -> None:
        session, self._session = self._session, None
        if session is None:
            return
        self._bad_frames += session.sniffer.bad_frames
        self._unanswered += session.exchanges.unanswered
        self._late_replies += session.channel.late_replies
        self._rx += session.channel.rx_bytes
        self._tx += session.channel.tx_bytes
        await asyncio.to_thread(session.close)

    def _all_offline(self, reason: str) -> None:
        now = time.monotonic()
        for link in self._links.values():
            if link.online:
                link.offline_transitions += 1
            link.online = False
            link.sc_active = False
            link.reason = reason
            self._report(link, now, force=True)


# ============================================================================ pairing


@dataclass(frozen=True, slots=True)
class PairResult:
    """Outcome of :func:`pair_reader`: ``ok`` and a sentence for the installer."""

    ok: bool
    message: str


def _wait_sc(
    cp: ControlPanelThread, address: int, deadline: float, give_up: threading.Event | None = None
) -> bool:
    # A failed first handshake (a stale reply from a previous session on the line) parks the
    # reader for minutes under ENFORCE_SECURE: revive it now and then, as the bus does.
    next_revive = time.monotonic() + PAIR_REVIVE_S
    while time.monotonic() < deadline:
        if cp.sc_status() & 1:
            return True
        if give_up is not None and give_up.is_set():
            return False
        if time.monotonic() >= next_revive:
            cp.disable_pd(address)
            time.sleep(0.05)
            cp.enable_pd(address)
            next_revive = time.monotonic() + PAIR_REVIVE_S
        time.sleep(0.05)
    return False


def _open_cp(
    port: str,
    baud: int,
    address: int,
    scbk: bytes,
    flags: Iterable[int],
    completions: list[tuple[int, int]] | None = None,
    on_frame: Callable[[SniffedFrame], None] | None = None,
) -> tuple[serial.Serial, ControlPanelThread]:
    ser = serial.Serial(port, baud, timeout=0, write_timeout=SERIAL_WRITE_TIMEOUT_S, exclusive=True)
    channel = SerialChannel(ser, FrameSniffer(), lambda _reason: None, baud, on_frame)

    def completed(_address: int, command: dict[str, Any], status: int) -> None:
        if completions is not None:
            completions.append((int(command.get("command", -1)), status))

    def completed_at(index: int, command: dict[str, Any], status: int) -> None:
        completed(address, command, status)

    try:
        cp = ControlPanelThread(
            [PDInfo(address, channel, scbk=scbk, name=f"pair-{address}", flags=list(flags))],
            LibosdpLog("pairing", "error"),
            on_completion=completed_at,
            channel=channel,
        )
        cp.start()
    except BaseException:
        ser.close()
        raise
    return ser, cp


def _close_cp(ser: serial.Serial, cp: ControlPanelThread) -> None:
    try:
        cp.teardown()
    finally:
        ser.close()


def verify_reader_key(port: str, baud: int, address: int, scbk: bytes, timeout: float) -> bool:
    """True when the reader brings up a secure channel with ``scbk`` (blocking)."""
    ser, cp = _open_cp(port, baud, address, scbk, [LibFlag.EnforceSecure])
    try:
        return _wait_sc(cp, address, time.monotonic() + timeout)
    finally:
        _close_cp(ser, cp)


def pair_reader(
    port: str,
    baud: int,
    address: int,
    new_scbk: bytes,
    *,
    current_scbk: bytes | None = None,
    timeout: float = 10.0,
) -> PairResult:
    """Give a reader its own SCBK with osdp_KEYSET, then prove it with a secure handshake.

    Blocking (run it in a thread). Without ``current_scbk`` the reader must be in install mode:
    libosdp falls back to SCBK-D and sends the KEYSET itself. With ``current_scbk`` the key is
    rotated over a secure channel opened with the current key.

        pair_reader("/dev/ttyUSB0", 9600, 3, os.urandom(16))
    """
    if len(new_scbk) != SCBK_LENGTH:
        return PairResult(False, "the new key must be 16 bytes")
    deadline = time.monotonic() + timeout
    if current_scbk is None:
        # libosdp sends the KEYSET itself once SCBK-D is up and reports no completion for it:
        # watch the line for the KEYSET and the reader's answer instead of guessing a delay (a
        # busy host can take seconds to send it; closing first leaves the reader on SCBK-D).
        keyset_acked, keyset_refused = threading.Event(), threading.Event()
        keyset_sent = [False]

        def watch(frame: SniffedFrame) -> None:
            if frame.address != address:
                return
            if not frame.reply:
                keyset_sent[0] = frame.code == COMMAND_KEYSET  # the reply answers the last one
            elif keyset_sent[0] and frame.code == REPLY_ACK:
                keyset_acked.set()
            elif keyset_sent[0] and frame.code == REPLY_NAK:
                keyset_refused.set()

        ser, cp = _open_cp(port, baud, address, new_scbk, [LibFlag.InstallMode], on_frame=watch)
        try:
            if not _wait_sc(cp, address, deadline, keyset_refused):
                if keyset_refused.is_set():
                    return PairResult(
                        False,
                        f"reader {address} refused the new key (KEYSET): its key may be locked "
                        "by its maker's tool; reset it to install mode",
                    )
                return PairResult(
                    False,
                    f"reader {address} did not accept the install key (SCBK-D): put it in "
                    "install mode, check the address and wiring, or pass its current key",
                )
            if not keyset_acked.wait(max(0.5, deadline - time.monotonic())):
                return PairResult(
                    False, f"reader {address}: the new key (KEYSET) was not acknowledged"
                )
        finally:
            _close_cp(ser, cp)
    else:
        completions: list[tuple[int, int]] = []
        ser, cp = _open_cp(
            port, baud, address, current_scbk, [LibFlag.EnforceSecure], completions
        )
        try:
            if not _wait_sc(cp, address, deadline):
                return PairResult(False, f"reader {address} refused its current key")
            keyset = {"command": Command.Keyset, "type": 1, "data": new_scbk}
            if not cp.submit_command(address, keyset):
                return PairResult(False, f"reader {address}: KEYSET could not be queued")
            while not any(c == Command.Keyset for c, _ in completions):
                if time.monotonic() > deadline:
                    return PairResult(False, f"reader {address}: KEYSET was not answered")
                time.sleep(0.05)
            if (Command.Keyset, CompletionStatus.Ok) not in completions:
                return PairResult(False, f"reader {address} refused the KEYSET")
        finally:
            _close_cp(ser, cp)
    if verify_reader_key(port, baud, address, new_scbk, max(5.0, deadline - time.monotonic())):
        return PairResult(True, f"reader {address} paired: secure channel up with its new key")
    return PairResult(False, f"reader {address}: KEYSET sent but the new key does not work")
