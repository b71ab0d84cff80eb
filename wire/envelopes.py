"""The sync envelopes: a batch of journal events (gateway → centre) and its ack (centre → gateway).

Both are frozen dataclasses with ``to_dict()`` / ``from_dict()``; ``from_dict`` is the only way
hostile JSON becomes a value, and it refuses anything off-shape with :class:`EnvelopeError`::

    batch = Batch.build("gw-01", "b-1", [e.to_dict() for e in evs], head_seq=1200, created_at=t)
    raw = seal(BATCH_TYPE, batch.to_dict(), key)                  # gateway
    batch = Batch.from_dict(open_sealed(raw, BATCH_TYPE, pub))     # centre
    ack = Ack.from_dict(decode(reply))                             # gateway
    ack.confirms(batch.seqs())                                     # every seq stored?

A batch's events are in strictly ascending ``seq`` but need not be contiguous: when backlogged
the gateway sends evidence ahead of telemetry. ``skipped`` lists seq ranges below ``last_seq``
that the gateway states it will never send (telemetry dropped under the disk budget, rows lost
in a journal recovery, or rows the centre already acknowledged); the centre counts them as
accounted for, so its watermark can pass them. The ack's ``watermark`` is the highest seq up to
which the centre holds *every* event of this gateway; ``gaps`` lists missing ranges between the
watermark and ``highest`` (the highest seq held), so out-of-order evidence can be confirmed too.

Evidence events may carry the hash-chain fields ``prev_seq``, ``prev_hash`` and ``hash``
(:mod:`wire.chain`); they are optional, so batches of gateways that predate the chain stay
valid at version 1. A centre that predates them refuses them as unknown fields: upgrade the
centre before its gateways.

A batch may also carry ``chain_head``: ``{"seq": S, "hash": H}``, the head of the gateway's
hash chain (its newest evidence event and that event's ``hash``) when the batch was built. It
is under the batch signature, so it is a digest of the journal's history signed with the
gateway's own key at every upload; the centre compares it with the event it holds at ``S``
(docs/antifraud.md, "Signed chain head"). Optional, like the chain fields.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from wire.chain import GENESIS, HASH_RE, ChainError, check_links
from wire.errors import EnvelopeError

WIRE_VERSION: Final = 1
BATCH_TYPE: Final = "batch"
COMMAND_TYPE: Final = "command"  # issue 9: same canonical encoding and signing helpers

EVENT_FIELDS: Final = frozenset(
    {"seq", "kind", "cls", "payload", "wall_time", "mono_time", "boot_id", "clock_synced"}
)
EVENT_CHAIN_FIELDS: Final = frozenset({"prev_seq", "prev_hash", "hash"})  # wire/chain.py
EVENT_CLASSES: Final = ("evidence", "telemetry")
MAX_BATCH_EVENTS: Final = 10_000
MAX_GAPS_LISTED: Final = 100
MAX_SEQ: Final = 2**62

GATEWAY_ID_RE: Final = re.compile(r"[a-z0-9][a-z0-9-]{1,62}")
BATCH_ID_RE: Final = re.compile(r"[A-Za-z0-9_.:-]{1,80}")
KIND_RE: Final = re.compile(r"[a-z0-9_]{1,40}(\.[a-z0-9_]{1,40}){0,5}")


def _field(d: Mapping[str, Any], name: str, where: str) -> Any:
    if name not in d:
        raise EnvelopeError(f"{where}.{name} is missing", field=f"{where}.{name}")
    return d[name]


def _exact_keys(
    d: Any, keys: frozenset[str], where: str, optional: frozenset[str] = frozenset()
) -> None:
    if not isinstance(d, Mapping):
        raise EnvelopeError(f"{where} is not an object", field=where)
    extra = set(d) - keys - optional
    if extra:
        raise EnvelopeError(f"{where} has unknown field(s) {sorted(extra)}", field=where)
    missing = keys - set(d)
    if missing:
        raise EnvelopeError(f"{where} is missing field(s) {sorted(missing)}", field=where)


def brief(value: Any, limit: int = 60) -> str:
    """A short repr for an error message, safe for any value (a 5000-digit int's repr raises)."""
    if isinstance(value, int) and not -(10**limit) < value < 10**limit:
        return "<integer too long>"
    if isinstance(value, list | dict | tuple):
        return f"<{type(value).__name__}>"
    return repr(value)[:limit]


def _int(value: Any, where: str, lo: int = 0, hi: int = MAX_SEQ) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise EnvelopeError(f"{where} must be an integer", field=where)
    if not lo <= value <= hi:
        raise EnvelopeError(f"{where}={brief(value)} is outside {lo}..{hi}", field=where)
    return value


def _number(value: Any, where: str) -> float:
    """A finite float from a JSON number; a huge integer (a dict built without
    :func:`~wire.canonical.decode`) or an infinity is refused, never an OverflowError."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise EnvelopeError(f"{where} must be a number", field=where)
    return finite_float(value, where)


def finite_float(value: int | float, where: str) -> float:
    """``float(value)`` when finite, else :class:`EnvelopeError` naming ``where``."""
    try:
        out = float(value)
    except OverflowError:
        raise EnvelopeError(f"{where} is too large", field=where) from None
    if not math.isfinite(out):
        raise EnvelopeError(f"{where} must be a finite number", field=where)
    return out


def _str(value: Any, where: str, pattern: re.Pattern[str] | None = None, max_len: int = 200) -> str:
    if not isinstance(value, str):
        raise EnvelopeError(f"{where} must be a string", field=where)
    if len(value) > max_len:
        raise EnvelopeError(f"{where} is longer than {max_len}", field=where)
    if pattern is not None and not pattern.fullmatch(value):
        raise EnvelopeError(f"{where}={value[:80]!r} does not match {pattern.pattern}", field=where)
    return value


_PLAIN_EVENT_KEYS: Final = EVENT_FIELDS
_CHAINED_EVENT_KEYS: Final = EVENT_FIELDS | EVENT_CHAIN_FIELDS


def _plain_event(ev: Any) -> bool:
    """True when :func:`check_event` would pass ``ev``: the fast path for a well-formed event
    (exact types, every rule of the full check inline, no messages). Anything else, or
    anything odd (a subclass, a Mapping that is not a dict), answers False and the caller runs
    the full check for the verdict and the message."""
    if type(ev) is not dict:
        return False
    keys = ev.keys()
    if keys == _PLAIN_EVENT_KEYS:
        chained = False
    elif keys == _CHAINED_EVENT_KEYS:
        chained = True
    else:
        return False
    seq = ev["seq"]
    kind = ev["kind"]
    wall = ev["wall_time"]
    mono = ev["mono_time"]
    boot_id = ev["boot_id"]
    if not (
        type(seq) is int
        and 1 <= seq <= MAX_SEQ
        and type(kind) is str
        and len(kind) <= 200
        and KIND_RE.fullmatch(kind) is not None
        and ev["cls"] in EVENT_CLASSES
        and type(ev["payload"]) is dict
        and (type(wall) is float or (type(wall) is int and -_FAST_INT < wall < _FAST_INT))
        and math.isfinite(wall)
        and (type(mono) is float or (type(mono) is int and -_FAST_INT < mono < _FAST_INT))
        and math.isfinite(mono)
        and type(boot_id) is str
        and len(boot_id) <= 64
        and type(ev["clock_synced"]) is bool
    ):
        return False
    if chained:
        prev_seq, prev_hash, digest = ev["prev_seq"], ev["prev_hash"], ev["hash"]
        if not (
            type(prev_seq) is int
            and seq < 2**62  # wire.chain's bound for every chained seq
            and 0 <= prev_seq < seq
            and type(prev_hash) is str
            and HASH_RE.fullmatch(prev_hash) is not None
            and (prev_seq != 0 or prev_hash == GENESIS)
            and type(digest) is str
            and HASH_RE.fullmatch(digest) is not None
        ):
            return False
    return True


# Integers this small convert to a finite float without OverflowError (the full check decides
# for anything larger).
_FAST_INT: Final = 2**53


def check_event(ev: Any, where: str = "event") -> dict[str, Any]:
    """Validate one event dict (the Event field names, exactly, plus all three chain fields
    of an evidence event or none of them); return it unchanged. Raises :class:`EnvelopeError`
    and nothing else. The chain fields' shape is checked here; whether the hash matches the
    body is the centre's judgement (:mod:`wire.chain`), never a reason to refuse the batch."""
    if _plain_event(ev):
        return dict(ev)
    _exact_keys(ev, EVENT_FIELDS, where, optional=EVENT_CHAIN_FIELDS)
    present = EVENT_CHAIN_FIELDS & set(ev)
    if present and present != EVENT_CHAIN_FIELDS:
        raise EnvelopeError(
            f"{where} carries some chain fields but not all of {sorted(EVENT_CHAIN_FIELDS)}",
            field=where,
        )
    _int(ev["seq"], f"{where}.seq", lo=1)
    _str(ev["kind"], f"{where}.kind", KIND_RE)
    if ev["cls"] not in EVENT_CLASSES:
        raise EnvelopeError(f"{where}.cls must be one of {EVENT_CLASSES}", field=f"{where}.cls")
    if not isinstance(ev["payload"], Mapping):
        raise EnvelopeError(f"{where}.payload must be an object", field=f"{where}.payload")
    _number(ev["wall_time"], f"{where}.wall_time")
    _number(ev["mono_time"], f"{where}.mono_time")
    _str(ev["boot_id"], f"{where}.boot_id", max_len=64)
    if not isinstance(ev["clock_synced"], bool):
        raise EnvelopeError(
            f"{where}.clock_synced must be true or false", field=f"{where}.clock_synced"
        )
    if present:
        try:
            check_links(ev)
        except ChainError as exc:
            raise EnvelopeError(f"{where}: {exc.reason}", field=where) from None
    return dict(ev)


@dataclass(frozen=True, slots=True)
class ChainHead:
    """The head of a gateway's journal hash chain: newest evidence ``seq`` and its ``hash``."""

    seq: int
    hash: str

    def to_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "hash": self.hash}

    @classmethod
    def from_dict(cls, d: Any, where: str = "batch.chain_head") -> ChainHead:
        _exact_keys(d, frozenset({"seq", "hash"}), where)
        seq = _int(d["seq"], f"{where}.seq", lo=1)
        digest = d["hash"]
        if not isinstance(digest, str) or not HASH_RE.fullmatch(digest):
            raise EnvelopeError(f"{where}.hash must be 64 lowercase hex digits", field=where)
        return cls(seq, digest)


