"""The pure core of the line emulator: a wire that moves bytes at a baud rate, with faults.

Theory of operation. A :class:`Wire` is one physical medium: the TX pair of a null-modem
direction, or the single twisted pair of an RS-485 bus. Transmitters (``source`` ids) hand it
bytes with :meth:`Wire.send`; each byte is scheduled to *arrive* one character time (10 bits
at the baud rate, 8N1) after the previous byte from the same transmitter, so a frame goes out
evenly spaced, never dribbled. :meth:`Wire.take_due` returns what has arrived by ``now``, after
the configured faults (bit flips, drops, inserted garbage) have been applied.

Two transmitters whose characters overlap in time on the same wire collide: both characters
are marked garbled when the second is scheduled, and receivers get one random byte per
character time of overlap instead (the transmitters themselves do not hear it, as an
auto-direction RS-485 transceiver does not listen while it drives). With ``byte_time == 0``
(unpaced mode) nothing is ever in flight, so nothing collides.

No I/O and no clock in here: time comes in as an argument and randomness from an injected
``random.Random``, so the scheduling is tested with a fake clock. Usage::

    wire = Wire(byte_time=10 / 9600, rng=random.Random(1))
    wire.send(source=0, data=b"\\x01\\x03", now=0.0)
    wire.take_due(now=0.0021)   # [Delivery(origins=(0,), data=b"\\x01\\x03")]
"""

from __future__ import annotations

import math
import random
from collections import deque
from dataclasses import dataclass, fields

BITS_PER_CHAR = 10  # start + 8 data + stop: 8N1, the only framing a pty-backed line can model
_SAME_SLOT = 0.999  # float slack: characters exactly one char time apart are not overlapping
NOISE = -1  # source id of injected garbage: nobody's transmitter, so everybody hears it


def char_time(baud: int) -> float:
    """Seconds one 8N1 character occupies the wire at ``baud``."""
    if baud <= 0:
        raise ValueError(f"baud must be positive, got {baud}")
    return BITS_PER_CHAR / baud


@dataclass(frozen=True, slots=True)
class Faults:
    """Fault rates applied to every character a wire delivers (all 0: a clean line).

    ``bit_error_rate`` is per bit; ``drop_rate`` and ``garbage_rate`` are per character
    (a dropped character is lost at the receiver; garbage is a random extra character).
    """

    bit_error_rate: float = 0.0
    drop_rate: float = 0.0
    garbage_rate: float = 0.0

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{f.name} must be within 0..1, got {value}")

    @property
    def clean(self) -> bool:
        return not (self.bit_error_rate or self.drop_rate or self.garbage_rate)


@dataclass(frozen=True, slots=True)
class LineStats:
    """Counters of a line (or one direction of it); add them with ``+``.

    ``received``: bytes read from transmitters; ``forwarded``: characters put on the receive
    side (counted once per character, however many receivers hear it); ``flipped_bits`` /
    ``corrupted``: bit errors and the characters that carried them; ``dropped``: characters
    lost by ``drop_rate``; ``garbage``: random characters inserted (``garbage_rate`` and
    ``inject_garbage``); ``collisions``: garbled characters delivered for overlapping
    transmissions; ``overruns``: characters lost because a receiver did not read and its
    buffer filled; ``lost_unplugged``: characters that had nowhere to go while unplugged.
    """

    received: int = 0
    forwarded: int = 0
    flipped_bits: int = 0
    corrupted: int = 0
    dropped: int = 0
    garbage: int = 0
    collisions: int = 0
    overruns: int = 0
    lost_unplugged: int = 0
    stalls: int = 0
    unplugs: int = 0
    replugs: int = 0

    def __add__(self, other: LineStats) -> LineStats:
        return LineStats(**{f.name: getattr(self, f.name) + getattr(other, f.name)
                            for f in fields(self)})


@dataclass(frozen=True, slots=True)
class Delivery:
    """Characters that reached the receive side; ``origins`` must not hear them (own echo)."""

    origins: tuple[int, ...]
    data: bytes


@dataclass(slots=True)
class _Char:
    due: float  # when the stop bit ends: the receiver has the whole character
    value: int
    source: int
    partners: set[int] | None = None  # sources it collided with (None: clean)


@dataclass(slots=True)
class _Counters:
    received: int = 0
    forwarded: int = 0
    flipped_bits: int = 0
    corrupted: int = 0
    dropped: int = 0
    garbage: int = 0
    collisions: int = 0
    stalls: int = 0


