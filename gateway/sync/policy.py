"""The uploader's decisions, pure: backoff, Retry-After, link state, and what an ack lets us mark.

No asyncio, no sockets, no clock reads: time and randomness are arguments::

    backoff = Backoff(initial_s=2, max_s=300, rng=random.Random())
    delay = backoff.next_delay()                          # full jitter: uniform(0, ceiling)
    verdict = judge_ack(batch, ack, journal_last_seq=1200, in_order=True)
    verdict.mark_through, verdict.mark_seqs
"""

from __future__ import annotations

import email.utils
import enum
import math
import random
from dataclasses import dataclass, field
from typing import Final

from gateway.errors import SyncError
from wire import Ack, Batch

BACKOFF_INITIAL_S: Final = 2.0
BACKOFF_MAX_S: Final = 300.0
FIRST_DELAY_MAX_S: Final = 30.0
RETRY_AFTER_MAX_S: Final = 3600.0  # a centre asking for more than an hour is not believed
RETRY_AFTER_MAX_CHARS: Final = 100  # an HTTP-date is 29 characters; longer is garbage


class Backoff:
    """Exponential backoff with full jitter: the n-th delay is uniform(0, min(max, initial*2^n)).

    Full jitter spreads 117 gateways returning at once over the whole window instead of
    synchronising them into waves.
    """

    def __init__(self, initial_s: float, max_s: float, rng: random.Random) -> None:
        self.initial_s = initial_s
        self.max_s = max_s
        self.rng = rng
        self.attempt = 0

    def ceiling(self) -> float:
        return min(self.max_s, self.initial_s * (2 ** min(self.attempt, 62)))

    def next_delay(self) -> float:
        delay = self.rng.uniform(0, self.ceiling())
        self.attempt += 1
        return delay

    def reset(self) -> None:
        self.attempt = 0


def parse_retry_after(value: str | None, now_wall: float) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date), or None.

    The header comes from the network, so this never raises: anything it cannot read (odd
    Unicode digits such as ``²`` or ``١٢``, a date past year 9999, a negative number, garbage)
    is None and the caller falls back to its own backoff. Only ASCII digits are delta-seconds
    (RFC 9110); the answer is always within 0..RETRY_AFTER_MAX_S.
    """
    if value is None:
        return None
    text = value.strip()
    if not text or len(text) > RETRY_AFTER_MAX_CHARS:
        return None
    if text.isascii() and text.isdigit():
        # float() has no digit limit (int() refuses above 4300 digits); 10**400 is inf, capped.
        return min(float(text), RETRY_AFTER_MAX_S)
    try:
        when = email.utils.parsedate_to_datetime(text)
        delay = when.timestamp() - now_wall
    except (TypeError, ValueError, IndexError, OverflowError, OSError, AttributeError):
        return None
    if not math.isfinite(delay):
        return None
    return min(max(0.0, delay), RETRY_AFTER_MAX_S)


class Link(enum.Enum):
    UNKNOWN = "unknown"
    UP = "up"
    DOWN = "down"


@dataclass(slots=True)
class LinkTracker:
    """Link up/down as the uploader experiences it. Methods return the transition (or None)
    so the caller can journal ``link.up`` / ``link.down`` exactly once per change."""

    state: Link = Link.UNKNOWN
    since: float = 0.0
    last_success: float | None = None
    last_error: str = ""
    failures: int = 0
    transitions: list[tuple[Link, float]] = field(default_factory=list)

    def success(self, now: float) -> Link | None:
        self.last_success = now
        self.failures = 0
        return self._move(Link.UP, now)

    def failure(self, now: float, reason: str) -> Link | None:
        self.last_error = reason
        self.failures += 1
        return self._move(Link.DOWN, now)

    def _move(self, to: Link, now: float) -> Link | None:
        if self.state is to:
            return None
        self.state = to
        self.since = now
        return to


@dataclass(frozen=True, slots=True)
class AckVerdict:
    """What the journal may mark synced after an ack: through a seq, or exactly these seqs."""

    mark_through: int | None
    mark_seqs: tuple[int, ...]
    note: str = ""


def judge_ack(batch: Batch, ack: Ack, *, journal_last_seq: int, in_order: bool) -> AckVerdict:
    """Decide what an ack allows us to mark, or raise SyncError for an ack we cannot trust.

    Never marks a seq that was not in this batch or in a skipped hole of it (rows the centre
    could not have stored from us are never marked). For an in-order batch every seq up to
    ``batch.last_seq`` is either in the batch or already synced/absent, so a confirming ack
    lets us mark through ``last_seq``; evidence sent ahead is marked seq by seq.
    """
    if ack.gateway_id != batch.gateway_id:
        raise SyncError("ack is for another gateway", got=ack.gateway_id, expected=batch.gateway_id)
    if ack.batch_id != batch.batch_id:
        raise SyncError("ack answers another batch", got=ack.batch_id, expected=batch.batch_id)
    if ack.highest > journal_last_seq:
        raise SyncError(
            "ack claims seqs this gateway never wrote",
            highest=ack.highest,
            journal_last_seq=journal_last_seq,
        )
    if not ack.confirms_batch(batch):
        raise SyncError(
            "ack does not confirm every event of the batch",
            batch_id=batch.batch_id,
            events=len(batch.events),
            stored=ack.stored,
            duplicates=ack.duplicates,
            watermark=ack.watermark,
        )
    if in_order and ack.watermark >= batch.last_seq:
        return AckVerdict(batch.last_seq, ())
    note = "" if not in_order else "centre watermark below batch end; marking seq by seq"
    return AckVerdict(None, tuple(batch.seqs()), note)
