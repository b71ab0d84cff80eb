"""The health model: one state per device, changed only with hysteresis, always with a reason.

Theory of operation
-------------------
Every capability (camera poller, modem poller, reader bus, relay driver, GPIO, the gateway's
self-monitor) *observes* its devices and calls :meth:`HealthModel.report` with what it saw:
``ok``, ``degraded`` or ``down`` and a one-line reason. The model keeps, per device, the
*current* state and a *streak* of consecutive observations that disagree with it.

- Leaving ``unknown`` takes one observation: any knowledge beats none.
- Moving to a worse state needs ``worsen_after`` consecutive worse observations; moving to a
  better one needs ``recover_after`` consecutive better ones. An observation equal to the current
  state, or pointing the other way, restarts the streak. When the streak is long enough the
  device takes the state (and reason) of the *mildest* observation in it: three failed polls
  of which one was merely slow make the camera degraded, not down.
- A device that has not been observed for ``stale_after_s`` falls back to ``unknown`` on the next
  :meth:`HealthModel.tick` (its reporter died or was unplugged from the model).

Each accepted change comes back as a :class:`StateChange`; the health service turns it into an
evidence event. The model is pure: no clock, no I/O; ``now`` is an argument (monotonic seconds).

    model = HealthModel({"camera": Hysteresis(worsen_after=3, recover_after=2)})
    change = model.report("cam-gate", "camera", State.DOWN, "connection refused", now=12.0)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any


class State(StrEnum):
    """A device's health. Ordered by severity for comparisons through :func:`severity`."""

    OK = "ok"
    DEGRADED = "degraded"
    DOWN = "down"
    UNKNOWN = "unknown"


_SEVERITY = {State.OK: 0, State.DEGRADED: 1, State.DOWN: 2}


def severity(state: State) -> int:
    """0 ok, 1 degraded, 2 down; unknown is -1 (neither better nor worse than anything)."""
    return _SEVERITY.get(state, -1)


@dataclass(frozen=True, slots=True)
class Hysteresis:
    """How many agreeing observations move a device, and when silence makes it unknown."""

    worsen_after: int = 3
    recover_after: int = 2
    stale_after_s: float | None = None

    def __post_init__(self) -> None:
        if self.worsen_after < 1 or self.recover_after < 1:
            raise ValueError("hysteresis counts must be at least 1")


@dataclass(frozen=True, slots=True)
class DeviceHealth:
    """What the model knows about one device right now."""

    device: str
    kind: str
    state: State
    reason: str
    since: float  # monotonic seconds when the current state was entered
    last_seen: float | None  # monotonic seconds of the last observation
    detail: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self, now: float | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {
            "device": self.device,
            "kind": self.kind,
            "state": self.state.value,
            "reason": self.reason,
        }
        if now is not None:
            out["for_s"] = round(max(0.0, now - self.since), 1)
            out["seen_s_ago"] = (
                None if self.last_seen is None else round(max(0.0, now - self.last_seen), 1)
            )
        if self.detail:
            out["detail"] = dict(self.detail)
        return out


@dataclass(frozen=True, slots=True)
class StateChange:
    """An accepted state change: becomes an evidence event ``health.state``."""

    device: str
    kind: str
    state: State
    previous: State
    reason: str
    at: float

    def payload(self) -> dict[str, Any]:
        """The event payload: {device, kind, state, previous, reason}."""
        return {
            "device": self.device,
            "kind": self.kind,
            "state": self.state.value,
            "previous": self.previous.value,
            "reason": self.reason,
        }


@dataclass(slots=True)
class _Track:
    health: DeviceHealth
    streak: list[tuple[State, str]]
    direction: int  # +1 worsening streak, -1 recovering streak, 0 none


