"""Shared builders for the patrol tests: a config, local times, and journal-shaped events."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from gateway.config.schema import parse_section
from gateway.patrol.config import PatrolSection

TZ = ZoneInfo("Asia/Shanghai")


def section(**overrides: Any) -> PatrolSection:
    """Route r1 = a > b > c (ordered, min walk 60 s), night schedule every 2 h 22:00-06:00."""
    data: dict[str, Any] = {
        "routes": [
            {"id": "r1", "name": "North loop", "checkpoints": ["a", "b", "c"], "min_walk_s": 60}
        ],
        "schedules": [
            {
                "id": "night",
                "route": "r1",
                "every_hours": 2,
                "start": "22:00",
                "end": "06:00",
                "grace_minutes": 15,
                "expected_minutes": 45,
            }
        ],
    }
    data.update(overrides)
    return parse_section(PatrolSection, data, "patrol")


def at(hh: int, mm: int = 0, ss: int = 0, *, day: int = 28, tz: ZoneInfo = TZ) -> float:
    """Unix time of 2026-11-<day> hh:mm:ss local (day 29 is after midnight)."""
    return datetime(2026, 11, day, hh, mm, ss, tzinfo=tz).timestamp()


def after_midnight(hh: int, mm: int = 0, ss: int = 0) -> float:
    return at(hh, mm, ss, day=29)


class EventLog:
    """Builds journal events (``Event.to_dict()`` shape) with gap-free sequence numbers."""

    def __init__(self, boot_id: str = "boot-1") -> None:
        self.events: list[dict[str, Any]] = []
        self.boot_id = boot_id

    def add(
        self, kind: str, wall: float, payload: dict[str, Any] | None = None, *, synced: bool = True
    ) -> dict[str, Any]:
        ev = {
            "seq": len(self.events) + 1,
            "kind": kind,
            "cls": "evidence",
            "payload": payload or {},
            "wall_time": wall,
            "mono_time": 0.0,
            "boot_id": self.boot_id,
            "clock_synced": synced,
        }
        self.events.append(ev)
        return ev

    def tap(
        self,
        cp: str,
        wall: float,
        guard: str = "g1",
        *,
        tapped_at: float | None = None,
        synced: bool = True,
    ) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "checkpoint": cp,
            "guard": guard,
            "wristband": f"wb-{guard}",
            "reader": f"rd-{cp}",
        }
        if tapped_at is not None:
            payload["tapped_at"] = tapped_at
            payload["buffered"] = True
        return self.add("tap", wall, payload, synced=synced)

    def reader(self, cp: str, wall: float, online: bool) -> dict[str, Any]:
        state = "online" if online else "offline"
        return self.add(
            "reader.state", wall, {"reader": f"rd-{cp}", "checkpoint": cp, "state": state}
        )

    def tick(self, wall: float, *, synced: bool = True) -> dict[str, Any]:
        return self.add("health.sample", wall, {"cpu_temp": 40}, synced=synced)
