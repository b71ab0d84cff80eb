"""Event builders shaped exactly like what gateways upload (``Event.to_dict()`` + the centre's
``gateway_id``/``compound``/``township`` columns), and a registry in a real repository."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from centre.store import SqliteRepository
from wire import Batch

# Local midnights in Asia/Shanghai (UTC+8), computed by hand: 2026-10-01 00:00 +08:00 is
# 2026-09-30 16:00 UTC = 1790784000.
OCT_1: float = 1_790_784_000.0
NOV_1: float = OCT_1 + 31 * 86400.0  # 1793462400
NOV_2: float = NOV_1 + 86400.0
H: float = 3600.0
SHANGHAI = ZoneInfo("Asia/Shanghai")


def event(
    seq: int,
    kind: str,
    payload: dict[str, Any],
    wall: float,
    *,
    synced: bool = True,
    boot: str = "boot-1",
) -> dict[str, Any]:
    return {
        "seq": seq,
        "kind": kind,
        "cls": "evidence",
        "payload": payload,
        "wall_time": wall,
        "mono_time": 1.0,
        "boot_id": boot,
        "clock_synced": synced,
    }


def at_gateway(ev: dict[str, Any], gw: str, compound: str, township: str) -> dict[str, Any]:
    """The shape ``Repository.events`` returns."""
    return ev | {"gateway_id": gw, "compound": compound, "township": township}


def verdict(
    round_id: str,
    day: str,
    state: str,
    *,
    revision: int = 1,
    counts: dict[str, int] | None = None,
    excused: Sequence[str] = (),
    required: int = 1,
    reasons: Sequence[str] = (),
    responsible: Sequence[str] = ("g1",),
    route: str = "north",
) -> dict[str, Any]:
    """A ``patrol.round`` payload with the engine's field names (RoundReport.content())."""
    counts = {"a": 1, "b": 1, "c": 1} if counts is None else counts
    # The engine's shape: ISO local times with the offset, windows of two hours here.
    start = datetime.fromisoformat(round_id.split("@", maxsplit=1)[1]).replace(tzinfo=SHANGHAI)
    local_start = start.isoformat()
    local_end = (start + timedelta(hours=2)).isoformat()
    return {
        "round": round_id,
        "schedule": round_id.split("@", maxsplit=1)[0],
        "route": route,
        "day": day,
        "window_start": 0.0,
        "window_end": 7200.0,
        "local_start": local_start,
        "local_end": local_end,
        "verdict": state,
        "reasons": list(reasons),
        "codes": [],
        "started_at": None,
        "finished_at": None,
        "required_taps": required,
        "checkpoints": counts,
        "missing": [],
        "excused": list(excused),
        "out_of_order": [],
        "implausible_legs": [],
        "slow_legs": [],
        "repeated_taps": 0,
        "uncredited_taps": 0,
        "buffered_taps": 0,
        "guards": [],
        "responsible": list(responsible),
        "outages": [],
        "sequence": {"in_order": 0, "judged": 0},
        "at": 0.0,
        "revision": revision,
    }


def summary(day: str, planned: Sequence[int], *, revision: int = 1) -> dict[str, Any]:
    """A ``patrol.daily_summary`` payload: one route row per planned count."""
    return {
        "day": day,
        "routes": [{"key": f"r{i}", "planned": n} for i, n in enumerate(planned)],
        "guards": [],
        "missed_rounds": [],
        "at": 0.0,
        "revision": revision,
    }


async def registry(tmp_path: Path, gateways: Sequence[tuple[str, str, str]]) -> SqliteRepository:
    """A real repository with ``(gateway_id, compound, township)`` enrolled at t=1."""
    repo = await SqliteRepository.open(tmp_path / "centre.db")
    for gw, compound, township in gateways:
        await repo.create_token("h-" + gw, compound, township, 0.0, 1e12)
        await repo.enroll(
            "h-" + gw, gw, compound, 1.0, lambda g, gw=gw: ("pem", "fp-" + gw, "pub", "kid")
        )
    return repo


async def upload(
    repo: SqliteRepository,
    gw: str,
    events: Sequence[dict[str, Any]],
    *,
    now: float,
    batch: str = "b1",
) -> None:
    """Ingest events (ascending seq) as one batch received at ``now``."""
    b = Batch.build(gw, batch, list(events), head_seq=events[-1]["seq"], created_at=now)
    await repo.ingest(b, envelope=b"{}", signature=b"s" * 64, key_id="kid", now=now)