class Wire:
    """One medium moving 8N1 characters at a baud rate; see the module docstring."""

    def __init__(self, byte_time: float, rng: random.Random, faults: Faults | None = None) -> None:
        if byte_time < 0:
            raise ValueError("byte_time must not be negative")
        self.byte_time = byte_time
        self._rng = rng
        self._faults = faults or Faults()
        self._queues: dict[int, deque[_Char]] = {}
        self._free_at: dict[int, float] = {}  # per source: arrival time of its last character
        self._stall_until = -math.inf
        self._last_garbled_due = -math.inf
        self._bits_to_next_flip = self._draw_flip_gap()
        self.counters = _Counters()

    # -- configuration ---------------------------------------------------------------------

    @property
    def faults(self) -> Faults:
        return self._faults

    @faults.setter
    def faults(self, value: Faults) -> None:
        self._faults = value
        self._bits_to_next_flip = self._draw_flip_gap()

    def stall(self, now: float, seconds: float) -> None:
        """Stop delivering for ``seconds`` from ``now``; what is in flight arrives afterwards."""
        if seconds <= 0:
            return
        until = max(now, self._stall_until) + seconds
        shift = until - max(now, self._stall_until)
        for queue in self._queues.values():
            for ch in queue:
                ch.due += shift
        for src in self._free_at:
            self._free_at[src] = max(self._free_at[src] + shift, until)
        self._stall_until = until
        self.counters.stalls += 1

    # -- transmit side ---------------------------------------------------------------------

    def backlog(self, source: int) -> int:
        """Characters from ``source`` still waiting to arrive (flow control for the bridge)."""
        queue = self._queues.get(source)
        return len(queue) if queue else 0

    def send(self, source: int, data: bytes, now: float) -> None:
        """Schedule ``data`` from transmitter ``source``, back to back after what it queued."""
        if not data:
            return
        self.counters.received += len(data)
        bt = self.byte_time
        queue = self._queues.setdefault(source, deque())
        start = max(now, self._free_at.get(source, -math.inf), self._stall_until)
        new = [_Char(start + (i + 1) * bt, b, source) for i, b in enumerate(data)]
        if bt > 0:
            self._mark_collisions(source, new)
        queue.extend(new)
        self._free_at[source] = new[-1].due

    def _mark_collisions(self, source: int, new: list[_Char]) -> None:
        # Character intervals are (due - bt, due]; two overlap when their dues differ by < bt.
        bt = self.byte_time
        first, last = new[0].due, new[-1].due
        for other_src, queue in self._queues.items():
            if other_src == source or not queue:
                continue
            for ch in queue:
                if ch.due <= first - bt or ch.due >= last + bt:
                    continue
                # Indices of new characters within bt of ch (at most two, the grid is bt apart).
                pos = (ch.due - first) / bt
                for i in (math.floor(pos), math.ceil(pos)):
                    if 0 <= i < len(new) and abs(new[i].due - ch.due) < bt * _SAME_SLOT:
                        _collide(ch, new[i])

    # -- receive side ----------------------------------------------------------------------

    def next_due(self) -> float | None:
        """When the next character arrives, or None when nothing is in flight."""
        dues = [q[0].due for q in self._queues.values() if q]
        return min(dues) if dues else None

    def take_due(self, now: float) -> list[Delivery]:
        """Characters arrived by ``now``, in arrival order, with faults applied."""
        arrived: list[_Char] = []
        for queue in self._queues.values():
            while queue and queue[0].due <= now:
                arrived.append(queue.popleft())
        if not arrived:
            return []
        arrived.sort(key=lambda ch: ch.due)
        out: list[Delivery] = []
        run_origins: tuple[int, ...] | None = None
        run = bytearray()

        def emit(origins: tuple[int, ...], value: int) -> None:
            nonlocal run_origins
            if origins != run_origins and run:
                out.append(Delivery(run_origins or (), bytes(run)))
                run.clear()
            run_origins = origins
            run.append(value)

        c = self.counters
        f = self._faults
        for ch in arrived:
            if ch.partners is not None:
                if ch.due - self._last_garbled_due < self.byte_time * _SAME_SLOT:
                    continue  # same character time as the garbage already delivered
                self._last_garbled_due = ch.due
                origins = tuple(sorted({ch.source, *ch.partners} - {NOISE}))
                value = self._rng.randrange(256)
                c.collisions += 1
            else:
                origins = () if ch.source == NOISE else (ch.source,)
                value = ch.value
            if f.drop_rate and self._rng.random() < f.drop_rate:
                c.dropped += 1
                continue
            if f.bit_error_rate:
                value = self._flip_bits(value)
            emit(origins, value)
            c.forwarded += 1
            if f.garbage_rate and self._rng.random() < f.garbage_rate:
                emit((), self._rng.randrange(256))
                c.garbage += 1
                c.forwarded += 1
        if run:
            out.append(Delivery(run_origins or (), bytes(run)))
        return out

    def count_garbage(self, n: int) -> None:
        """Count ``n`` injected garbage characters (sent with source :data:`NOISE`)."""
        self.counters.garbage += n
        self.counters.received -= n  # they were not read from any transmitter

    def _draw_flip_gap(self) -> int:
        # Bits until the next error, geometric: one draw per error, not one per bit.
        ber = self._faults.bit_error_rate
        if ber <= 0:
            return -1
        if ber >= 1:
            return 0
        u = self._rng.random()
        return int(math.log1p(-u) / math.log1p(-ber))

    def _flip_bits(self, value: int) -> int:
        flipped = 0
        pos = self._bits_to_next_flip
        while pos < 8:
            value ^= 1 << pos
            flipped += 1
            pos += 1 + self._draw_flip_gap()
        self._bits_to_next_flip = pos - 8
        if flipped:
            self.counters.flipped_bits += flipped
            self.counters.corrupted += 1
        return value


def _collide(a: _Char, b: _Char) -> None:
    if a.partners is None:
        a.partners = set()
    if b.partners is None:
        b.partners = set()
    a.partners.add(b.source)
    b.partners.add(a.source)


__all__ = [
    "BITS_PER_CHAR",
    "NOISE",
    "Delivery",
    "Faults",
    "LineStats",
    "Wire",
    "char_time",
]
