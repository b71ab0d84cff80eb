"""Look now (issue 17): order a fresh picture from one gateway's camera, then follow it.

    rec = await request_look_now(store, repo, key, gateway_id="gw-rose-01",
                                 camera="duty-room", now=time.time(), issued_by="cli:li")
    result = await look_now_result(store, repo, rec.command_id, now=time.time())
    result.stage      # "waiting" | "taken" (gateway done, image not here yet) | "stored" | "failed"

The order is a signed ``camera.snapshot`` command issued through
:func:`~centre.commands.issue.issue` like every command (own id and sequence per gateway,
expiry, the centre's command key); it moves no relay. The gateway answers ``done`` with
``sha256 <hex>`` in the ack's reason, journals a ``camera.snapshot`` event (its wall time is
the capture time) and uploads the image first in line (docs/media.md). Used by
``compound-centre snapshot`` and by the console's compound page.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from centre.commands.issue import issue
from centre.commands.store import DONE, FINAL, CommandRecord, CommandRepository
from centre.errors import CentreError
from centre.media import media_path
from centre.store import MediaRecord, Repository
from wire.commands import CAMERA_RE, CameraSnapshot

LOOK_NOW_TTL_S: Final = 60.0
"""How long a console look-now order stays valid: a picture asked for a minute ago and not yet
taken is no longer the picture the officer wanted."""
SHA_IN_ACK: Final = re.compile(r"sha256 ([0-9a-f]{64})")
WAITING: Final = "waiting"
TAKEN: Final = "taken"
STORED: Final = "stored"
FAILED: Final = "failed"


@dataclass(frozen=True, slots=True)
class LookNowResult:
    """Where one look-now order stands.

    ``status`` is the command's as an operator sees it (queued … done, failed, refused,
    expired); ``reason`` the gateway's words (``camera_unreachable: …``). ``captured_at`` is the
    gateway's wall clock when it took the picture (``clock_synced`` says whether that clock was
    synchronised); ``stored_at`` the centre's when the image arrived whole.
    """

    command_id: str
    gateway_id: str
    camera: str
    status: str
    reason: str
    issued_at: float
    expires_at: float
    sha256: str | None = None
    captured_at: float | None = None
    clock_synced: bool | None = None
    stored_at: float | None = None
    path: str | None = None  # relative to the centre's media folder, once stored

    @property
    def stage(self) -> str:
        """``waiting`` (not answered yet), ``taken`` (the gateway has the picture, the centre
        not yet), ``stored`` (the centre holds it) or ``failed`` (refused, failed, expired)."""
        if self.stored_at is not None:
            return STORED
        if self.status == DONE and self.sha256:
            return TAKEN
        if self.status in FINAL:
            return FAILED
        return WAITING


async def request_look_now(
    store: CommandRepository,
    repo: Repository,
    key: Ed25519PrivateKey,
    *,
    gateway_id: str,
    camera: str,
    now: float,
    issued_by: str,
    ttl_s: float = LOOK_NOW_TTL_S,
) -> CommandRecord:
    """Queue a signed ``camera.snapshot`` for one enrolled, unrevoked gateway; the stored
    command (its ``command_id`` is what :func:`look_now_result` follows). Raises
    :class:`~centre.errors.CentreError` for a bad camera name or an unknown gateway."""
    if not CAMERA_RE.fullmatch(camera):
        raise CentreError(f"camera must match {CAMERA_RE.pattern}", camera=camera[:80])
    record = await repo.gateway(gateway_id)
    if record is None or record.revoked_at is not None:
        raise CentreError(f"no enrolled, unrevoked gateway {gateway_id!r}")
    (rec,) = await issue(
        store, [gateway_id], key, CameraSnapshot(camera), ttl_s=ttl_s, now=now, issued_by=issued_by
    )
    return rec


def camera_of(rec: CommandRecord) -> str:
    """The camera a stored ``camera.snapshot`` command names (its summary, ``camera NAME``)."""
    return rec.summary.removeprefix("camera ").strip()


async def look_now_result(
    store: CommandRepository, repo: Repository, command_id: str, *, now: float
) -> LookNowResult | None:
    """Where the look-now order ``command_id`` stands; None if there is no such snapshot order."""
    rec = await store.command(command_id)
    if rec is None or rec.action != CameraSnapshot.name:
        return None
    found = SHA_IN_ACK.search(rec.reason) if rec.status == DONE else None
    fields: dict[str, Any] = {}
    if found is not None:
        sha = found.group(1)
        fields["sha256"] = sha
        event = await repo.snapshot_event(rec.gateway_id, sha)
        if event is not None:
            wall = event.get("wall_time")
            if isinstance(wall, int | float) and not isinstance(wall, bool):
                fields["captured_at"] = float(wall)
            synced = event.get("clock_synced")
            fields["clock_synced"] = synced if isinstance(synced, bool) else None
        media: MediaRecord | None = await repo.media(sha)
        if media is not None:
            fields["stored_at"] = media.stored_at
            fields["path"] = media_path(sha)
    return LookNowResult(
        rec.command_id,
        rec.gateway_id,
        camera_of(rec),
        rec.shown_status(now),
        rec.reason,
        rec.issued_at,
        rec.expires_at,
        **fields,
    )
