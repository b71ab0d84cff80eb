"""The console's rollout page (``/console/rollouts``): an officer publishes a release placed in
the centre's releases folder to one gateway, a township, a percentage or all, and sees each
gateway's stage; a rollout stops by hand or on its own after too many rollbacks.

Same rules as every console form (``centre.web.pages``): session, CSRF token, permission
checked on the server for each request (``publish_updates``: officers), each publish or stop
one audit record, refusals a 4xx page in words, never a 500.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Final

from aiohttp import web

from centre.rollout import machine
from centre.rollout.release import ReleaseError
from centre.rollout.service import RolloutService
from centre.web.errors import ConsoleError
from centre.web.pages import ROOT, ConsolePages, FormError, _client, _may, _one
from centre.web.permissions import Action, Target, User, can

MAX_ROLLBACKS_LIMIT: Final = 1000
SCOPES: Final = ("one", "township", "percent", "all")


class RolloutPages:
    def __init__(self, pages: ConsolePages, rollouts: RolloutService) -> None:
        self.pages = pages
        self.rollouts = rollouts
        rollouts.listeners.append(pages.live.bump)

    def routes(self) -> list[web.AbstractRouteDef]:
        return [
            web.get(f"{ROOT}/rollouts", self.page),
            web.post(f"{ROOT}/rollouts", self.publish),
            web.post(f"{ROOT}/rollouts/stop", self.stop),
        ]

    def install(self, app: web.Application) -> None:
        app.add_routes(self.routes())

    async def _context(self) -> dict[str, Any]:
        gateways = [g for g in await self.pages.repo.gateways() if g.revoked_at is None]
        names = {g.gateway_id: (g.township, g.compound) for g in gateways}
        shown = []
        for ro in await self.rollouts.store.rollouts(limit=50):
            targets = await self.rollouts.store.targets(rollout_id=ro.rollout_id)
            counts = Counter(t.stage for t in targets)
            shown.append(
                {
                    "r": ro,
                    "counts": [(s, counts[s]) for s in machine.STAGES if counts[s]],
                    "rolled_back": counts[machine.ROLLED_BACK],
                    "targets": [
                        {"t": t, "township": names.get(t.gateway_id, ("", ""))[0],
                         "compound": names.get(t.gateway_id, ("", ""))[1]}
                        for t in targets
                    ],
                }
            )  # fmt: skip
        return {
            "releases": self.rollouts.releases.list(),
            "gateways": sorted(gateways, key=lambda g: (g.township, g.compound, g.gateway_id)),
            "townships": sorted({g.township for g in gateways}),
            "rollouts": shown,
            "active": machine.ACTIVE,
        }

    async def page(
        self, request: web.Request, *, error: str = "", status: int = 200
    ) -> web.Response:
        user, sid = await self.pages._page_user(request)
        if not _may(user, Action.PUBLISH_UPDATES):
            return await self.pages._forbidden_page(request, user, sid)
        return self.pages._render(
            request, "rollouts.html", status=status, user=user, sid=sid, page="rollouts",
            error=error, **await self._context(),
        )  # fmt: skip

    async def _refused(
        self, request: web.Request, user: User, sid: str, exc: ConsoleError
    ) -> web.Response:
        message = self.pages._refusal(request, exc)
        if not _may(user, Action.PUBLISH_UPDATES):
            return self.pages._render(
                request, "error.html", status=exc.status, user=user, sid=sid, message=message
            )
        return await self.page(request, error=message, status=exc.status)

    async def publish(self, request: web.Request) -> web.Response:
        user, sid = await self.pages._page_user(request)
        client = _client(request)
        target = "release:?"
        try:
            fields = await self.pages._form(request)
            self.pages.console.check_csrf(sid, _one(fields, "csrf", 80))
            if not _may(user, Action.PUBLISH_UPDATES):
                raise ConsoleError("forbidden", f"a {user.role.value} may not publish updates")
            name = _one(fields, "release", 100)
            target = f"release:{name}"
            try:
                release = self.rollouts.releases.get(name)
            except ReleaseError:
                raise FormError("no_release", "no usable release of this name") from None
            raw = _one(fields, "max_rollbacks", 10).strip()
            if not raw.isascii() or not raw.isdigit() or int(raw) > MAX_ROLLBACKS_LIMIT:
                raise FormError("bad_max_rollbacks", "max rollbacks is not 0..1000")
            max_rollbacks = int(raw)
            gateways = [g for g in await self.pages.repo.gateways() if g.revoked_at is None]
            scope = _one(fields, "scope", 20)
            if scope == "one":
                gw = _one(fields, "gateway", 200)
                chosen = [g.gateway_id for g in gateways if g.gateway_id == gw]
                scope_text = f"gateway:{gw}"
            elif scope == "township":
                township = _one(fields, "township", 200)
                chosen = [g.gateway_id for g in gateways if g.township == township]
                scope_text = f"township:{township}"
            elif scope == "percent":
                raw = _one(fields, "percent", 10).strip()
                if not raw.isascii() or not raw.isdigit() or not 1 <= int(raw) <= 100:
                    raise FormError("bad_percent", "percent is not 1..100")
                chosen = machine.choose(
                    f"{name}:{self.pages.wall()}", [g.gateway_id for g in gateways], int(raw)
                )
                scope_text = f"percent:{int(raw)}"
            elif scope == "all":
                chosen = [g.gateway_id for g in gateways]
                scope_text = "all"
            else:
                raise FormError("bad_form", "unknown scope")
            if not chosen:
                raise FormError("no_gateways", "no enrolled gateway in this choice")
            places = {g.gateway_id: Target(g.township, g.compound) for g in gateways}
            if not all(can(user, Action.PUBLISH_UPDATES, places[g]) for g in chosen):
                raise ConsoleError("forbidden", "outside this account's area")
            target = f"release:{name}:{scope_text}"
            rollout = await self.rollouts.publish(
                release, chosen, scope=scope_text, max_rollbacks=max_rollbacks,
                created_by=f"console:{user.name}",
            )  # fmt: skip
        except ConsoleError as exc:
            if exc.code != "csrf_mismatch":
                await self.pages.console.record(
                    user.name, "rollout.publish", target[:200], f"refused:{exc.code}", client
                )
            return await self._refused(request, user, sid, exc)
        await self.pages.console.record(
            user.name, "rollout.publish", target[:200],
            f"ok:{rollout.rollout_id}:gateways={len(chosen)}:max_rollbacks={max_rollbacks}",
            client,
        )  # fmt: skip
        raise web.HTTPSeeOther(f"{ROOT}/rollouts?published={rollout.rollout_id}")

    async def stop(self, request: web.Request) -> web.Response:
        user, sid = await self.pages._page_user(request)
        client = _client(request)
        target = "rollout:?"
        try:
            fields = await self.pages._form(request)
            self.pages.console.check_csrf(sid, _one(fields, "csrf", 80))
            if not _may(user, Action.PUBLISH_UPDATES):
                raise ConsoleError("forbidden", f"a {user.role.value} may not stop rollouts")
            rollout_id = _one(fields, "rollout", 40)
            target = f"rollout:{rollout_id}"
            if not await self.rollouts.stop(rollout_id):
                raise FormError("no_such_rollout", "no active rollout with this id")
        except ConsoleError as exc:
            if exc.code != "csrf_mismatch":
                await self.pages.console.record(
                    user.name, "rollout.stop", target[:200], f"refused:{exc.code}", client
                )
            return await self._refused(request, user, sid, exc)
        await self.pages.console.record(user.name, "rollout.stop", target[:200], "ok", client)
        raise web.HTTPSeeOther(f"{ROOT}/rollouts")