@dataclass(frozen=True, slots=True)
class Batch:
    """Events of one gateway, ascending seq; ``head_seq`` = the journal's last seq when sent."""

    gateway_id: str
    batch_id: str
    first_seq: int
    last_seq: int
    head_seq: int
    created_at: float
    events: tuple[Mapping[str, Any], ...]
    skipped: tuple[tuple[int, int], ...] = ()
    chain_head: ChainHead | None = None

    @classmethod
    def build(
        cls,
        gateway_id: str,
        batch_id: str,
        events: Sequence[Mapping[str, Any]],
        *,
        head_seq: int,
        created_at: float,
        skipped: Sequence[tuple[int, int]] = (),
        chain_head: ChainHead | None = None,
    ) -> Batch:
        """A checked batch from event dicts (``Event.to_dict()``), first/last taken from them."""
        if not events:
            raise EnvelopeError("a batch needs at least one event")
        d: dict[str, Any] = {
            "v": WIRE_VERSION,
            "gateway_id": gateway_id,
            "batch_id": batch_id,
            "first_seq": events[0]["seq"],
            "last_seq": events[-1]["seq"],
            "head_seq": head_seq,
            "created_at": created_at,
            "events": list(events),
            "skipped": [list(r) for r in skipped],
        }
        if chain_head is not None:
            d["chain_head"] = chain_head.to_dict()
        return cls.from_dict(d)

    def to_dict(self) -> dict[str, Any]:
        d = self._fields()
        if self.chain_head is not None:
            d["chain_head"] = self.chain_head.to_dict()
        return d

    def _fields(self) -> dict[str, Any]:
        return {
            "v": WIRE_VERSION,
            "gateway_id": self.gateway_id,
            "batch_id": self.batch_id,
            "first_seq": self.first_seq,
            "last_seq": self.last_seq,
            "head_seq": self.head_seq,
            "created_at": self.created_at,
            "events": [dict(e) for e in self.events],
            "skipped": [list(r) for r in self.skipped],
        }

    def seqs(self) -> list[int]:
        return [int(e["seq"]) for e in self.events]

    @classmethod
    def from_dict(cls, d: Any) -> Batch:
        """A checked batch from decoded JSON; :class:`EnvelopeError` (only) for anything else."""
        keys = frozenset(
            {
                "v",
                "gateway_id",
                "batch_id",
                "first_seq",
                "last_seq",
                "head_seq",
                "created_at",
                "events",
                "skipped",
            }
        )
        _exact_keys(d, keys, "batch", optional=frozenset({"chain_head"}))
        if d["v"] != WIRE_VERSION:
            raise EnvelopeError(
                f"batch.v={brief(d['v'])}: only version {WIRE_VERSION} is understood"
            )
        gateway_id = _str(d["gateway_id"], "batch.gateway_id", GATEWAY_ID_RE)
        batch_id = _str(d["batch_id"], "batch.batch_id", BATCH_ID_RE)
        first = _int(d["first_seq"], "batch.first_seq", lo=1)
        last = _int(d["last_seq"], "batch.last_seq", lo=1)
        head = _int(d["head_seq"], "batch.head_seq", lo=1)
        created = _number(d["created_at"], "batch.created_at")
        events = d["events"]
        if not isinstance(events, list | tuple) or not events:
            raise EnvelopeError("batch.events must be a non-empty array", field="batch.events")
        if len(events) > MAX_BATCH_EVENTS:
            raise EnvelopeError(
                f"batch holds {len(events)} events, the limit is {MAX_BATCH_EVENTS}",
                field="batch.events",
            )
        checked = []
        prev = 0
        for i, ev in enumerate(events):
            item = check_event(ev, f"batch.events[{i}]")
            if item["seq"] <= prev:
                raise EnvelopeError(
                    f"batch.events[{i}].seq={item['seq']} is not above the previous {prev}",
                    field=f"batch.events[{i}].seq",
                )
            prev = item["seq"]
            checked.append(item)
        if checked[0]["seq"] != first or checked[-1]["seq"] != last:
            raise EnvelopeError("batch.first_seq/last_seq do not match its events")
        if head < last:
            raise EnvelopeError(f"batch.head_seq={head} is below last_seq={last}")
        skipped = _ranges(d["skipped"], "batch.skipped", MAX_BATCH_EVENTS + 1)
        if skipped and skipped[-1][1] >= last:
            raise EnvelopeError("batch.skipped must lie below last_seq", field="batch.skipped")
        _disjoint(skipped, [e["seq"] for e in checked])
        chain_head = None
        if "chain_head" in d:
            chain_head = ChainHead.from_dict(d["chain_head"])
            if chain_head.seq > head:
                raise EnvelopeError(
                    f"batch.chain_head.seq={chain_head.seq} is above head_seq={head}",
                    field="batch.chain_head",
                )
        return cls(
            gateway_id, batch_id, first, last, head, created, tuple(checked), skipped, chain_head
        )


