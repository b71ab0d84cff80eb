"""What the console shows, computed from the centre's data: board rows, a compound's page, alerts.

Pure functions over the repository's events, the gateway registry, the command queue and the
acknowledgements; nothing here renders HTML (the templates do) or knows about HTTP::

    data = await gather(repo, commands, acks, now=time.time(), tz="Asia/Shanghai",
                        connected=set(channel.connections))
    data.compounds        # one CompoundRow per (township, compound), sorted
    data.alerts           # newest first, unacknowledged Actual-priority ones on top

Every field is a plain value the template formats (times stay Unix seconds until the template's
``when`` filter shows them in the district's time zone).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Protocol
from zoneinfo import ZoneInfo

from centre.commands.store import CommandRecord
from centre.store import GatewayRecord
from centre.web.store import AckRecord

LINK_FRESH_S: Final = 300.0
"""A gateway heard from this recently (or with its command channel open) counts as linked."""
STATE_LOOKBACK_S: Final = 45 * 86400.0
ALERT_WINDOW_S: Final = 7 * 86400.0
RECENT_TAPS: Final = 20

# Alert kinds (stable codes; the templates translate them).
MISSED_ROUND: Final = "missed_round"
LATE_ROUND: Final = "late_round"
DEVICE_FAULT: Final = "device_fault"
TAMPER: Final = "tamper"
MAINS_LOSS: Final = "mains_loss"
REFUSED_COMMAND: Final = "refused_command"
NOT_ON_POST: Final = "not_on_post"  # a video patrol verdict (centre/web/video_patrol.py)
ALERT_KINDS: Final = (
    MISSED_ROUND, LATE_ROUND, DEVICE_FAULT, TAMPER, MAINS_LOSS, REFUSED_COMMAND, NOT_ON_POST
)  # fmt: skip
# Actual priority: someone may be in danger or a compound unguarded; these stay on top.
ACTUAL_PRIORITY: Final = frozenset({MISSED_ROUND, TAMPER, MAINS_LOSS, NOT_ON_POST})

# Command status as operators read it (the queue's words mapped onto the console's).
STAGES: Final = {
    "queued": "queued",
    "delivered": "delivered",
    "on": "relays_on",
    "done": "finished",
    "failed": "failed",
    "refused": "refused",
    "expired": "expired",
}
FINAL_STAGES: Final = frozenset({"finished", "failed", "refused", "expired"})

STATE_KINDS: Final = ("reader.state", "relay_board.state", "health.state")
OTHER_KINDS: Final = (
    "patrol.round",
    "patrol.daily_summary",
    "tamper.open",
    "power.mains_lost",
    "broadcast.command_refused",
)


class EventReader(Protocol):
    async def events(
        self,
        *,
        compound: str | None = None,
        gateway_id: str | None = None,
        kind: str | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int = 1000,
    ) -> list[dict[str, Any]]: ...

    async def gateways(self) -> list[GatewayRecord]: ...


class CommandReader(Protocol):
    async def commands(
        self, *, gateway_id: str | None = None, limit: int = 100
    ) -> list[CommandRecord]: ...


@dataclass(slots=True)
class DeviceCount:
    up: int = 0
    total: int = 0

    @property
    def state(self) -> str:
        if self.total == 0:
            return "none"
        return "ok" if self.up == self.total else ("down" if self.up == 0 else "partial")


@dataclass(frozen=True, slots=True)
class Device:
    kind: str  # reader | relay_board | camera | other health kinds
    name: str
    state: str  # up | down | degraded | unknown
    since: float
    reason: str
    gateway_id: str = ""  # the gateway that reports it (a camera to look at now is asked there)


@dataclass(slots=True)
class Rounds:
    done: int = 0
    planned: int = 0
    missed: int = 0
    late: int = 0
    unassessable: int = 0


@dataclass(frozen=True, slots=True)
class Alert:
    alert_id: str
    kind: str
    township: str
    compound: str
    gateway_id: str
    at: float
    detail: str
    ack: AckRecord | None

    @property
    def actual(self) -> bool:
        return self.kind in ACTUAL_PRIORITY

    @property
    def open(self) -> bool:
        return self.ack is None


@dataclass(frozen=True, slots=True)
class Progress:
    """One gateway's share of a broadcast, as the console shows it."""

    command_id: str
    gateway_id: str
    township: str
    compound: str
    action: str
    summary: str
    status: str  # Actual | Exercise | Test | ""
    stage: str  # a value of STAGES
    reason: str
    issued_by: str
    issued_at: float
    changed_at: float

    @property
    def final(self) -> bool:
        return self.stage in FINAL_STAGES


