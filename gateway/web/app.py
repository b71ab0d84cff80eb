"""The local status page: an aiohttp app and the daemon service that serves it on the LAN.

    services = build_services(cfg, journal, clock, board)      # the daemon's factory
    app = make_app(ctx)                                         # tests: serve it on 127.0.0.1

Read-only without login: ``/`` (the page) and ``/status.json`` (the same data). Changing
anything needs a login (``/login``), and the one change offered is acknowledging a patrol alert
(``POST /alerts/ack``), journaled as the evidence event ``web.alert_ack`` before the reply.

Defences: no default password (no hash file, no login); failed logins back off exponentially
per client and for everyone (:class:`~gateway.web.auth.LoginThrottle`), refused before the
password is even checked; the session cookie is a random token, ``HttpOnly`` and
``SameSite=Strict``; every POST needs the session's CSRF token (the login form a
double-submitted one) and a same-origin ``Origin`` if the browser sends one; a strict
Content-Security-Policy (no scripts at all); data is redacted before it is rendered
(:func:`~gateway.web.view.redact`). The page is plain HTTP on the compound's LAN: see
docs/install.md for what that means for the password.

Malformed requests (a multipart body without a boundary, bytes not in the declared charset,
an unknown charset, a cookie of raw bytes, a request line HTTP cannot parse) never get a 500:
the answer is 400 with ``{"error": "bad_request", "reason": "..."}`` (aiohttp's own 4xx, such
as 413 for a body above 8 KiB, stay as they are), logged as one warning line without a
traceback, at most :data:`BAD_REQUEST_WARNINGS_PER_MINUTE` a minute, the rest counted in one
line, so nobody on the LAN can fill the SD card's log.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import re
import secrets
import sys
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Final, Protocol

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from gateway.clock import Clock
from gateway.config import read_secret_file
from gateway.errors import ConfigError, GatewayError
from gateway.events import EVIDENCE, TELEMETRY, Event
from gateway.i18n import (
    DEFAULT_LANGUAGE,
    _,
    choose_language,
    set_language,
    supported_language,
)
from gateway.journal import read_events, read_status
from gateway.web.auth import LoginThrottle, Session, SessionStore, csrf_matches, verify_password
from gateway.web.config import WebSection
from gateway.web.render import LoginInfo, render_dashboard, render_login, render_message
from gateway.web.view import ACK_KIND, build_view

log = logging.getLogger("gateway.web")

SESSION_COOKIE: Final = "cgw_session"
LOGIN_COOKIE: Final = "cgw_login"  # the login form's double-submitted CSRF token
LOGIN_FORM_TTL_S: Final = 900
# The page's language, once chosen with the page's own switch (?lang=en): kept for a year.
LANG_COOKIE: Final = "cgw_lang"
LANG_COOKIE_TTL_S: Final = 365 * 86400
BOARD_SECTION: Final = "web"
# The page keeps at most this many of the newest evidence events it scanned (taps, rounds...).
KEEP_EVENTS: Final = 5000
READ_BATCH: Final = 2000
# Without the live journal (the page beside a daemon), the newest rows of any class are read.
FILE_SCAN_MAX: Final = 20_000
MAX_BODY_BYTES: Final = 8 * 1024
BAD_REQUEST_WARNINGS_PER_MINUTE: Final = 10
ALERT_ID = re.compile(r"[A-Za-z0-9_.:/@#+\-]{1,200}")
SECURITY_HEADERS: Final = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


class BoardLike(Protocol):
    """The daemon's StatusBoard, as far as the page reads it."""

    sections: dict[str, Any]


class JournalLike(Protocol):
    """The part of gateway.journal.Journal the page uses."""

    @property
    def last_seq(self) -> int: ...

    async def append(self, kind: str, payload: Any, *, cls: str = EVIDENCE) -> Event: ...

    async def read_after(
        self, seq: int, *, limit: int = 500, classes: Iterable[str] | None = None
    ) -> list[Event]: ...


@dataclass(slots=True)
class WebContext:
    """Everything the app reads and writes; built by :func:`build_services` or by a test."""

    section: WebSection
    password_path: Path
    journal_path: Path
    journal: JournalLike | None
    clock: Clock
    tz: str
    gateway_id: str
    compound: str
    board: BoardLike | None = None
    board_path: Path | None = None
    throttle: LoginThrottle = field(default_factory=LoginThrottle)
    sessions: SessionStore | None = None
    # One password check at a time: parallel attempts would all pass the throttle before the
    # first failure is counted (a backoff bypass), and each scrypt check holds 16 MiB.
    check_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    password_problem: str = ""
    language: str = DEFAULT_LANGUAGE  # [gateway] language: the page's default

    def __post_init__(self) -> None:
        if self.sessions is None:
            self.sessions = SessionStore(ttl_s=self.section.session_ttl_s)


