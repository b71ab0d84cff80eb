"""The tap decision: pure, time passed in.

Theory of operation: a card read arrives from reader (bus, address). It is a **tap** the first
time that wristband is seen on that reader in a window of ``window_s`` seconds; later reads
inside the window are **repeats** (journaled as ``tap.repeat`` with their count, never lost,
never a second tap). A wristband not on the roster is an ``unknown_wristband`` event. The
decision says what to journal and which feedback the guard gets *if the journal append is
durable*; when it is not, the caller shows ``Feedback.REFUSED`` instead, never green.

    decider = TapDecider(points, roster, window_s=10.0)
    d = decider.decide(bus="north", address=1, data=b"\\x04\\xa1", bits=16,
                       card_format="raw", now=1234.5)
    d.kind, d.payload, d.feedback

A read the reader **held** while nobody listened (the gateway was down, the bus lost, the link
dropped: ``held=True``) arrives late, so its arrival is not its tap time. When the reader was
out of contact for at most :data:`HELD_READ_TOLERANCE_S` (a drop-out: the guard is still near),
it is a tap as usual with ``time_uncertain_s`` (how much earlier it may have been made). When
that span is longer or unknown (the gateway itself was not running), it is journaled as
``tap.delivered_late``: evidence that the wristband was presented at some unknown earlier time,
never an on-time tap, never green, and it opens no dedupe window (the guard's next tap counts).

Every read is also checked as a band credential (:class:`~gateway.credentials.bands.BandVerifier`,
docs/credentials.md): a SUN message from an NTAG 424 DNA band is verified (MAC under the band's
diversified key, counter rising strictly) and its tap carries ``verified: true``, the
``counter`` and ``counter_gap`` (reads made outside the system since the last one seen); a
UID-only read is ``verified: false``. A replayed, forged, malformed or (at a site that
requires verified bands) UID-only read is a ``tap.refused`` event with its ``reason``, red
at the reader: evidence kept, never a tap.

Reader link states become ``reader.state`` payloads through :func:`reader_state_payload`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from drivers.checkpoints import Feedback, NodeTap
from gateway.credentials.bands import BandVerifier

TAP = "tap"
TAP_REPEAT = "tap.repeat"
TAP_DELIVERED_LATE = "tap.delivered_late"
TAP_REFUSED = "tap.refused"
UNKNOWN_WRISTBAND = "unknown_wristband"
READER_STATE = "reader.state"
READER_STATUS = "reader.status"
# A manufacturer reply (osdp_MFGREP) that is not our node's tap record: evidence of what came.
READER_REPLY_UNKNOWN = "reader.reply_unknown"
# Not an event: the decision for a node tap record the journal already has.
NODE_TAP_DROPPED = "node_tap.dropped"
# Kinds whose payload may carry a node's ``node_tap`` number or a card read to match against.
READ_KINDS = ("tap", "tap.repeat", "tap.delivered_late", "tap.refused", "unknown_wristband",
              "tap.unmapped")  # fmt: skip
# A node's tap record this fresh (exact age, made while polled: a node in "numbered" mode) is a
# live tap: the guard is still at the reader. The node sends a RAW only under 2 s old.
FRESH_NODE_TAP_S = 2
# The node keeps its last 64 taps (firmware_mpy/tapstore.py SLOTS) and offers again only the
# oldest one not confirmed: a number this far below the highest seen is a renumbered node
# (flash wiped, node replaced), never a repeat.
NODE_STORE_WINDOW = 64
# A record with flag bit2 repeats a RAW card read that arrived, by the gateway's clock, this
# long before to this long after the record's tap time (age is whole seconds, rounded down;
# the RAW goes out under 2 s old; then the poll and the clock's own steps).
RAW_REPEAT_BEFORE_S = 2.0
RAW_REPEAT_AFTER_S = 5.0
# A record with an exact age whose tap time is this much later than when the gateway first
# had that number is a new tap with a reused number (renumbered node), never a repeat.
NODE_TAP_TIME_SLACK_S = 3.0
# Recent card reads (RAW) kept per reader for the bit2 match.
_RAW_KEPT = 8
_UNKNOWN_DATA_KEPT = 32  # bytes of an unknown reply kept as evidence (hex)
UNKNOWN_GUARD = "unknown"
# A held read from a reader out of contact at most this long is still a tap (a drop-out; the
# patrol's resolution is minutes), marked with how uncertain its time is.
HELD_READ_TOLERANCE_S = 10.0
# Beyond this many remembered (reader, wristband) pairs, expired ones are swept.
_SWEEP_AT = 4096
# Card data kept as evidence in a refusal, at most (a SUN URL is ~100 bytes).
_MAX_EVIDENCE = 1024


def reader_id(bus: str, address: int) -> str:
    """A reader's id in events: ``bus/address``."""
    return f"{bus}/{address}"