@dataclass(slots=True)
class CompoundRow:
    township: str
    compound: str
    gateways: list[str] = field(default_factory=list)
    link_up: bool = False
    last_contact: float | None = None
    readers: DeviceCount = field(default_factory=DeviceCount)
    relays: DeviceCount = field(default_factory=DeviceCount)
    cameras: DeviceCount = field(default_factory=DeviceCount)
    health: str = "unknown"  # ok | degraded | down | unknown
    rounds: Rounds = field(default_factory=Rounds)
    open_alerts: int = 0
    actual_alerts: int = 0
    devices: list[Device] = field(default_factory=list)

    @property
    def key(self) -> str:
        return f"{self.township}/{self.compound}"

    @property
    def state(self) -> str:
        """The board's filter word: ``down`` (link lost), ``alert`` (open alerts) or ``ok``."""
        if not self.link_up:
            return "down"
        if self.open_alerts or self.health in ("down", "degraded"):
            return "alert"
        return "ok"


@dataclass(slots=True)
class ConsoleData:
    compounds: list[CompoundRow]
    alerts: list[Alert]
    progress: list[Progress]
    townships: list[str]


def local_day(now: float, tz: str) -> tuple[str, float]:
    """Today's date (``YYYY-MM-DD``) in ``tz`` and the Unix time of its midnight."""
    zone = ZoneInfo(tz)
    today = dt.datetime.fromtimestamp(now, zone).date()
    start = dt.datetime.combine(today, dt.time(), zone).timestamp()
    return today.isoformat(), start


def _payload(ev: Mapping[str, Any]) -> Mapping[str, Any]:
    p = ev.get("payload")
    return p if isinstance(p, Mapping) else {}


def _revision(ev: Mapping[str, Any]) -> tuple[int, float, int]:
    rev = _payload(ev).get("revision", 0)
    return (
        rev if isinstance(rev, int) else 0,
        float(ev.get("wall_time", 0.0)),
        int(ev.get("seq", 0)),
    )


_HEALTH: Final = {"ok": "up", "degraded": "degraded", "down": "down", "unknown": "unknown"}


def _device(ev: Mapping[str, Any]) -> tuple[str, str, str, str] | None:
    """(kind, name, state, reason) from a state event; None if it names no device."""
    p, kind = _payload(ev), ev.get("kind")
    reason = str(p.get("reason") or p.get("error") or "")
    if kind == "reader.state":
        name = str(p.get("checkpoint") or p.get("reader") or "")
        state = {"online": "up", "offline": "down"}.get(str(p.get("state")), "unknown")
        return ("reader", name, state, reason) if name else None
    if kind == "relay_board.state":
        name = str(p.get("board") or "")
        state = {"up": "up", "down": "down"}.get(str(p.get("state")), "unknown")
        return ("relay_board", name, state, reason) if name else None
    if kind == "health.state":
        name, dkind = str(p.get("device") or ""), str(p.get("kind") or "")
        if not name or not dkind:
            return None
        return dkind, name, _HEALTH.get(str(p.get("state")), "unknown"), reason
    return None


def latest_devices(events: Iterable[Mapping[str, Any]]) -> dict[str, list[Device]]:
    """Each gateway's devices at their latest reported state, keyed by gateway id."""
    latest: dict[tuple[str, str, str], tuple[float, int, Device]] = {}
    for ev in events:
        found = _device(ev)
        if found is None:
            continue
        dkind, name, state, reason = found
        gw = str(ev.get("gateway_id", ""))
        at, seq = float(ev.get("wall_time", 0.0)), int(ev.get("seq", 0))
        key = (gw, dkind, name)
        have = latest.get(key)
        if have is None or (at, seq) > have[:2]:
            latest[key] = (at, seq, Device(dkind, name, state, at, reason, gw))
    out: dict[str, list[Device]] = {}
    for (gw, _, _), (_, _, device) in sorted(latest.items()):
        out.setdefault(gw, []).append(device)
    return out


def _count(devices: Sequence[Device], kinds: Iterable[str]) -> DeviceCount:
    wanted = set(kinds)
    chosen = [d for d in devices if d.kind in wanted]
    return DeviceCount(sum(d.state in ("up", "degraded") for d in chosen), len(chosen))


