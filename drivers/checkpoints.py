"""The checkpoint-bus capability: what the gateway needs from a bus of checkpoint readers.

The gateway's tap path talks to this protocol, never to a concrete driver, so the OSDP driver
(:mod:`drivers.osdp_bus`) or any other reader bus plugs in the same way::

    bus: CheckpointBus = OsdpBus(spec)
    await bus.start()
    async for item in bus.events():  # CardRead | NodeTap | UnknownReply | ReaderStatus | ...
        ...
    await bus.feedback(address, Feedback.ACCEPTED)
    await bus.aclose()

Nothing here imports libosdp: these are plain messages and a protocol.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

# OSDP addresses are 7 bits; 0x7F is the broadcast address, never a reader's own.
MIN_ADDRESS = 0
MAX_ADDRESS = 126


class Feedback(enum.Enum):
    """What the guard sees and hears at the reader after a tap."""

    # Green LED + short beep: the tap is durable in the journal.
    ACCEPTED = "accepted"
    # Amber LED + long beep: the wristband is not on the roster (recorded as evidence).
    UNKNOWN = "unknown"
    # Red LED + long beep: the tap could not be recorded (or the reader is refused).
    REFUSED = "refused"


@dataclass(frozen=True, slots=True)
class CardRead:
    """One card (wristband) read reported by a reader.

    ``data`` is the raw card data, ``bits`` its length in bits (raw and Wiegand formats count
    bits; ASCII counts bytes * 8) and ``card_format`` one of ``raw``, ``wiegand``, ``ascii``.
    ``mono_time`` is the host's monotonic clock when the read reached the driver.

    ``time_uncertain``: the reader held this read while nobody listened (the gateway was down,
    the bus lost, the link dropped) and delivered it right after the link came back, so
    ``mono_time`` is its arrival, not its tap. ``out_of_contact_s`` then says how long the
    reader had not been heard before (``None``: unknown, e.g. the gateway was not running): the
    tap was made at most that long before it arrived.
    """

    bus: str
    address: int
    data: bytes
    bits: int
    card_format: str
    mono_time: float
    time_uncertain: bool = False
    out_of_contact_s: float | None = None

    @property
    def wristband(self) -> str:
        """The wristband id as the gateway records it: the raw card data in lower-case hex."""
        return self.data.hex()


@dataclass(frozen=True, slots=True)
class NodeTap:
    """A tap our checkpoint node kept on its flash and delivered with its number and age (an
    osdp_MFGREP tap record, :mod:`drivers.node_reports`): held while the line was down or the
    node not polled, or any tap from a node set to "numbered".

    ``number`` is the node's tap number (monotonic for the node's life, kept across its
    restarts: the same number again is the same tap offered again). ``age_s`` is how old the
    tap was when the node sent it, whole seconds rounded down; with ``age_lower_bound`` the tap
    is from an earlier boot of the node and *at least* that old. ``tapped_offline``: nobody
    polled the node when it was made. ``may_repeat_raw``: it may already have arrived as a
    plain :class:`CardRead`. ``waiting``: how many more the node still holds. ``mono_time`` is
    the host's monotonic clock when the record reached the driver.
    """

    bus: str
    address: int
    number: int
    uid: bytes
    age_s: int
    age_lower_bound: bool
    tapped_offline: bool
    may_repeat_raw: bool
    waiting: int
    mono_time: float

    @property
    def wristband(self) -> str:
        return self.uid.hex()


@dataclass(frozen=True, slots=True)
class UnknownReply:
    """A manufacturer reply (osdp_MFGREP) the driver does not understand: another vendor's, a
    message type or version ours does not send, or a malformed tap record. ``reason`` is the
    word from :class:`drivers.node_reports.NodeReportError`; ``data`` is what followed the
    vendor code. Never dropped silently: the gateway records it."""

    bus: str
    address: int
    vendor_code: int
    data: bytes
    reason: str
    mono_time: float


@dataclass(frozen=True, slots=True)
class ReaderStatus:
    """A reader's link state changed (or was first learned).

    ``reason`` says why in a word or two: ``secure_channel_active``, ``no_answer``,
    ``secure_channel_refused`` (the reader answers but its key does not match: wrong SCBK or a
    reader still in install mode), ``link_errors`` (it answers, but frames are damaged),
    ``bus_lost`` (the serial adapter vanished).
    """

    bus: str
    address: int
    online: bool
    sc_active: bool
    reason: str
    mono_time: float


@dataclass(frozen=True, slots=True)
class ReaderReport:
    """Tamper / power status a reader reported on its own (``None``: not reported)."""

    bus: str
    address: int
    tamper: bool | None
    power_fail: bool | None
    mono_time: float


BusEvent = CardRead | NodeTap | UnknownReply | ReaderStatus | ReaderReport


@dataclass(frozen=True, slots=True)
class ReaderCounters:
    """Per-reader health counters for ``compound-gw readers``."""

    bus: str
    address: int
    online: bool
    sc_active: bool
    reason: str
    card_reads: int
    offline_transitions: int
    refusals: int
    held_reads: int = 0  # reads delivered after a reconnect (time uncertain)
    feedback_lost: int = 0  # feedback the reader never took before its deadline
    node_taps: int = 0  # numbered tap records (osdp_MFGREP) from our node
    unknown_replies: int = 0  # manufacturer replies not understood (recorded as evidence)


@dataclass(frozen=True, slots=True)
class BusCounters:
    """Per-bus health counters: reopen attempts, damaged frames received, NAKs from readers
    (a reader NAKs a command that reached it damaged), commands left unanswered."""

    bus: str
    state: str
    opens: int
    failures: int
    bad_frames: int
    naks: int
    rx_bytes: int
    tx_bytes: int
    last_error: str
    unanswered: int = 0  # commands no reader answered (damaged or lost on the line)
    late_replies: int = 0  # answers that came after libosdp gave up waiting (kept from it)
    unknown_replies: int = 0  # manufacturer replies not understood (recorded as evidence)


@runtime_checkable
class CheckpointBus(Protocol):
    """A bus of checkpoint readers (see the module docstring for the call sequence)."""

    name: str

    async def start(self) -> None:
        """Begin opening the bus; returns at once (the bus reconnects on its own)."""

    def events(self) -> AsyncIterator[BusEvent]:
        """Card reads, node tap records, unknown replies and reader state changes, in arrival
        order, until :meth:`aclose`."""

    async def feedback(self, address: int, feedback: Feedback) -> bool:
        """Show ``feedback`` on the reader. The bus keeps trying for a few seconds if the
        reader cannot take it at once; False when it cannot be delivered at all."""

    def counters(self) -> tuple[BusCounters, list[ReaderCounters]]:
        """A snapshot of the bus's and its readers' health counters."""

    async def aclose(self) -> None:
        """Stop the bus and its threads; ``events()`` ends."""
