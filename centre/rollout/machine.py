"""The rollout state machine, pure: which gateways a rollout targets, each gateway's stage from
the update events it journaled, and when a rollout stops on its own.

A gateway's stage only moves forward::

    pending -> offered -> downloaded -> installed -> healthy
                   \\-> refused (the gateway would not take it) | rolled_back (it came back on
                                                                   the old version or failed)

``pending``: chosen, not yet asked. ``offered``: the gateway asked and was given the offer (the
centre records this itself). The rest come from the gateway's own update events for the
rollout's release number, delivered in its journal: ``update.downloaded`` (fetched and
verified), ``update.installed`` (the new version reached READY and passed its self-check and
then journaled and uploaded this event itself), and ``healthy`` once the gateway has gone on
uploading for ``healthy_after_s`` after installing. ``update.rolled_back`` / ``update.failed``
are ``rolled_back``; ``update.refused`` naming the release is ``refused``. Events are folded
from scratch each time, so a duplicated delivery changes nothing.

A rollout stops (no new offers) when more than ``max_rollbacks`` of its gateways rolled back.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

PENDING: Final = "pending"
OFFERED: Final = "offered"
DOWNLOADED: Final = "downloaded"
INSTALLED: Final = "installed"
HEALTHY: Final = "healthy"
ROLLED_BACK: Final = "rolled_back"
REFUSED: Final = "refused"
STAGES: Final = (PENDING, OFFERED, DOWNLOADED, INSTALLED, HEALTHY, ROLLED_BACK, REFUSED)
FINAL: Final = frozenset({HEALTHY, ROLLED_BACK, REFUSED})
# Offered (again) while the rollout is active: not yet installed there. A gateway that was cut
# off after downloading asks again and resumes; one that installed, refused or rolled back
# is not asked again.
OFFERABLE: Final = frozenset({PENDING, OFFERED, DOWNLOADED})
_RANK: Final = {PENDING: 0, OFFERED: 1, DOWNLOADED: 2, INSTALLED: 3, HEALTHY: 4}

ACTIVE: Final = "active"
STOPPED: Final = "stopped"  # by hand
HALTED: Final = "halted"  # on its own: too many rollbacks

UPDATE_KINDS: Final = (
    "update.downloaded",
    "update.installed",
    "update.rolled_back",
    "update.failed",
    "update.refused",
)
DEFAULT_HEALTHY_AFTER_S: Final = 600.0


def _release_of(event: Mapping[str, Any]) -> int | None:
    payload = event.get("payload")
    if not isinstance(payload, Mapping):
        return None
    value = payload.get("release")
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _time_of(event: Mapping[str, Any]) -> float | None:
    value = event.get("wall_time")
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def stage_of(
    current: str,
    release: int,
    events: Iterable[Mapping[str, Any]],
    *,
    last_upload: float | None = None,
    healthy_after_s: float = DEFAULT_HEALTHY_AFTER_S,
) -> tuple[str, float | None]:
    """The stage after ``events`` (the gateway's ``update.*`` events, any order) for
    ``release``, starting from ``current``; with the time it installed, if it did.
    ``last_upload`` is the newest event time the centre holds from this gateway."""
    if current in (ROLLED_BACK, REFUSED):
        return current, None
    stage = current
    installed_at: float | None = None
    for ev in events:
        if _release_of(ev) != release:
            continue
        kind = ev.get("kind")
        if kind in ("update.rolled_back", "update.failed"):
            return ROLLED_BACK, None
        if kind == "update.refused":
            if _RANK.get(stage, 0) < _RANK[INSTALLED]:
                return REFUSED, None
            continue  # a later duplicate offer refused as "rollback": it is installed already
        new = {"update.downloaded": DOWNLOADED, "update.installed": INSTALLED}.get(str(kind))
        if new is None:
            continue
        if new == INSTALLED:
            t = _time_of(ev)
            installed_at = t if installed_at is None or t is None else min(installed_at, t)
        if _RANK[new] > _RANK.get(stage, 0):
            stage = new
    if (
        stage == INSTALLED
        and installed_at is not None
        and last_upload is not None
        and last_upload >= installed_at + healthy_after_s
    ):
        stage = HEALTHY
    return stage, installed_at


def should_halt(stages: Iterable[str], max_rollbacks: int) -> bool:
    """More than ``max_rollbacks`` gateways rolled back: no new offers."""
    return sum(1 for s in stages if s == ROLLED_BACK) > max_rollbacks


def choose(rollout_id: str, gateways: Sequence[str], percent: int) -> list[str]:
    """``percent`` of ``gateways`` (at least one when any), the same ones for the same rollout
    id: ordered by sha256(rollout id, gateway id), so a rollout's sample is stable but each
    rollout draws a different one."""
    if not 1 <= percent <= 100:
        raise ValueError("percent must be 1..100")
    if not gateways:
        return []
    n = max(1, math.ceil(len(gateways) * percent / 100))
    ranked = sorted(
        gateways, key=lambda g: hashlib.sha256(f"{rollout_id}\0{g}".encode()).hexdigest()
    )
    return sorted(ranked[:n])
