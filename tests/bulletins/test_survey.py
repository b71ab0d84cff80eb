"""The resident phone survey: contact-list import (row and column named, all or nothing), the
reproducible draw, the call sheet over HTTP with numbers revealed one at a time and every reveal
audited in an append-only table, outcomes and the satisfaction rates."""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import aiohttp
import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from centre.bulletins.auth import OPERATORS_FILE, OperatorTokens, add_operator
from centre.bulletins.pg_store import PostgresSurveyStore
from centre.bulletins.residents import ResidentImportError, parse_residents_csv, phone_digits
from centre.bulletins.survey import DEFAULT_PER_COMPOUND, SurveyRate
from centre.bulletins.survey_store import (
    NotInSample,
    SqliteSurveyStore,
    SurveyRefused,
    SurveySql,
    township_rates,
)
from centre.bulletins.web import COOKIE, BulletinHandlers, make_app
from tests.bulletins.conftest import Seeded, serve
from tests.bulletins.helpers import NOV_2
from tests.pg_cluster import BACKENDS

COMPOUNDS = {"Rose Garden", "Lotus Court", "Bamboo"}
NOW = NOV_2 + 3 * 86400.0
MONTH = "2026-11"


def contact_list(rose: int = 25, lotus: int = 5) -> bytes:
    lines = ["compound,name,phone"]
    lines += [f"Rose Garden,resident {i},138-0013-{i:04d}" for i in range(rose)]
    lines += [f"Lotus Court,resident {i},+86 139 0000 {i:04d}" for i in range(lotus)]
    return ("\r\n".join(lines) + "\r\n").encode()


# --------------------------------------------------------------------------- parser


def test_a_good_list_in_chinese_headers_and_gb18030() -> None:
    raw = "小区,姓名,手机,编号\r\n荷花苑,王五,13800138000,A1\r\n荷花苑,李四,(010) 6552-9988,\r\n"
    got = parse_residents_csv(raw.encode("gb18030"), compounds={"荷花苑"})
    assert (got[0].id, got[0].compound, got[0].phone) == ("A1", "荷花苑", "13800138000")
    assert got[1].phone == "01065529988" and got[1].id.startswith("r-")
    # The id made from compound and number is stable across imports.
    assert parse_residents_csv(raw.encode("gb18030"), compounds={"荷花苑"})[1].id == got[1].id


@pytest.mark.parametrize(
    ("body", "row", "column"),
    [
        ("compound,phone\nRose Garden,13800138000\nRose Garden,call me\n", 3, "phone"),
        ("compound,phone\nRose Garden,13800138000\nNowhere,13800138001\n", 3, "compound"),
        ("compound,phone\nRose Garden,13800138000\nRose Garden,138 0013 8000\n", 3, "phone"),
        ("compound,phone,id\nRose Garden,13800138000,x\nBamboo,13800138001,x\n", 3, "id"),
        ("compound,telephone\nRose Garden,13800138000\n", 1, None),
        ("compound,phone\nRose Garden\n", 2, None),
    ],
)
def test_errors_name_the_row_and_column(body: str, row: int, column: str | None) -> None:
    with pytest.raises(ResidentImportError) as info:
        parse_residents_csv(body.encode(), compounds=COMPOUNDS)
    assert (info.value.row, info.value.column) == (row, column), info.value.reason
    assert info.value.reason.startswith(f"row {row}")
    assert "call me" not in info.value.reason  # a bad number is personal data: never echoed


def test_phone_digits() -> None:
    assert phone_digits("+86 138-0013-8000") == "13800138000"
    assert phone_digits("\uff11" * 11) is None  # full-width digits are not ASCII
    assert phone_digits("123456") is None and phone_digits("1" * 16) is None


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_hostile_bytes_give_residents_or_the_one_error_type(raw: bytes) -> None:
    try:
        got = parse_residents_csv(raw, compounds=COMPOUNDS)
    except ResidentImportError as exc:
        assert exc.status == 400 and exc.reason
    else:
        assert got and all(r.compound in COMPOUNDS and r.phone.isdigit() for r in got)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=30), st.integers(min_value=0, max_value=4))