def _health(devices: Sequence[Device]) -> str:
    states = {d.state for d in devices}
    for worst in ("down", "degraded", "unknown"):
        if worst in states:
            return worst
    return "ok" if devices else "unknown"


def round_alert_id(gateway_id: str, round_id: str) -> str:
    return f"round:{gateway_id}:{round_id}"


def build(
    gateways: Sequence[GatewayRecord],
    events: Sequence[Mapping[str, Any]],
    commands: Sequence[CommandRecord],
    acks: Mapping[str, AckRecord],
    *,
    now: float,
    tz: str,
    connected: Iterable[str] = (),
) -> ConsoleData:
    """The whole console's view of the district at ``now``."""
    today, _ = local_day(now, tz)
    linked = set(connected)
    where = {g.gateway_id: (g.township, g.compound) for g in gateways}
    rows: dict[tuple[str, str], CompoundRow] = {}
    for g in gateways:
        if g.revoked_at is not None:
            continue
        row = rows.setdefault((g.township, g.compound), CompoundRow(g.township, g.compound))
        row.gateways.append(g.gateway_id)
        if g.last_seen is not None:
            row.last_contact = max(row.last_contact or 0.0, g.last_seen)
        if g.gateway_id in linked or (
            g.last_seen is not None and now - g.last_seen <= LINK_FRESH_S
        ):
            row.link_up = True

    devices = latest_devices(e for e in events if e.get("kind") in STATE_KINDS)
    for gw, listed in devices.items():
        if gw not in where or where[gw] not in rows:
            continue
        rows[where[gw]].devices.extend(listed)
    for row in rows.values():
        row.readers = _count(row.devices, ("reader",))
        row.relays = _count(row.devices, ("relay_board",))
        row.cameras = _count(row.devices, ("camera",))
        row.health = _health(row.devices)

    alerts: list[Alert] = []

    def alert(alert_id: str, kind: str, ev: Mapping[str, Any], detail: str) -> None:
        gw = str(ev.get("gateway_id", ""))
        township, compound = where.get(gw, ("", ""))
        at = float(ev.get("wall_time", 0.0))
        if now - at > ALERT_WINDOW_S:
            return
        alerts.append(Alert(alert_id, kind, township, compound, gw, at, detail, acks.get(alert_id)))

    verdicts: dict[tuple[str, str], Mapping[str, Any]] = {}
    summaries: dict[tuple[str, str], Mapping[str, Any]] = {}
    for ev in events:
        kind, p = ev.get("kind"), _payload(ev)
        gw = str(ev.get("gateway_id", ""))
        if kind == "patrol.round" and isinstance(p.get("round"), str):
            key = (gw, p["round"])
            if key not in verdicts or _revision(ev) > _revision(verdicts[key]):
                verdicts[key] = ev
        elif kind == "patrol.daily_summary" and isinstance(p.get("day"), str):
            key = (gw, p["day"])
            if key not in summaries or _revision(ev) > _revision(summaries[key]):
                summaries[key] = ev
        elif kind == "tamper.open":
            alert(f"ev:{gw}:{ev.get('seq')}", TAMPER, ev, str(p.get("input") or ""))
        elif kind == "power.mains_lost":
            alert(f"ev:{gw}:{ev.get('seq')}", MAINS_LOSS, ev, "")
        elif kind == "broadcast.command_refused":
            why = str(p.get("code") or p.get("reason") or "")
            alert(f"ev:{gw}:{ev.get('seq')}", REFUSED_COMMAND, ev, why)
        elif kind == "health.state" and _HEALTH.get(str(p.get("state"))) == "down":
            name = f"{p.get('kind') or ''} {p.get('device') or ''}".strip()
            alert(f"ev:{gw}:{ev.get('seq')}", DEVICE_FAULT, ev, name)
        elif kind in ("reader.state", "relay_board.state"):
            found = _device(ev)
            if found is not None and found[2] == "down":
                alert(f"ev:{gw}:{ev.get('seq')}", DEVICE_FAULT, ev, found[1])

    for (gw, round_id), ev in verdicts.items():
        p = _payload(ev)
        verdict = p.get("verdict")
        here = rows.get(where.get(gw, ("", "")))
        if here is not None and p.get("day") == today:
            r = here.rounds
            if verdict in ("completed", "late_completed"):
                r.done += 1
            if verdict == "late_completed":
                r.late += 1
            if verdict == "missed":
                r.missed += 1
            if verdict == "unassessable":
                r.unassessable += 1
        window = f"{p.get('route') or ''} {p.get('local_start') or ''}".strip()
        if verdict == "missed":
            alert(round_alert_id(gw, round_id), MISSED_ROUND, ev, window)
        elif verdict == "late_completed":
            alert(round_alert_id(gw, round_id), LATE_ROUND, ev, window)

    for row in rows.values():
        planned = 0
        for gw in row.gateways:
            summary = summaries.get((gw, today))
            routes = _payload(summary).get("routes") if summary is not None else None
            for route in routes if isinstance(routes, list) else ():
                n = route.get("planned", 0) if isinstance(route, Mapping) else 0
                planned += n if isinstance(n, int) else 0
        seen = row.rounds.done + row.rounds.missed + row.rounds.unassessable
        row.rounds.planned = max(planned, seen)

    progress = []
    for c in commands:
        township, compound = where.get(c.gateway_id, ("", ""))
        stage = STAGES.get(c.shown_status(now), c.status)
        status = next((s for s in ("Actual", "Exercise", "Test") if f"[{s}]" in c.summary), "")
        changed = max(
            t
            for t in (c.issued_at, c.delivered_at, c.received_at, c.on_at, c.finished_at)
            if t is not None
        )
        progress.append(
            Progress(
                c.command_id,
                c.gateway_id,
                township,
                compound,
                c.action,
                c.summary,
                status,
                stage,
                c.reason,
                c.issued_by,
                c.issued_at,
                changed,
            )
        )
        if stage == "refused":
            alerts.append(
                Alert(
                    f"cmd:{c.command_id}",
                    REFUSED_COMMAND,
                    township,
                    compound,
                    c.gateway_id,
                    c.finished_at or c.issued_at,
                    c.reason,
                    acks.get(f"cmd:{c.command_id}"),
                )
            )

    for a in alerts:
        owner = rows.get((a.township, a.compound))
        if owner is not None and a.open:
            owner.open_alerts += 1
            owner.actual_alerts += a.actual
    # Unacknowledged Actual-priority first, then other open ones, then acknowledged; newest first.
    alerts.sort(key=lambda a: (not (a.open and a.actual), not a.open, -a.at, a.alert_id))
    compounds = sorted(rows.values(), key=lambda r: (r.township, r.compound))
    return ConsoleData(
        compounds, alerts, progress, sorted({r.township for r in compounds if r.township})
    )


