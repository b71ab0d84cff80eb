"""What the status page shows, built from journal events and the status board. Pure: no I/O.

    view = build_view(events, board, journal_status, now=clock.wall(), tz="Asia/Shanghai",
                      gateway_id="gw-01", compound="Lotus Garden")
    view["taps"], view["rounds"], view["alerts"], view["sections"]

Everything leaving here has been through :func:`redact`: values under names that smell of
secrets (keys, tokens, passwords, SCBKs...) are replaced, and wristband numbers (an NFC UID is
the credential a cloner needs) are never copied out of tap events.
"""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

from gateway.events import Event

REDACTED: Final = "(hidden)"
# Names whose values are never shown. Paths to secret files are fine to show (``*_file``,
# ``*_path``): the page never reads a file's contents.
_SECRET_NAME = re.compile(
    r"(^|[_\-.])(key|keys|scbk|token|tokens|password|passwd|passphrase|secret|secrets|psk|"
    r"credential|credentials|cookie|session|csrf|private|auth|authorization|wristband|"
    r"uid|card|card_number)($|[_\-.])",
    re.IGNORECASE,
)
_PATH_NAME = re.compile(r"(_file|_path|_dir)$", re.IGNORECASE)

TAPS_SHOWN: Final = 20
ALERTS_SHOWN: Final = 20
BROADCASTS_SHOWN: Final = 10
ACK_KIND: Final = "web.alert_ack"
# Board sections shown in their own panels rather than generically.
SPECIFIC_SECTIONS: Final = frozenset({"daemon", "services"})
# The daemon rewrites its board every few seconds; older than this, it may have stopped.
STALE_BOARD_S: Final = 60.0


def is_secret_name(name: str) -> bool:
    """Whether a field called ``name`` may hold a secret (and is not just a file's path)."""
    return bool(_SECRET_NAME.search(name)) and not _PATH_NAME.search(name)


