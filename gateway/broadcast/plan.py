"""The broadcast decision core: pure, time passed in, effects out.

Theory of operation. :class:`BroadcastCore` holds at most one *active* broadcast and moves it
through phases; every input returns a list of effects for the (thin, asyncio) controller:
:class:`Record` (a journal event), :class:`Drive` (switch relays, then report back with
:meth:`BroadcastCore.drive_done`) and :class:`Notify` (tell whoever asked how it went).

    idle --start--> amp --amp verified on--> warming --warm-up over--> switching
    switching --zones verified on--> on --duration over / stop--> stopping --verified off--> idle
    any phase --drive failed / stop--> stopping (everything off, retried until verified)

Rules, all here so they are tested in one place:

* Requests are validated first: known zones, 0 < duration <= ``max_duration_s``.
* **A new start while one is active** replaces it when its source ranks at least as high
  (remote > button = cli > schedule > test): zones not in the new set go off, new ones go on,
  the end is re-timed from now. A lower-ranked start is refused (``busy``) and recorded.
* **Stop** from any source always ends in a verified off of every broadcast relay, even when
  nothing is playing (a stray relay is then caught too). A stop during the warm-up cancels the
  broadcast before any zone switches on.
* **Fail off**: an amplifier that does not verify on fails the broadcast; zones that do not
  verify on are dropped while at least one zone plays (a dead board must not silence the
  others), otherwise the broadcast fails. A failure switches everything off; relays that do
  not verify off are retried every ``OFF_RETRY_S`` until they do.
* Where a board has a hardware timer the on-writes carry a hold time
  (``duration + hardware_grace_s``): the board releases the relay by itself if the gateway
  dies. The software auto-off runs on the gateway's monotonic clock and needs no link.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

OFF_RETRY_S = 1.0

Source = Literal["remote", "button", "cli", "schedule", "test"]
# "test" (the weekly silent test) ranks below everything: it never interrupts a broadcast and
# any broadcast replaces it.
SOURCE_RANK: Mapping[str, int] = {"test": 0, "schedule": 1, "button": 2, "cli": 2, "remote": 3}
Phase = Literal["idle", "amp", "warming", "switching", "on", "stopping"]


@dataclass(frozen=True, slots=True, order=True)
class RelayRef:
    """One relay: board name and channel (0-based)."""

    board: str
    channel: int

    def __str__(self) -> str:
        return f"{self.board}:{self.channel}"


@dataclass(frozen=True, slots=True)
class Layout:
    """What the core knows about the installation (built from the config section)."""

    zones: Mapping[int, RelayRef]
    amplifier: RelayRef | None = None
    warmup_s: float = 2.0
    max_duration_s: float = 600.0
    hardware_grace_s: float = 5.0

    def all_relays(self) -> frozenset[RelayRef]:
        refs = set(self.zones.values())
        if self.amplifier is not None:
            refs.add(self.amplifier)
        return frozenset(refs)


@dataclass(frozen=True, slots=True)
class StartRequest:
    """A request to broadcast; ``request_id`` ties the events and acknowledgements together."""

    request_id: str
    zones: tuple[int, ...]
    duration_s: float
    source: str
    reason: str = ""
    announcement: str = ""
    status: str = "Actual"  # CAP-style: Actual / Exercise / Test, recorded as given

    def describe(self) -> dict[str, Any]:
        return {
            "request_id": self.request_id,
            "zones": list(self.zones),
            "duration_s": self.duration_s,
            "source": self.source,
            "reason": self.reason,
            "announcement": self.announcement,
            "status": self.status,
        }


@dataclass(frozen=True, slots=True)
class Record:
    """A journal event to append (evidence)."""

    kind: str
    payload: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Drive:
    """Switch relays: ``off`` first, then ``on`` (with ``hold_s`` where the board has a
    timer), then ``off_last`` (the amplifier goes off after the zones). Report back with
    :meth:`BroadcastCore.drive_done` and the set of relays that did not verify."""

    purpose: str
    on: frozenset[RelayRef] = frozenset()
    off: frozenset[RelayRef] = frozenset()
    off_last: frozenset[RelayRef] = frozenset()
    hold_s: Mapping[RelayRef, float] = field(default_factory=dict)

    def relays(self) -> frozenset[RelayRef]:
        return self.on | self.off | self.off_last


@dataclass(frozen=True, slots=True)
class Notify:
    """Tell the requester: stage is accepted, refused, on, done or failed."""

    request_id: str
    stage: str
    detail: Mapping[str, Any] = field(default_factory=dict)


Effect = Record | Drive | Notify


@dataclass(frozen=True, slots=True)
class Active:
    request: StartRequest
    accepted_at: float
    zones_on: frozenset[int] = frozenset()
    warm_until: float | None = None
    ends_at: float | None = None


class BroadcastCore:
    """The broadcast state machine. Every method takes ``now`` (monotonic seconds)."""

    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        self.phase: Phase = "idle"
        self.active: Active | None = None
        self._drive: Drive | None = None  # the drive the controller is running
        self._pending_off: frozenset[RelayRef] = frozenset()
        self._off_retry_at: float | None = None
        self._ending: dict[str, Any] = {}

    # -- inputs --------------------------------------------------------------------------------

    def boot(self, now: float) -> list[Effect]:
        """At start-up: force every broadcast relay off and verify (relays fail off)."""
        self.phase = "stopping"
        self._ending = {"cause": "startup"}
        return [
            Record("broadcast.force_off", {"cause": "startup", "relays": _names(self._all())}),
            self._off_drive("startup-off", self._all()),
        ]

    def start(self, req: StartRequest, now: float) -> list[Effect]:
        out: list[Effect] = [Record("broadcast.requested", req.describe())]
        problem = self.validate(req)
        if problem is None and self._drive is not None:
            problem = "relays are being switched; try again"
        if problem is None and self.active is not None:
            current = self.active.request
            if SOURCE_RANK.get(req.source, 0) < SOURCE_RANK.get(current.source, 0):
                problem = f"busy: a {current.source} broadcast is playing ({current.request_id})"
        if problem is None and self.phase == "stopping" and self._drive is not None:
            problem = "relays are being switched off; try again"
        if problem is not None:
            return [*out, *self._refuse(req, problem)]
        previous = self.active
        out.append(
            Record(
                "broadcast.accepted",
                {
                    "request_id": req.request_id,
                    "replaces": previous.request.request_id if previous else None,
                },
            )
        )
        out.append(Notify(req.request_id, "accepted"))
        if previous is not None:
            out.append(Notify(previous.request.request_id, "done", {"cause": "replaced"}))
        if previous is not None and self.phase in ("warming", "amp"):
            # Take over the warm-up under way; re-hold the amplifier for the new duration.
            self.active = replace(previous, request=req)
            if self.phase == "warming" and self.layout.amplifier is not None:
                return [*out, self._amp_drive("amp-rehold", req, now)]
            return out
        if previous is not None and self.phase == "on":
            self.active = Active(req, accepted_at=now, zones_on=previous.zones_on)
            return [*out, self._zones_drive(req, previous.zones_on)]
        self.active = Active(req, accepted_at=now)
        if self.layout.amplifier is not None:
            self.phase = "amp"
            return [*out, self._amp_drive("amp-on", req, now)]
        return [*out, self._zones_drive(req, frozenset())]

    def stop(self, source: str, reason: str, now: float) -> list[Effect]:
        """Stop whatever plays (or nothing): always ends in a verified off of every relay."""
        out: list[Effect] = []
        active = self.active
        payload: dict[str, Any] = {"source": source, "reason": reason}
        if active is None:
            payload["playing"] = None
        else:
            payload["playing"] = active.request.request_id
            payload["phase"] = self.phase
        out.append(Record("broadcast.stop_requested", payload))
        if self._drive is not None:
            # The controller serialises inputs, so this only happens if it is misused.
            self._ending = {"cause": "stop", "source": source}
            return out
        cause = "cancelled" if active is not None and self.phase in ("amp", "warming") else "stop"
        self._ending = {"cause": cause, "source": source, "reason": reason}
        self.phase = "stopping"
        return [*out, self._off_drive("stop-off", self._all())]

    def due(self, now: float) -> list[Effect]:
        """Timers: warm-up over, broadcast over, off retry. Call when ``next_deadline`` passes."""
        if self._drive is not None:
            return []
        a = self.active
        warm_until = a.warm_until if a is not None else None
        if (
            a is not None
            and self.phase == "warming"
            and warm_until is not None
            and now >= warm_until
        ):
            return [self._zones_drive(a.request, frozenset())]
        if self.phase == "on" and a is not None and a.ends_at is not None and now >= a.ends_at:
            self._ending = {"cause": "duration"}
            self.phase = "stopping"
            return [
                Record(
                    "broadcast.ending", {"request_id": a.request.request_id, "cause": "duration"}
                ),
                self._off_drive("end-off", self._all()),
            ]
        if self._off_retry_at is not None and now >= self._off_retry_at and self._pending_off:
            self._off_retry_at = None
            return [self._off_drive("retry-off", self._pending_off)]
        return []

    def next_deadline(self) -> float | None:
        if self._drive is not None:
            return None
        a = self.active
        times: list[float] = []
        if self.phase == "warming" and a is not None and a.warm_until is not None:
            times.append(a.warm_until)
        if self.phase == "on" and a is not None and a.ends_at is not None:
            times.append(a.ends_at)
        if self._pending_off and self._off_retry_at is not None:
            times.append(self._off_retry_at)
        return min(times) if times else None

    def observed(self, states: Mapping[RelayRef, bool], now: float) -> list[Effect]:
        """A status poll's reading: a broadcast relay on while nothing plays is switched off."""
        if self._drive is not None or self.phase != "idle":
            return []
        stray = frozenset(r for r, on in states.items() if on and r in self._all())
        if not stray:
            return []
        self.phase = "stopping"
        self._ending = {"cause": "stray"}
        return [
            Record("broadcast.stray_on", {"relays": _names(stray)}),
            self._off_drive("stray-off", stray),
        ]

    def drive_done(self, drive: Drive, failed: Mapping[RelayRef, str], now: float) -> list[Effect]:
        """The controller finished ``drive``; ``failed`` maps relays that did not verify to why."""
        if drive is not self._drive:
            raise ValueError("drive_done for a drive this core did not issue (or twice)")
        self._drive = None
        errors = {str(r): why for r, why in sorted(failed.items())}
        if drive.purpose in ("amp-on", "amp-rehold"):
            return self._after_amp(drive, errors, now)
        if drive.purpose == "zones-on":
            return self._after_zones(drive, failed, errors, now)
        return self._after_off(drive, failed, errors, now)

    # -- helpers -------------------------------------------------------------------------------

    def validate(self, req: StartRequest) -> str | None:
        """Why ``req`` cannot run at all (whatever plays now), or None."""
        if not req.zones:
            return "no zones"
        unknown = sorted(set(req.zones) - set(self.layout.zones))
        if unknown:
            return f"unknown zone(s) {unknown}"
        if len(set(req.zones)) != len(req.zones):
            return "a zone is listed twice"
        if not req.duration_s > 0:
            return "duration must be positive"
        if req.duration_s > self.layout.max_duration_s:
            cap = self.layout.max_duration_s
            return f"duration {req.duration_s:g} s is above the maximum {cap:g} s"
        if req.source not in SOURCE_RANK:
            return f"unknown source {req.source!r}"
        return None

    def _all(self) -> frozenset[RelayRef]:
        return self.layout.all_relays()

    def _refuse(self, req: StartRequest, reason: str) -> list[Effect]:
        return [
            Record("broadcast.refused", {"request_id": req.request_id, "reason": reason}),
            Notify(req.request_id, "refused", {"reason": reason}),
        ]

    def _issue(self, drive: Drive) -> Drive:
        # A relay about to be switched on must not be "retried off" under the new broadcast.
        self._pending_off = self._pending_off - drive.on
        self._drive = drive
        return drive

    def _amp_drive(self, purpose: str, req: StartRequest, now: float) -> Drive:
        amp = self.layout.amplifier
        assert amp is not None
        hold = self.layout.warmup_s + req.duration_s + self.layout.hardware_grace_s
        return self._issue(Drive(purpose, on=frozenset({amp}), hold_s={amp: hold}))

    def _zones_drive(self, req: StartRequest, already_on: frozenset[int]) -> Drive:
        self.phase = "switching"
        want = {self.layout.zones[z] for z in req.zones}
        drop = {self.layout.zones[z] for z in already_on if z not in req.zones} - want
        on = set(want)
        hold = req.duration_s + self.layout.hardware_grace_s
        if self.layout.amplifier is not None:
            on.add(self.layout.amplifier)  # re-held so its timer matches the zones'
        return self._issue(
            Drive(
                "zones-on",
                on=frozenset(on),
                off=frozenset(drop),
                hold_s={r: hold for r in on},
            )
        )

    def _off_drive(self, purpose: str, relays: frozenset[RelayRef]) -> Drive:
        amp = self.layout.amplifier
        last = frozenset({amp}) & relays if amp is not None else frozenset()
        return self._issue(Drive(purpose, off=relays - last, off_last=last))

    def _fail(self, req: StartRequest | None, why: Mapping[str, Any]) -> list[Effect]:
        rid = req.request_id if req else None
        self._ending = {"cause": "failure"}
        self.phase = "stopping"
        out: list[Effect] = [Record("broadcast.failed", {"request_id": rid, **why})]
        if rid is not None:
            out.append(Notify(rid, "failed", dict(why)))
        return [*out, self._off_drive("fail-off", self._all())]

    def _after_amp(self, drive: Drive, errors: dict[str, str], now: float) -> list[Effect]:
        a = self.active
        if a is None:
            return []
        if errors:
            return self._fail(a.request, {"stage": "amplifier", "errors": errors})
        out: list[Effect] = []
        if drive.purpose == "amp-on":
            self.phase = "warming"
            self.active = replace(a, warm_until=now + self.layout.warmup_s)
            out.append(
                Record(
                    "broadcast.amplifier_on",
                    {"request_id": a.request.request_id, "warmup_s": self.layout.warmup_s},
                )
            )
        return out

    def _after_zones(
        self,
        drive: Drive,
        failed: Mapping[RelayRef, str],
        errors: dict[str, str],
        now: float,
    ) -> list[Effect]:
        a = self.active
        if a is None:
            return []
        amp = self.layout.amplifier
        if amp is not None and amp in failed:
            return self._fail(a.request, {"stage": "zones", "errors": errors})
        playing = frozenset(z for z in a.request.zones if self.layout.zones[z] not in failed)
        if not playing:
            return self._fail(a.request, {"stage": "zones", "errors": errors})
        self.phase = "on"
        self.active = replace(a, zones_on=playing, ends_at=now + a.request.duration_s)
        payload: dict[str, Any] = {
            "request_id": a.request.request_id,
            "zones": sorted(playing),
            "relays": _names(drive.on - set(failed)),
            "duration_s": a.request.duration_s,
            "verified": True,
        }
        out: list[Effect] = []
        if errors:
            payload["failed_zones"] = sorted(set(a.request.zones) - playing)
            payload["errors"] = errors
            # Best effort: a zone that did not verify on must not stay half on.
            self._pending_off = self._pending_off | frozenset(failed)
            self._off_retry_at = now
        out.append(Record("broadcast.on", payload))
        out.append(Notify(a.request.request_id, "on", payload))
        return out

    def _after_off(
        self,
        drive: Drive,
        failed: Mapping[RelayRef, str],
        errors: dict[str, str],
        now: float,
    ) -> list[Effect]:
        out: list[Effect] = []
        verified_off = drive.relays() - set(failed)
        self._pending_off = (self._pending_off - verified_off) | frozenset(failed)
        if self._pending_off:
            self._off_retry_at = now + OFF_RETRY_S
        else:
            self._off_retry_at = None
        if drive.purpose == "retry-off":
            if not failed:
                out.append(
                    Record(
                        "broadcast.off",
                        {"relays": _names(drive.relays()), "cause": "retry", "verified": True},
                    )
                )
            if self.phase == "stopping" and self.active is None:
                self.phase = "idle"
            return out
        a = self.active
        payload: dict[str, Any] = {
            "request_id": a.request.request_id if a else None,
            "relays": _names(verified_off),
            "verified": not failed,
            **self._ending,
        }
        if failed:
            payload["errors"] = errors
            out.append(Record("broadcast.off_failed", payload))
        else:
            out.append(Record("broadcast.off", payload))
        if a is not None:
            out.append(Notify(a.request.request_id, "done", payload))
        self.active = None
        self.phase = "idle"
        self._ending = {}
        return out