def add_alerts(data: ConsoleData, alerts: Iterable[Alert]) -> None:
    """Alerts from elsewhere (video patrol findings): counted on their compound's row and
    sorted in like :func:`build` sorts its own."""
    rows = {(r.township, r.compound): r for r in data.compounds}
    for a in alerts:
        data.alerts.append(a)
        owner = rows.get((a.township, a.compound))
        if owner is not None and a.open:
            owner.open_alerts += 1
            owner.actual_alerts += a.actual
    data.alerts.sort(key=lambda a: (not (a.open and a.actual), not a.open, -a.at, a.alert_id))


async def gather(
    repo: EventReader,
    commands: CommandReader,
    acks: Mapping[str, AckRecord],
    *,
    now: float,
    tz: str,
    connected: Iterable[str] = (),
    compound: str | None = None,
) -> ConsoleData:
    """Read what :func:`build` needs from the repository and the command queue."""
    gateways = await repo.gateways()
    events: list[dict[str, Any]] = []
    for kind in STATE_KINDS:
        events += await repo.events(
            compound=compound, kind=kind, since=now - STATE_LOOKBACK_S, limit=100_000
        )
    _, midnight = local_day(now, tz)
    for kind in OTHER_KINDS:
        events += await repo.events(
            compound=compound,
            kind=kind,
            since=min(midnight, now - ALERT_WINDOW_S) - 86400.0,
            limit=100_000,
        )
    recent = await commands.commands(limit=500)
    return build(gateways, events, recent, acks, now=now, tz=tz, connected=connected)


async def recent_taps(
    repo: EventReader, compound: str, *, now: float, limit: int = RECENT_TAPS
) -> list[dict[str, Any]]:
    """The compound's latest taps (newest first) over the last day."""
    taps = await repo.events(compound=compound, kind="tap", since=now - 86400.0, limit=100_000)
    return list(reversed(taps[-limit:]))
