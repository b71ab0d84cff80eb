"""The explanation page a compound's manager opens from a link (no account): one form, on a phone.

    pages = ExplanationPages(repo, store, ExplanationLinks.load_or_create(data_dir))
    app.add_routes(pages.routes())   # GET, POST /bulletins/explain?compound=&day=&expires=&sig=

``GET`` verifies the link (see :mod:`centre.bulletins.links`) and shows the compound's missed
rounds of that day with a form; ``POST`` (a urlencoded ``text`` and optional ``given_by``)
records one explanation per missed round and the link's use in one transaction. Every refusal
is a page in the reader's language with a 4xx status (400 malformed, 403 altered, 409 used or
nothing to explain, 410 expired), logged once at warning level; never a 500.

Pages come from ``templates/explain_*.html`` (Jinja2, autoescaped); words from
``locale/<ll_CC>/LC_MESSAGES/bulletins.po``. Simplified Chinese by default; ``?lang=en`` or the
browser's ``Accept-Language`` chooses English.
"""

from __future__ import annotations

import logging
import time
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import parse_qs, urlencode
from zoneinfo import ZoneInfo

from aiohttp import web

from centre.bulletins.explanations import MAX_NAME, MAX_TEXT, ExplanationStore
from centre.bulletins.links import (
    PATH,
    ExplanationLinks,
    LinkClaim,
    LinkRefused,
    LinkUsed,
    NothingToExplain,
)
from centre.bulletins.model import DEFAULT_TZ, MissedRound, local_text
from centre.bulletins.source import EventSource, build_daily
from centre.bulletins.words import (
    LANGUAGE_NAMES,
    N_,
    SUPPORTED,
    environment,
    language,
    translations,
)
from centre.errors import CentreError

MAX_FORM_BODY: Final = 32 * 1024  # 2000 characters of Chinese, urlencoded, with room
HEADERS: Final = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    # The link is the capability: never hand it to another site in a Referer.
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
log = logging.getLogger("centre.bulletins.explain")


# Heading and sentence per refusal code (translated when shown).
REFUSALS: Final = {
    "link_malformed": (
        N_("This link is incomplete"),
        N_("The link is missing a part. Open it again from the bulletin message, whole."),
    ),
    "link_altered": (
        N_("This link is not valid"),
        N_("The link was changed or was not issued by the district centre."),
    ),
    "link_expired": (
        N_("This link has expired"),
        N_("The time allowed for this explanation is over."),
    ),
    "link_used": (
        N_("This link has been used"),
        N_("An explanation for this compound and day was already sent through this link."),
    ),
    "nothing_to_explain": (
        N_("Nothing to explain"),
        N_("The bulletin lists no missed round for this compound on this day."),
    ),
    "form_too_large": (
        N_("The explanation is too long"),
        N_("The form sent was too large. Please shorten the explanation."),
    ),
}


@dataclass(frozen=True, slots=True)
class RoundView:
    route: str
    window: str
    reasons: str


class FormProblem(CentreError):
    status = 400
    code = "form_refused"


class FormTooLarge(CentreError):
    status = 413
    code = "form_too_large"


def _form_text(value: str, *, limit: int, required: bool) -> str:
    """Strip; a translated problem (English source) for an empty, long or control-laden value."""
    text = value.strip()
    if required and not text:
        raise FormProblem(N_("Please write the explanation."))
    if len(text) > limit:
        raise FormProblem(N_("The explanation is too long."))
    for ch in text:
        if ch not in "\n\t\r" and unicodedata.category(ch) in ("Cc", "Cs"):
            raise FormProblem(N_("The text holds characters that cannot be recorded."))
    return text.replace("\r\n", "\n").replace("\r", "\n")


