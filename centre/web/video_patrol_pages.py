"""The console's video patrol pages (``/console/video-patrol``, issue 17; see video_patrol.py).

Same rules as every console form (``centre.web.pages``): session, CSRF token, permission checked
on the server for each request (``video_patrol``: officers and clerks), each session opened and
each verdict one audit record, refusals a 4xx page in words (or JSON for a script), never a 500.

    VideoPatrolPages(pages, patrol).install(app)
"""

from __future__ import annotations

import contextlib
from typing import Any, Final

from aiohttp import web

from centre.errors import CentreError
from centre.web.errors import ConsoleError
from centre.web.pages import N_, ROOT, ConsolePages, FormError, _client, _may, _one
from centre.web.permissions import Action, Target, User, can
from centre.web.video_patrol import (
    CAMERA_FAULT,
    MAX_NOTE,
    MAX_SAMPLE,
    SESSION_ID_RE,
    VERDICTS,
    LookRefused,
    Session,
    Verdict,
    VideoPatrol,
    places_of,
)

PREFIX: Final = f"{ROOT}/video-patrol"
REFRESH_S: Final = 2  # the page reloads itself while a picture is on its way

REFUSALS: Final = {
    "bad_sample": N_("Give the number of compounds to sample, 1 or more."),
    "no_compounds": N_("No compound has an enrolled gateway to look at."),
    "no_such_session": N_("This video patrol session does not exist."),
    "not_current": N_("This compound has already been judged, or is not the one on screen."),
    "no_picture": N_(
        "There is no picture to judge yet: wait for it, ask again, or mark a camera fault."
    ),
    "bad_verdict": N_("Choose one of the verdicts."),
    "command_key": N_("The centre cannot sign commands (no command key)."),
}


def _refused(code: str, reason: str, status: int = 400) -> FormError:
    exc = FormError(code, reason)
    exc.status = status
    return exc


