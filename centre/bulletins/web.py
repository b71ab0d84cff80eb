"""HTTP handlers for the bulletins, ready to be mounted on the centre's aiohttp app.

    handlers = BulletinHandlers(repo, store, OperatorTokens.load(root / OPERATORS_FILE))
    app.add_routes(handlers.routes())

Routes (operators only, see :mod:`centre.bulletins.auth`):

- ``GET  /bulletins``                      index with links
- ``GET  /bulletins/daily?date=D[&format=csv[&table=missed|integrity]]``   default: yesterday
- ``GET  /bulletins/monthly?month=M[&format=csv[&table=devices|faults|integrity]]``
  default: last month

Every page takes ``lang=zh-CN|en`` (else the browser's ``Accept-Language``, else Chinese); pages
come from :mod:`centre.bulletins.pages` (Jinja2 templates). These routes are stable: the console
may link to them.
- ``POST /bulletins/explanations``         JSON {compound, round, text, given_by?}; bearer only
- ``GET/POST /bulletins/login``, ``POST /bulletins/logout``   session cookie for phone browsers
- ``GET/POST /bulletins/explain?compound=&day=&expires=&sig=``  no account: the signed link is
  the permission (see :mod:`centre.bulletins.links`, :mod:`centre.bulletins.explain_web`);
  served when the handlers are given ``links``
- ``GET /bulletins/survey?month=M``, ``POST /bulletins/survey/{draw,reveal,outcome,residents}``
  the resident phone survey (see :mod:`centre.bulletins.survey_web`); served when the handlers
  are given ``survey``

The page builders :func:`daily_response` and :func:`monthly_response` take the repository and
parameters and return a ``web.Response``; they do no authentication (the class does).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Any, Final
from urllib.parse import parse_qs
from zoneinfo import ZoneInfo

from aiohttp import web

from centre.bulletins import pages, render
from centre.bulletins.auth import SESSION_TTL_S, OperatorTokens
from centre.bulletins.explain_web import ExplanationPages
from centre.bulletins.explanations import MAX_NAME, MAX_TEXT, ExplanationStore, clean_text
from centre.bulletins.links import ExplanationLinks
from centre.bulletins.model import DEFAULT_TZ, local_text, parse_day, parse_month
from centre.bulletins.source import (
    EventSource,
    FindingSource,
    build_daily,
    build_monthly,
    days_ending,
    patrol_history,
    record_explanation,
)
from centre.bulletins.survey_store import SurveySql
from centre.bulletins.survey_web import SurveyPages
from centre.bulletins.words import DEFAULT_LANGUAGE, language
from centre.errors import BadRequest, CentreError, json_object
from centre.faults import error_boundary
from wire import encode

PREFIX: Final = "/bulletins"
COOKIE: Final = "cb_session"
# Set by the console (centre/web/pages.py) on a request whose console session may read the
# district's bulletins: the console's named accounts open these pages without a token.
CONSOLE_READER: Final = web.RequestKey("bulletins.console_reader", str)
MAX_EXPLANATION_BODY: Final = 16 * 1024
MAX_LOGIN_BODY: Final = 4 * 1024
SECURITY_HEADERS: Final = {
    # No script, no external anything: the pages are static tables with inline CSS.
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
DAILY_TABLES: Final = ("compounds", "missed", "integrity")
MONTHLY_TABLES: Final = ("compounds", "devices", "faults", "integrity")


class OperatorRequired(CentreError):
    status = 401
    code = "operator_token_required"


def _respond(
    body: str, content_type: str, status: int = 200, extra: dict[str, str] | None = None
) -> web.Response:
    headers = dict(SECURITY_HEADERS) | (extra or {})
    return web.Response(
        text=body, status=status, content_type=content_type, charset="utf-8", headers=headers
    )


def _format(fmt: str | None) -> str:
    fmt = (fmt or "html").lower()
    if fmt not in ("html", "csv"):
        raise BadRequest("format must be html or csv")
    return fmt


async def daily_response(
    repo: EventSource,
    store: ExplanationStore,
    *,
    day: str,
    fmt: str = "html",
    table: str = "compounds",
    now: float,
    tz: str = DEFAULT_TZ,
    lang: str = DEFAULT_LANGUAGE,
) -> web.Response:
    """The daily bulletin as a page or a CSV download (no authentication here); the page
    carries the charts of the 30 days ending with ``day``."""
    try:
        day = parse_day(day)
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    fmt = _format(fmt)
    if table not in DAILY_TABLES:
        raise BadRequest(f"table must be one of {', '.join(DAILY_TABLES)}")
    bulletin = await build_daily(repo, store, day, now=now, tz=tz)
    if fmt == "html":
        history = await patrol_history(repo, days_ending(day), now=now, tz=tz)
        page = pages.daily_html(bulletin, lang=lang, history=history)
        return _respond(page, render.CONTENT_TYPE_HTML)
    text = {
        "compounds": render.daily_csv,
        "missed": render.missed_csv,
        "integrity": render.integrity_csv,
    }[table](bulletin)
    name = f"daily-{day}" + ("" if table == "compounds" else f"-{table}")
    return _respond(
        text,
        render.CONTENT_TYPE_CSV,
        extra={"Content-Disposition": f'attachment; filename="{name}.csv"'},
    )


async def monthly_response(
    repo: EventSource,
    store: ExplanationStore,
    *,
    month: str,
    fmt: str = "html",
    table: str = "compounds",
    now: float,
    tz: str = DEFAULT_TZ,
    lang: str = DEFAULT_LANGUAGE,
    findings: FindingSource | None = None,
) -> web.Response:
    """The monthly bulletin as a page or a CSV download (no authentication here); the page
    carries the charts of the month's days."""
    try:
        parse_month(month)
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    fmt = _format(fmt)
    if table not in MONTHLY_TABLES:
        raise BadRequest(f"table must be one of {', '.join(MONTHLY_TABLES)}")
    bulletin = await build_monthly(repo, store, month, now=now, tz=tz, findings=findings)
    if fmt == "html":
        history = await patrol_history(repo, pages.month_days(bulletin), now=now, tz=tz)
        page = pages.monthly_html(bulletin, lang=lang, history=history)
        return _respond(page, render.CONTENT_TYPE_HTML)
    text = {
        "compounds": render.monthly_csv,
        "devices": render.devices_csv,
        "faults": render.faults_csv,
        "integrity": render.monthly_integrity_csv,
    }[table](bulletin)
    name = f"monthly-{month}" + ("" if table == "compounds" else f"-{table}")
    return _respond(
        text,
        render.CONTENT_TYPE_CSV,
        extra={"Content-Disposition": f'attachment; filename="{name}.csv"'},
    )


