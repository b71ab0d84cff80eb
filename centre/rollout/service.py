"""The centre's side of rollouts: publishing, the gateways' offer and fetch-by-hash over mTLS,
and each gateway's stage from the update events it uploads.

Gateway routes (client certificate of an enrolled, unrevoked gateway)::

    GET /api/v1/updates/offer              the newest active rollout's release for this
                                           gateway, or {"offer": null}; marks it "offered"
    GET /api/v1/updates/by-hash/{sha256}   a file a published release's metadata names
                                           (metadata.json, metadata.sig, payload); Range
                                           honoured (resume), like announcements by hash

After each batch a gateway uploads, :meth:`RolloutService.refresh` folds that gateway's
``update.*`` events into its stage in every rollout that targets it, and halts a rollout
when more than its ``max_rollbacks`` gateways rolled back (``centre.rollout.machine``).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Final, Protocol

from aiohttp import web

from centre.errors import BadRequest, CentreError
from centre.rollout import machine
from centre.rollout.release import SHA256_RE, Release, ReleaseError, Releases
from centre.rollout.store import Rollout, RolloutSql
from centre.store import Repository
from wire import encode

log = logging.getLogger("centre.rollout")

API: Final = "/api/v1/updates"


class NotFound(CentreError):
    status = 404
    code = "not_found"


class GatewayAuth(Protocol):
    async def _authenticated_gateway(self, request: web.Request) -> Any: ...


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=encode(data), status=status, content_type="application/json")


class RolloutService:
    def __init__(
        self,
        store: RolloutSql,
        repo: Repository,
        gateways: GatewayAuth,
        centre_root: Path,
        *,
        wall: Callable[[], float],
    ) -> None:
        self.store = store
        self.repo = repo
        self.gateways = gateways
        self.releases = Releases(centre_root)
        self.wall = wall
        self.listeners: list[Callable[[], None]] = []  # the console's live version
        self._pending: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._lock = asyncio.Lock()

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get(f"{API}/offer", self.offer),
            web.get(f"{API}/by-hash/{{sha256}}", self.by_hash),
        ]

    async def close(self) -> None:
        """Cancel refreshes still scheduled (the centre is stopping)."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _changed(self) -> None:
        for listener in self.listeners:
            listener()

    # -- publishing -----------------------------------------------------------------------

    async def publish(
        self,
        release: Release,
        gateways: Sequence[str],
        *,
        scope: str,
        max_rollbacks: int,
        created_by: str,
        healthy_after_s: float = machine.DEFAULT_HEALTHY_AFTER_S,
    ) -> Rollout:
        rollout = Rollout(
            rollout_id="r-" + secrets.token_hex(6),
            release_name=release.name,
            release=release.release,
            version=release.version,
            scope=scope,
            max_rollbacks=max_rollbacks,
            healthy_after=healthy_after_s,
            state=machine.ACTIVE,
            created_by=created_by,
            created_at=self.wall(),
            stopped_at=None,
            stopped_why=None,
        )
        await self.store.create(rollout, sorted(set(gateways)))
        self._changed()
        return rollout

    async def stop(self, rollout_id: str) -> bool:
        done = await self.store.stop(rollout_id, machine.STOPPED, "by_hand", self.wall())
        self._changed()
        return done

    # -- stages from uploaded events ----------------------------------------------------

    def on_ingest(self, gateway_id: str) -> None:
        """An ingest listener (synchronous): schedule a refresh of this gateway."""
        if gateway_id in self._pending:
            return
        self._pending.add(gateway_id)
        task = asyncio.get_running_loop().create_task(self._refresh_later(gateway_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _refresh_later(self, gateway_id: str) -> None:
        try:
            self._pending.discard(gateway_id)
            await self.refresh(gateway_id, uploaded_at=self.wall())
        except Exception:  # a listener must never break ingest; logged once, retried next batch
            log.exception("rollout refresh of %s failed", gateway_id)

    async def refresh(self, gateway_id: str, uploaded_at: float | None = None) -> None:
        """Fold this gateway's update events into its stage in each rollout that targets it,
        then halt any rollout with too many rollbacks. ``uploaded_at``: when it last uploaded
        (an upload ``healthy_after`` seconds after installing makes it healthy)."""
        async with self._lock:
            targets = await self.store.targets(gateway_id=gateway_id)
            if not targets:
                return
            rollouts = {t.rollout_id: await self.store.rollout(t.rollout_id) for t in targets}
            created = [r.created_at for r in rollouts.values() if r is not None]
            if not created:
                return
            since = min(created) - 1.0
            events: list[dict[str, Any]] = []
            for kind in machine.UPDATE_KINDS:
                events += await self.repo.events(
                    gateway_id=gateway_id, kind=kind, since=since, limit=1000
                )
            changed = False
            for t in targets:
                ro = rollouts[t.rollout_id]
                if ro is None or t.stage == machine.PENDING:
                    continue  # not offered yet: a stale event of another release means nothing
                stage, installed_at = machine.stage_of(
                    t.stage, ro.release, events, last_upload=uploaded_at,
                    healthy_after_s=ro.healthy_after,
                )  # fmt: skip
                if stage != t.stage:
                    await self.store.set_stage(
                        t.rollout_id, gateway_id, stage, self.wall(), installed_at=installed_at
                    )
                    changed = True
            for rollout_id in {t.rollout_id for t in targets}:
                changed |= await self._maybe_halt(rollout_id)
        if changed:
            self._changed()

    async def _maybe_halt(self, rollout_id: str) -> bool:
        ro = await self.store.rollout(rollout_id)
        if ro is None or ro.state != machine.ACTIVE:
            return False
        stages = [t.stage for t in await self.store.targets(rollout_id=rollout_id)]
        if not machine.should_halt(stages, ro.max_rollbacks):
            return False
        rolled = sum(1 for s in stages if s == machine.ROLLED_BACK)
        log.warning(
            "rollout %s halted: %d gateways rolled back (limit %d)",
            rollout_id, rolled, ro.max_rollbacks,
        )  # fmt: skip
        return await self.store.stop(
            rollout_id, machine.HALTED, f"rolled_back:{rolled}", self.wall()
        )

    # -- the gateways' routes --------------------------------------------------------------

    async def offer(self, request: web.Request) -> web.Response:
        record = await self.gateways._authenticated_gateway(request)
        gw = record.gateway_id
        candidates = []
        for t in await self.store.targets(gateway_id=gw):
            ro = await self.store.rollout(t.rollout_id)
            if ro is not None and ro.state == machine.ACTIVE and t.stage in machine.OFFERABLE:
                candidates.append((ro, t))
        candidates.sort(key=lambda c: (-c[0].created_at, c[0].rollout_id))  # newest first
        for ro, t in candidates:
            try:
                release = self.releases.get(ro.release_name)
            except ReleaseError:
                continue  # the folder was removed or damaged: nothing to offer
            if t.stage == machine.PENDING:
                await self.store.set_stage(
                    t.rollout_id, gw, machine.OFFERED, self.wall(), offered=True
                )
                self._changed()
            return _json({"offer": {"rollout": ro.rollout_id, **release.offer()}})
        return _json({"offer": None})

    def _find(self, sha256: str) -> Path | None:
        for release in self.releases.list():
            path = release.path_for(sha256)
            if path is not None:
                return path
        return None

    async def by_hash(self, request: web.Request) -> web.StreamResponse:
        await self.gateways._authenticated_gateway(request)
        sha256 = request.match_info["sha256"]
        if not SHA256_RE.fullmatch(sha256):
            raise BadRequest("not a sha256")
        path = await asyncio.to_thread(self._find, sha256)
        if path is None or not path.is_file() or path.is_symlink():
            raise NotFound("no published release names this sha256")
        # FileResponse honours Range (a gateway resumes a partial download).
        return web.FileResponse(path, headers={"Content-Type": "application/octet-stream"})
