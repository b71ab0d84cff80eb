"""The bulletin pages in a real browser: headless Chromium, served from 127.0.0.1, in zh-CN (the
default); screenshots at 390x844 (phone) and 1280x800 (desk) saved under artifacts/ (gitignored),
DOM asserted."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from centre.bulletins.survey_store import SqliteSurveyStore
from centre.bulletins.survey_web import SurveyPages
from centre.bulletins.web import daily_response, monthly_response
from tests.bulletins.conftest import HOSTILE_COMPOUND, Seeded, serve
from tests.bulletins.helpers import NOV_2
from tests.chromium import (
    ARTIFACTS,
    needs_chromium,
    png_facts,
    run_chromium,
    screenshot,
)

SIZES = {"phone": (390, 844), "desk": (1280, 800)}

NOW = NOV_2 + 3 * 86400.0

pytestmark = needs_chromium


def pages_app(seeded: Seeded) -> web.Application:
    """Just the page builders (the authenticated routes are tested in test_web.py)."""

    async def daily(request: web.Request) -> web.Response:
        return await daily_response(seeded.repo, seeded.store, day="2026-11-02", now=NOW)

    async def monthly(request: web.Request) -> web.Response:
        return await monthly_response(seeded.repo, seeded.store, month="2026-10", now=NOW)

    app = web.Application()
    app.router.add_get("/daily", daily)
    app.router.add_get("/monthly", monthly)
    return app


async def test_daily_bulletin_in_chromium(seeded: Seeded, tmp_path: Path) -> None:
    await seeded.store.add(
        "Rose Garden", "night@2026-11-03T04:00", "guard g2 ill, no relief",
        given_by="chief Wang", recorded_by="duty-1", now=NOW - 3600,
    )  # fmt: skip
    async with serve(pages_app(seeded)) as url:
        shots = {
            name: await screenshot(
                f"{url}/daily", f"bulletin-daily-{name}.png", tmp_path / f"s-{name}", size
            )
            for name, size in SIZES.items()
        }
        dom = (await run_chromium(f"{url}/daily", tmp_path / "p2", "--dump-dom")).decode()
        pdf = ARTIFACTS / "bulletin-daily.pdf"
        pdf.unlink(missing_ok=True)
        await run_chromium(
            f"{url}/daily", tmp_path / "p3", f"--print-to-pdf={pdf}", "--no-pdf-header-footer"
        )
    # The print layout renders (the @media print rules apply here).
    printed = pdf.read_bytes()
    assert printed.startswith(b"%PDF-") and b"%%EOF" in printed[-64:] and len(printed) > 10_000
    for name, data in shots.items():
        width, height, distinct = png_facts(data)
        assert (width, height) == SIZES[name]
        # A blank or error page decodes to a handful of values; tables, cards and text do not.
        assert distinct > 64 and len(data) > 20_000, (name, distinct, len(data))
    assert 'id="compounds"' in dom and 'id="did-not-patrol"' in dom
    assert 'id="compliance-chart"' in dom and 'id="missed-heatmap"' in dom
    assert 'href="/bulletins/monthly?month=2026-11&amp;lang=zh-CN"' in dom
    for text in ("巡逻日通报 2026-11-02", "Rose Garden", "Lotus Court", "Bamboo",
                 "guard g2 ill, no relief", "等待判定", "须说明"):  # fmt: skip
        assert text in dom, text
    # The hostile name stayed text: the browser built no script element from it.
    assert "<script" not in dom
    assert '&lt;script&gt;alert("pwned")&lt;/script&gt;' in dom
    assert HOSTILE_COMPOUND not in dom  # only its escaped form is in the serialised DOM
    assert 'id="total-planned"><b>8</b>' in dom  # 4 + 3 + 0 + 1


async def test_monthly_bulletin_in_chromium(seeded: Seeded, tmp_path: Path) -> None:
    async with serve(pages_app(seeded)) as url:
        shots = {
            name: await screenshot(
                f"{url}/monthly", f"bulletin-monthly-{name}.png", tmp_path / f"s-{name}", size
            )
            for name, size in SIZES.items()
        }
        dom = (await run_chromium(f"{url}/monthly", tmp_path / "p2", "--dump-dom")).decode()
    for name, data in shots.items():
        width, height, distinct = png_facts(data)
        assert (width, height) == SIZES[name]
        assert distinct > 64 and len(data) > 20_000, (name, distinct, len(data))
    for text in ("月通报 2026-10", "North", "South", "connection refused", "cam-1",
                 "99.3%", "从未上传"):  # fmt: skip
        assert text in dom, text
    assert 'id="township-table"' in dom and 'id="faults-0"' in dom and 'id="devices-0"' in dom
    assert 'id="uptime-chart"' in dom and 'id="compliance-chart"' in dom
    assert 'href="/bulletins/daily?date=2026-10-31&amp;lang=zh-CN"' in dom
    assert "<script" not in dom


async def test_survey_call_sheet_in_chromium(seeded: Seeded, tmp_path: Path) -> None:
    async with await SqliteSurveyStore.open(tmp_path / "survey.db") as survey:
        lines = ["compound,phone"] + [f"Rose Garden,1380013{i:04d}" for i in range(4)]
        await survey.import_residents(
            "\n".join(lines).encode(), compounds={"Rose Garden"}, imported_by="d", now=NOW
        )
        await survey.draw("2026-11", drawn_by="clerk-1", now=NOW)
        first = (await survey.sheet("2026-11"))[0]
        await survey.record(
            "2026-11", first.resident_id, "satisfied", "很好", by="clerk-1", now=NOW
        )
        sheet = SurveyPages(
            survey, seeded.repo, reader=lambda r: "clerk-1", bearer=lambda r: None,
            csrf_key=b"k" * 32, cookie="c", unauthorised=lambda r: web.Response(status=401),
            wall=lambda: NOW,
        )  # fmt: skip
        app = web.Application()
        app.add_routes(sheet.routes())
        async with serve(app) as url:
            # Chromium asks for English (Accept-Language); the clerk's link names the language.
            page = f"{url}/bulletins/survey?month=2026-11&lang=zh-CN"
            data = await screenshot(
                page, "bulletin-survey-phone.png", tmp_path / "s", SIZES["phone"]
            )
            dom = (await run_chromium(page, tmp_path / "d", "--dump-dom")).decode()
    width, height, distinct = png_facts(data)
    assert (width, height) == SIZES["phone"] and distinct > 64
    assert "居民电话回访 2026-11" in dom and "已接通，满意" in dom and "很好" in dom
    assert dom.count("138****") == 4 and "13800130000" not in dom