def _lang(request: web.Request) -> str:
    return language(request.query, request.headers.get("Accept-Language"))


def yesterday(now: float, tz: str = DEFAULT_TZ) -> str:
    return (datetime.fromtimestamp(now, ZoneInfo(tz)).date() - timedelta(days=1)).isoformat()


def last_month(now: float, tz: str = DEFAULT_TZ) -> str:
    first = datetime.fromtimestamp(now, ZoneInfo(tz)).date().replace(day=1)
    prev: date = first - timedelta(days=1)
    return f"{prev.year:04d}-{prev.month:02d}"


class BulletinHandlers:
    """The bulletin routes with operator authentication (see the module doc)."""

    def __init__(
        self,
        repo: EventSource,
        store: ExplanationStore,
        tokens: OperatorTokens,
        *,
        tz: str = DEFAULT_TZ,
        wall: Callable[[], float] = time.time,
        secure_cookie: bool = True,
        links: ExplanationLinks | None = None,
        survey: SurveySql | None = None,
        findings: FindingSource | None = None,
    ) -> None:
        ZoneInfo(tz)  # an unknown zone fails here, at start-up
        self.repo = repo
        self.findings = findings  # the video patrol's verdicts, for the monthly bulletin
        self.store = store
        self.tokens = tokens
        self.tz = tz
        self.wall = wall
        self.secure_cookie = secure_cookie
        self.pages = (
            None if links is None else ExplanationPages(repo, store, links, tz=tz, wall=wall)
        )
        self.survey = (
            None
            if survey is None
            else SurveyPages(
                survey,
                repo,
                reader=self._reader,
                bearer=self._bearer,
                csrf_key=tokens.session_key,
                cookie=COOKIE,
                unauthorised=self._unauthorised,
                tz=tz,
                wall=wall,
            )
        )

    def routes(self) -> list[web.RouteDef]:
        return (
            (self.pages.routes() if self.pages else [])
            + (self.survey.routes() if self.survey else [])
            + self._own_routes()
        )

    def _own_routes(self) -> list[web.RouteDef]:
        return [
            web.get(PREFIX, self.index),
            web.get(f"{PREFIX}/daily", self.daily),
            web.get(f"{PREFIX}/monthly", self.monthly),
            web.post(f"{PREFIX}/explanations", self.add_explanation),
            web.get(f"{PREFIX}/login", self.login_form),
            web.post(f"{PREFIX}/login", self.login),
            web.post(f"{PREFIX}/logout", self.logout),
        ]

    # -- authentication ------------------------------------------------------------------

    def _bearer(self, request: web.Request) -> str | None:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        self.tokens.refresh()
        return self.tokens.operator_for(token.strip())

    def _reader(self, request: web.Request) -> str | None:
        """The operator behind a read: bearer header, session cookie, or the console's account."""
        console = request.get(CONSOLE_READER)
        if console:
            return console
        name = self._bearer(request)
        if name is None and COOKIE in request.cookies:
            self.tokens.refresh()
            name = self.tokens.session_operator(request.cookies[COOKIE], self.wall())
        return name

    def _unauthorised(self, request: web.Request) -> web.Response:
        if request.query.get("format", "html").lower() == "csv":
            raise OperatorRequired("an operator token is required (Authorization: Bearer ...)")
        page = pages.login_html(lang=_lang(request), message="sign_in")
        return _respond(
            page, render.CONTENT_TYPE_HTML, status=401, extra={"WWW-Authenticate": "Bearer"}
        )

    # -- pages ---------------------------------------------------------------------------

    async def index(self, request: web.Request) -> web.Response:
        who = self._reader(request)
        if who is None:
            return self._unauthorised(request)
        now = self.wall()
        day, month = yesterday(now, self.tz), last_month(now, self.tz)
        body = pages.index_html(
            lang=_lang(request),
            who=who,
            day=day,
            month=month,
            tz=self.tz,
            survey_month=datetime.fromtimestamp(now, ZoneInfo(self.tz)).strftime("%Y-%m")
            if self.survey
            else None,
        )
        return _respond(body, render.CONTENT_TYPE_HTML)

    async def daily(self, request: web.Request) -> web.Response:
        if self._reader(request) is None:
            return self._unauthorised(request)
        now = self.wall()
        q = request.query
        return await daily_response(
            self.repo,
            self.store,
            day=q.get("date") or yesterday(now, self.tz),
            fmt=q.get("format", "html"),
            table=q.get("table", "compounds"),
            now=now,
            tz=self.tz,
            lang=_lang(request),
        )

    async def monthly(self, request: web.Request) -> web.Response:
        if self._reader(request) is None:
            return self._unauthorised(request)
        now = self.wall()
        q = request.query
        return await monthly_response(
            self.repo,
            self.store,
            month=q.get("month") or last_month(now, self.tz),
            fmt=q.get("format", "html"),
            table=q.get("table", "compounds"),
            now=now,
            tz=self.tz,
            lang=_lang(request),
            findings=self.findings,
        )

    async def add_explanation(self, request: web.Request) -> web.Response:
        # Bearer only: a cookie would let any site's form post in the operator's name.
        who = self._bearer(request)
        if who is None:
            raise OperatorRequired("recording an explanation needs Authorization: Bearer <token>")
        if request.content_length is not None and request.content_length > MAX_EXPLANATION_BODY:
            raise BadRequest("request body is too large")
        raw = await request.content.read(MAX_EXPLANATION_BODY + 1)
        if len(raw) > MAX_EXPLANATION_BODY:
            raise BadRequest("request body is too large")
        req = json_object(
            raw, max_bytes=MAX_EXPLANATION_BODY, fields={"compound", "round", "text", "given_by"}
        )
        compound = clean_text(req.get("compound"), "compound", MAX_NAME, required=True)
        round_id = clean_text(req.get("round"), "round", MAX_NAME, required=True)
        text = clean_text(req.get("text"), "text", MAX_TEXT, required=True)
        given_by = clean_text(req.get("given_by"), "given_by", MAX_NAME, required=False)
        x = await record_explanation(
            self.repo,
            self.store,
            compound=compound,
            round_id=round_id,
            text=text,
            given_by=given_by,
            recorded_by=who,
            now=self.wall(),
            tz=self.tz,
        )
        return web.Response(
            body=encode(explanation_dict(x, self.tz)),
            status=201,
            content_type="application/json",
            headers={"Cache-Control": "no-store"},
        )

    # -- sessions ------------------------------------------------------------------------

    async def login_form(self, request: web.Request) -> web.Response:
        page = pages.login_html(lang=_lang(request))
        return _respond(page, render.CONTENT_TYPE_HTML)

    async def login(self, request: web.Request) -> web.Response:
        # Read at most a few KiB whatever the app's body limit (the centre's is for ingest).
        raw = await request.content.read(MAX_LOGIN_BODY + 1)
        if len(raw) > MAX_LOGIN_BODY:
            raise BadRequest("request body is too large")
        try:
            fields = parse_qs(raw.decode("ascii"), max_num_fields=4)
        except (UnicodeDecodeError, ValueError):
            raise BadRequest("expected a form with a token field") from None
        token = (fields.get("token") or [""])[0]
        self.tokens.refresh()
        name = self.tokens.operator_for(token)
        if name is None:
            page = pages.login_html(lang=_lang(request), message="bad_token")
            return _respond(page, render.CONTENT_TYPE_HTML, status=401)
        resp = web.HTTPSeeOther(PREFIX)
        resp.set_cookie(
            COOKIE,
            self.tokens.session(name, self.wall()),
            max_age=int(SESSION_TTL_S),
            path=PREFIX,
            secure=self.secure_cookie,
            httponly=True,
            samesite="Strict",
        )
        raise resp

    async def logout(self, request: web.Request) -> web.Response:
        resp = web.HTTPSeeOther(f"{PREFIX}/login")
        resp.del_cookie(COOKIE, path=PREFIX)
        raise resp


def make_app(handlers: BulletinHandlers) -> web.Application:
    """A standalone application serving only the bulletins (tests, a separate operator port)."""
    app = web.Application(middlewares=[error_boundary()], client_max_size=MAX_EXPLANATION_BODY)
    app.add_routes(handlers.routes())
    return app


def explanation_dict(x: Any, tz: str = DEFAULT_TZ) -> dict[str, Any]:
    return {
        "id": x.id,
        "compound": x.compound,
        "round": x.round_id,
        "text": x.text,
        "given_by": x.given_by,
        "recorded_by": x.recorded_by,
        "recorded_at": x.recorded_at,
        "recorded_at_local": local_text(x.recorded_at, tz),
    }


__all__ = [
    "COOKIE",
    "PREFIX",
    "BulletinHandlers",
    "OperatorRequired",
    "daily_response",
    "explanation_dict",
    "last_month",
    "make_app",
    "monthly_response",
    "yesterday",
]
