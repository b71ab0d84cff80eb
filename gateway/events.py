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
    # The hash chain (wire/chain.py): set on evidence events, None on telemetry and on rows
    # journaled before the chain existed.
    prev_seq: int | None = None
    prev_hash: str | None = None
    hash: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape (same field names), as the uploader and ``events tail`` use it."""
        out: dict[str, Any] = {
            "seq": self.seq,
            "kind": self.kind,
            "cls": self.cls,
            "payload": dict(self.payload),
            "wall_time": self.wall_time,
            "mono_time": self.mono_time,
            "boot_id": self.boot_id,
            "clock_synced": self.clock_synced,
        }
        if self.hash is not None:
            out.update(prev_seq=self.prev_seq, prev_hash=self.prev_hash, hash=self.hash)
        return out