def _disjoint(ranges: Sequence[tuple[int, int]], seqs: Sequence[int]) -> None:
    """No event seq may fall inside a skipped range (both ascending: one merge pass)."""
    i = 0
    for seq in seqs:
        while i < len(ranges) and ranges[i][1] < seq:
            i += 1
        if i < len(ranges) and ranges[i][0] <= seq:
            raise EnvelopeError(f"batch.skipped covers seq {seq}, which the batch carries")


def _ranges(
    value: Any, where: str, max_ranges: int = MAX_GAPS_LISTED
) -> tuple[tuple[int, int], ...]:
    if not isinstance(value, list | tuple):
        raise EnvelopeError(f"{where} must be an array", field=where)
    if len(value) > max_ranges:
        raise EnvelopeError(f"{where} lists more than {max_ranges} ranges", field=where)
    out: list[tuple[int, int]] = []
    for i, item in enumerate(value):
        if not isinstance(item, list | tuple) or len(item) != 2:
            raise EnvelopeError(f"{where}[{i}] must be [first, last]", field=f"{where}[{i}]")
        lo = _int(item[0], f"{where}[{i}][0]", lo=1)
        hi = _int(item[1], f"{where}[{i}][1]", lo=1)
        if hi < lo or (out and lo <= out[-1][1] + 1):
            raise EnvelopeError(f"{where}[{i}] is empty, overlapping or out of order", field=where)
        out.append((lo, hi))
    return tuple(out)