@dataclass(frozen=True, slots=True)
class Point:
    """A checkpoint as the decision core needs it."""

    id: str
    bus: str
    address: int


@dataclass(frozen=True, slots=True)
class TapDecision:
    """What to journal (``kind``, ``payload``) and the feedback once it is durable
    (``None``: show nothing, the guard who made it is gone)."""

    kind: str
    payload: Mapping[str, Any]
    feedback: Feedback | None

    @property
    def is_tap(self) -> bool:
        return self.kind == TAP


@dataclass(slots=True)
class _NodeNumbers:
    top: int
    seen: dict[int, tuple[str, float]] = field(default_factory=dict)  # number -> band, wall


class NodeTapLedger:
    """What the journal already has from each reader, to drop a node's repeated tap records:
    the tap numbers delivered (with their wristband and arrival time), and the last card reads
    (RAW). Pure; rebuilt from the journal at start (:meth:`learn`), so a gateway restart does
    not journal a re-offered tap twice. Times are wall-clock seconds.

        ledger.remember("north/1", 17, "04a1b2c3", wall)
        ledger.repeat("north/1", 17, "04a1b2c3", tapped=wall - 5, exact=True)   # True
    """

    def __init__(self) -> None:
        self._numbers: dict[str, _NodeNumbers] = {}
        self._raw: dict[str, list[tuple[str, float]]] = {}

    def repeat(self, reader: str, number: int, wristband: str, tapped: float, *,
               exact: bool) -> bool:  # fmt: skip
        """The journal already has tap ``number`` from this reader (same wristband). A record
        whose exact tap time is after we first had that number is a reused number instead."""
        known = self._numbers.get(reader)
        if known is None or number <= known.top - NODE_STORE_WINDOW:
            return False
        prev = known.seen.get(number)
        if prev is None or prev[0] != wristband:
            return False
        return not (exact and tapped > prev[1] + NODE_TAP_TIME_SLACK_S)

    def remember(self, reader: str, number: int, wristband: str, wall: float) -> None:
        known = self._numbers.get(reader)
        if known is None or number <= known.top - NODE_STORE_WINDOW:
            known = self._numbers[reader] = _NodeNumbers(number)  # new or renumbered node
        known.seen[number] = (wristband, wall)
        if number > known.top:
            known.top = number
            floor = number - NODE_STORE_WINDOW
            for n in [n for n in known.seen if n <= floor]:
                del known.seen[n]

    def forget(self, reader: str, number: int) -> None:
        """The record could not be journaled: a repeat of it must be taken."""
        known = self._numbers.get(reader)
        if known is not None:
            known.seen.pop(number, None)

    def raw_read(self, reader: str, wristband: str, wall: float) -> None:
        kept = self._raw.setdefault(reader, [])
        kept.append((wristband, wall))
        del kept[:-_RAW_KEPT]

    def raw_repeat(self, reader: str, wristband: str, tapped: float) -> bool:
        """A card read of this wristband from this reader arrived when a RAW of a tap made at
        ``tapped`` would have."""
        return any(
            w == wristband and tapped - RAW_REPEAT_BEFORE_S <= at <= tapped + RAW_REPEAT_AFTER_S
            for w, at in self._raw.get(reader, ())
        )

    def last_read_was_raw_of(self, reader: str, wristband: str, before: float) -> bool:
        """The latest thing this reader delivered was a card read (RAW) of this wristband,
        arriving no later than ``before``: what a node reset between sending a RAW and seeing it
        confirmed leaves behind (the node then offers that tap again, with bit0, not bit2)."""
        kept = self._raw.get(reader)
        if not kept:
            return False
        w, at = kept[-1]
        known = self._numbers.get(reader)
        later_record = known is not None and any(t > at for _w, t in known.seen.values())
        return w == wristband and at <= before and not later_record

    def learn(self, payload: Mapping[str, Any], wall: float) -> None:
        """Take a journaled read event (kinds :data:`READ_KINDS`) into account."""
        reader, wristband = payload.get("reader"), payload.get("wristband")
        if not isinstance(reader, str) or not isinstance(wristband, str):
            return
        number = payload.get("node_tap")
        if isinstance(number, int) and not isinstance(number, bool):
            self.remember(reader, number, wristband, wall)
        elif payload.get("format") is not None:
            self.raw_read(reader, wristband, wall)