class ExplanationPages:
    """GET and POST of the explanation page (see the module doc)."""

    def __init__(
        self,
        repo: EventSource,
        store: ExplanationStore,
        links: ExplanationLinks,
        *,
        tz: str = DEFAULT_TZ,
        wall: Callable[[], float] = time.time,
    ) -> None:
        ZoneInfo(tz)
        self.repo = repo
        self.store = store
        self.links = links
        self.tz = tz
        self.wall = wall

    def routes(self) -> list[web.RouteDef]:
        return [web.get(PATH, self.show), web.post(PATH, self.submit)]

    # -- helpers -------------------------------------------------------------------------

    def _lang(self, request: web.Request) -> str:
        return language(request.query, request.headers.get("Accept-Language"))

    def _page(
        self, request: web.Request, lang: str, template: str, status: int, **context: Any
    ) -> web.Response:
        other = next(code for code in SUPPORTED if code != lang)
        query = {k: v for k, v in request.query.items() if k != "lang"} | {"lang": other}
        body = (
            environment(lang)
            .get_template(template)
            .render(
                lang=lang,
                other_language=other,
                other_language_name=LANGUAGE_NAMES[other],
                other_language_url=f"{PATH}?{urlencode(query)}",
                **context,
            )
        )
        return web.Response(
            text=body, status=status, content_type="text/html", charset="utf-8", headers=HEADERS
        )

    def _refused(self, request: web.Request, lang: str, exc: CentreError) -> web.Response:
        log.warning("explanation link refused: %s (%s)", exc.code, exc.reason)
        t = translations(lang)
        heading, message = REFUSALS.get(exc.code, (N_("This link cannot be used"), exc.reason))
        return self._page(
            request,
            lang,
            "explain_refused.html",
            exc.status if 400 <= exc.status < 500 else 400,
            heading=t.gettext(heading),
            message=t.gettext(message),
            code=exc.code,
        )

    async def _claim_and_rounds(self, request: web.Request) -> tuple[LinkClaim, list[MissedRound]]:
        claim = self.links.verify(request.query, now=self.wall())
        if await self.store.link_used_at(claim.compound, claim.day) is not None:
            raise LinkUsed("the link was used")
        bulletin = await build_daily(self.repo, self.store, claim.day, now=self.wall(), tz=self.tz)
        rounds = [m for m in bulletin.missed if m.compound == claim.compound]
        if not rounds:
            raise NothingToExplain("no missed round for this compound and day")
        return claim, rounds

    def _form(
        self,
        request: web.Request,
        lang: str,
        claim: LinkClaim,
        rounds: list[MissedRound],
        *,
        status: int = 200,
        error: str = "",
        text: str = "",
        given_by: str = "",
    ) -> web.Response:
        views = [
            RoundView(
                route=m.route or m.round_id,
                window=f"{m.local_start} - {m.local_end}",
                reasons="; ".join(m.reasons),
            )
            for m in rounds
        ]
        return self._page(
            request,
            lang,
            "explain_form.html",
            status,
            compound=claim.compound,
            day=claim.day,
            expires=local_text(claim.expires, self.tz),
            rounds=views,
            error=error,
            text=text,
            given_by=given_by,
            max_text=MAX_TEXT,
            max_name=MAX_NAME,
        )

    # -- routes --------------------------------------------------------------------------

    async def show(self, request: web.Request) -> web.Response:
        lang = self._lang(request)
        try:
            claim, rounds = await self._claim_and_rounds(request)
        except CentreError as exc:
            return self._refused(request, lang, exc)
        return self._form(request, lang, claim, rounds)

    async def submit(self, request: web.Request) -> web.Response:
        lang = self._lang(request)
        try:
            claim, rounds = await self._claim_and_rounds(request)
            raw = await request.content.read(MAX_FORM_BODY + 1)
            if len(raw) > MAX_FORM_BODY:
                raise FormTooLarge("form body too large")
        except CentreError as exc:
            return self._refused(request, lang, exc)
        t = translations(lang)
        text = given_by = ""
        try:
            fields = parse_qs(raw.decode("ascii"), max_num_fields=8, errors="strict")
            text = (fields.get("text") or [""])[0]
            given_by = (fields.get("given_by") or [""])[0]
            text = _form_text(text, limit=MAX_TEXT, required=True)
            given_by = _form_text(given_by, limit=MAX_NAME, required=False)
        except (UnicodeDecodeError, ValueError):
            log.warning("explanation form refused: not a UTF-8 form")
            return self._form(
                request, lang, claim, rounds, status=400,
                error=t.gettext(N_("The form could not be read. Please try again.")),
            )  # fmt: skip
        except FormProblem as exc:
            log.warning("explanation form refused: %s", exc.reason)
            return self._form(
                request, lang, claim, rounds, status=400, error=t.gettext(exc.reason),
                text=text[:MAX_TEXT], given_by=given_by[:MAX_NAME],
            )  # fmt: skip
        now = self.wall()
        try:
            await self.store.add_via_link(
                claim.compound,
                claim.day,
                [m.round_id for m in rounds],
                text,
                given_by=given_by,
                now=now,
            )
        except LinkRefused as exc:
            return self._refused(request, lang, exc)
        log.info("explanation recorded through the link of %r for %s", claim.compound, claim.day)
        return self._page(
            request,
            lang,
            "explain_done.html",
            200,
            compound=claim.compound,
            day=claim.day,
            recorded=local_text(now, self.tz),
            text=text,
        )


__all__ = ["ExplanationPages", "environment"]
