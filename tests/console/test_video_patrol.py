"""Video patrol rounds (issue 17): the order, the store, the findings per month, and a whole
session over HTTP against a real centre and five simulated compounds.

The compounds are real gateway code (tests/console/district.py with ``cameras=True``): a
simulated duty-room camera per compound, the gateway's own snapshot service answering look-now
orders, and the real media uplink bringing each picture to the centre; the console shows what
the centre's media store really holds (through the audited image route).
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from centre.web.permissions import Role
from centre.web.pg_store import CONSOLE_PG_SCHEMA_VERSION, PostgresVideoPatrolStore
from centre.web.video_patrol import (
    MIGRATIONS,
    NOT_ON_POST,
    ON_POST,
    Place,
    SqliteVideoPatrolStore,
    Verdict,
    VideoPatrolSql,
    monthly_findings,
    patrol_order,
    places_of,
)
from tests.console.district import District, running_district, wait_until
from tests.console.test_http import Browser
from tests.pg_cluster import BACKENDS

pytestmark = pytest.mark.timeout(600)

FIVE = [
    ("gw-rose-01", "North", "Rose Garden"),
    ("gw-lotus-01", "North", "Lotus Court"),
    ("gw-pine-01", "South", "Pine Hill"),
    ("gw-bamboo-01", "South", "Bamboo Yard"),
    ("gw-rose-east", "East", "Rose Garden"),  # the same name in another township
]
PLACES = [Place(t, c, g) for g, t, c in FIVE]


# -- order, store, month -------------------------------------------------------------------


def test_every_compound_once_in_an_order_from_the_system_random_source() -> None:
    places = [Place("T", f"C{i:02d}", f"gw-{i}") for i in range(20)]
    orders = {tuple(p.compound for p in patrol_order(places, None)) for _ in range(5)}
    assert all(sorted(o) == [p.compound for p in places] for o in orders)
    assert len(orders) > 1  # 20! orders: five draws that all agree would be a broken source
    sample = patrol_order(places, 5)
    assert len(sample) == 5 and len(set(sample)) == 5 and set(sample) <= set(places)
    assert len(patrol_order(places, 50)) == 20
    # A seeded generator gives the same order twice: the default must not be one.
    seeded = [patrol_order(places, None, random.Random(7)) for _ in range(2)]
    assert seeded[0] == seeded[1]


def test_places_are_one_per_compound_of_each_township_and_skip_revoked_gateways() -> None:
    class G:
        def __init__(self, gw: str, t: str, c: str, revoked: float | None = None) -> None:
            self.gateway_id, self.township, self.compound, self.revoked_at = gw, t, c, revoked

    got = places_of([G("gw-b", "N", "Rose"), G("gw-a", "N", "Rose"), G("gw-c", "E", "Rose"),
                     G("gw-d", "S", "Gone", revoked=1.0)])  # fmt: skip
    assert got == [Place("E", "Rose", "gw-c"), Place("N", "Rose", "gw-a")]


@pytest.mark.parametrize("backend", BACKENDS)
async def test_store_keeps_the_order_one_verdict_per_compound_and_holds_findings(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    if backend == "postgres":
        dsn = request.getfixturevalue("pg_dsn")

        async def opened() -> VideoPatrolSql:
            return await PostgresVideoPatrolStore.open(dsn)

        latest = CONSOLE_PG_SCHEMA_VERSION
    else:

        async def opened() -> VideoPatrolSql:
            return await SqliteVideoPatrolStore.open(tmp_path / "console.db")

        latest = MIGRATIONS[-1][0]
    sid = "vp-" + "0" * 32
    store: Any = await opened()
    try:
        assert await store.schema_version() == latest
        await store.add_session(sid, "alice", 100.0, None, PLACES)
        v = Verdict(sid, 0, PLACES[0], NOT_ON_POST, "a" * 64, "gone", "alice", 101.0)
        assert await store.judge(v)
        assert not await store.judge(v)  # the first verdict stands
        await store.judge(Verdict(v.session_id, 1, PLACES[1], ON_POST, "b" * 64, "", "bob", 102))
        await store.judge(Verdict(v.session_id, 2, PLACES[2], "camera_fault", None, "", "bob", 103))
        await store.judge(Verdict(v.session_id, 3, PLACES[3], "unclear", "c" * 64, "", "bob", 104))
        await store.set_request(sid, 4, "cmd-1", 105.0)
        assert await store.held_hashes() == {"a" * 64, "c" * 64}
    finally:
        await store.close()
    store = await opened()  # migrations run once; what was stored is there
    try:
        assert await store.schema_version() == latest
        session = await store.session(sid)
        assert session is not None
        assert [s.place for s in session.steps] == PLACES
        assert session.current is not None and session.current.position == 4
        assert session.current.command_id == "cmd-1"
        assert [x.position for x in await store.verdicts(since=102.0)] == [1, 2, 3]
        assert await store.sessions() == [(sid, "alice", 100.0, len(PLACES), 4)]
        found = await store.findings_between(100.0, 104.0)  # 104 is past the end
        assert [(f.compound, f.judged, f.findings, f.not_on_post) for f in found] == sorted(
            ((p.compound, 1, int(i != 1), int(i == 0)) for i, p in enumerate(PLACES[:3])),
            key=lambda row: (next(p.township for p in PLACES if p.compound == row[0]), row[0]),
        )
    finally:
        await store.close()


def test_findings_are_counted_per_compound_per_month_in_district_time() -> None:
    rose, pine = PLACES[0], PLACES[2]
    # 2026-11-30 16:30 UTC is already 1 December in Shanghai.
    nov_30_utc = 1796056200.0
    verdicts = [
        Verdict("s", 0, rose, NOT_ON_POST, None, "", "a", nov_30_utc - 86400),
        Verdict("s", 1, rose, "not_in_uniform", None, "", "a", nov_30_utc - 3600),
        Verdict("s", 2, rose, ON_POST, None, "", "a", nov_30_utc - 1800),
        Verdict("s", 3, rose, NOT_ON_POST, None, "", "a", nov_30_utc),
        Verdict("s", 4, pine, "unclear", None, "", "a", nov_30_utc),
    ]
    got = [(m.month, m.compound, m.count, m.not_on_post)
           for m in monthly_findings(verdicts, "Asia/Shanghai")]  # fmt: skip
    assert got == [
        ("2026-12", "Rose Garden", 1, 1),  # same count: by township (North before South)
        ("2026-12", "Pine Hill", 1, 0),
        ("2026-11", "Rose Garden", 2, 1),
    ]


# -- a session over HTTP -----------------------------------------------------------------------


@pytest.fixture
async def five(tmp_path: Path) -> AsyncIterator[District]:
    async with running_district(tmp_path, FIVE, cameras=True) as d:
        yield d


def served(district: District, gateway_id: str) -> list[str]:
    camera = district.gateways[gateway_id].camera
    assert camera is not None
    return camera.served


STEP_RE = re.compile(r'data-position="(\d+)" data-compound="([^"]*)" data-look="(\w+)"')


async def current(b: Browser, url: str, want: str = "ready") -> tuple[int, str, str]:
    """The compound on screen, once its picture is ``want`` (ready, failed)."""
    seen: list[tuple[int, str, str]] = []

    async def shown() -> bool:
        status, page = await b.get(url)
        assert status == 200, page
        found = STEP_RE.search(page)
        assert found is not None, page
        seen[:] = [(int(found.group(1)), found.group(2), found.group(3))]
        return found.group(3) == want

    await wait_until(shown, f"the picture {want} on {url}")
    return seen[0]


async def test_a_session_over_five_compounds_stores_verdicts_and_alerts_only_that_manager(
    five: District,
) -> None:
    district = five
    clerk = await district.user("wang.fang", Role.CLERK)
    rose_mgr = await district.user("rose.mgr", Role.COMPOUND_MANAGER, township="North",
                                   compound="Rose Garden")  # fmt: skip
    east_mgr = await district.user("east.mgr", Role.COMPOUND_MANAGER, township="East",
                                   compound="Rose Garden")  # fmt: skip
    bamboo = district.gateways["gw-bamboo-01"].camera
    assert bamboo is not None
    await bamboo.go_dark()  # one camera fails: a camera fault, no picture
    b = Browser(district)
    try:
        assert await b.login("wang.fang", clerk) == 303
        status, page = await b.get("/console/video-patrol")
        assert status == 200
        assert "视频巡查" in page and "全部 5 个小区" in page
        csrf = await b.csrf()
        status, where, _ = await b.post("/console/video-patrol", {"csrf": csrf, "mode": "all"})
        assert status == 303 and where.startswith("/console/video-patrol/session?id=vp-"), where
        order: list[tuple[str, str]] = []
        verdicts = {"Rose Garden": NOT_ON_POST, "Lotus Court": ON_POST,
                    "Pine Hill": "not_in_uniform", "Bamboo Yard": "camera_fault"}  # fmt: skip
        session_id = where.split("=", 1)[1]
        for _ in range(5):
            _, page = await b.get(where)
            found = STEP_RE.search(page)
            assert found is not None
            name = found.group(2)
            broken = name == "Bamboo Yard"
            position, name, _ = await current(b, where, "failed" if broken else "ready")
            _, page = await b.get(where)
            taps = page.split('class="verdicts"', 1)[1].split("</form>", 1)[0]
            for label in ("在岗", "脱岗", "未着装", "画面不清"):
                assert (label in taps) is not broken  # no picture: only a camera fault
            assert "摄像头故障" in taps
            if not broken:
                sha = re.search(r'data-sha256="([0-9a-f]{64})"', page)
                assert sha is not None and f'src="/console/images/{sha.group(1)}"' in page
            # Which Rose Garden: the township is on the page.
            township = "East" if "<small>East</small>" in page else None
            verdict = verdicts[name] if township is None else ON_POST
            status, where2, body = await b.post(
                "/console/video-patrol/verdict",
                {"csrf": csrf, "session": session_id, "position": str(position),
                 "verdict": verdict, "note": "门岗无人" if verdict == NOT_ON_POST else ""},
            )  # fmt: skip
            assert status == 303, body
            assert where2 == where
            order.append((name, verdict))
        _, page = await b.get(where)
        assert "本次巡查的所有小区均已判定" in page
        # A second verdict for a judged compound is refused, never a 500.
        status, _, _ = await b.post(
            "/console/video-patrol/verdict",
            {"csrf": csrf, "session": session_id, "position": "0", "verdict": ON_POST},
        )
        assert status == 409
    finally:
        await b.close()

    # Stored: five verdicts with their pictures' hashes, who and when.
    async with await SqliteVideoPatrolStore.open(district.paths.root / "console.db") as store:
        session = await store.session(session_id)
        assert session is not None and session.current is None
        stored = list(session.verdicts.values())
    assert len(stored) == 5
    assert sorted(p.place.gateway_id for p in session.steps) == sorted(g for g, _, _ in FIVE)
    for v in stored:
        assert v.judged_by == "wang.fang"
        if v.place.gateway_id == "gw-bamboo-01":
            assert (v.verdict, v.sha256) == ("camera_fault", None)
        else:
            assert v.sha256 in served(district, v.place.gateway_id)  # that duty room's picture
            assert await district.running.repo.media(v.sha256) is not None
    assert len({v.sha256 for v in stored if v.sha256}) == 4  # each duty room its own picture
    nop = [v for v in stored if v.verdict == NOT_ON_POST]
    assert [(v.place.township, v.place.compound, v.note) for v in nop] == [
        ("North", "Rose Garden", "门岗无人")
    ]

    # The alert: that compound's manager sees it; the other Rose Garden's manager does not.
    alert_id = f"vp:{session_id}:{nop[0].position}"
    north = "/console/compound?township=North&name=Rose+Garden"
    east = "/console/compound?township=East&name=Rose+Garden"
    m = Browser(district)
    try:  # district staff: on the alerts page, with its id, as an Actual-priority alert
        assert await m.login("wang.fang", clerk) == 303
        status, page = await m.get("/console/alerts")
        assert status == 200 and f'data-alert="{alert_id}" data-kind="not_on_post"' in page
        assert "门岗脱岗（视频巡查）" in page and "门岗无人" in page
    finally:
        await m.close()
    # The alerts page is scoped like every alert: a township viewer sees their own township's.
    for township, sees in (("North", True), ("East", False)):
        password = await district.user(f"viewer.{township.lower()}", Role.TOWNSHIP_VIEWER,
                                       township=township)  # fmt: skip
        m = Browser(district)
        try:
            assert await m.login(f"viewer.{township.lower()}", password) == 303
            status, page = await m.get("/console/alerts")
            assert status == 200
            assert (alert_id in page) is sees and ("门岗无人" in page) is sees, township
        finally:
            await m.close()
    for name, password, own, sees in (("rose.mgr", rose_mgr, north, True),
                                      ("east.mgr", east_mgr, east, False)):  # fmt: skip
        m = Browser(district)
        try:
            assert await m.login(name, password) == 303
            status, page = await m.get(own)  # a manager reads alerts on their compound's page
            assert status == 200, name
            assert ("门岗脱岗（视频巡查）" in page) is sees, name
            assert ("门岗无人" in page) is sees, name
            if not sees:
                status, page = await m.get(north)
                assert status == 403 and "门岗无人" not in page
            status, _ = await m.get("/console/video-patrol")  # not for managers
            assert status in (303, 403)
        finally:
            await m.close()

    # Retention: the findings' pictures stay, the others go. (Compared by hash: the simulated
    # cameras may serve the same bytes in two compounds, and the centre stores a hash once.)
    media = district.running.media
    assert media is not None
    held = {v.sha256 for v in stored if v.sha256 is not None and v.verdict != ON_POST}
    assert len(held) >= 2  # not on post, not in uniform
    free = {v.sha256 for v in stored if v.sha256 is not None} - held
    assert await media.expire(now=10**10) >= len(free)
    for v in stored:
        if v.sha256 is not None:
            kept = await district.running.repo.media(v.sha256) is not None
            assert kept is (v.sha256 in held), v


async def test_malformed_and_forbidden_patrol_forms_are_4xx_never_500(
    five: District,
) -> None:
    district = five
    clerk = await district.user("wang.fang", Role.CLERK)
    viewer = await district.user("li.na", Role.TOWNSHIP_VIEWER, township="North")
    b = Browser(district)
    try:
        assert await b.login("wang.fang", clerk) == 303
        csrf = await b.csrf()
        status, where, _ = await b.post(
            "/console/video-patrol", {"csrf": csrf, "mode": "sample", "sample": "2"}
        )
        assert status == 303
        session_id = where.split("=", 1)[1]
        _, page = await b.get(where)
        assert len(re.findall(r"<small>", page)) >= 1
        bad: list[dict[str, Any]] = [
            {"csrf": csrf, "mode": "sample", "sample": "zero"},
            {"csrf": csrf, "mode": "sample", "sample": "0"},
            {"csrf": csrf, "mode": "sideways"},
            {"csrf": "0" * 64, "mode": "all"},
            {"mode": "all"},
        ]
        for form in bad:
            status, _, body = await b.post("/console/video-patrol", form)
            assert 400 <= status < 500, (form, status, body[:200])
        verdict_forms: list[Any] = [
            {"csrf": csrf, "session": session_id, "position": "0", "verdict": "asleep"},
            {"csrf": csrf, "session": session_id, "position": "x", "verdict": ON_POST},
            {"csrf": csrf, "session": session_id, "position": "99", "verdict": ON_POST},
            {"csrf": csrf, "session": "vp-" + "f" * 32, "position": "0", "verdict": ON_POST},
            {"csrf": csrf, "session": "../../etc", "position": "0", "verdict": ON_POST},
            {
                "csrf": csrf,
                "session": session_id,
                "position": "0",
                "verdict": ON_POST,
                "note": "长" * 600,
            },
            [
                ("csrf", csrf),
                ("session", session_id),
                ("session", session_id),
                ("position", "0"),
                ("verdict", ON_POST),
            ],
        ]
        for form in verdict_forms:
            status, _, body = await b.post("/console/video-patrol/verdict", form)
            assert 400 <= status < 500, (form, status, body[:200])
        for path in ("/console/video-patrol/session?id=nope", "/console/video-patrol/session"):
            status, _ = await b.get(path)
            assert status == 404
        async with b.session.post("/console/video-patrol/verdict", data=b"\xff\xfe=\x00",
                                  headers={"Accept": "application/json"}) as r:  # fmt: skip
            assert 400 <= r.status < 500
    finally:
        await b.close()
    v = Browser(district)
    try:
        assert await v.login("li.na", viewer) == 303
        csrf = await v.csrf()
        status, _, _ = await v.post("/console/video-patrol", {"csrf": csrf, "mode": "all"})
        assert status == 403
        status, _ = await v.get("/console/video-patrol")
        assert status == 403
    finally:
        await v.close()


async def test_one_session_in_debian_chromium(tmp_path: Path) -> None:
    """A clerk's spot check of two compounds in the browser: start, each picture on screen
    (decoded by the browser, its bytes the stored hash), one tap each; the page in Chinese."""
    from tests.chromium import CHROMIUM
    from tests.console.test_browser import DESK, MS, shoot

    if CHROMIUM is None:
        pytest.skip("chromium missing: apt-get install chromium")
    playwright_api = pytest.importorskip("playwright.async_api")
    async with running_district(tmp_path, FIVE[:2], cameras=True) as district:
        clerk = await district.user("wang.fang", Role.CLERK)
        async with playwright_api.async_playwright() as pw:
            browser = await pw.chromium.launch(
                executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage"]
            )
            try:
                context = await browser.new_context(
                    ignore_https_errors=True, viewport=DESK, locale="zh-CN"
                )
                page = await context.new_page()
                page.set_default_timeout(MS)
                await page.goto(f"{district.url}/console/login")
                await page.fill('input[name="name"]', "wang.fang")
                await page.fill('input[name="password"]', clerk)
                await page.click('button[type="submit"]')
                await page.wait_for_url("**/console/board")
                await page.click('nav a[href="/console/video-patrol"]')
                await page.check('input[name="mode"][value="sample"]')
                await page.fill('input[name="sample"]', "2")
                await page.click("text=开始视频巡查")
                seen = []
                for tap in ("脱岗", "在岗"):
                    image = page.locator("img.duty-room")
                    await image.wait_for(state="visible", timeout=MS)  # the page reloads itself
                    await page.wait_for_function(
                        "() => { const i = document.querySelector('img.duty-room');"
                        " return i && i.complete && i.naturalWidth > 0; }",
                        timeout=MS,
                    )
                    sha = await image.get_attribute("data-sha256")
                    assert sha is not None
                    got = await context.request.get(f"{district.url}/console/images/{sha}")
                    assert got.status == 200
                    assert hashlib.sha256(await got.body()).hexdigest() == sha
                    seen.append(sha)
                    if len(seen) == 1:
                        await page.fill('input[name="note"]', "值班室无人")
                        await shoot(page, "video-patrol")
                    await page.click(f'button.verdict:has-text("{tap}")')
                    await page.wait_for_load_state("domcontentloaded")
                await page.locator("p.done").wait_for(state="visible")
                rows = await page.locator("table.video-patrol-verdicts tbody tr").count()
                assert rows == 2 and len(set(seen)) == 2
                assert "值班室无人" in await page.content()
                await context.close()
            finally:
                await browser.close()
