"""The console's pages under ``/console``: sign-in, live board, compound, alerts, broadcasts,
the announcement library (upload, typed text previewed before it is saved) and pushes.

    pages = ConsolePages(console, service, commands_store, channel, paths, tz="Asia/Shanghai")
    pages.install(app)      # routes, static files, the live poller, shutdown of event streams

Every page is a Jinja2 template (autoescaped) in ``templates/``, its words in
``locale/<ll_CC>/LC_MESSAGES/console.po``; Simplified Chinese by default, ``?lang=en`` (kept in
a cookie) or the browser's ``Accept-Language`` for English. Times are shown in the district's
time zone. Pages carry a strict Content-Security-Policy: scripts and styles only from
``/console/static`` (served by the centre, no CDN), no inline script.

A page asked for without a session redirects to the sign-in page; the live parts
(``.../part``) and the event stream answer 401 JSON. Every POST needs the session's CSRF token
(the sign-in form a cookie-bound one), and every refusal is a 4xx page or JSON with a warning
line, never a 500. Permissions are checked here, on the server, for each request: a broadcast
from someone whose role may not send one is refused 403 and audited, whatever the page showed.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gettext
import hmac
import logging
import re
import secrets
import time
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from urllib.parse import parse_qs, urlencode

import jinja2
from aiohttp import BodyPartReader, web

import i18n
from centre.announce.library import (
    DRAFT_RE,
    LANGUAGES,
    MAX_TITLE,
    UPLOAD_SUFFIXES,
    AnnouncementError,
    AnnouncementLibrary,
    level_of,
)
from centre.announce.media import MAX_TEXT_CHARS, MAX_UPLOAD_BYTES, MediaError
from centre.app import CentreService
from centre.bulletins.web import CONSOLE_READER
from centre.bulletins.web import PREFIX as BULLETINS
from centre.commands.channel import CommandChannel
from centre.commands.issue import MAX_TTL_S, issue, load_command_key
from centre.commands.looknow import (
    LookNowResult,
    look_now_result,
    request_look_now,
)
from centre.commands.store import SOUND, CommandRepository
from centre.errors import CentreError
from centre.media import SHA256_RE
from centre.pki import CentrePaths
from centre.push.outbox import FILENAME as PUSH_FILE
from centre.push.outbox import PushOutbox
from centre.web import board
from centre.web.console import Console
from centre.web.errors import ConsoleError
from centre.web.live import Live
from centre.web.permissions import ROLE_ACTIONS, Action, Role, Target, User, can, in_scope
from centre.web.store import AckRecord, Assignment
from wire.commands import ANNOUNCEMENT_RE, CAMERA_RE, STATUSES, BroadcastStart, BroadcastStop

ROOT: Final = "/console"
SUPPORTED: Final = ("zh-CN", "en")
DEFAULT_LANGUAGE: Final = "zh-CN"
LANGUAGE_NAMES: Final = {"zh-CN": "中文", "en": "English"}
CATALOGUES: Final = i18n.Catalogues(Path(__file__).parent / "locale", SUPPORTED)
STATIC: Final = Path(__file__).parent / "static"
SESSION_COOKIE: Final = "console_session"
# The session also opens the bulletin pages (/bulletins, see :meth:`ConsolePages._bulletin_reader`),
# so the cookie goes to the whole site; it stays HttpOnly, Secure and SameSite=Strict, and the
# gateways' API ignores it (mutual TLS only).
SESSION_PATH: Final = "/"
LOGIN_COOKIE: Final = "console_login"
LANG_COOKIE: Final = "console_lang"
MAX_FORM_BODY: Final = 16 * 1024
MAX_COMMENT: Final = 500
MAX_UPLOAD_PARTS: Final = 8
MAX_FIELD_BYTES: Final = 4096
UPLOAD_FIELDS: Final = frozenset({"csrf", "title", "language", "id"})
MAX_BROADCAST_S: Final = 600.0
"""The longest broadcast the console lets anyone order (gateways also enforce their own cap)."""
BROADCAST_TTL_S: Final = 120.0
MEDIA_DIR: Final = "media"  # the images' folder in the centre's data directory (centre/media.py)
PUSH_SHOWN: Final = 300  # parts on the push page (about two months of one group's bulletins)
KNOWN_CLIPS: Final = ("fire-drill", "evacuate", "test-tone", "all-clear")
SSE_KEEPALIVE_S: Final = 15.0
SESSION_RECHECK_S: Final = 60.0
HEADERS: Final = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "connect-src 'self'; media-src 'self'; form-action 'self'; frame-ancestors 'none'; "
        "base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}
_TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{43}")
log = logging.getLogger("centre.web.pages")
AlertSource = Callable[..., Awaitable[list[board.Alert]]]


def N_(message: str) -> str:
    return message


# Why a form was refused, as the person reads it (translated when shown).
REFUSALS: Final = {
    "bad_credentials": N_("Wrong login name or password."),
    "locked_out": N_("Too many wrong passwords. Wait a few minutes and try again."),
    "csrf_mismatch": N_("This form is out of date. Reload the page and try again."),
    "forbidden": N_("Your role does not allow this."),
    "bad_form": N_("The form could not be read. Please try again."),
    "no_targets": N_("Choose at least one compound with an enrolled gateway."),
    "bad_zones": N_("Give zone numbers such as 1 or 1,2."),
    "bad_seconds": N_("The duration must be a number of seconds within the cap."),
    "bad_clip": N_("The clip name may use letters, digits, dot, dash and underscore only."),
    "bad_status": N_("Choose Exercise, Test or Actual."),
    "confirm_actual": N_("An Actual broadcast must be confirmed: tick the confirmation box."),
    "no_comment": N_("Write a comment with the acknowledgement."),
    "no_such_alert": N_("This alert no longer exists."),
    "already_acknowledged": N_("Someone has already acknowledged this alert."),
    "bad_township": N_("Choose one of the district's townships."),
    "no_such_announcement": N_("This announcement is not in the library."),
    "command_key": N_("The centre cannot sign commands (no command key)."),
    "no_such_command": N_("This broadcast is not running any more."),
    "too_large": N_("The file is too large: recordings of at most 20 MB are accepted."),
    "no_file": N_("Choose a recording to upload."),
    "bad_format": N_("Only WAV, MP3 or M4A recordings can be uploaded."),
    "bad_media": N_(
        "This file cannot be used: it is damaged, or not WAV, MP3 or M4A audio between "
        "0.1 seconds and 10 minutes long."
    ),
    "bad_title": N_("Give a title of 1 to 120 characters."),
    "bad_language": N_("Choose Chinese or English (text-to-speech speaks Chinese only)."),
    "bad_id": N_("The name may use letters, digits, dot, dash and underscore only (at most 80)."),
    "announcement_exists": N_("An announcement with this name exists already. Choose another."),
    "bad_text": N_("Type the text to speak: 1 to 1000 characters."),
    "speech_failed": N_("The text could not be turned into speech. Please try again."),
    "no_draft": N_("This preview is gone (saved, discarded or expired). Make it again."),
    "no_release": N_("This release is not in the releases folder, or its files are damaged."),
    "bad_max_rollbacks": N_("Give the number of rollbacks allowed: a whole number 0 to 1000."),
    "bad_percent": N_("Give a share of 1 to 100 percent."),
    "no_gateways": N_("Choose at least one enrolled gateway."),
    "no_such_rollout": N_("This rollout is not running any more."),
    "bad_image": N_("This is not the name of an image."),
    "no_camera": N_("Choose one of this compound's cameras."),
    "no_such_look": N_("This picture request is not known."),
    "no_such_image": N_(
        "The centre does not hold this image: it has not arrived, or was deleted after its "
        "retention time."
    ),
}
# The library's refusal codes as the console's (AnnouncementError.code -> REFUSALS key).
_LIBRARY_CODES: Final = {
    "bad_id": "bad_id",
    "bad_title": "bad_title",
    "bad_language": "bad_language",
    "exists": "announcement_exists",
    "no_draft": "no_draft",
    "not_found": "no_such_announcement",
}


@functools.cache
def environment(lang: str) -> jinja2.Environment:
    return i18n.make_environment(
        CATALOGUES.translations(lang),
        loader=jinja2.PackageLoader("centre.web", "templates"),
    )


def translations(lang: str) -> gettext.NullTranslations:
    return CATALOGUES.translations(lang)


class FormError(ConsoleError):
    """A console form that cannot be accepted; ``code`` is a key of :data:`REFUSALS`."""


def _client(request: web.Request) -> str:
    return request.remote or "unknown"


def _fields(raw: bytes) -> dict[str, list[str]]:
    try:
        return parse_qs(raw.decode("ascii"), max_num_fields=300, errors="strict")
    except (UnicodeDecodeError, ValueError):
        raise FormError("bad_form", "not an urlencoded UTF-8 form") from None


def _one(fields: dict[str, list[str]], name: str, limit: int = 200) -> str:
    values = fields.get(name) or [""]
    if len(values) != 1 or len(values[0]) > limit:
        raise FormError("bad_form", f"field {name!r} is malformed")
    return values[0]


def _library_error(exc: AnnouncementError | MediaError, media_code: str) -> FormError:
    """The console's refusal for the library's: a MediaError is ``media_code``."""
    if isinstance(exc, MediaError):
        return FormError(media_code, exc.reason)
    return FormError(_LIBRARY_CODES.get(exc.code, "bad_form"), exc.reason)


async def _read_part(part: BodyPartReader, limit: int, code: str) -> bytes:
    """A multipart part's bytes, refused with ``code`` once past ``limit``."""
    data = bytearray()
    while chunk := await part.read_chunk():
        data += chunk
        if len(data) > limit:
            raise FormError(code, f"form part above {limit} bytes")
    return bytes(data)