CTX: Final = web.AppKey("ctx", WebContext)
STYLE: Final = web.AppKey("style", bytes)


# --------------------------------------------------------------------------- reading


def password_line(ctx: WebContext) -> str | None:
    """The stored hash line; None when no password is set (or its file is unsafe).

    Why a file that exists is refused is kept in ``ctx.password_problem`` (and logged once).
    """
    problem = ""
    line: str | None = None
    if ctx.password_path.exists():
        try:
            raw = read_secret_file(ctx.password_path, "web.password_file")
        except ConfigError as exc:
            problem = exc.detail
        else:
            line = raw.decode("utf-8", "replace").strip() or None
    if problem and problem != ctx.password_problem:
        log.warning("status page login disabled: %s", problem)
    ctx.password_problem = problem
    return line


def _board_sections(ctx: WebContext) -> dict[str, Any]:
    if ctx.board is not None:
        # A JSON round trip: a private copy, and the same shapes status.json would give.
        return dict(json.loads(json.dumps(ctx.board.sections, default=str)))
    if ctx.board_path is not None:
        with contextlib.suppress(OSError, ValueError):
            data = json.loads(ctx.board_path.read_text())
            if isinstance(data, dict):
                return data
    return {}


def _read_journal_file(path: Path, last: int) -> tuple[list[Event], dict[str, Any]]:
    try:
        return read_events(path, last=last), read_status(path)
    except GatewayError as exc:
        return [], {"error": exc.reason}


async def _recent_evidence(journal: JournalLike, scan_back: int) -> list[Event]:
    """The newest evidence events within the last ``scan_back`` sequence numbers.

    Telemetry (health samples, link measurements) can outnumber taps a hundred to one; reading
    evidence only keeps this morning's taps and rounds on the page however busy the sensors are.
    """
    kept: deque[Event] = deque(maxlen=KEEP_EVENTS)
    seq = max(0, journal.last_seq - scan_back)
    while True:
        batch = await journal.read_after(seq, limit=READ_BATCH, classes=(EVIDENCE,))
        if not batch:
            return list(kept)
        kept.extend(batch)
        seq = batch[-1].seq


async def gather_view(ctx: WebContext) -> dict[str, Any]:
    """The page's data now (the disk is read in threads: the loop never waits on it)."""
    if ctx.journal is not None:
        try:
            events = await _recent_evidence(ctx.journal, ctx.section.events_scanned)
        except GatewayError as exc:
            events = []
            log.warning("status page could not read the journal: %s", exc.reason)
        try:
            status = await asyncio.to_thread(read_status, ctx.journal_path)
        except GatewayError as exc:
            status = {"error": exc.reason}
    else:
        last = min(ctx.section.events_scanned, FILE_SCAN_MAX)
        events, status = await asyncio.to_thread(_read_journal_file, ctx.journal_path, last)
    return build_view(
        events,
        _board_sections(ctx),
        status,
        now=ctx.clock.wall(),
        tz=ctx.tz,
        gateway_id=ctx.gateway_id,
        compound=ctx.compound,
        clock_synced=ctx.clock.synced(),
    )


# --------------------------------------------------------------------------- helpers


def _client(request: web.Request) -> str:
    return request.remote or "unknown"


def _session(request: web.Request) -> Session | None:
    ctx = request.app[CTX]
    assert ctx.sessions is not None
    line = password_line(ctx)
    if line is None:
        return None
    return ctx.sessions.get(request.cookies.get(SESSION_COOKIE), ctx.clock.monotonic(), line)