def test_one_hostile_cell_in_a_good_list(cell: str, where: int) -> None:
    rows = [["Rose Garden", f"1380013800{i}"] for i in range(5)]
    rows[where][1] = cell
    body = "compound,phone\r\n" + "\r\n".join(
        ",".join('"' + c.replace('"', '""') + '"' for c in r) for r in rows
    )
    try:
        got = parse_residents_csv(body.encode(), compounds=COMPOUNDS)
    except ResidentImportError as exc:
        # The first bad row is named: the hostile cell's row (header = 1), phone column, or a
        # duplicate of another row's number, or the file-level error for a cell breaking CSV.
        assert exc.row in (None, where + 2) or exc.column == "phone", exc.reason
    else:
        assert len(got) == 5 and phone_digits(cell) == got[where].phone


# --------------------------------------------------------------------------- store


@pytest.fixture(params=BACKENDS)
async def backend(
    tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[tuple[SurveySql, Callable[[], Any]]]:
    """The survey store on each backend, and a plain connection to its database."""
    opener: Callable[[], Any]
    if request.param == "postgres":
        dsn = request.getfixturevalue("pg_dsn")
        s: SurveySql = await PostgresSurveyStore.open(dsn)

        def opener() -> Any:
            return psycopg.connect(dsn, autocommit=True)
    else:
        path = tmp_path / "bulletins.db"
        s = await SqliteSurveyStore.open(path)

        def opener() -> Any:
            return sqlite3.connect(path)

    async with s:
        yield s, opener


@pytest.fixture
def survey(backend: tuple[SurveySql, Callable[[], Any]]) -> SurveySql:
    return backend[0]


@pytest.fixture
def rawdb(backend: tuple[SurveySql, Callable[[], Any]]) -> Callable[[], Any]:
    return backend[1]


async def test_a_broken_list_imports_nothing(
    survey: SurveySql, rawdb: Callable[[], Any]
) -> None:
    good = await survey.import_residents(
        contact_list(3, 0), compounds=COMPOUNDS, imported_by="duty-1", now=NOW
    )
    broken = contact_list(30, 2).replace(b"138-0013-0017", b"138-0013-XXXX")
    with pytest.raises(ResidentImportError) as info:
        await survey.import_residents(broken, compounds=COMPOUNDS, imported_by="duty-1", now=NOW)
    assert (info.value.row, info.value.column) == (19, "phone")  # header + 17 rows before it
    d = await survey.draw(MONTH, drawn_by="clerk", now=NOW)
    assert d.import_id == good.id and d.sampled == 3  # the earlier list, untouched
    with rawdb() as db:
        assert db.execute("SELECT COUNT(*) FROM resident_imports").fetchone() == (1,)
        assert db.execute("SELECT COUNT(*) FROM residents").fetchone() == (3,)


async def test_the_draw_is_per_compound_reproducible_and_once(survey: SurveySql) -> None:
    with pytest.raises(SurveyRefused):
        await survey.draw(MONTH, drawn_by="clerk", now=NOW)  # no list yet
    await survey.import_residents(
        contact_list(), compounds=COMPOUNDS, imported_by="duty-1", now=NOW
    )
    d = await survey.draw(MONTH, drawn_by="clerk", now=NOW, seed=1234)
    sheet = await survey.sheet(MONTH)
    per = {c: sum(r.compound == c for r in sheet) for c in ("Rose Garden", "Lotus Court")}
    assert per == {"Rose Garden": DEFAULT_PER_COMPOUND, "Lotus Court": 5}
    assert d.sampled == 25 and await survey.verify_draw(MONTH)
    # Every number on the sheet is masked.
    assert all(re.fullmatch(r"1[0-9]{2}\*+[0-9]{4}", r.masked) for r in sheet)
    with pytest.raises(SurveyRefused):
        await survey.draw(MONTH, drawn_by="clerk", now=NOW)
    # The same list and seed give the same sample in another month; another seed does not.
    await survey.draw("2026-12", drawn_by="clerk", now=NOW, seed=1234)
    await survey.draw("2027-01", drawn_by="clerk", now=NOW, seed=99)
    ids = {m: [r.resident_id for r in await survey.sheet(m)] for m in (MONTH, "2026-12", "2027-01")}
    assert ids[MONTH] == ids["2026-12"] != ids["2027-01"]
    # The seed of a draw without one comes from the OS, and is stored.
    await survey.import_residents(contact_list(), compounds=COMPOUNDS, imported_by="x", now=NOW)
    auto = await survey.draw("2027-02", drawn_by="clerk", now=NOW)
    assert (await survey.drawn("2027-02")) == auto and await survey.verify_draw("2027-02")


async def test_reveals_are_audited_and_append_only(
    survey: SurveySql, rawdb: Callable[[], Any]
) -> None:
    await survey.import_residents(contact_list(), compounds=COMPOUNDS, imported_by="d", now=NOW)
    await survey.draw(MONTH, drawn_by="clerk", now=NOW)
    first = (await survey.sheet(MONTH))[0]
    phone = await survey.reveal(MONTH, first.resident_id, by="clerk-1", now=NOW + 5)
    assert phone.isdigit() and phone[-4:] == first.masked[-4:]
    with pytest.raises(NotInSample):
        await survey.reveal(MONTH, "nobody", by="clerk-1", now=NOW)
    log = await survey.reveals(MONTH)
    assert [(r.resident_id, r.compound, r.revealed_by, r.revealed_at) for r in log] == [
        (first.resident_id, first.compound, "clerk-1", NOW + 5)
    ]
    assert (await survey.sheet(MONTH))[0].reveals == 1
    await survey.record(MONTH, first.resident_id, "satisfied", "", by="clerk-1", now=NOW + 9)
    with rawdb() as db:
        for sql in ("UPDATE survey_reveals SET revealed_by = 'x'", "DELETE FROM survey_reveals",
                    "UPDATE survey_outcomes SET outcome = 'unsatisfied'",
                    "DELETE FROM survey_outcomes"):  # fmt: skip
            with pytest.raises((sqlite3.DatabaseError, psycopg.Error), match="append-only"):
                db.execute(sql)


async def test_outcomes_give_the_rates(survey: SurveySql) -> None:
    await survey.import_residents(contact_list(6, 2), compounds=COMPOUNDS, imported_by="d", now=NOW)
    await survey.draw(MONTH, drawn_by="clerk", now=NOW)
    rose = [r.resident_id for r in await survey.sheet(MONTH) if r.compound == "Rose Garden"]
    for rid, outcome in zip(rose, ["satisfied", "satisfied", "satisfied", "unsatisfied",
                                   "not_reached"], strict=False):  # fmt: skip
        await survey.record(MONTH, rid, outcome, "", by="clerk", now=NOW)
    # A later recording replaces the earlier one for the rate (both are kept).
    await survey.record(MONTH, rose[3], "satisfied", "called back", by="clerk", now=NOW + 1)
    rates = await survey.rates(MONTH)
    assert rates["Rose Garden"] == SurveyRate(sampled=6, reached=4, satisfied=4)
    assert rates["Lotus Court"] == SurveyRate(2, 0, 0) and rates["Lotus Court"].satisfaction is None
    town = township_rates(rates, {"Rose Garden": "North", "Lotus Court": "North"})
    assert town == {"North": SurveyRate(8, 4, 4)}
    assert town["North"].satisfaction == Fraction(1)
    with pytest.raises(Exception, match="outcome must be"):
        await survey.record(MONTH, rose[0], "happy", "", by="clerk", now=NOW)


async def test_two_centre_processes_drawing_one_month_draw_it_once(pg_dsn: str) -> None:
    """Two stores on one PostgreSQL (two hosts): the month is drawn once, the other refused."""
    a = await PostgresSurveyStore.open(pg_dsn)
    b = await PostgresSurveyStore.open(pg_dsn)
    try:
        await a.import_residents(contact_list(), compounds=COMPOUNDS, imported_by="d", now=NOW)

        async def draw(store: SurveySql) -> object:
            try:
                return await store.draw(MONTH, drawn_by="clerk", now=NOW)
            except SurveyRefused as exc:
                return exc

        got = await asyncio.gather(draw(a), draw(b))
        assert sum(isinstance(g, SurveyRefused) for g in got) == 1, got
        assert await b.verify_draw(MONTH) and len(await a.sheet(MONTH)) == 25
    finally:
        await a.close()
        await b.close()


# --------------------------------------------------------------------------- over HTTP


@dataclass
class Site:
    url: str
    token: str
    survey: SurveySql

    def bearer(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@pytest.fixture
async def site(seeded: Seeded) -> AsyncIterator[Site]:
    path = seeded.data_dir / OPERATORS_FILE
    token = add_operator(path, "clerk-1")
    async with await SqliteSurveyStore.open(seeded.data_dir / "survey.db") as survey:
        handlers = BulletinHandlers(
            seeded.repo, seeded.store, OperatorTokens.load(path), wall=lambda: NOW,
            secure_cookie=False, survey=survey,
        )  # fmt: skip
        async with serve(make_app(handlers)) as url:
            yield Site(url, token, survey)


async def test_call_sheet_reveal_one_at_a_time_and_record(site: Site) -> None:
    async with aiohttp.ClientSession() as s:
        # The contact list: bearer only; a broken one names row and column, 400 JSON.
        async with s.post(f"{site.url}/bulletins/survey/residents", data=contact_list()) as r:
            assert r.status == 401
        bad = contact_list().replace(b"Lotus Court,resident 2", b"Nowhere,resident 2")
        async with s.post(
            f"{site.url}/bulletins/survey/residents", data=bad, headers=site.bearer()
        ) as r:
            body = await r.json()
            assert r.status == 400 and body["row"] == 29 and body["column"] == "compound"
        async with s.post(
            f"{site.url}/bulletins/survey/residents", data=contact_list(), headers=site.bearer()
        ) as r:
            assert r.status == 201 and (await r.json())["rows"] == 30
        # A clerk signs in on a phone (session cookie).
        async with s.post(
            f"{site.url}/bulletins/login", data={"token": site.token}, allow_redirects=False
        ) as r:
            assert r.status == 303
            cookie = {"Cookie": f"{COOKIE}={r.cookies[COOKIE].value}"}
        async with s.get(f"{site.url}/bulletins/survey?month={MONTH}", headers=cookie) as r:
            page = await r.text()
            assert r.status == 200 and "居民电话回访 2026-11" in page
        csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', page)
        assert csrf
        form = {"month": MONTH, "csrf": csrf.group(1)}
        # Without the CSRF token a cookie-borne form is refused.
        async with s.post(
            f"{site.url}/bulletins/survey/draw", data={"month": MONTH}, headers=cookie
        ) as r:
            assert r.status == 403
        async with s.post(
            f"{site.url}/bulletins/survey/draw", data=form, headers=cookie, allow_redirects=False
        ) as r:
            assert r.status == 303
        sheet = await site.survey.sheet(MONTH)
        assert len(sheet) == 25
        async with s.get(f"{site.url}/bulletins/survey?month={MONTH}", headers=cookie) as r:
            page = await r.text()
        # Numbers as shown (号码：...); ids and the CSRF token are hex and may hold digit runs.
        full = re.compile(r"号码：([0-9]+)<")
        assert not full.search(page)  # no number in full before a reveal
        assert len(re.findall(r"号码：1[0-9]{2}\*{4}[0-9]{4}<", page)) == 25
        who = next(r for r in sheet if r.compound == "Rose Garden")
        async with s.post(
            f"{site.url}/bulletins/survey/reveal",
            data=form | {"resident": who.resident_id},
            headers=cookie,
        ) as r:
            page = await r.text()
            assert r.status == 200
        shown = full.findall(page)
        assert len(shown) == 1 and shown[0][-4:] == who.masked[-4:]  # one number, that one
        assert [(x.resident_id, x.revealed_by) for x in await site.survey.reveals(MONTH)] == [
            (who.resident_id, "clerk-1")
        ]
        async with s.get(f"{site.url}/bulletins/survey?month={MONTH}", headers=cookie) as r:
            assert not full.search(await r.text())  # masked again on the next load
        async with s.post(
            f"{site.url}/bulletins/survey/outcome",
            data=form
            | {"resident": who.resident_id, "outcome": "satisfied", "remarks": "<b>好</b>"},
            headers=cookie,
            allow_redirects=False,
        ) as r:
            assert r.status == 303
        async with s.get(f"{site.url}/bulletins/survey?month={MONTH}", headers=cookie) as r:
            page = await r.text()
        assert "&lt;b&gt;好&lt;/b&gt;" in page and "<b>好" not in page
        assert re.search(r'<tr data-compound="Rose Garden">.*?100\.0%</td>', page)
        assert re.search(r'<tr data-township="North">.*?100\.0%</td>', page)
        # Malformed requests are 4xx, never 500.
        for path, data in (
            ("reveal", form | {"resident": "nobody"}),
            ("outcome", form | {"resident": who.resident_id, "outcome": "happy"}),
            ("reveal", form | {"month": "2026-13", "resident": who.resident_id}),
        ):
            async with s.post(
                f"{site.url}/bulletins/survey/{path}", data=data, headers=cookie
            ) as r:
                assert 400 <= r.status < 500, (path, r.status)
                assert json.loads(await r.text())["error"]
        async with s.get(f"{site.url}/bulletins/survey?month=junk", headers=cookie) as r:
            assert r.status == 400
        async with s.get(f"{site.url}/bulletins/survey") as r:
            assert r.status == 401