def _zones(text: str) -> tuple[int, ...]:
    parts = [p.strip() for p in text.replace("，", ",").split(",") if p.strip()]
    if not parts or len(parts) > 32 or not all(p.isascii() and p.isdigit() for p in parts):
        raise FormError("bad_zones", "zones must be numbers separated by commas")
    zones = tuple(int(p) for p in parts)
    if any(not 1 <= z <= 999 for z in zones) or len(set(zones)) != len(zones):
        raise FormError("bad_zones", "zones must be distinct numbers 1..999")
    return zones


def _may(user: User, action: Action) -> bool:
    """Whether ``user`` may do ``action`` somewhere in their area (a page-level check; each
    target is checked again with :func:`can` before anything is done to it)."""
    return not user.disabled and action in ROLE_ACTIONS[user.role]


@dataclass(frozen=True, slots=True)
class CameraChoice:
    """A camera a compound's gateway reported (``health.state``), as the look-now form offers it."""

    gateway_id: str
    camera: str

    @property
    def value(self) -> str:
        return f"{self.gateway_id}/{self.camera}"


def _cameras(row: board.CompoundRow) -> list[CameraChoice]:
    """The compound's cameras, as its gateways report them (by name, then gateway)."""
    found = {
        CameraChoice(d.gateway_id, d.name)
        for d in row.devices
        if d.kind == "camera" and d.gateway_id and CAMERA_RE.fullmatch(d.name)
    }
    return sorted(found, key=lambda c: (c.camera, c.gateway_id))


def _may_look(user: User, township: str, compound: str) -> bool:
    """Who may order a look now: the district's own staff (officer, clerk) who may view the
    compound's images. A compound manager sees the pictures of their compound but does not
    order them (they cost the compound's 4G budget, and video patrol is the centre's)."""
    return can(user, Action.VIEW_IMAGE, Target(township, compound)) and in_scope(user, Target())