def _html(text: str, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(
        text=text, status=status, content_type="text/html", charset="utf-8", headers=headers
    )


def _cookie(resp: web.StreamResponse, name: str, value: str, max_age: int) -> None:
    resp.set_cookie(name, value, max_age=max_age, path="/", httponly=True, samesite="Strict")


def _same_origin(request: web.Request) -> bool:
    """A POST from our own page: the browser's Origin (when sent) names this host."""
    if request.headers.get("Sec-Fetch-Site", "same-origin") not in ("same-origin", "none"):
        return False
    origin = request.headers.get("Origin")
    return origin is None or origin == f"{request.scheme}://{request.host}"


class BadRequest(GatewayError):
    """A request the page cannot read (form, cookie, header): answered 400, never 500."""


async def _form(request: web.Request) -> Mapping[str, str]:
    """The posted form's text fields; BadRequest for a body that cannot be read (multipart
    without a boundary, bytes that are not in the declared charset, an unknown charset)."""
    try:
        data = await request.post()
        return {k: v for k, v in data.items() if isinstance(v, str)}
    except web.HTTPException:
        raise  # aiohttp's own 4xx (body too large) already says what is wrong
    except (ValueError, LookupError, UnicodeError, AssertionError, TypeError) as exc:
        raise BadRequest("the form could not be read", why=type(exc).__name__) from exc


def _forbidden(message: str) -> web.Response:
    return _html(render_message(_("Refused"), message), status=403)


# --------------------------------------------------------------------------- handlers


async def dashboard(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    session = _session(request)
    login = LoginInfo(
        logged_in=session is not None,
        csrf=session.csrf if session else "",
        password_set=password_line(ctx) is not None,
    )
    view = await gather_view(ctx)
    return _html(render_dashboard(view, login=login, refresh_s=ctx.section.refresh_s))


async def status_json(request: web.Request) -> web.Response:
    view = await gather_view(request.app[CTX])
    return web.json_response(view, dumps=lambda v: json.dumps(v, sort_keys=True, default=str))


async def style(request: web.Request) -> web.Response:
    return web.Response(body=request.app[STYLE], content_type="text/css", charset="utf-8")


async def healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok\n")


async def login_form(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    if _session(request) is not None:
        raise web.HTTPSeeOther("/")
    token = secrets.token_urlsafe(24)
    line = password_line(ctx)
    resp = _html(
        render_login(password_set=line is not None, csrf=token, problem=ctx.password_problem)
    )
    _cookie(resp, LOGIN_COOKIE, token, LOGIN_FORM_TTL_S)
    return resp


def _retry_page(wait_s: float, why: str) -> web.Response:
    seconds = max(1, math.ceil(wait_s))
    return _html(
        render_message(
            _("Too many attempts"),
            _("%(why)s Try again in %(seconds)d s.") % {"why": why, "seconds": seconds},
            back="/login",
        ),
        status=429,
        headers={"Retry-After": str(seconds)},
    )


async def login_submit(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    assert ctx.sessions is not None
    if not _same_origin(request):
        return _forbidden(_("This form must be sent from the gateway's own page."))
    form = await _form(request)
    if not csrf_matches(request.cookies.get(LOGIN_COOKIE, ""), form.get("csrf")):
        return _forbidden(_("The login form expired or did not come from this page; reload it."))
    line = password_line(ctx)
    if line is None:
        return _forbidden(_("No password is set on this gateway: nobody can log in."))
    client = _client(request)
    async with ctx.check_lock:
        wait = ctx.throttle.wait_s(client, ctx.clock.monotonic())
        if wait > 0:
            return _retry_page(wait, _("Login attempts are being slowed down."))
        ok = await asyncio.to_thread(verify_password, form.get("password", ""), line)
        next_wait = ctx.throttle.record(client, ok=ok, now=ctx.clock.monotonic())
    await _journal(
        ctx,
        "web.login" if ok else "web.login_failed",
        {"client": client, "failures": ctx.throttle.failures(client)},
        cls=EVIDENCE if ok else TELEMETRY,
    )
    if not ok:
        log.warning("failed login from %s (next attempt in %.0f s)", client, next_wait)
        note = _("Wrong password.")
        if next_wait > 0:
            note += " " + _("The next attempt is possible in %(seconds)d s.") % {
                "seconds": max(1, math.ceil(next_wait))
            }
        resp = _html(
            render_login(password_set=True, csrf=request.cookies[LOGIN_COOKIE], message=note),
            status=403,
        )
        return resp
    session = ctx.sessions.create(client, ctx.clock.monotonic(), line)
    resp = web.HTTPSeeOther("/")
    _cookie(resp, SESSION_COOKIE, session.token, int(ctx.section.session_ttl_s))
    resp.del_cookie(LOGIN_COOKIE, path="/")
    raise resp


def _require_session(request: web.Request, form: Mapping[str, str]) -> Session | web.Response:
    if not _same_origin(request):
        return _forbidden(_("This form must be sent from the gateway's own page."))
    session = _session(request)
    if session is None:
        return _forbidden(_("Log in first."))
    if not csrf_matches(session.csrf, form.get("csrf")):
        return _forbidden(_("The form did not carry this session's token; reload the page."))
    return session


async def logout(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    assert ctx.sessions is not None
    form = await _form(request)
    checked = _require_session(request, form)
    if isinstance(checked, web.Response):
        return checked
    ctx.sessions.drop(checked.token)
    resp = web.HTTPSeeOther("/")
    resp.del_cookie(SESSION_COOKIE, path="/")
    raise resp


async def acknowledge_alert(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    form = await _form(request)
    checked = _require_session(request, form)
    if isinstance(checked, web.Response):
        return checked
    alert = form.get("alert", "")
    if not ALERT_ID.fullmatch(alert):
        return _html(render_message(_("Not found"), _("No such alert.")), status=400)
    view = await gather_view(ctx)
    known = {a["alert"]: a for a in view["alerts"]}
    if alert not in known:
        return _html(render_message(_("Not found"), _("No such recent alert.")), status=404)
    if not known[alert]["acknowledged"]:
        appended = await _journal(
            ctx, ACK_KIND, {"alert": alert, "client": _client(request), "via": "status-page"}
        )
        if not appended:
            return _html(
                render_message(_("Not saved"), _("The journal could not record it; try again.")),
                status=503,
            )
    raise web.HTTPSeeOther("/#alerts")


async def _journal(
    ctx: WebContext, kind: str, payload: Mapping[str, Any], *, cls: str = EVIDENCE
) -> bool:
    if ctx.journal is None:
        return False
    try:
        await ctx.journal.append(kind, dict(payload), cls=cls)
    except GatewayError as exc:
        log.error("could not journal %s: %s", kind, exc.reason)
        return False
    return True


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class WarningBudget:
    """At most ``per_minute`` warning lines a minute about bad requests; the rest are counted
    and reported in one line when the minute is over, so nobody on the LAN can fill the SD
    card's log with malformed requests. Time is an argument (monotonic seconds)."""

    def __init__(self, per_minute: int = BAD_REQUEST_WARNINGS_PER_MINUTE) -> None:
        self.per_minute = per_minute
        self.window_start = -math.inf
        self.used = 0
        self.suppressed = 0

    def allow(self, now: float) -> tuple[bool, int]:
        """(whether to log this one, how many were suppressed in the window that just ended)."""
        ended = 0
        if now - self.window_start >= 60.0:
            ended, self.suppressed = self.suppressed, 0
            self.window_start, self.used = now, 0
        if self.used < self.per_minute:
            self.used += 1
            return True, ended
        self.suppressed += 1
        return False, ended


BUDGET: Final = web.AppKey("bad_request_budget", WarningBudget)


def _bad_request(request: web.Request, exc: BaseException) -> web.Response:
    """The one answer to a request the page cannot read: 400 with a plain JSON error,
    logged once at warning level (within the budget), never with a traceback."""
    ctx = request.app[CTX]
    log_it, suppressed = request.app[BUDGET].allow(ctx.clock.monotonic())
    if suppressed:
        log.warning("status page: %d more malformed request(s) were not logged", suppressed)
    reason = exc.reason if isinstance(exc, GatewayError) else "the request could not be read"
    if log_it:
        log.warning(
            "status page: malformed request %s %s from %s: %s (%s)",
            request.method,
            request.rel_url.path[:100],
            _client(request),
            reason,
            type(exc.__cause__ or exc).__name__,
        )
    body = {"error": "bad_request", "reason": reason}
    return web.json_response(body, status=400, headers=SECURITY_HEADERS)


class HttpParseLog(logging.LoggerAdapter[logging.Logger]):
    """The logger aiohttp's request handler uses. A request that breaks HTTP itself (a bad
    request line, raw bytes in the target, a header without a colon) is answered 400 by
    aiohttp before any handler runs, and aiohttp logs it with ``exception()``: an ERROR with a
    traceback per request. Here it becomes one warning line within the page's budget; every
    other exception keeps its traceback (that one would be our bug)."""

    def __init__(self, budget: WarningBudget, clock: Clock) -> None:
        super().__init__(logging.getLogger("gateway.web.http"), {})
        self.budget = budget
        self.clock = clock

    def exception(self, msg: object, *args: object, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info")
        if not isinstance(exc, BaseException):
            exc = sys.exc_info()[1]
        if not isinstance(exc, HttpProcessingError):
            self.logger.exception(msg, *args, **kwargs)
            return
        log_it, suppressed = self.budget.allow(self.clock.monotonic())
        if suppressed:
            log.warning("status page: %d more malformed request(s) were not logged", suppressed)
        if log_it:
            first = str(getattr(exc, "message", "") or exc).strip().splitlines()[:1]
            log.warning(
                "status page: malformed HTTP answered %s: %s",
                getattr(exc, "code", 400),
                (first[0] if first else type(exc).__name__)[:120],
            )


@web.middleware
async def security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Security headers on every answer, and no 500 for a malformed request: whatever a
    handler raises on bad input (see :class:`BadRequest`) becomes a 400."""
    try:
        resp = await handler(request)
    except web.HTTPException as exc:
        exc.headers.update(SECURITY_HEADERS)
        raise
    except asyncio.CancelledError:
        raise
    except (BadRequest, ValueError, LookupError, UnicodeError, TypeError) as exc:
        return _bad_request(request, exc)
    resp.headers.update(SECURITY_HEADERS)
    return resp


@web.middleware
async def page_language(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Each request's language: ``?lang=`` (the page's switch, then kept in a cookie), else that
    cookie, else ``$COMPOUND_GW_LANG`` (tests), else ``[gateway] language``. Held in this
    request's context for ``_()``."""
    asked = supported_language(request.query.get("lang", "")[:35])
    kept = supported_language(request.cookies.get(LANG_COOKIE, "")[:35])
    set_language(asked or kept or choose_language(configured=request.app[CTX].language))
    resp = await handler(request)
    if asked:
        resp.set_cookie(
            LANG_COOKIE, asked, max_age=LANG_COOKIE_TTL_S, path="/", httponly=True,
            samesite="Strict",
        )  # fmt: skip
    return resp


def make_app(ctx: WebContext) -> web.Application:
    """The aiohttp application for ``ctx`` (serve it with an AppRunner)."""
    app = web.Application(
        client_max_size=MAX_BODY_BYTES, middlewares=[security_headers, page_language]
    )
    app[CTX] = ctx
    app[BUDGET] = WarningBudget()
    app[STYLE] = resources.files("gateway.web").joinpath("style.css").read_bytes()
    app.add_routes(
        [
            web.get("/", dashboard),
            web.get("/status.json", status_json),
            web.get("/style.css", style),
            web.get("/healthz", healthz),
            web.get("/login", login_form),
            web.post("/login", login_submit),
            web.post("/logout", logout),
            web.post("/alerts/ack", acknowledge_alert),
        ]
    )
    return app


# --------------------------------------------------------------------------- the service


class WebService:
    """Serves the status page until cancelled. ``port`` overrides the config (0: any free)."""

    name = "web"

    def __init__(self, ctx: WebContext, *, host: str | None = None, port: int | None = None):
        self.ctx = ctx
        self.host = host if host is not None else ctx.section.host
        self.port = port if port is not None else ctx.section.port
        self.bound_port: int | None = None
        self.ready = asyncio.Event()

    async def run(self) -> None:
        app = make_app(self.ctx)
        runner = web.AppRunner(
            app,
            access_log=None,
            shutdown_timeout=2.0,
            logger=HttpParseLog(app[BUDGET], self.ctx.clock),
        )
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.host, self.port, reuse_address=True)
            await site.start()
            addresses = runner.addresses
            self.bound_port = int(addresses[0][1]) if addresses else self.port
            log.info("status page on http://%s:%s/", self.host, self.bound_port)
            self._publish()
            self.ready.set()
            await asyncio.Event().wait()
        finally:
            self.ready.clear()
            await runner.cleanup()

    def _publish(self) -> None:
        """Tell ``compound-gw status`` where the page is and whether anyone can log in."""
        publish = getattr(self.ctx.board, "publish", None)
        if not callable(publish):
            return
        line = password_line(self.ctx)
        if self.ctx.password_problem:
            login = f"disabled: {self.ctx.password_problem}"
        else:
            login = "enabled" if line else "no password set (read-only)"
        publish(BOARD_SECTION, {"listen": f"{self.host}:{self.bound_port}", "login": login})


def build_services(cfg: Any, journal: Any, clock: Clock, board: Any = None) -> list[Any]:
    """The daemon's factory: ``cfg.web`` (once wired) to the page's service; none if disabled."""
    section = getattr(cfg, "web", None)
    if section is None or not section.enabled:
        return []
    ctx = WebContext(
        section=section,
        password_path=cfg.path(section.password_file),
        journal_path=cfg.journal_path,
        journal=journal,
        clock=clock,
        tz=cfg.gateway.timezone,
        gateway_id=cfg.gateway.id,
        compound=cfg.gateway.compound,
        board=board,
        board_path=cfg.path(cfg.gateway.runtime_dir) / "status.json",
        language=supported_language(cfg.gateway.language) or DEFAULT_LANGUAGE,
    )
    return [WebService(ctx)]


def default_password_path(cfg: Any) -> Path:
    """Where ``web set-password`` writes: the configured file, or the default beside the config."""
    section = getattr(cfg, "web", None) or WebSection()
    return Path(cfg.path(section.password_file))


__all__ = [
    "WebContext",
    "WebService",
    "build_services",
    "default_password_path",
    "gather_view",
    "make_app",
    "password_line",
]
