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

from drivers.checkpoints import Feedback
from gateway.credentials.bands import BandVerifier

TAP = "tap"
TAP_REPEAT = "tap.repeat"
TAP_DELIVERED_LATE = "tap.delivered_late"
TAP_REFUSED = "tap.refused"
UNKNOWN_WRISTBAND = "unknown_wristband"
READER_STATE = "reader.state"
READER_STATUS = "reader.status"
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
    ) -> TapDecision:
        """``held``: the reader kept this read while out of contact for ``held_gap_s`` seconds
        (``None``: unknown) and delivered it on reconnection."""
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
            # Refused: evidence, never a tap, never deduplicated away; red for whoever is there.
            payload["reason"] = band.refusal
            payload.update(band.detail)
            if band.sun:
                payload["card_data"] = data[:_MAX_EVIDENCE].hex()
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