class ConsolePages:
    def __init__(
        self,
        console: Console,
        service: CentreService,
        commands: CommandRepository,
        channel: CommandChannel,
        paths: CentrePaths,
        *,
        tz: str = "Asia/Shanghai",
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.console = console
        self.service = service
        self.repo = service.repo
        self.commands = commands
        self.channel = channel
        self.paths = paths
        self.library = AnnouncementLibrary(paths.root)
        self._convert = asyncio.Semaphore(1)  # one ffmpeg / espeak-ng at a time
        self.tz = tz
        self.wall = wall
        self.live = Live()
        self._watcher: asyncio.Task[None] | None = None
        # More alerts than the events and commands give (video patrol findings), scoped below.
        self.alert_sources: list[AlertSource] = []
        service.ingest_listeners.append(lambda gateway_id: self.live.bump())

    # -- wiring ------------------------------------------------------------------------------

    def routes(self) -> list[web.AbstractRouteDef]:
        return [
            web.get(ROOT, self.home),
            web.get(f"{ROOT}/", self.home),
            web.get(f"{ROOT}/login", self.login_page),
            web.post(f"{ROOT}/login", self.login),
            web.post(f"{ROOT}/logout", self.logout),
            web.get(f"{ROOT}/board", self.board_page),
            web.get(f"{ROOT}/board/part", self.board_part),
            web.get(f"{ROOT}/compound", self.compound_page),
            web.get(f"{ROOT}/compound/part", self.compound_part),
            web.get(f"{ROOT}/alerts", self.alerts_page),
            web.get(f"{ROOT}/alerts/part", self.alerts_part),
            web.post(f"{ROOT}/alerts/ack", self.acknowledge),
            web.post(f"{ROOT}/alerts/assign", self.assign),
            web.get(f"{ROOT}/broadcast", self.broadcast_page),
            web.get(f"{ROOT}/broadcast/part", self.broadcast_part),
            web.post(f"{ROOT}/broadcast", self.broadcast),
            web.post(f"{ROOT}/broadcast/stop", self.stop_broadcast),
            web.get(f"{ROOT}/announcements", self.announcements_page),
            web.get(f"{ROOT}/push", self.push_page),
            web.get(f"{ROOT}/announcements/audio", self.announcement_audio),
            web.post(f"{ROOT}/announcements/upload", self.upload_announcement),
            web.post(f"{ROOT}/announcements/preview", self.preview_announcement),
            web.get(f"{ROOT}/announcements/preview/audio", self.draft_audio),
            web.post(f"{ROOT}/announcements/save", self.save_draft),
            web.post(f"{ROOT}/announcements/discard", self.discard_draft),
            web.get(f"{ROOT}/images/{{sha256}}", self.image),
            web.post(f"{ROOT}/look-now", self.look_now),
            web.get(f"{ROOT}/look-now/part", self.look_now_part),
            web.get(f"{ROOT}/events", self.events),
            web.static(f"{ROOT}/static", STATIC, append_version=False),
        ]

    def install(self, app: web.Application) -> None:
        app.add_routes(self.routes())
        app.middlewares.append(self._bulletin_reader)
        app.on_startup.append(self._start)
        app.on_shutdown.append(self._stop)

    async def _start(self, app: web.Application) -> None:
        self._watcher = asyncio.create_task(self.live.watch(self._fingerprint), name="console")

    async def _stop(self, app: web.Application) -> None:
        self.live.close()
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher

    async def _fingerprint(self) -> Hashable:
        recent = await self.commands.commands(limit=50)
        now = self.wall()
        return (
            tuple((c.command_id, c.shown_status(now), c.received_at) for c in recent),
            frozenset(self.channel.connections),
        )

    # -- helpers -----------------------------------------------------------------------------

    def _lang(self, request: web.Request) -> str:
        asked = i18n.match(request.query.get("lang", ""), SUPPORTED)
        kept = i18n.match(request.cookies.get(LANG_COOKIE, ""), SUPPORTED)
        return (
            asked
            or kept
            or i18n.negotiate(request.headers.get("Accept-Language"), SUPPORTED, DEFAULT_LANGUAGE)
        )

    def _render(
        self,
        request: web.Request,
        template: str,
        *,
        status: int = 200,
        user: User | None = None,
        sid: str = "",
        **context: Any,
    ) -> web.Response:
        lang = self._lang(request)
        other = next(code for code in SUPPORTED if code != lang)
        query = {k: v for k, v in request.query.items() if k != "lang"} | {"lang": other}
        now = self.wall()
        context.setdefault("page", "")
        env = environment(lang)
        body = env.get_template(template).render(
            lang=lang,
            other_language_name=LANGUAGE_NAMES[other],
            other_language_url=f"{request.path}?{urlencode(query)}",
            user=user,
            csrf=self.console_csrf(sid) if sid else "",
            can_broadcast=user is not None and _may(user, Action.SEND_BROADCAST),
            can_update=user is not None and _may(user, Action.PUBLISH_UPDATES),
            can_video_patrol=user is not None and _may(user, Action.VIDEO_PATROL),
            can_read_bulletins=user is not None and can(user, Action.EXPORT_BULLETIN),
            now=now,
            tz=self.tz,
            when=lambda t: i18n.format_datetime(t, self.tz, lang, now=now, seconds=True),
            ago=lambda t: "" if t is None else i18n.format_age(now - t, lang),
            **context,
        )
        resp = web.Response(
            text=body, status=status, content_type="text/html", charset="utf-8", headers=HEADERS
        )
        if request.query.get("lang") and i18n.match(request.query["lang"], SUPPORTED):
            resp.set_cookie(
                LANG_COOKIE, lang, path=ROOT, secure=True, httponly=True, samesite="Strict"
            )
        return resp

    @web.middleware
    async def _bulletin_reader(self, request: web.Request, handler: Any) -> web.StreamResponse:
        """Console accounts open the bulletin pages: a signed-in user who may read the whole
        district's bulletins (officer, clerk) is named to them in ``request[CONSOLE_READER]``.
        A CSV download is an export and is audited. Others still see the bulletins' sign-in."""
        path = request.path
        if (path == BULLETINS or path.startswith(BULLETINS + "/")) and request.cookies.get(
            SESSION_COOKIE
        ):
            try:
                user, _sid = await self._session(request)
            except ConsoleError:
                user = None
            if user is not None and can(user, Action.EXPORT_BULLETIN):  # the whole district
                request[CONSOLE_READER] = user.name
                if request.method == "GET" and request.query.get("format", "").lower() == "csv":
                    day = request.query.get("date") or request.query.get("month") or "latest"
                    await self.console.record(
                        user.name, "bulletin.export", f"bulletin:{path}:{day[:20]}", "ok",
                        _client(request),
                    )  # fmt: skip
        return await handler(request)

    def console_csrf(self, sid: str) -> str:
        from centre.web.console import csrf_token

        return csrf_token(sid)

    async def _session(self, request: web.Request) -> tuple[User, str]:
        sid = request.cookies.get(SESSION_COOKIE, "")
        user = await self.console.session(sid, client=_client(request))
        return user, sid

    async def _page_user(self, request: web.Request) -> tuple[User, str]:
        """The signed-in user, or a redirect to the sign-in page."""
        try:
            return await self._session(request)
        except ConsoleError as exc:
            target = f"{ROOT}/login"
            if exc.code == "session_expired":
                target += "?expired=1"
            raise web.HTTPSeeOther(target) from None

    async def _form(self, request: web.Request) -> dict[str, list[str]]:
        if request.content_length is not None and request.content_length > MAX_FORM_BODY:
            raise FormError("bad_form", "form too large")
        raw = await request.content.read(MAX_FORM_BODY + 1)
        if len(raw) > MAX_FORM_BODY:
            raise FormError("bad_form", "form too large")
        return _fields(raw)

    def _refusal(self, request: web.Request, exc: ConsoleError) -> str:
        """The refusal in the reader's words, logged once. A client that did not ask for HTML
        (a script, not a browser's form) gets the centre's JSON error instead, 4xx as well:
        the error boundary answers and logs it."""
        message = REFUSALS.get(exc.code, N_("This request cannot be accepted."))
        text = translations(self._lang(request)).gettext(message)
        if "text/html" not in request.headers.get("Accept", ""):
            refused = ConsoleError(exc.code, exc.reason, message=text)
            refused.status = exc.status if 400 <= exc.status < 500 else 400
            raise refused
        log.warning("console %s refused: %s (%s)", request.path, exc.code, exc.reason)
        return text

    async def _data(self, user: User, *, compound: str | None = None) -> board.ConsoleData:
        acks = await self.console.store.acks()
        data = await board.gather(
            self.repo,
            self.commands,
            acks,
            now=self.wall(),
            tz=self.tz,
            connected=self.channel.connections,
            compound=compound,
        )
        for source in self.alert_sources:
            extra = await source(acks, now=self.wall())
            board.add_alerts(data, [a for a in extra if compound in (None, a.compound)])
        # A township viewer or compound manager sees only their own area.
        data.compounds = [
            r for r in data.compounds if in_scope(user, Target(r.township, r.compound))
        ]
        data.alerts = [a for a in data.alerts if in_scope(user, Target(a.township, a.compound))]
        data.progress = [p for p in data.progress if in_scope(user, Target(p.township, p.compound))]
        data.townships = [t for t in data.townships if in_scope(user, Target(t, None))] or [
            r.township for r in data.compounds[:1]
        ]
        return data

    # -- sign-in -----------------------------------------------------------------------------

    async def home(self, request: web.Request) -> web.Response:
        raise web.HTTPSeeOther(f"{ROOT}/board")

    async def login_page(
        self, request: web.Request, *, error: str = "", status: int = 200
    ) -> web.Response:
        token = secrets.token_urlsafe(32)
        resp = self._render(
            request,
            "login.html",
            status=status,
            login_token=token,
            error=error,
            expired=request.query.get("expired") == "1",
        )
        resp.set_cookie(
            LOGIN_COOKIE, token, path=f"{ROOT}/login", secure=True, httponly=True, samesite="Strict"
        )
        return resp

    async def login(self, request: web.Request) -> web.Response:
        try:
            fields = await self._form(request)
            cookie = request.cookies.get(LOGIN_COOKIE, "")
            sent = _one(fields, "login_token", 64)
            if not (_TOKEN_RE.fullmatch(cookie) and hmac.compare_digest(cookie, sent)):
                raise ConsoleError("csrf_mismatch", "sign-in form token does not match")
            login = await self.console.login(
                _one(fields, "name", 64), _one(fields, "password", 1024), client=_client(request)
            )
        except ConsoleError as exc:
            status = exc.status if 400 <= exc.status < 500 else 400
            return await self.login_page(request, error=self._refusal(request, exc), status=status)
        resp = web.HTTPSeeOther(f"{ROOT}/board")
        resp.set_cookie(
            SESSION_COOKIE,
            login.session_id,
            path=SESSION_PATH,
            secure=True,
            httponly=True,
            samesite="Strict",
        )
        resp.del_cookie(LOGIN_COOKIE, path=f"{ROOT}/login")
        raise resp

    async def logout(self, request: web.Request) -> web.Response:
        user, sid = await self._page_user(request)
        try:
            self.console.check_csrf(sid, _one(await self._form(request), "csrf", 80))
        except ConsoleError as exc:
            return self._render(
                request, "error.html", status=exc.status, user=user, sid=sid,
                message=self._refusal(request, exc),
            )  # fmt: skip
        await self.console.logout(sid, client=_client(request))
        resp = web.HTTPSeeOther(f"{ROOT}/login")
        resp.del_cookie(SESSION_COOKIE, path=SESSION_PATH)
        raise resp

    # -- board ---------------------------------------------------------------------------------

    def _board_context(self, request: web.Request, data: board.ConsoleData) -> dict[str, Any]:
        township = request.query.get("township", "")
        state = request.query.get("state", "")
        rows = [
            r
            for r in data.compounds
            if (not township or r.township == township) and (not state or r.state == state)
        ]
        query = urlencode({k: v for k, v in (("township", township), ("state", state)) if v})
        return {
            "rows": rows,
            "townships": data.townships,
            "township": township,
            "state": state,
            "part_url": f"{ROOT}/board/part" + (f"?{query}" if query else ""),
            "alerts_open": sum(a.open for a in data.alerts),
        }

    def _need(self, user: User, action: Action) -> None:
        if not _may(user, action):
            raise ConsoleError("forbidden", f"a {user.role.value} may not {action.value}")

    async def _forbidden_page(self, request: web.Request, user: User, sid: str) -> web.Response:
        if user.role is Role.COMPOUND_MANAGER and user.township and user.compound:
            query = urlencode({"township": user.township, "name": user.compound})
            raise web.HTTPSeeOther(f"{ROOT}/compound?{query}")
        exc = ConsoleError("forbidden", f"a {user.role.value} may not open {request.path}")
        return self._render(
            request, "error.html", status=403, user=user, sid=sid,
            message=self._refusal(request, exc),
        )  # fmt: skip

    async def board_page(self, request: web.Request) -> web.Response:
        user, sid = await self._page_user(request)
        if not _may(user, Action.VIEW_BOARD):
            return await self._forbidden_page(request, user, sid)
        data = await self._data(user)
        return self._render(
            request, "board.html", user=user, sid=sid, page="board",
            **self._board_context(request, data),
        )  # fmt: skip

    async def board_part(self, request: web.Request) -> web.Response:
        user, sid = await self._session(request)
        self._need(user, Action.VIEW_BOARD)
        data = await self._data(user)
        return self._render(
            request, "board_part.html", user=user, sid=sid, **self._board_context(request, data)
        )

    # -- compound ------------------------------------------------------------------------------

    async def _compound_context(self, request: web.Request, user: User) -> dict[str, Any]:
        township = request.query.get("township", "")
        name = request.query.get("name", "")
        if not can(user, Action.VIEW_COMPOUND, Target(township, name)):
            raise ConsoleError("forbidden", "outside this account's area")
        data = await self._data(user, compound=name)
        rows = [r for r in data.compounds if r.township == township and r.compound == name]
        if not rows:
            raise ConsoleError("no_such_compound", "no such compound")
        row = rows[0]
        taps = await board.recent_taps(self.repo, name, now=self.wall())
        gateways = set(row.gateways)
        taps = [t for t in taps if t.get("gateway_id") in gateways]
        query = urlencode({"township": township, "name": name})
        return {
            "row": row,
            "cameras": _cameras(row),
            "may_look": _may_look(user, row.township, row.compound),
            "taps": taps,
            "alerts": [a for a in data.alerts if a.compound == name and a.township == township],
            "progress": [p for p in data.progress if p.gateway_id in gateways][:20],
            "part_url": f"{ROOT}/compound/part?{query}",
        }

    async def compound_page(self, request: web.Request) -> web.Response:
        user, sid = await self._page_user(request)
        try:
            context = await self._compound_context(request, user)
        except ConsoleError as exc:
            status = 404 if exc.code == "no_such_compound" else exc.status
            return self._render(
                request, "error.html", status=status, user=user, sid=sid,
                message=self._refusal(request, exc),
            )  # fmt: skip
        look = None
        look_id = request.query.get("look", "")
        if look_id:  # just ordered (the form's redirect): where that picture stands
            with contextlib.suppress(ConsoleError):
                look = await self._look_result(user, look_id)
        return self._render(
            request, "compound.html", user=user, sid=sid, page="board", look=look,
            look_part_url=f"{ROOT}/look-now/part?{urlencode({'id': look_id})}" if look else "",
            **context,
        )  # fmt: skip

    async def compound_part(self, request: web.Request) -> web.Response:
        user, sid = await self._session(request)
        context = await self._compound_context(request, user)
        return self._render(request, "compound_part.html", user=user, sid=sid, **context)

    # -- alerts --------------------------------------------------------------------------------

    async def alerts_page(
        self, request: web.Request, *, error: str = "", status: int = 200
    ) -> web.Response:
        user, sid = await self._page_user(request)
        if not _may(user, Action.VIEW_BOARD):
            return await self._forbidden_page(request, user, sid)
        data = await self._data(user)
        return self._render(
            request, "alerts.html", status=status, user=user, sid=sid, page="alerts",
            alerts=data.alerts, error=error, part_url=f"{ROOT}/alerts/part",
            **await self._alert_context(user, data),
        )  # fmt: skip

    async def alerts_part(self, request: web.Request) -> web.Response:
        user, sid = await self._session(request)
        self._need(user, Action.VIEW_BOARD)
        data = await self._data(user)
        return self._render(
            request, "alerts_part.html", user=user, sid=sid, alerts=data.alerts,
            **await self._alert_context(user, data),
        )  # fmt: skip

    async def _alert_context(self, user: User, data: board.ConsoleData) -> dict[str, Any]:
        may_ack = _may(user, Action.ACKNOWLEDGE_ALERT)
        return {
            "may_ack": may_ack,
            "max_comment": MAX_COMMENT,
            # Handing an alert to a township is a district role's call (officer, clerk).
            "may_assign": may_ack and in_scope(user, Target()),
            "townships": data.townships,
            "assignments": await self.console.store.assignments(),
        }

    async def assign(self, request: web.Request) -> web.Response:
        """Hand an alert to a township's people (officer, clerk); audited, the latest stands."""
        user, sid = await self._page_user(request)
        client = _client(request)
        target = "alert:?"
        try:
            fields = await self._form(request)
            self.console.check_csrf(sid, _one(fields, "csrf", 80))
            alert_id = _one(fields, "alert_id", 200)
            target = f"alert:{alert_id}"
            township = _one(fields, "township", 100).strip()
            if not (_may(user, Action.ACKNOWLEDGE_ALERT) and in_scope(user, Target())):
                raise ConsoleError("forbidden", "this role may not assign alerts")
            data = await self._data(user)
            if not any(a.alert_id == alert_id for a in data.alerts):
                raise FormError("no_such_alert", "no such alert in this account's area")
            if township not in data.townships:
                raise FormError("bad_township", "not one of the district's townships")
            await self.console.store.assign(Assignment(alert_id, township, user.name, self.wall()))
        except ConsoleError as exc:
            if exc.code != "csrf_mismatch":
                await self.console.record(user.name, "alert.assign", target, f"refused:{exc.code}",
                                          client)  # fmt: skip
            return await self.alerts_page(request, error=self._refusal(request, exc),
                                          status=exc.status)  # fmt: skip
        await self.console.record(user.name, "alert.assign", f"{target}>{township}", "ok", client)
        self.live.bump()
        raise web.HTTPSeeOther(f"{ROOT}/alerts")

    async def acknowledge(self, request: web.Request) -> web.Response:
        user, sid = await self._page_user(request)
        client = _client(request)
        target = "alert:?"
        try:
            fields = await self._form(request)
            self.console.check_csrf(sid, _one(fields, "csrf", 80))
            alert_id = _one(fields, "alert_id", 200)
            target = f"alert:{alert_id}"
            comment = _one(fields, "comment", 4 * MAX_COMMENT).strip()
            data = await self._data(user)
            found = [a for a in data.alerts if a.alert_id == alert_id]
            if not found:
                raise FormError("no_such_alert", "no such alert in this account's area")
            alert = found[0]
            if not can(user, Action.ACKNOWLEDGE_ALERT, Target(alert.township, alert.compound)):
                raise ConsoleError("forbidden", "this role may not acknowledge alerts")
            if not comment or len(comment) > MAX_COMMENT:
                raise FormError("no_comment", "a comment of 1..500 characters is required")
            stored = await self.console.store.acknowledge(
                AckRecord(alert_id, user.name, self.wall(), comment)
            )
            if not stored:
                raise FormError("already_acknowledged", "acknowledged already")
        except ConsoleError as exc:
            if exc.code != "csrf_mismatch":
                await self.console.record(user.name, "alert.ack", target, f"refused:{exc.code}",
                                          client)  # fmt: skip
            status = 409 if exc.code == "already_acknowledged" else exc.status
            return await self.alerts_page(request, error=self._refusal(request, exc), status=status)
        await self.console.record(user.name, "alert.ack", target, "ok", client)
        self.live.bump()
        raise web.HTTPSeeOther(f"{ROOT}/alerts")

    # -- broadcasts ----------------------------------------------------------------------------

    async def _announcements(self) -> list[Any]:
        """The centre's announcement library (file reads, off the event loop)."""
        try:
            return await asyncio.to_thread(self.library.list)
        except (AnnouncementError, OSError) as exc:
            log.warning("console: the announcement library cannot be read: %s", exc)
            return []

    async def _announcement_hash(self, clip: str) -> str:
        """A library announcement goes out with its sha256 (the gateway plays exactly those
        bytes, fetching them first, or refuses); any other name is a clip configured locally."""
        try:
            return (await asyncio.to_thread(self.library.get, clip)).sha256
        except AnnouncementError as exc:
            if exc.code in ("not_found", "bad_id"):
                return ""
            raise FormError("bad_clip", f"announcement {clip}: {exc.reason}") from exc

    async def _sound(self, progress: list[board.Progress]) -> dict[str, str]:
        """The fourth step of each broadcast shown: proof of sound from the gateway's acks
        (confirmed / no_sound / not_checked; absent until the gateway says)."""
        found: dict[str, str] = {}
        wanted = {p.command_id for p in progress}
        for gateway_id in sorted({p.gateway_id for p in progress}):
            for command_id, stage, reason in await self.commands.acks(gateway_id):
                if stage == SOUND and command_id in wanted:
                    found[command_id] = reason.partition(":")[0]
        return found

    async def push_page(self, request: web.Request) -> web.Response:
        """What the pushes to the WeChat Work groups did (daily bulletins and alerts): each part
        sent, failed (and why) or still owed, newest first (officer, clerk)."""
        user, sid = await self._page_user(request)
        if not can(user, Action.EXPORT_BULLETIN):  # a district role: officer or clerk
            return await self._forbidden_page(request, user, sid)
        path = self.paths.root / PUSH_FILE
        parts = []
        if path.exists():  # `compound-centre push daily` makes it; never create it here
            async with await PushOutbox.open(path) as outbox:
                parts = await outbox.parts()
        # Newest first: a day's bulletin and the alerts in the order they were owed.
        parts.sort(key=lambda p: (p.enqueued_at, p.day, p.group, p.part), reverse=True)
        return self._render(
            request, "push.html", user=user, sid=sid, page="push", parts=parts[:PUSH_SHOWN],
        )  # fmt: skip

    async def announcements_page(
        self,
        request: web.Request,
        *,
        error: str = "",
        status: int = 200,
        form: dict[str, str] | None = None,
        draft_id: str = "",
    ) -> web.Response:
        """The library with a player for each announcement (officer, clerk); for those who may
        manage it (officers) an upload form and typed text with a preview before saving."""
        user, sid = await self._page_user(request)
        if not can(user, Action.EXPORT_BULLETIN):  # a district role: officer or clerk
            return await self._forbidden_page(request, user, sid)
        may_manage = _may(user, Action.MANAGE_ANNOUNCEMENTS)
        draft = added = added_level = None
        draft_id = draft_id or request.query.get("draft", "")
        if may_manage and DRAFT_RE.fullmatch(draft_id):
            with contextlib.suppress(AnnouncementError):
                draft = await asyncio.to_thread(self.library.draft, draft_id, owner=user.name)
        added_id = request.query.get("added", "")
        if added_id and ANNOUNCEMENT_RE.fullmatch(added_id):
            with contextlib.suppress(AnnouncementError, OSError):
                added_level = await asyncio.to_thread(self._level_of, added_id)
                added = await asyncio.to_thread(self.library.get, added_id)
        return self._render(
            request, "announcements.html", status=status, user=user, sid=sid,
            page="announcements", announcements=await self._announcements(), error=error,
            may_manage=may_manage, draft=draft, added=added, added_level=added_level,
            form=form or {}, languages=LANGUAGES, max_title=MAX_TITLE, max_text=MAX_TEXT_CHARS,
            max_upload_mb=MAX_UPLOAD_BYTES // (1024 * 1024),
        )  # fmt: skip

    def _level_of(self, ann_id: str) -> str:
        """The level check's verdict of a stored announcement (file read: off the loop)."""
        return level_of(self.library.playable(ann_id).read_bytes()).verdict

    async def announcement_audio(self, request: web.Request) -> web.StreamResponse:
        """The playable (normalised) audio of one announcement, for the page's player."""
        user, _sid = await self._session(request)
        if not can(user, Action.EXPORT_BULLETIN):
            raise ConsoleError("forbidden", "this role may not hear the library")
        ann_id = request.query.get("id", "")
        if not ANNOUNCEMENT_RE.fullmatch(ann_id):
            raise FormError("bad_clip", "not an announcement id")
        try:
            path = await asyncio.to_thread(self.library.playable, ann_id)
        except AnnouncementError as exc:
            raise FormError("no_such_announcement", exc.reason) from exc
        return web.FileResponse(path, headers={**HEADERS, "Content-Type": "audio/wav"})

    async def draft_audio(self, request: web.Request) -> web.StreamResponse:
        """A text-to-speech preview's audio, for its owner only (not yet in the library)."""
        user, _sid = await self._session(request)
        self._need(user, Action.MANAGE_ANNOUNCEMENTS)
        try:
            path = await asyncio.to_thread(
                self.library.draft_audio, request.query.get("draft", ""), owner=user.name
            )
        except AnnouncementError as exc:
            raise FormError("no_draft", exc.reason) from exc
        return web.FileResponse(path, headers={**HEADERS, "Content-Type": "audio/wav"})

    async def _library_refused(
        self,
        request: web.Request,
        user: User,
        sid: str,
        action: str,
        target: str,
        exc: ConsoleError,
        form: dict[str, str] | None = None,
        *,
        draft_id: str = "",
    ) -> web.Response:
        """One refused library form: audited (a stale form is not: no session proved it),
        then the page again with the reason, or the error page for a role that may not."""
        if exc.code != "csrf_mismatch":
            await self.console.record(
                user.name, action, target, f"refused:{exc.code}", _client(request)
            )
        message = self._refusal(request, exc)
        if not _may(user, Action.MANAGE_ANNOUNCEMENTS):
            return self._render(
                request, "error.html", status=exc.status, user=user, sid=sid, message=message
            )
        return await self.announcements_page(
            request, error=message, status=exc.status, form=form, draft_id=draft_id
        )

    async def _upload_form(self, request: web.Request) -> tuple[dict[str, str], str, bytes]:
        """The upload's multipart form: its text fields, the file's name and its bytes (at
        most ``MAX_UPLOAD_BYTES``; nothing is stored while reading)."""
        limit = MAX_UPLOAD_BYTES + MAX_FORM_BODY
        if request.content_length is not None and request.content_length > limit:
            raise FormError("too_large", "upload above the limit")
        if request.content_type != "multipart/form-data":
            raise FormError("bad_form", "not a multipart form")
        fields: dict[str, str] = {}
        filename, data = "", b""
        seen_file = False
        try:
            reader = await request.multipart()
            for _ in range(MAX_UPLOAD_PARTS + 1):
                part = await reader.next()
                if part is None:
                    break
                if not isinstance(part, BodyPartReader):
                    raise FormError("bad_form", "nested multipart")
                name = part.name or ""
                if name == "file" and not seen_file:
                    seen_file = True
                    filename = (part.filename or "")[:200]
                    data = await _read_part(part, MAX_UPLOAD_BYTES, "too_large")
                elif name in UPLOAD_FIELDS and name not in fields:
                    raw = await _read_part(part, MAX_FIELD_BYTES, "bad_form")
                    fields[name] = raw.decode("utf-8")
                else:
                    raise FormError("bad_form", f"unexpected field {name[:40]!r}")
            else:
                raise FormError("bad_form", "too many parts")
        except (ValueError, AssertionError, RuntimeError, TypeError, LookupError) as exc:
            raise FormError("bad_form", f"multipart form unreadable: {exc}") from None
        return fields, filename, data

    async def upload_announcement(self, request: web.Request) -> web.Response:
        """An officer's recording (WAV, MP3, M4A) into the library: converted, normalised,
        audited. Bad files are refused in words (422), never a 500."""
        user, sid = await self._page_user(request)
        target = "announcement:?"
        form: dict[str, str] = {}
        try:
            fields, filename, data = await self._upload_form(request)
            self.console.check_csrf(sid, fields.get("csrf", ""))
            self._need(user, Action.MANAGE_ANNOUNCEMENTS)
            form = {k: fields.get(k, "") for k in ("title", "language", "id")}
            ann_id = form["id"].strip() or None
            target = f"announcement:{ann_id or 'new'}"
            suffix = Path(filename).suffix.lower()
            if not data:
                raise FormError("no_file", "no file chosen")
            if suffix not in UPLOAD_SUFFIXES:
                raise FormError("bad_format", f"suffix {suffix[:10]!r}")
            async with self._convert:
                try:
                    ann = await asyncio.to_thread(
                        self.library.add_bytes, data, suffix, title=form["title"],
                        language=form["language"] or "zh-CN", ann_id=ann_id,
                    )  # fmt: skip
                except (AnnouncementError, MediaError) as exc:
                    raise _library_error(exc, "bad_media") from None
            verdict = await asyncio.to_thread(self._level_of, ann.id)
        except ConsoleError as exc:
            return await self._library_refused(
                request, user, sid, "announcement.upload", target, exc, form
            )
        await self.console.record(
            user.name, "announcement.upload", f"announcement:{ann.id}",
            f"ok:sha256={ann.sha256[:16]}:level={verdict}", _client(request),
        )  # fmt: skip
        log.info("console upload by %s: announcement %s", user.name, ann.id)
        raise web.HTTPSeeOther(f"{ROOT}/announcements?{urlencode({'added': ann.id})}")

    async def preview_announcement(self, request: web.Request) -> web.Response:
        """Typed text rendered to a draft (not in the library): heard, then saved or dropped."""
        user, sid = await self._page_user(request)
        form: dict[str, str] = {}
        target = "draft:?"
        try:
            fields = await self._form(request)
            self.console.check_csrf(sid, _one(fields, "csrf", 80))
            self._need(user, Action.MANAGE_ANNOUNCEMENTS)
            form = {
                "tts_title": _one(fields, "title", 4 * MAX_TITLE),
                "text": _one(fields, "text", 4 * MAX_TEXT_CHARS),
            }
            text = form["text"]
            if not text.strip() or len(" ".join(text.split())) > MAX_TEXT_CHARS:
                raise FormError("bad_text", "text empty or too long")
            async with self._convert:
                try:
                    draft = await asyncio.to_thread(
                        self.library.preview_text, text, title=form["tts_title"],
                        owner=user.name, now=self.wall(),
                    )  # fmt: skip
                except (AnnouncementError, MediaError) as exc:
                    raise _library_error(exc, "speech_failed") from None
        except ConsoleError as exc:
            return await self._library_refused(
                request, user, sid, "announcement.preview", target, exc, form
            )
        await self.console.record(
            user.name, "announcement.preview", f"draft:{draft.id}",
            f"ok:level={draft.verdict}", _client(request),
        )  # fmt: skip
        raise web.HTTPSeeOther(f"{ROOT}/announcements?{urlencode({'draft': draft.id})}")

    async def save_draft(self, request: web.Request) -> web.Response:
        """Publish a preview: exactly the audio that was heard becomes an announcement."""
        user, sid = await self._page_user(request)
        target = "draft:?"
        try:
            fields = await self._form(request)
            self.console.check_csrf(sid, _one(fields, "csrf", 80))
            self._need(user, Action.MANAGE_ANNOUNCEMENTS)
            draft_id = _one(fields, "draft", 80)
            target = f"draft:{draft_id}"
            ann_id = _one(fields, "id", 200).strip() or None
            try:
                ann = await asyncio.to_thread(
                    self.library.publish_draft, draft_id, owner=user.name, ann_id=ann_id
                )
            except AnnouncementError as exc:
                raise _library_error(exc, "bad_form") from None
        except ConsoleError as exc:
            return await self._library_refused(
                request, user, sid, "announcement.save", target, exc,
                draft_id=target.removeprefix("draft:"),
            )  # fmt: skip
        await self.console.record(
            user.name, "announcement.save", f"{target}>announcement:{ann.id}",
            f"ok:sha256={ann.sha256[:16]}", _client(request),
        )  # fmt: skip
        raise web.HTTPSeeOther(f"{ROOT}/announcements?{urlencode({'added': ann.id})}")

    async def discard_draft(self, request: web.Request) -> web.Response:
        """Drop a preview; nothing reaches the library."""
        user, sid = await self._page_user(request)
        target = "draft:?"
        try:
            fields = await self._form(request)
            self.console.check_csrf(sid, _one(fields, "csrf", 80))
            self._need(user, Action.MANAGE_ANNOUNCEMENTS)
            draft_id = _one(fields, "draft", 80)
            target = f"draft:{draft_id}"
            try:
                await asyncio.to_thread(self.library.discard_draft, draft_id, owner=user.name)
            except AnnouncementError as exc:
                raise _library_error(exc, "bad_form") from None
        except ConsoleError as exc:
            return await self._library_refused(
                request, user, sid, "announcement.discard", target, exc
            )
        await self.console.record(user.name, "announcement.discard", target, "ok", _client(request))
        raise web.HTTPSeeOther(f"{ROOT}/announcements")

    async def _broadcast_context(self, user: User, request: web.Request) -> dict[str, Any]:
        library = await self._announcements()
        data = await self._data(user)
        # History filters: compound (township/compound), status, and running or ended.
        where = request.query.get("where", "")
        status = request.query.get("status", "")
        phase = request.query.get("phase", "")
        progress = [
            p
            for p in data.progress
            if (not where or f"{p.township}/{p.compound}" == where)
            and (not status or p.status == status)
            and (not phase or (phase == "ended") == p.final)
        ]
        query = urlencode(
            {k: v for k, v in (("where", where), ("status", status), ("phase", phase)) if v}
        )
        return {
            "rows": data.compounds,
            "townships": data.townships,
            "progress": progress[:100],
            "statuses": STATUSES,
            "clips": list(KNOWN_CLIPS) + [a.id for a in library if a.id not in KNOWN_CLIPS],
            "sound": await self._sound(progress[:100]),
            "max_seconds": int(MAX_BROADCAST_S),
            "may_actual": _may(user, Action.SEND_ACTUAL_BROADCAST),
            "part_url": f"{ROOT}/broadcast/part" + (f"?{query}" if query else ""),
            "start_action": BroadcastStart.name,
            "filter_where": where,
            "filter_status": status,
            "filter_phase": phase,
        }

    async def broadcast_page(
        self, request: web.Request, *, error: str = "", status: int = 200
    ) -> web.Response:
        user, sid = await self._page_user(request)
        if not _may(user, Action.SEND_BROADCAST):
            return await self._forbidden_page(request, user, sid)
        context = await self._broadcast_context(user, request)
        return self._render(
            request, "broadcast.html", status=status, user=user, sid=sid, page="broadcast",
            error=error, **context,
        )  # fmt: skip

    async def broadcast_part(self, request: web.Request) -> web.Response:
        user, sid = await self._session(request)
        self._need(user, Action.SEND_BROADCAST)
        context = await self._broadcast_context(user, request)
        return self._render(request, "broadcast_part.html", user=user, sid=sid, **context)

    async def broadcast(self, request: web.Request) -> web.Response:
        user, sid = await self._page_user(request)
        client = _client(request)
        target = "compounds:?"
        try:
            fields = await self._form(request)
            self.console.check_csrf(sid, _one(fields, "csrf", 80))
            # Refused first on role alone: a clerk or viewer learns nothing about the form.
            if not _may(user, Action.SEND_BROADCAST):
                raise ConsoleError("forbidden", f"a {user.role.value} may not order broadcasts")
            scope = _one(fields, "scope", 20) or "compounds"
            gateways = [g for g in await self.repo.gateways() if g.revoked_at is None]
            if scope == "all":
                chosen = {(g.township, g.compound) for g in gateways}
                target = "all"
            elif scope == "township":
                township = _one(fields, "township", 200)
                chosen = {(g.township, g.compound) for g in gateways if g.township == township}
                target = f"township:{township}"
            elif scope == "compounds":
                keys = set(fields.get("compound") or [])
                if len(keys) > 500 or any(len(k) > 400 for k in keys):
                    raise FormError("bad_form", "too many compounds")
                chosen = {
                    (g.township, g.compound)
                    for g in gateways
                    if f"{g.township}/{g.compound}" in keys
                }
                target = "compounds:" + ",".join(sorted(f"{t}/{c}" for t, c in chosen))
            else:
                raise FormError("bad_form", "unknown scope")
            if not chosen:
                raise FormError("no_targets", "no compound with an enrolled gateway chosen")
            for township, compound in chosen:
                if not can(user, Action.SEND_BROADCAST, Target(township, compound)):
                    raise ConsoleError("forbidden", f"outside this account's area: {compound}")
            zones = _zones(_one(fields, "zones", 200))
            try:
                seconds = float(_one(fields, "seconds", 20))
            except ValueError:
                raise FormError("bad_seconds", "duration is not a number") from None
            if not 1 <= seconds <= MAX_BROADCAST_S:
                raise FormError("bad_seconds", f"duration must be 1..{MAX_BROADCAST_S:g} s")
            clip = _one(fields, "clip", 100)
            if not ANNOUNCEMENT_RE.fullmatch(clip):
                raise FormError("bad_clip", "clip id has other characters")
            status = _one(fields, "status", 20)
            if status not in STATUSES:
                raise FormError("bad_status", "unknown status")
            if status == "Actual":
                if not _may(user, Action.SEND_ACTUAL_BROADCAST):
                    raise ConsoleError("forbidden", "this role may not order Actual broadcasts")
                if _one(fields, "confirm_actual", 10) != "yes":
                    raise FormError("confirm_actual", "Actual not confirmed")
            try:
                key = load_command_key(self.paths)
            except CentreError:
                raise FormError("command_key", "no command key") from None
            ids = [g.gateway_id for g in gateways if (g.township, g.compound) in chosen]
            records = await issue(
                self.commands,
                ids,
                key,
                BroadcastStart(zones, seconds, clip, status, await self._announcement_hash(clip)),
                ttl_s=min(BROADCAST_TTL_S, MAX_TTL_S),
                now=self.wall(),
                issued_by=f"console:{user.name}",
            )
        except ConsoleError as exc:
            if exc.code != "csrf_mismatch":
                await self.console.record(
                    user.name, "broadcast", target, f"refused:{exc.code}", client
                )
            message = self._refusal(request, exc)
            if not _may(user, Action.SEND_BROADCAST):
                return self._render(
                    request, "error.html", status=exc.status, user=user, sid=sid, message=message
                )
            return await self.broadcast_page(request, error=message, status=exc.status)
        self.channel.wake()
        self.live.bump()
        ids_text = ",".join(r.command_id for r in records)
        await self.console.record(
            user.name, "broadcast", target, f"ok:{status}:{ids_text}"[:200], client
        )
        log.info("console broadcast by %s to %s: %s", user.name, target, ids_text)
        raise web.HTTPSeeOther(f"{ROOT}/broadcast")

    async def stop_broadcast(self, request: web.Request) -> web.Response:
        """Stop a running broadcast: a signed ``broadcast.stop`` for the same gateway."""
        user, sid = await self._page_user(request)
        client = _client(request)
        target = "command:?"
        try:
            fields = await self._form(request)
            self.console.check_csrf(sid, _one(fields, "csrf", 80))
            if not _may(user, Action.SEND_BROADCAST):
                raise ConsoleError("forbidden", f"a {user.role.value} may not stop broadcasts")
            command_id = _one(fields, "command_id", 100)
            target = f"command:{command_id}"
            data = await self._data(user)
            found = [
                p
                for p in data.progress
                if p.command_id == command_id and p.action == BroadcastStart.name and not p.final
            ]
            if not found:
                raise FormError("no_such_command", "no running broadcast with this id")
            running = found[0]
            if not can(user, Action.SEND_BROADCAST, Target(running.township, running.compound)):
                raise ConsoleError("forbidden", "outside this account's area")
            try:
                key = load_command_key(self.paths)
            except CentreError:
                raise FormError("command_key", "no command key") from None
            (record,) = await issue(
                self.commands,
                [running.gateway_id],
                key,
                BroadcastStop(),
                ttl_s=min(BROADCAST_TTL_S, MAX_TTL_S),
                now=self.wall(),
                issued_by=f"console:{user.name}",
            )
        except ConsoleError as exc:
            if exc.code != "csrf_mismatch":
                await self.console.record(
                    user.name, "broadcast.stop", target, f"refused:{exc.code}", client
                )
            message = self._refusal(request, exc)
            if not _may(user, Action.SEND_BROADCAST):
                return self._render(
                    request, "error.html", status=exc.status, user=user, sid=sid, message=message
                )
            return await self.broadcast_page(request, error=message, status=exc.status)
        self.channel.wake()
        self.live.bump()
        await self.console.record(
            user.name, "broadcast.stop", target, f"ok:{record.command_id}", client
        )
        raise web.HTTPSeeOther(f"{ROOT}/broadcast")

    # -- look now ----------------------------------------------------------------------------

    async def look_now(self, request: web.Request) -> web.Response:
        """Order a fresh picture from a compound's camera (a signed ``camera.snapshot``, the
        same path as ``compound-centre snapshot``), audited; back to the compound's page, which
        follows the order (``?look=<command id>``) until the picture is on screen."""
        user, sid = await self._page_user(request)
        client = _client(request)
        target = "compound:?"
        township = name = ""
        try:
            fields = await self._form(request)
            self.console.check_csrf(sid, _one(fields, "csrf", 80))
            township, name = _one(fields, "township", 200), _one(fields, "name", 200)
            target = f"compound:{township}/{name}"
            if not _may_look(user, township, name):
                raise ConsoleError("forbidden", "this account may not ask for pictures here")
            data = await self._data(user, compound=name)
            rows = [r for r in data.compounds if r.township == township and r.compound == name]
            if not rows:
                raise ConsoleError("no_such_compound", "no such compound")
            chosen = _one(fields, "camera", 300)
            if chosen not in {c.value for c in _cameras(rows[0])}:
                raise FormError("no_camera", "not a camera this compound reported")
            gateway_id, _, camera = chosen.rpartition("/")
            target += f">{gateway_id}:{camera}"
            try:
                key = load_command_key(self.paths)
            except CentreError:
                raise FormError("command_key", "no command key") from None
            try:
                record = await request_look_now(
                    self.commands, self.repo, key, gateway_id=gateway_id, camera=camera,
                    now=self.wall(), issued_by=f"console:{user.name}",
                )  # fmt: skip
            except CentreError as exc:
                raise FormError("no_camera", str(exc)) from None
        except ConsoleError as exc:
            if exc.code != "csrf_mismatch":
                await self.console.record(
                    user.name, "look_now", target, f"refused:{exc.code}", client
                )
            return self._render(
                request, "error.html", status=exc.status, user=user, sid=sid,
                message=self._refusal(request, exc),
            )  # fmt: skip
        self.channel.wake()
        self.live.bump()
        await self.console.record(user.name, "look_now", target, f"ok:{record.command_id}", client)
        query = urlencode({"township": township, "name": name, "look": record.command_id})
        raise web.HTTPSeeOther(f"{ROOT}/compound?{query}#look-now")

    async def _look_result(self, user: User, command_id: str) -> LookNowResult:
        """Where a look-now order stands, for someone who may see that compound's images."""
        if not command_id.isascii() or len(command_id) > 100:
            raise ConsoleError("no_such_look", "not a command id")
        result = await look_now_result(self.commands, self.repo, command_id, now=self.wall())
        gateway = await self.repo.gateway(result.gateway_id) if result else None
        if result is None or gateway is None:
            raise ConsoleError("no_such_look", "no such look-now order")
        if not can(user, Action.VIEW_IMAGE, Target(gateway.township, gateway.compound)):
            raise ConsoleError("forbidden", "an order for a compound outside this area")
        return result

    async def look_now_part(self, request: web.Request) -> web.Response:
        """The look-now result as an HTML fragment the page polls: ``data-stage`` says whether
        to ask again (waiting, taken) or stop (stored, with the picture; failed, with why)."""
        user, sid = await self._session(request)
        result = await self._look_result(user, request.query.get("id", ""))
        return self._render(request, "look_now_part.html", user=user, sid=sid, look=result)

    # -- camera images ---------------------------------------------------------------------

    async def image(self, request: web.Request) -> web.StreamResponse:
        """One evidence image the centre holds (``/console/images/<sha256>``), for whoever may
        view images of the compound whose gateway sent it. Images are personal data: every
        view and every refused attempt is an audit record (who, when, which image, which
        compound)."""
        user, sid = await self._session(request)
        client = _client(request)
        sha = request.match_info.get("sha256", "")
        target = "image:?"
        try:
            if not SHA256_RE.fullmatch(sha):
                raise FormError("bad_image", "an image is named by its sha256 (64 hex digits)")
            target = f"image:{sha}"
            media = await self.repo.media(sha)
            gateway = await self.repo.gateway(media.gateway_id) if media is not None else None
            if gateway is not None:
                target = f"image:{sha}@{gateway.township}/{gateway.compound}"
            if not _may(user, Action.VIEW_IMAGE):  # by role, before saying whether it exists
                raise ConsoleError("forbidden", f"a {user.role.value} may not view images")
            if media is None or gateway is None:
                raise ConsoleError("no_such_image", "the centre holds no image with this hash")
            if not can(user, Action.VIEW_IMAGE, Target(gateway.township, gateway.compound)):
                raise ConsoleError("forbidden", "an image of a compound outside this area")
            path = self.paths.root / MEDIA_DIR / media.path
            if not await asyncio.to_thread(path.is_file):  # deleted by retention meanwhile
                raise ConsoleError("no_such_image", "the image file is gone")
        except ConsoleError as exc:
            await self.console.record(
                user.name, "image.view", target, f"refused:{exc.code}", client
            )
            message = self._refusal(request, exc)
            return self._render(
                request, "error.html", status=exc.status, user=user, sid=sid, message=message
            )
        await self.console.record(user.name, "image.view", target, "ok", client)
        return web.FileResponse(path, headers={**HEADERS, "Content-Type": "image/jpeg"})

    # -- live updates --------------------------------------------------------------------------

    async def events(self, request: web.Request) -> web.StreamResponse:
        """Server-sent events: one ``data: <version>`` line whenever the console's data moved."""
        await self._session(request)
        sid = request.cookies.get(SESSION_COOKIE, "")
        resp = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-store",
                "X-Accel-Buffering": "no",
            }
        )
        await resp.prepare(request)
        version = -1
        checked = time.monotonic()
        try:
            await resp.write(b"retry: 2000\n\n")
            while not self.live.closing:
                now_version = await self.live.changed(after=version, timeout=SSE_KEEPALIVE_S)
                if self.live.closing:
                    break
                if time.monotonic() - checked > SESSION_RECHECK_S:
                    checked = time.monotonic()
                    try:
                        await self.console.session(sid, client=_client(request))
                    except ConsoleError:
                        await resp.write(b"event: signed-out\ndata: 0\n\n")
                        break
                if now_version != version:
                    version = now_version
                    await resp.write(f"data: {version}\n\n".encode("ascii"))
                else:
                    await resp.write(b": still here\n\n")
        except ConnectionError:
            pass
        return resp