@dataclass(frozen=True, slots=True)
class Ack:
    """The centre's reply to a batch: what it now holds for this gateway."""

    gateway_id: str
    batch_id: str
    watermark: int
    highest: int
    gaps: tuple[tuple[int, int], ...]
    gaps_truncated: bool
    stored: int
    duplicates: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "v": WIRE_VERSION,
            "gateway_id": self.gateway_id,
            "batch_id": self.batch_id,
            "watermark": self.watermark,
            "highest": self.highest,
            "gaps": [list(g) for g in self.gaps],
            "gaps_truncated": self.gaps_truncated,
            "stored": self.stored,
            "duplicates": self.duplicates,
        }

    @classmethod
    def from_dict(cls, d: Any) -> Ack:
        """A checked ack from decoded JSON; :class:`EnvelopeError` (only) for anything else."""
        keys = frozenset(
            {
                "v",
                "gateway_id",
                "batch_id",
                "watermark",
                "highest",
                "gaps",
                "gaps_truncated",
                "stored",
                "duplicates",
            }
        )
        _exact_keys(d, keys, "ack")
        if d["v"] != WIRE_VERSION:
            raise EnvelopeError(f"ack.v={brief(d['v'])}: only version {WIRE_VERSION} is understood")
        wm = _int(d["watermark"], "ack.watermark")
        highest = _int(d["highest"], "ack.highest")
        if highest < wm:
            raise EnvelopeError(f"ack.highest={highest} is below ack.watermark={wm}")
        gaps = _ranges(d["gaps"], "ack.gaps")
        truncated = d["gaps_truncated"]
        if not isinstance(truncated, bool):
            raise EnvelopeError("ack.gaps_truncated must be true or false")
        # The watermark is the highest *contiguous* seq, so wm+1 is missing whenever anything
        # above it is held: the first gap starts there and the last ends below ``highest``.
        if gaps and (gaps[0][0] != wm + 1 or gaps[-1][1] >= highest):
            raise EnvelopeError("ack.gaps must run from watermark+1 to below highest")
        if highest > wm and not gaps:
            raise EnvelopeError("ack.highest is above the watermark but no gap is listed")
        return cls(
            gateway_id=_str(d["gateway_id"], "ack.gateway_id", GATEWAY_ID_RE),
            batch_id=_str(d["batch_id"], "ack.batch_id", BATCH_ID_RE),
            watermark=wm,
            highest=highest,
            gaps=gaps,
            gaps_truncated=truncated,
            stored=_int(d["stored"], "ack.stored"),
            duplicates=_int(d["duplicates"], "ack.duplicates"),
        )

    def holds(self, seq: int) -> bool:
        """Whether the ack is consistent with the centre holding ``seq``: at or below the
        watermark, or up to ``highest`` and in none of the listed gaps (gaps beyond a truncated
        list are unknown, which is why :meth:`confirms_batch` also checks the counts)."""
        if seq <= self.watermark:
            return True
        if seq > self.highest:
            return False
        return not any(lo <= seq <= hi for lo, hi in self.gaps)

    def confirms_batch(self, batch: Batch) -> bool:
        """Whether this ack answers ``batch`` and states that every event of it is stored:
        same gateway and batch id, ``stored + duplicates`` equal to the batch size, and no
        event seq contradicted by watermark, highest or the listed gaps."""
        return (
            self.gateway_id == batch.gateway_id
            and self.batch_id == batch.batch_id
            and self.stored + self.duplicates == len(batch.events)
            and all(self.holds(s) for s in batch.seqs())
        )


def holes(after: int, seqs: Iterable[int]) -> list[tuple[int, int]]:
    """Ranges missing from the ascending ``seqs`` counted from ``after`` + 1 (exclusive start).

    ``holes(10, [12, 13, 17])`` → ``[(11, 11), (14, 16)]``; the gateway sends these as
    ``skipped`` for an in-order batch read after its synced floor.
    """
    return gaps_between(after, seqs)


def gaps_between(watermark: int, held_above: Iterable[int]) -> list[tuple[int, int]]:
    """Missing ranges above ``watermark`` given the ascending seqs held above it."""
    out: list[tuple[int, int]] = []
    prev = watermark
    for s in held_above:
        if s > prev + 1:
            out.append((prev + 1, s - 1))
        prev = s
    return out