def unknown_reply_payload(
    *, bus: str, address: int, checkpoint: str | None, vendor_code: int, data: bytes, reason: str
) -> dict[str, Any]:
    """The ``reader.reply_unknown`` evidence payload: compact, the data hex and truncated."""
    return {
        "reader": reader_id(bus, address),
        "checkpoint": checkpoint,
        "vendor_code": f"{vendor_code & 0xFFFFFF:06x}" if vendor_code >= 0 else None,
        "reason": reason,
        "length": len(data),
        "data": data[:_UNKNOWN_DATA_KEPT].hex(),
        "truncated": len(data) > _UNKNOWN_DATA_KEPT,
    }


@dataclass(slots=True)
class _Window:
    opened_at: float
    repeats: int = 0


@dataclass(slots=True)
class TapDecider:
    """Deduplicates reads per (reader, wristband) and looks wristbands up in the roster."""

    points: Mapping[tuple[str, int], Point]
    roster: Mapping[str, str]
    window_s: float = 10.0
    bands: BandVerifier = field(default_factory=lambda: BandVerifier(None))
    node_taps: NodeTapLedger = field(default_factory=NodeTapLedger)
    _windows: dict[tuple[str, int, str], _Window] = field(default_factory=dict)

    @classmethod
    def build(
        cls,
        points: Iterable[Point],
        roster: Mapping[str, str],
        window_s: float = 10.0,
        bands: BandVerifier | None = None,
    ) -> TapDecider:
        return cls(
            {(p.bus, p.address): p for p in points},
            dict(roster),
            window_s,
            bands if bands is not None else BandVerifier(None),
        )

    def _base(
        self, bus: str, address: int, data: bytes, bits: int, card_format: str
    ) -> tuple[Any, str, Point | None, str | None, dict[str, Any]]:
        """The band check and the payload every read's event starts from."""
        band = self.bands.check(data)
        wristband = (band.uid or "") if band.sun else data.hex()
        point = self.points.get((bus, address))
        guard = self.roster.get(wristband)
        payload: dict[str, Any] = {
            "checkpoint": point.id if point else None,
            "reader": reader_id(bus, address),
            "wristband": wristband,
            "guard": guard if guard is not None else UNKNOWN_GUARD,
            "format": card_format,
            "bits": bits,
            "verified": band.verified,
        }
        if band.counter is not None:
            payload["counter"] = band.counter
        if band.verified:
            payload["counter_gap"] = band.gap
        if band.refusal is not None:
            payload["reason"] = band.refusal
            payload.update(band.detail)
            if band.sun:
                payload["card_data"] = data[:_MAX_EVIDENCE].hex()
        return band, wristband, point, guard, payload

    def decide(
        self,
        *,
        bus: str,
        address: int,
        data: bytes,
        bits: int,
        card_format: str,
        now: float,
        held: bool = False,
        held_gap_s: float | None = None,
        wall: float | None = None,
    ) -> TapDecision:
        """``held``: the reader kept this read while out of contact for ``held_gap_s`` seconds
        (``None``: unknown) and delivered it on reconnection. ``wall``: the wall-clock time it
        arrived (remembered so that a node's later "may repeat a RAW" record can be matched)."""
        band, wristband, point, guard, payload = self._base(bus, address, data, bits, card_format)
        if wall is not None:
            self.node_taps.raw_read(reader_id(bus, address), wristband, wall)
        if band.refusal is not None:
            # Refused: evidence, never a tap, never deduplicated away; red for whoever is there.
            if held:
                payload["time_uncertain"] = True
                payload["out_of_contact_s"] = None if held_gap_s is None else round(held_gap_s, 1)
            late = held and (held_gap_s is None or held_gap_s > HELD_READ_TOLERANCE_S)
            return TapDecision(TAP_REFUSED, payload, None if late else Feedback.REFUSED)
        if held and (held_gap_s is None or held_gap_s > HELD_READ_TOLERANCE_S):
            payload["time_uncertain"] = True
            payload["out_of_contact_s"] = None if held_gap_s is None else round(held_gap_s, 1)
            late_kind = TAP_DELIVERED_LATE if guard is not None else UNKNOWN_WRISTBAND
            if late_kind == UNKNOWN_WRISTBAND:
                payload["repeat"] = 0
            return TapDecision(late_kind, payload, None)
        if held:
            payload["time_uncertain_s"] = round(held_gap_s or 0.0, 1)
        return self._live(bus, address, wristband, point, guard, payload, now)

    def _live(
        self,
        bus: str,
        address: int,
        wristband: str,
        point: Point | None,
        guard: str | None,
        payload: dict[str, Any],
        now: float,
    ) -> TapDecision:
        """A read made just now: the dedupe window, the roster, the guard's feedback."""
        key = (bus, address, wristband)
        window = self._windows.get(key)
        if window is not None and 0 <= now - window.opened_at < self.window_s:
            window.repeats += 1
            payload["repeat"] = window.repeats
            payload["window_opened_s_ago"] = round(now - window.opened_at, 3)
            kind = TAP_REPEAT if guard is not None else UNKNOWN_WRISTBAND
        else:
            if len(self._windows) >= _SWEEP_AT:
                self._sweep(now)
            self._windows[key] = _Window(now)
            kind = TAP if guard is not None else UNKNOWN_WRISTBAND
            if kind == UNKNOWN_WRISTBAND:
                payload["repeat"] = 0
        if point is None:
            # A reader we do not map cannot be a checkpoint: record it, never accept it.
            return TapDecision(UNKNOWN_WRISTBAND if guard is None else "tap.unmapped", payload,
                               Feedback.REFUSED)
        feedback = Feedback.ACCEPTED if guard is not None else Feedback.UNKNOWN
        return TapDecision(kind, payload, feedback)

    def decide_node_tap(self, tap: NodeTap, *, wall: float) -> TapDecision:
        """A tap record from our node (``tap``; ``wall``: the wall-clock time it arrived).

        Kind ``node_tap.dropped`` (never journaled; payload ``reason``) when it is one the
        journal already has: the same tap number offered again, or (flag bit2) a tap that
        already arrived as a plain card read. Otherwise, see docs/checkpoint-node.md:

        - exact age at most :data:`FRESH_NODE_TAP_S`, made while polled (a node in numbered
          mode): a live tap (dedupe window, feedback) that also carries its number;
        - exact age, older: a ``tap`` credited at ``tapped_at`` = arrival - age (patrol reads
          it), ``buffered``, no feedback and no dedupe window (the guard is gone);
        - age a lower bound (the node restarted since): ``tap.delivered_late`` with
          ``tapped_before``: the node's downtime is not in its age, so the tap may be far
          older and is never credited at a time it may not have been made.
        """
        reader = reader_id(tap.bus, tap.address)
        wristband = tap.uid.hex()
        exact = not tap.age_lower_bound
        tapped = wall - tap.age_s
        ledger = self.node_taps
        if ledger.repeat(reader, tap.number, wristband, tapped, exact=exact):
            return TapDecision(NODE_TAP_DROPPED, {"reader": reader, "node_tap": tap.number,
                                                  "wristband": wristband, "reason": "number"},
                               None)  # fmt: skip
        if tap.may_repeat_raw and ledger.raw_repeat(reader, wristband, tapped):
            ledger.remember(reader, tap.number, wristband, wall)
            return TapDecision(NODE_TAP_DROPPED, {"reader": reader, "node_tap": tap.number,
                                                  "wristband": wristband, "reason": "raw"},
                               None)  # fmt: skip
        # Checked before this record is remembered (it is later than any read).
        raw_before_reset = (
            tap.age_lower_bound and not tap.tapped_offline and not tap.may_repeat_raw
            and ledger.last_read_was_raw_of(reader, wristband, tapped + RAW_REPEAT_AFTER_S)
        )  # fmt: skip
        ledger.remember(reader, tap.number, wristband, wall)
        band, wristband, point, guard, payload = self._base(
            tap.bus, tap.address, tap.uid, len(tap.uid) * 8, "raw"
        )
        payload["node_tap"] = tap.number
        payload["age_s"] = tap.age_s
        payload["tapped_offline"] = tap.tapped_offline
        if tap.may_repeat_raw:
            payload["may_repeat_raw"] = True
        if raw_before_reset:
            # Kept (its time is only bounded, so it may be a tap of its own), but marked: it may
            # be the last card read again, re-offered after a node reset.
            payload["possible_raw_repeat"] = True
        fresh = exact and not tap.tapped_offline and tap.age_s <= FRESH_NODE_TAP_S
        if exact:
            payload["tapped_at"] = round(tapped, 3)
            # The node rounds its age down to whole seconds: up to 1 s earlier.
            payload["time_uncertain_s"] = 1.0
        else:
            payload["tapped_before"] = round(tapped, 3)
            payload["age_lower_bound"] = True
            payload["time_uncertain"] = True
        if band.refusal is not None:
            return TapDecision(TAP_REFUSED, payload, Feedback.REFUSED if fresh else None)
        if fresh:
            return self._live(tap.bus, tap.address, wristband, point, guard, payload,
                              tap.mono_time - tap.age_s)
        payload["buffered"] = True
        if guard is None:
            payload["repeat"] = 0
            return TapDecision(UNKNOWN_WRISTBAND, payload, None)
        if point is None:
            return TapDecision("tap.unmapped", payload, None)
        return TapDecision(TAP if exact else TAP_DELIVERED_LATE, payload, None)

    def _sweep(self, now: float) -> None:
        expired = [k for k, w in self._windows.items() if now - w.opened_at >= self.window_s]
        for k in expired:
            del self._windows[k]


def reader_state_payload(
    *, bus: str, address: int, checkpoint: str | None, online: bool, sc_active: bool, reason: str
) -> dict[str, Any]:
    """The ``reader.state`` evidence payload (an offline reader is a device fault)."""
    return {
        "reader": reader_id(bus, address),
        "checkpoint": checkpoint,
        "state": "online" if online else "offline",
        "sc_active": sc_active,
        "reason": reason,
    }
