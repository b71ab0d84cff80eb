"""The bulletin routes over real HTTP on 127.0.0.1: operator auth (bearer, session cookie),
pages and CSV downloads, recording explanations."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import pytest

from centre.bulletins.auth import OPERATORS_FILE, OperatorTokens, add_operator
from centre.bulletins.web import COOKIE, BulletinHandlers, make_app
from tests.bulletins.conftest import HOSTILE_COMPOUND, Seeded, serve
from tests.bulletins.helpers import NOV_2

NOW = NOV_2 + 3 * 86400.0


@dataclass
class Centre:
    url: str
    token: str
    clock: list[float]
    seeded: Seeded

    def bearer(self, token: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token if token is None else token}"}


@pytest.fixture
async def centre(seeded: Seeded) -> AsyncIterator[Centre]:
    path = seeded.data_dir / OPERATORS_FILE
    token = add_operator(path, "duty-1")
    clock = [NOW]
    handlers = BulletinHandlers(
        seeded.repo, seeded.store, OperatorTokens.load(path), wall=lambda: clock[0]
    )
    async with serve(make_app(handlers)) as url:
        yield Centre(url, token, clock, seeded)


async def get(url: str, **kw: object) -> tuple[int, dict[str, str], str]:
    async with aiohttp.ClientSession() as s, s.get(url, allow_redirects=False, **kw) as r:  # type: ignore[arg-type]
        return r.status, dict(r.headers), await r.text()


async def test_pages_need_an_operator(centre: Centre) -> None:
    status, headers, body = await get(f"{centre.url}/bulletins/daily?date=2026-11-02")
    assert status == 401 and headers["WWW-Authenticate"] == "Bearer"
    assert '<form method="post" action="/bulletins/login">' in body
    assert "Rose Garden" not in body
    status, _, body = await get(f"{centre.url}/bulletins/daily?date=2026-11-02&format=csv")
    assert status == 401 and json.loads(body)["error"] == "operator_token_required"
    for bad in ("nope", "cop-" + "A" * 32, centre.token + "x", ""):
        status, _, _ = await get(f"{centre.url}/bulletins/monthly", headers=centre.bearer(bad))
        assert status == 401, bad
    status, _, _ = await get(
        f"{centre.url}/bulletins/daily", headers={"Authorization": f"Basic {centre.token}"}
    )
    assert status == 401


async def test_daily_page_and_csv(centre: Centre) -> None:
    status, headers, body = await get(
        f"{centre.url}/bulletins/daily?date=2026-11-02", headers=centre.bearer()
    )
    assert status == 200, body
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    assert "default-src 'none'" in headers["Content-Security-Policy"]
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Cache-Control"] == "no-store"
    assert '<tr data-compound="Rose Garden">' in body
    assert "<script>" not in body and "&lt;script&gt;" in body
    status, headers, text = await get(
        f"{centre.url}/bulletins/daily?date=2026-11-02&format=csv", headers=centre.bearer()
    )
    assert status == 200 and headers["Content-Type"] == "text/csv; charset=utf-8"
    assert headers["Content-Disposition"] == 'attachment; filename="daily-2026-11-02.csv"'
    rows = list(csv.reader(io.StringIO(text, newline="")))
    by = {r[2]: r for r in rows[1:]}
    assert by["Rose Garden"][3:12] == ["4", "1", "1", "1", "1", "0", "0", "8", "12"]
    assert by["Lotus Court"][3:12] == ["3", "1", "0", "0", "0", "1", "1", "2", "2"]
    evil = next(r for r in rows[1:] if "pwned" in r[2])
    assert evil[2] == HOSTILE_COMPOUND  # starts with '<': not a formula lead
    assert evil[7] == "1"
    status, _, text = await get(
        f"{centre.url}/bulletins/daily?date=2026-11-02&format=csv&table=missed",
        headers=centre.bearer(),
    )
    missed = list(csv.reader(io.StringIO(text, newline="")))
    assert sorted(r[4] for r in missed[1:]) == ["n@2026-11-03T00:00", "night@2026-11-03T04:00"]


async def test_bad_parameters(centre: Centre) -> None:
    for query in (
        "daily?date=2026-13-01",
        "daily?date=yesterday",
        "daily?date=2026-11-02&format=pdf",
        "daily?date=2026-11-02&table=secrets",
        "monthly?month=2026-1",
        "monthly?month=2026-10&format=csv&table=x",
    ):
        status, _, body = await get(f"{centre.url}/bulletins/{query}", headers=centre.bearer())
        assert status == 400, (query, body)
        assert json.loads(body)["error"] == "bad_request"


async def test_monthly_defaults_to_last_month(centre: Centre) -> None:
    status, _, body = await get(f"{centre.url}/bulletins/monthly", headers=centre.bearer())
    assert status == 200
    assert "月通报 2026-10" in body  # now is in November; Chinese by default
    assert "connection refused" in body  # the camera's open fault (the gateway's own words)
    status, _, body = await get(f"{centre.url}/bulletins/monthly?lang=en", headers=centre.bearer())
    assert status == 200 and "Monthly bulletin 2026-10" in body and "月通报" not in body
    status, _, body = await get(
        f"{centre.url}/bulletins/monthly", headers=centre.bearer() | {"Accept-Language": "en"}
    )
    assert status == 200 and "Monthly bulletin 2026-10" in body
    for table, first in (("devices", "month"), ("faults", "month"), ("compounds", "month")):
        status, _, text = await get(
            f"{centre.url}/bulletins/monthly?month=2026-10&format=csv&table={table}",
            headers=centre.bearer(),
        )
        assert status == 200 and text.startswith(first + ",")
    status, _, text = await get(
        f"{centre.url}/bulletins/monthly?month=2026-10&format=csv&table=faults",
        headers=centre.bearer(),
    )
    faults = list(csv.reader(io.StringIO(text, newline="")))
    assert [(r[2], r[4], r[5], r[6]) for r in faults[1:] if r[2] == "Rose Garden"] == [
        ("Rose Garden", "camera", "cam-1", "down")
    ]


async def test_session_cookie_for_phone_browsers(centre: Centre) -> None:
    async with aiohttp.ClientSession() as s:
        async with s.post(
            f"{centre.url}/bulletins/login", data={"token": "wrong"}, allow_redirects=False
        ) as r:
            assert r.status == 401
            assert COOKIE not in r.cookies
        async with s.post(
            f"{centre.url}/bulletins/login", data={"token": centre.token}, allow_redirects=False
        ) as r:
            assert r.status == 303 and r.headers["Location"] == "/bulletins"
            raw = r.headers["Set-Cookie"]
            for attr in ("HttpOnly", "Secure", "SameSite=Strict", "Path=/bulletins"):
                assert attr in raw, raw
            value = r.cookies[COOKIE].value
    cookie = {"Cookie": f"{COOKIE}={value}"}
    status, _, body = await get(f"{centre.url}/bulletins", headers=cookie)
    assert status == 200 and "当前登录：duty-1" in body
    status, _, _ = await get(f"{centre.url}/bulletins/daily?date=2026-11-02", headers=cookie)
    assert status == 200
    tampered = value.replace(value[3], "A" if value[3] != "A" else "B", 1)
    status, _, _ = await get(
        f"{centre.url}/bulletins/daily", headers={"Cookie": f"{COOKIE}={tampered}"}
    )
    assert status == 401
    # A cookie cannot write: recording an explanation needs the bearer header.
    async with (
        aiohttp.ClientSession() as s,
        s.post(
            f"{centre.url}/bulletins/explanations",
            json={"compound": "Rose Garden", "round": "night@2026-11-03T04:00", "text": "x"},
            headers=cookie,
        ) as r,
    ):
        assert r.status == 401
    centre.clock[0] += 13 * 3600  # sessions last 12 h
    status, _, _ = await get(f"{centre.url}/bulletins/daily", headers=cookie)
    assert status == 401


async def test_removed_operator_is_locked_out(centre: Centre) -> None:
    cookie_value = None
    async with (
        aiohttp.ClientSession() as s,
        s.post(
            f"{centre.url}/bulletins/login", data={"token": centre.token}, allow_redirects=False
        ) as r,
    ):
        cookie_value = r.cookies[COOKIE].value
    path = centre.seeded.data_dir / OPERATORS_FILE
    path.write_text("")
    status, _, _ = await get(f"{centre.url}/bulletins/daily", headers=centre.bearer())
    assert status == 401
    status, _, _ = await get(
        f"{centre.url}/bulletins/daily", headers={"Cookie": f"{COOKIE}={cookie_value}"}
    )
    assert status == 401


async def post_explanation(
    centre: Centre, body: object, token: str | None = None
) -> tuple[int, dict]:  # type: ignore[type-arg]
    async with (
        aiohttp.ClientSession() as s,
        s.post(
            f"{centre.url}/bulletins/explanations",
            data=json.dumps(body) if not isinstance(body, bytes) else body,
            headers=centre.bearer(token) | {"Content-Type": "application/json"},
        ) as r,
    ):
        return r.status, await r.json(content_type=None)


async def test_record_an_explanation_then_read_it(centre: Centre) -> None:
    text = "Guard g2 ill <b>at</b> 03:30 & no relief"
    status, body = await post_explanation(
        centre,
        {"compound": "Rose Garden", "round": "night@2026-11-03T04:00", "text": text,
         "given_by": "chief Wang"},
    )  # fmt: skip
    assert status == 201, body
    assert (body["recorded_by"], body["given_by"], body["text"]) == ("duty-1", "chief Wang", text)
    assert body["recorded_at"] == NOW
    status, _, page = await get(
        f"{centre.url}/bulletins/daily?date=2026-11-02", headers=centre.bearer()
    )
    assert "Guard g2 ill &lt;b&gt;at&lt;/b&gt; 03:30 &amp; no relief" in page
    assert "duty-1 (由 chief Wang 提供)" in page
    status, _, text_csv = await get(
        f"{centre.url}/bulletins/daily?date=2026-11-02&format=csv", headers=centre.bearer()
    )
    rose = next(r for r in csv.reader(io.StringIO(text_csv, newline="")) if r[2] == "Rose Garden")
    assert (rose[13], rose[14]) == ("1", "explained")


async def test_explanation_requests_refused(centre: Centre) -> None:
    good = {"compound": "Rose Garden", "round": "night@2026-11-03T04:00", "text": "why"}
    cases = [
        (b"{not json", 400, "bad_request"),
        (b'{"compound": "a", "compound": "b"}', 400, "bad_request"),  # duplicate keys
        ([good], 400, "bad_request"),
        (good | {"by": "someone"}, 400, "bad_request"),
        (good | {"text": ""}, 400, "bad_request"),
        (good | {"text": 5}, 400, "bad_request"),
        (good | {"round": "night@2026-11-03T02:00"}, 409, "round_not_missed"),
        (good | {"compound": "Lotus Court"}, 404, "round_not_found"),
        (good | {"text": "x" * 20_000}, 400, "bad_request"),
    ]
    for body, status, code in cases:
        got, answer = await post_explanation(centre, body)
        assert (got, answer.get("error")) == (status, code), body
    got, answer = await post_explanation(centre, good, token="cop-nope")
    assert got == 401
    assert await centre.seeded.store.all() == []


async def test_login_body_is_bounded(centre: Centre) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield b"token=" + b"A" * 1000  # streamed: no Content-Length to refuse early

    async with aiohttp.ClientSession() as s:
        async with s.post(f"{centre.url}/bulletins/login", data=chunks()) as r:
            assert r.status == 400
        async with s.post(f"{centre.url}/bulletins/login", data={"other": "x"}) as r:
            assert r.status == 401
        async with s.post(
            f"{centre.url}/bulletins/login", data=b"token=\xff\xfe",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        ) as r:  # fmt: skip
            assert r.status == 400