class HealthModel:
    """Per-device health with hysteresis. Not thread-safe: call it from the event loop only.

    ``policies`` maps a device kind to its :class:`Hysteresis`; other kinds use ``default``.
    """

    def __init__(
        self,
        policies: Mapping[str, Hysteresis] | None = None,
        default: Hysteresis | None = None,
    ) -> None:
        self._policies = dict(policies or {})
        self._default = default or Hysteresis()
        self._tracks: dict[str, _Track] = {}

    def policy(self, kind: str) -> Hysteresis:
        return self._policies.get(kind, self._default)

    def register(self, device: str, kind: str, now: float) -> None:
        """Make a device known (state ``unknown``) before its first observation, so it shows."""
        if device not in self._tracks:
            self._tracks[device] = _Track(
                DeviceHealth(device, kind, State.UNKNOWN, "not yet observed", now, None), [], 0
            )

    def report(
        self,
        device: str,
        kind: str,
        state: State | str,
        reason: str,
        now: float,
        detail: Mapping[str, Any] | None = None,
        *,
        confirmed: bool = False,
    ) -> StateChange | None:
        """Record one observation; return the state change it completed, if any.

        ``detail`` (small, JSON-ready) is kept for ``health --json`` and never causes a change.
        ``confirmed=True`` skips the hysteresis: for a reporter that debounces on its own and
        reports only changes (a reader bus's online/offline machine, a tamper switch).
        """
        observed = State(state)
        if observed is State.UNKNOWN:
            raise ValueError("report ok, degraded or down; unknown is the model's own verdict")
        self.register(device, kind, now)
        track = self._tracks[device]
        cur = track.health
        kept_detail = dict(detail) if detail is not None else cur.detail
        if cur.kind != kind:
            cur = replace(cur, kind=kind)
        if cur.state is State.UNKNOWN or (confirmed and observed is not cur.state):
            previous = cur.state
            track.health = DeviceHealth(device, kind, observed, reason, now, now, kept_detail)
            track.streak, track.direction = [], 0
            return StateChange(device, kind, observed, previous, reason, now)
        direction = (severity(observed) > severity(cur.state)) - (
            severity(observed) < severity(cur.state)
        )
        if direction == 0:
            # Same state: refresh the reason (it may say more now) and forget any streak.
            track.health = replace(cur, reason=reason, last_seen=now, detail=kept_detail)
            track.streak, track.direction = [], 0
            return None
        if direction != track.direction:
            track.streak, track.direction = [], direction
        track.streak.append((observed, reason))
        policy = self.policy(kind)
        needed = policy.worsen_after if direction > 0 else policy.recover_after
        track.health = replace(cur, last_seen=now, detail=kept_detail)
        if len(track.streak) < needed:
            return None
        if direction > 0:
            target, why = min(track.streak, key=lambda sr: severity(sr[0]))
        else:
            target, why = max(track.streak, key=lambda sr: severity(sr[0]))
        # The most recent reason for the chosen state says most about it now.
        why = next(r for s, r in reversed(track.streak) if s is target)
        track.health = DeviceHealth(device, kind, target, why, now, now, kept_detail)
        track.streak, track.direction = [], 0
        return StateChange(device, kind, target, cur.state, why, now)

    def tick(self, now: float) -> list[StateChange]:
        """Mark devices silent for longer than their ``stale_after_s`` as unknown."""
        changes: list[StateChange] = []
        for track in self._tracks.values():
            h = track.health
            limit = self.policy(h.kind).stale_after_s
            if limit is None or h.state is State.UNKNOWN or h.last_seen is None:
                continue
            if now - h.last_seen >= limit:
                why = f"no report for {now - h.last_seen:.0f} s"
                track.health = replace(h, state=State.UNKNOWN, reason=why, since=now)
                track.streak, track.direction = [], 0
                changes.append(StateChange(h.device, h.kind, State.UNKNOWN, h.state, why, now))
        return changes

    def get(self, device: str) -> DeviceHealth | None:
        track = self._tracks.get(device)
        return None if track is None else track.health

    def snapshot(self) -> list[DeviceHealth]:
        """Every known device, sorted by kind then name."""
        return sorted((t.health for t in self._tracks.values()), key=lambda h: (h.kind, h.device))

    def worst(self, kinds: Iterable[str] | None = None) -> State:
        """The most severe known state (``unknown`` if nothing is known), for the status LED."""
        wanted = None if kinds is None else set(kinds)
        states = [
            t.health.state
            for t in self._tracks.values()
            if (wanted is None or t.health.kind in wanted) and t.health.state is not State.UNKNOWN
        ]
        if not states:
            return State.UNKNOWN
        return max(states, key=severity)