def _names(refs: Iterable[RelayRef]) -> list[str]:
    return [str(r) for r in sorted(refs)]


# Kinds that close whatever broadcast was open, and those that open or advance one.
_CLOSING_KINDS = frozenset(
    {"broadcast.off", "broadcast.off_failed", "broadcast.failsafe_off", "broadcast.interrupted"}
)
_OPENING_KINDS = frozenset({"broadcast.accepted", "broadcast.amplifier_on", "broadcast.on"})


def interrupted_broadcast(
    events: Iterable[tuple[int, str, Mapping[str, Any]]],
) -> dict[str, Any] | None:
    """From the journal's (seq, kind, payload) in order: the broadcast left open, if any.

    A broadcast is open from ``broadcast.accepted`` until an off (verified or not) closes it.
    Still open at the end of the journal means the process died mid-broadcast.
    """
    open_: dict[str, Any] | None = None
    for seq, kind, payload in events:
        if kind in _CLOSING_KINDS:
            open_ = None
        elif kind in _OPENING_KINDS:
            rid = payload.get("request_id")
            if kind == "broadcast.accepted" or open_ is None or open_["request_id"] != rid:
                open_ = {"request_id": rid, "accepted_seq": seq}
            open_["last_stage"] = kind.split(".", 1)[1]
            open_["last_seq"] = seq
    return open_