class VideoPatrolPages:
    def __init__(self, pages: ConsolePages, patrol: VideoPatrol) -> None:
        self.pages = pages
        self.patrol = patrol
        pages.alert_sources.append(patrol.alerts)

    def routes(self) -> list[web.AbstractRouteDef]:
        return [
            web.get(PREFIX, self.page),
            web.post(PREFIX, self.open_session),
            web.get(f"{PREFIX}/session", self.session_page),
            web.post(f"{PREFIX}/ask", self.ask_again),
            web.post(f"{PREFIX}/verdict", self.judge),
        ]

    def install(self, app: web.Application) -> None:
        app.add_routes(self.routes())

    # -- pages ----------------------------------------------------------------------------

    async def _user(self, request: web.Request) -> tuple[User, str]:
        """The signed-in user who may patrol; anyone else gets the console's refusal (403, a
        compound manager is sent to their compound's page), audited when it was a form."""
        user, sid = await self.pages._page_user(request)
        if not _may(user, Action.VIDEO_PATROL):
            if request.method == "POST":
                await self.pages.console.record(
                    user.name, "video_patrol", request.path, "refused:forbidden", _client(request)
                )
            response = await self.pages._forbidden_page(request, user, sid)
            headers = {k: v for k, v in response.headers.items() if k.lower() != "content-type"}
            raise web.HTTPForbidden(text=response.text, content_type="text/html", headers=headers)
        return user, sid

    def _message(self, request: web.Request, exc: ConsoleError) -> str:
        if exc.code in REFUSALS:
            # Worded here (the console's own table does not know these codes).
            from centre.web.pages import translations

            text = translations(self.pages._lang(request)).gettext(REFUSALS[exc.code])
            if "text/html" not in request.headers.get("Accept", ""):
                refused = ConsoleError(exc.code, exc.reason, message=text)
                refused.status = exc.status
                raise refused
            return text
        return self.pages._refusal(request, exc)

    async def page(
        self, request: web.Request, *, error: str = "", status: int = 200
    ) -> web.Response:
        user, sid = await self._user(request)
        places = places_of(await self.pages.repo.gateways())
        return self.pages._render(
            request, "video_patrol.html", status=status, user=user, sid=sid,
            page="video_patrol", error=error, compounds=len(places),
            sessions=await self.patrol.store.sessions(),
            monthly=await self.patrol.monthly(self.pages.tz),
        )  # fmt: skip

    async def _session(self, fields_or_query: Any) -> Session:
        session_id = fields_or_query
        if not isinstance(session_id, str) or not SESSION_ID_RE.fullmatch(session_id):
            raise _refused("no_such_session", "malformed session id", 404)
        session = await self.patrol.store.session(session_id)
        if session is None:
            raise _refused("no_such_session", "no such session", 404)
        return session

    async def session_page(
        self,
        request: web.Request,
        *,
        error: str = "",
        status: int = 200,
        session_id: str | None = None,
    ) -> web.Response:
        user, sid = await self._user(request)
        try:
            session = await self._session(session_id or request.query.get("id", ""))
        except ConsoleError as exc:
            return await self.page(request, error=self._message(request, exc), status=exc.status)
        step = session.current
        look = None if step is None else await self.patrol.look(step, now=self.pages.wall())
        verdicts = [session.verdicts[s.position] for s in session.steps if s.position in
                    session.verdicts]  # fmt: skip
        return self.pages._render(
            request, "video_patrol_session.html", status=status, user=user, sid=sid,
            page="video_patrol", error=error, session=session, step=step, look=look,
            verdicts=verdicts, verdict_codes=VERDICTS, max_note=MAX_NOTE,
            refresh=REFRESH_S if look is not None and look.state == "waiting" else 0,
        )  # fmt: skip

    # -- forms ----------------------------------------------------------------------------

    async def _refuse(
        self, request: web.Request, user: User, action: str, target: str, exc: ConsoleError,
        session_id: str | None = None,
    ) -> web.Response:  # fmt: skip
        await self.pages.console.record(
            user.name, action, target, f"refused:{exc.code}", _client(request)
        )
        message = self._message(request, exc)
        known = session_id is not None and SESSION_ID_RE.fullmatch(session_id) is not None
        if known and await self.patrol.store.session(str(session_id)) is not None:
            return await self.session_page(
                request, error=message, status=exc.status, session_id=session_id
            )
        return await self.page(request, error=message, status=exc.status)

    async def open_session(self, request: web.Request) -> web.Response:
        user, sid = await self._user(request)
        try:
            fields = await self.pages._form(request)
            self.pages.console.check_csrf(sid, _one(fields, "csrf", 80))
            mode = _one(fields, "mode", 10)
            if mode == "all":
                sample = None
            elif mode == "sample":
                raw = _one(fields, "sample", 10).strip()
                if not raw.isascii() or not raw.isdigit() or not 1 <= int(raw) <= MAX_SAMPLE:
                    raise FormError("bad_sample", "sample is not 1..1000")
                sample = int(raw)
            else:
                raise FormError("bad_form", "mode is neither all nor sample")
            places = [
                p
                for p in places_of(await self.pages.repo.gateways())
                if can(user, Action.VIDEO_PATROL, Target(p.township, p.compound))
            ]
            if not places:
                raise FormError("no_compounds", "no compound with an enrolled gateway")
            if not self.patrol.looker.can_ask():
                raise FormError("command_key", "the centre has no command key")
            now = self.pages.wall()
            session_id = await self.patrol.open_session(user.name, places, sample=sample, now=now)
            session = await self.patrol.store.session(session_id)
            assert session is not None and session.current is not None
            with contextlib.suppress(FormError):  # that camera's page says so: ask again there
                await self._ask(user, session, now)
        except ConsoleError as exc:
            return await self._refuse(request, user, "video_patrol.open", "video_patrol:?", exc)
        await self.pages.console.record(
            user.name, "video_patrol.open",
            f"video_patrol:{session_id}:{'all' if sample is None else sample}", "ok",
            _client(request),
        )  # fmt: skip
        raise web.HTTPSeeOther(f"{PREFIX}/session?id={session_id}")

    async def _ask(self, user: User, session: Session, now: float) -> None:
        step = session.current
        if step is None:
            return
        try:
            await self.patrol.ask(session, step, now=now, issued_by=f"console:{user.name}")
        except LookRefused as exc:
            raise FormError("command_key", str(exc)) from None
        except CentreError as exc:  # e.g. the gateway was revoked meanwhile: a camera fault
            raise FormError("no_picture", str(exc)) from None

    async def ask_again(self, request: web.Request) -> web.Response:
        user, sid = await self._user(request)
        session_id = None
        try:
            fields = await self.pages._form(request)
            self.pages.console.check_csrf(sid, _one(fields, "csrf", 80))
            session_id = _one(fields, "session", 40)
            session = await self._session(session_id)
            await self._ask(user, session, self.pages.wall())
        except ConsoleError as exc:
            return await self._refuse(
                request, user, "video_patrol.ask", f"video_patrol:{session_id}", exc, session_id
            )
        raise web.HTTPSeeOther(f"{PREFIX}/session?id={session.session_id}")

    async def judge(self, request: web.Request) -> web.Response:
        user, sid = await self._user(request)
        session_id = None
        target = "video_patrol:?"
        try:
            fields = await self.pages._form(request)
            self.pages.console.check_csrf(sid, _one(fields, "csrf", 80))
            session_id = _one(fields, "session", 40)
            session = await self._session(session_id)
            raw = _one(fields, "position", 6)
            if not raw.isascii() or not raw.isdigit():
                raise _refused("not_current", "position is not a number", 409)
            step = session.current
            if step is None or step.position != int(raw):
                raise _refused("not_current", "not the compound on screen", 409)
            target = f"video_patrol:{session_id}:{step.place.township}/{step.place.compound}"
            verdict = _one(fields, "verdict", 20)
            if verdict not in VERDICTS:
                raise FormError("bad_verdict", "unknown verdict")
            note = _one(fields, "note", MAX_NOTE).strip()
            if not can(user, Action.VIDEO_PATROL, Target(step.place.township, step.place.compound)):
                raise ConsoleError("forbidden", "outside this account's area")
            now = self.pages.wall()
            look = await self.patrol.look(step, now=now)
            sha = look.sha256 if look.state == "ready" else None
            if sha is None and verdict != CAMERA_FAULT:
                raise _refused("no_picture", f"no picture ({look.state} {look.reason})", 409)
            stored = await self.patrol.store.judge(
                Verdict(session.session_id, step.position, step.place, verdict, sha, note,
                        user.name, now)
            )  # fmt: skip
            if not stored:
                raise _refused("not_current", "judged already", 409)
            target += f":{verdict}"
            after = await self.patrol.store.session(session.session_id)
            assert after is not None
            with contextlib.suppress(ConsoleError):  # the next page says so: ask again there
                await self._ask(user, after, now)
        except ConsoleError as exc:
            return await self._refuse(
                request, user, "video_patrol.verdict", target, exc, session_id
            )
        await self.pages.console.record(
            user.name, "video_patrol.verdict", f"{target}:{sha or '-'}", "ok", _client(request)
        )
        if verdict != "on_post":
            self.pages.live.bump()
        raise web.HTTPSeeOther(f"{PREFIX}/session?id={session.session_id}")
