"""The event: the one record everything that matters becomes before it is acted on.

ev = await journal.append("tap", {"checkpoint": "north-gate"})
ev.seq, ev.kind, ev.to_dict()
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

EVIDENCE: Final = "evidence"
TELEMETRY: Final = "telemetry"
EVENT_CLASSES: Final = (EVIDENCE, TELEMETRY)


@dataclass(frozen=True, slots=True)
class Event:
    """One journal entry. ``seq`` is per gateway, gap-free and strictly increasing from 1."""

    seq: int
    kind: str
    cls: str
    payload: Mapping[str, Any]
    wall_time: float
    mono_time: float
    boot_id: str
    clock_synced: bool

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape (same field names), as the uploader and ``events tail`` use it."""
        return {
            "seq": self.seq,
            "kind": self.kind,
            "cls": self.cls,
            "payload": dict(self.payload),
            "wall_time": self.wall_time,
            "mono_time": self.mono_time,
            "boot_id": self.boot_id,
            "clock_synced": self.clock_synced,
        }