def redact(value: Any, name: str = "") -> Any:
    """A JSON-ready copy of ``value`` with every secret-named field's value hidden."""
    if name and is_secret_name(name):
        return REDACTED
    if isinstance(value, Mapping):
        return {str(k): redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def local_day(wall: float, tz: str) -> str:
    """The calendar day (YYYY-MM-DD) of a wall-clock time in the compound's time zone."""
    return dt.datetime.fromtimestamp(wall, zoneinfo.ZoneInfo(tz)).date().isoformat()


def local_time(wall: float | None, tz: str, today: str = "") -> str:
    """``YYYY-MM-DD HH:MM:SS`` in the compound's time zone (``HH:MM:SS`` if on ``today``)."""
    if not isinstance(wall, int | float) or isinstance(wall, bool):
        return ""
    when = dt.datetime.fromtimestamp(wall, zoneinfo.ZoneInfo(tz))
    if when.date().isoformat() == today:
        return when.strftime("%H:%M:%S")
    return when.strftime("%Y-%m-%d %H:%M:%S")


def _str(payload: Mapping[str, Any], key: str) -> str:
    value = payload.get(key)
    return "" if value is None else str(value)


def _taps(events: Sequence[Event], tz: str, today: str) -> list[dict[str, Any]]:
    taps = [e for e in events if e.kind == "tap"][-TAPS_SHOWN:]
    return [
        {
            "seq": e.seq,
            "at": local_time(e.wall_time, tz, today),
            "at_wall": e.wall_time,
            "checkpoint": _str(e.payload, "checkpoint"),
            "guard": _str(e.payload, "guard"),
            "reader": _str(e.payload, "reader"),
            "clock_synced": e.clock_synced,
            # False: a UID-only band (can be cloned; docs/credentials.md), None: no mark.
            "verified": e.payload.get("verified") if isinstance(e.payload.get("verified"), bool)
            else None,
        }
        for e in reversed(taps)
    ]


def _rounds(events: Sequence[Event], today: str, tz: str) -> list[dict[str, Any]]:
    latest: dict[str, Event] = {}
    for e in events:
        if e.kind != "patrol.round":
            continue
        day = _str(e.payload, "day") or local_day(e.wall_time, tz)
        if day == today:
            latest[_str(e.payload, "round") or f"seq-{e.seq}"] = e  # later revisions win
    rows = []
    for round_id, e in latest.items():
        p = e.payload
        rows.append(
            {
                "round": round_id,
                "route": _str(p, "route"),
                "window": " to ".join(
                    x for x in (_str(p, "local_start"), _str(p, "local_end")) if x
                ),
                "verdict": _str(p, "verdict") or "?",
                "missing": ", ".join(map(str, p.get("missing") or ())),
                "reasons": "; ".join(map(str, p.get("reasons") or ())),
                "guards": ", ".join(map(str, p.get("guards") or ())),
            }
        )
    rows.sort(key=lambda r: (r["window"], r["round"]))
    return rows


def _alerts(events: Sequence[Event], tz: str, today: str) -> list[dict[str, Any]]:
    resolved: dict[str, str] = {}
    acked: dict[str, str] = {}
    raised: dict[str, Event] = {}
    for e in events:
        alert = _str(e.payload, "alert")
        if not alert:
            continue
        if e.kind == "patrol.alert":
            raised[alert] = e
        elif e.kind == "patrol.alert_resolved":
            resolved[alert] = _str(e.payload, "resolution") or "resolved"
        elif e.kind == ACK_KIND:
            acked[alert] = local_time(e.wall_time, tz, today)
    newest = sorted(raised.values(), key=lambda e: e.seq)[-ALERTS_SHOWN:]
    return [
        {
            "alert": alert_id,
            "seq": e.seq,
            "at": local_time(e.wall_time, tz, today),
            "at_wall": e.wall_time,
            "alert_kind": _str(e.payload, "alert_kind"),
            "round": _str(e.payload, "round"),
            "checkpoint": _str(e.payload, "checkpoint"),
            "message": _str(e.payload, "message"),
            "resolved": resolved.get(alert_id, ""),
            "acknowledged": acked.get(alert_id, ""),
        }
        for e in reversed(newest)
        for alert_id in (_str(e.payload, "alert"),)
    ]


def _latest_by(
    events: Sequence[Event], kind: str, key: str, tz: str, today: str
) -> list[dict[str, Any]]:
    latest: dict[str, Event] = {}
    for e in events:
        if e.kind == kind:
            latest[_str(e.payload, key)] = e
    rows = []
    for name in sorted(latest):
        e = latest[name]
        row = redact(dict(e.payload))
        row["since"] = local_time(e.wall_time, tz, today)
        row["since_wall"] = e.wall_time
        rows.append(row)
    return rows


def _broadcasts(events: Sequence[Event], tz: str, today: str) -> list[dict[str, Any]]:
    chosen = [e for e in events if e.kind.startswith("broadcast.")][-BROADCASTS_SHOWN:]
    return [
        {
            "seq": e.seq,
            "at": local_time(e.wall_time, tz, today),
            "at_wall": e.wall_time,
            "kind": e.kind.removeprefix("broadcast."),
            "payload": redact(dict(e.payload)),
            "detail": ", ".join(
                f"{k}={v}"
                for k, v in sorted(redact(dict(e.payload)).items())
                if v not in ("", None)
            ),
        }
        for e in reversed(chosen)
    ]


def _patrol_today(board: Mapping[str, Any]) -> dict[str, Any] | None:
    """The patrol service's own rows for the patrol day (those ``patrol today`` prints)."""
    patrol = board.get("patrol")
    if not isinstance(patrol, Mapping):
        return None
    rows = patrol.get("today")
    schedules = patrol.get("schedules")
    return {
        "day": patrol.get("day"),
        "rows": redact(rows) if isinstance(rows, list) else [],
        "waiting_for": str(patrol.get("waiting_for") or ""),
        "idle_schedules": sorted(str(k) for k, v in schedules.items() if v == 0)
        if isinstance(schedules, Mapping)
        else [],
    }


def _problems(
    view: Mapping[str, Any], clock_synced: bool | None, now: float
) -> list[dict[str, Any]]:
    """Device and health problems as alerts: what someone should go and look at now."""
    out: list[dict[str, Any]] = []
    if view["board_age_s"] is None:
        out.append({"what": "daemon", "subject": "", "state": "stopped", "reason": ""})
    elif view["board_age_s"] > STALE_BOARD_S:
        out.append(
            {
                "what": "daemon",
                "subject": "",
                "state": "unknown",
                "reason": "",
                "since_wall": now - view["board_age_s"],
            }
        )
    if clock_synced is False:
        out.append({"what": "clock", "subject": "", "state": "unknown", "reason": ""})
    for r in view["readers"]:
        if r.get("state") not in ("online", "", None):
            out.append(
                {
                    "what": "reader",
                    "subject": r.get("reader", ""),
                    "checkpoint": r.get("checkpoint", ""),
                    "state": r.get("state"),
                    "reason": r.get("reason", ""),
                    "since_wall": r.get("since_wall"),
                }
            )
    for h in view["health"]:
        if h.get("state") in ("down", "degraded"):
            out.append(
                {
                    "what": "device",
                    "subject": h.get("device", ""),
                    "kind": h.get("kind", ""),
                    "state": h.get("state"),
                    "reason": h.get("reason", ""),
                    "since_wall": h.get("since_wall"),
                }
            )
    for svc in view["services"]:
        if isinstance(svc, Mapping) and svc.get("state") in ("crashed", "backoff", "failed"):
            out.append(
                {
                    "what": "service",
                    "subject": svc.get("service", ""),
                    "state": svc.get("state"),
                    "reason": svc.get("last_error", ""),
                }
            )
    link = view["sections"].get("sync")
    if isinstance(link, Mapping) and link.get("link") == "down":
        out.append(
            {
                "what": "link",
                "subject": link.get("centre", ""),
                "state": "down",
                "reason": link.get("last_error", ""),
                "since_wall": link.get("since"),
            }
        )
    if "error" in view["journal"]:
        out.append(
            {
                "what": "journal",
                "subject": "",
                "state": "failed",
                "reason": view["journal"]["error"],
            }
        )
    return out


def build_view(
    events: Iterable[Event],
    board: Mapping[str, Any],
    journal_status: Mapping[str, Any],
    *,
    now: float,
    tz: str,
    gateway_id: str,
    compound: str,
    clock_synced: bool | None = None,
) -> dict[str, Any]:
    """The page's data: specific panels from events, plus every board section, all redacted.

    ``problems`` lists device and health trouble (daemon stopped, clock not synchronised,
    readers offline, devices down, services crashing, link down); ``patrol_today`` the patrol
    service's rows for the patrol day, when the daemon publishes them.
    """
    evs = sorted(events, key=lambda e: e.seq)
    today = local_day(now, tz)
    daemon = board.get("daemon") if isinstance(board.get("daemon"), Mapping) else {}
    updated = daemon.get("updated") if isinstance(daemon, Mapping) else None
    services = board.get("services")
    view: dict[str, Any] = {
        "gateway": gateway_id,
        "compound": compound,
        "tz": tz,
        "now": local_time(now, tz),
        "now_wall": now,
        "today": today,
        "clock_synced": clock_synced,
        "board_age_s": round(now - updated, 1) if isinstance(updated, int | float) else None,
        "journal": redact(dict(journal_status)),
        "services": redact(services) if isinstance(services, list) else [],
        "taps": _taps(evs, tz, today),
        "rounds": _rounds(evs, today, tz),
        "patrol_today": _patrol_today(board),
        "alerts": _alerts(evs, tz, today),
        "readers": _latest_by(evs, "reader.state", "reader", tz, today),
        "health": _latest_by(evs, "health.state", "device", tz, today),
        "broadcasts": _broadcasts(evs, tz, today),
        "sections": {
            str(k): redact(v, str(k))
            for k, v in sorted(board.items())
            if str(k) not in SPECIFIC_SECTIONS
        },
    }
    view["problems"] = _problems(view, clock_synced, now)
    return view
