"""The survey's pages for clerks: the call sheet, one number revealed at a time, outcomes.

Routes (operators of :mod:`centre.bulletins.auth`: bearer token or the bulletins' session cookie;
the clerk's name is the operator's name):

- ``GET  /bulletins/survey?month=M``               the call sheet (default: this month), rates
- ``POST /bulletins/survey/draw``                  form ``month``: draw the month's sample
- ``POST /bulletins/survey/reveal``                form ``month, resident``: the page again with
  that one number shown; the reveal is recorded first (who, when, which)
- ``POST /bulletins/survey/outcome``               form ``month, resident, outcome, remarks``
- ``POST /bulletins/survey/residents``             body: the contact list CSV; bearer only; JSON

Every form carries a CSRF token derived from the session cookie (and the cookie is
SameSite=Strict); a bearer request needs none. Refusals are 4xx pages or JSON, never a 500.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, Final
from urllib.parse import parse_qs, urlencode
from zoneinfo import ZoneInfo

from aiohttp import web

from centre.bulletins.model import DEFAULT_TZ, local_text, units_from_registry
from centre.bulletins.residents import MAX_CSV_BYTES
from centre.bulletins.source import EventSource
from centre.bulletins.survey import NOT_REACHED, REACHED_SATISFIED, REACHED_UNSATISFIED
from centre.bulletins.survey_store import MAX_REMARKS, SurveySql, township_rates
from centre.bulletins.words import (
    LANGUAGE_NAMES,
    N_,
    SUPPORTED,
    environment,
    language,
    translations,
)
from centre.errors import BadRequest, CentreError
from wire import encode

PATH: Final = "/bulletins/survey"
MAX_FORM: Final = 8 * 1024
OUTCOME_NAMES: Final = {
    REACHED_SATISFIED: N_("reached, satisfied"),
    REACHED_UNSATISFIED: N_("reached, not satisfied"),
    NOT_REACHED: N_("not reached"),
}
HEADERS: Final = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
log = logging.getLogger("centre.bulletins.survey")

Who = Callable[[web.Request], str | None]


class CsrfRefused(CentreError):
    status = 403
    code = "csrf_refused"


class BearerRequired(CentreError):
    status = 401
    code = "operator_token_required"


class SurveyPages:
    """The survey routes; ``reader`` names the operator behind a request (bearer or cookie),
    ``bearer`` only from the Authorization header; ``csrf`` derives a form token from a cookie."""

    def __init__(
        self,
        store: SurveySql,
        repo: EventSource,
        *,
        reader: Who,
        bearer: Who,
        csrf_key: bytes,
        cookie: str,
        unauthorised: Callable[[web.Request], web.Response],
        tz: str = DEFAULT_TZ,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.repo = repo
        self.reader = reader
        self.bearer = bearer
        self.csrf_key = csrf_key
        self.cookie = cookie
        self.unauthorised = unauthorised
        self.tz = tz
        self.wall = wall

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get(PATH, self.show),
            web.post(f"{PATH}/draw", self._form_action(self._draw)),
            web.post(f"{PATH}/reveal", self._form_action(self._reveal)),
            web.post(f"{PATH}/outcome", self._form_action(self._outcome)),
            web.post(f"{PATH}/residents", self.import_residents),
        ]

    # -- helpers ---------------------------------------------------------------------------

    def csrf_token(self, request: web.Request) -> str:
        value = request.cookies.get(self.cookie, "")
        raw = value.encode("utf-8", "surrogatepass")  # a hostile cookie may hold anything
        return hmac.new(self.csrf_key, b"csrf:" + raw, hashlib.sha256).hexdigest()

    def _this_month(self) -> str:
        return datetime.fromtimestamp(self.wall(), ZoneInfo(self.tz)).strftime("%Y-%m")

    async def _page(
        self,
        request: web.Request,
        month: str,
        *,
        status: int = 200,
        revealed: tuple[str, str] | None = None,
        message: str = "",
    ) -> web.Response:
        lang = language(request.query, request.headers.get("Accept-Language"))
        t = translations(lang)
        unknown = t.gettext(N_("unknown"))
        draw = await self.store.drawn(month)
        rows = await self.store.sheet(month)
        rates = await self.store.rates(month)
        units = units_from_registry(await self.repo.gateways())
        township_of = {u.compound: u.township for u in units}

        def pct(r: Any) -> str:
            s = r.satisfaction
            return unknown if s is None else f"{float(s) * 100:.1f}%"

        other = next(code for code in SUPPORTED if code != lang)
        body = (
            environment(lang)
            .get_template("survey.html")
            .render(
                lang=lang,
                month=month,
                draw=draw,
                drawn_at=local_text(draw.drawn_at, self.tz) if draw else "",
                rows=[
                    {
                        "r": r,
                        "outcome": t.gettext(OUTCOME_NAMES[r.outcome]) if r.outcome else "",
                        "when": local_text(r.recorded_at, self.tz) if r.recorded_at else "",
                        "phone": revealed[1] if revealed and revealed[0] == r.resident_id else "",
                    }
                    for r in rows
                ],
                outcomes=[(k, t.gettext(v)) for k, v in OUTCOME_NAMES.items()],
                compounds=[
                    {"name": c, "township": township_of.get(c, ""), "rate": r, "pct": pct(r)}
                    for c, r in rates.items()
                ],
                townships=[
                    {"name": k, "rate": r, "pct": pct(r)}
                    for k, r in township_rates(rates, township_of).items()
                ],
                csrf=self.csrf_token(request),
                message=message,
                max_remarks=MAX_REMARKS,
                action=PATH,
                other_language=other,
                other_language_name=LANGUAGE_NAMES[other],
                other_language_url=f"{PATH}?" + urlencode({"month": month, "lang": other}),
                bulletins_url="/bulletins?" + urlencode({"lang": lang}),
            )
        )
        return web.Response(
            text=body, status=status, content_type="text/html", charset="utf-8", headers=HEADERS
        )

    def _form_action(
        self, handler: Callable[[web.Request, str, dict[str, str]], Awaitable[web.Response]]
    ) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def run(request: web.Request) -> web.Response:
            who = self.reader(request)
            if who is None:  # a page GET gets the sign-in page; a form post a JSON 401
                raise BearerRequired("sign in first: an operator token or session is required")
            raw = await request.content.read(MAX_FORM + 1)
            if len(raw) > MAX_FORM:
                raise BadRequest("the form is too large")
            try:
                parsed = parse_qs(raw.decode("utf-8"), max_num_fields=8, errors="strict")
            except (UnicodeDecodeError, ValueError):
                raise BadRequest("expected a urlencoded UTF-8 form") from None
            form = {k: v[0] for k, v in parsed.items()}
            if self.bearer(request) is None and not hmac.compare_digest(
                form.get("csrf", ""), self.csrf_token(request)
            ):
                log.warning("survey form refused: CSRF token missing or wrong")
                raise CsrfRefused("the form's CSRF token is missing or wrong; reload the page")
            month = form.get("month", "")
            return await handler(request, who, form | {"month": month})

        return run

    # -- routes ----------------------------------------------------------------------------

    async def show(self, request: web.Request) -> web.Response:
        if self.reader(request) is None:
            return self.unauthorised(request)
        month = request.query.get("month") or self._this_month()
        await self.store.drawn(month)  # a malformed month is a 400 here
        return await self._page(request, month)

    async def _draw(self, request: web.Request, who: str, form: dict[str, str]) -> web.Response:
        d = await self.store.draw(form["month"], drawn_by=who, now=self.wall())
        log.info("survey sample of %s drawn by %s: %d residents", d.month, who, d.sampled)
        raise web.HTTPSeeOther(f"{PATH}?" + urlencode({"month": d.month}))

    async def _reveal(self, request: web.Request, who: str, form: dict[str, str]) -> web.Response:
        rid = form.get("resident", "")
        phone = await self.store.reveal(form["month"], rid, by=who, now=self.wall())
        log.info("survey number revealed to %s (month %s)", who, form["month"])
        return await self._page(request, form["month"], revealed=(rid, phone))

    async def _outcome(self, request: web.Request, who: str, form: dict[str, str]) -> web.Response:
        await self.store.record(
            form["month"],
            form.get("resident", ""),
            form.get("outcome", ""),
            form.get("remarks", ""),
            by=who,
            now=self.wall(),
        )
        raise web.HTTPSeeOther(f"{PATH}?" + urlencode({"month": form["month"]}))

    async def import_residents(self, request: web.Request) -> web.Response:
        who = self.bearer(request)
        if who is None:
            raise BearerRequired("importing a contact list needs Authorization: Bearer <token>")
        raw = await request.content.read(MAX_CSV_BYTES + 1)
        units = units_from_registry(await self.repo.gateways())
        imp = await self.store.import_residents(
            raw, compounds={u.compound for u in units}, imported_by=who, now=self.wall()
        )
        log.info("resident contact list imported by %s: %d rows", who, imp.rows)
        return web.Response(
            body=encode({"import": imp.id, "rows": imp.rows, "sha256": imp.sha256}),
            status=201,
            content_type="application/json",
            headers={"Cache-Control": "no-store"},
        )


__all__ = ["PATH", "SurveyPages"]
