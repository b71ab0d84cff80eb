"""The monthly bulletin's video patrol section (issue 17): findings per compound in the month,
repeated ones marked, verdicts of other months left out, Chinese by default, the
``compound-centre bulletin monthly`` command reading the console's verdicts."""

from __future__ import annotations

import asyncio
from pathlib import Path

from centre.bulletins import pages
from centre.bulletins.source import build_monthly
from centre.web.store import CONSOLE_DB
from centre.web.video_patrol import (
    NOT_ON_POST,
    ON_POST,
    Place,
    SqliteVideoPatrolStore,
    Verdict,
)
from tests.bulletins.conftest import Seeded
from tests.bulletins.helpers import NOV_1, OCT_1
from tests.bulletins.test_cli import run, seed

ROSE = Place("North", "Rose Garden", "gw-rose")
LOTUS = Place("North", "Lotus Court", "gw-lotus")
BAMBOO = Place("South", "Bamboo", "gw-bamboo")
SESSION = "vp-" + "1" * 32


async def judged(db: Path) -> None:
    """Rose Garden: two findings in October (one not on post); Lotus Court: on post only;
    Bamboo: a finding in November (another month)."""
    async with await SqliteVideoPatrolStore.open(db) as store:
        await store.add_session(SESSION, "clerk", OCT_1, None, [ROSE, LOTUS, BAMBOO])
        await store.add_session(SESSION[:-1] + "2", "clerk", OCT_1, None, [ROSE])
        day = 86400.0
        await store.judge(Verdict(SESSION, 0, ROSE, NOT_ON_POST, "a" * 64, "", "c", OCT_1 + day))
        await store.judge(Verdict(SESSION, 1, LOTUS, ON_POST, "b" * 64, "", "c", OCT_1 + day))
        await store.judge(Verdict(SESSION, 2, BAMBOO, "unclear", "c" * 64, "", "c", NOV_1 + day))
        await store.judge(
            Verdict(
                SESSION[:-1] + "2", 0, ROSE, "not_in_uniform", "d" * 64, "", "c", OCT_1 + 9 * day
            )
        )


async def test_the_monthly_bulletin_counts_video_patrol_findings_per_compound(
    seeded: Seeded, tmp_path: Path
) -> None:
    db = tmp_path / "console.db"
    await judged(db)
    async with await SqliteVideoPatrolStore.open(db) as store:
        b = await build_monthly(seeded.repo, seeded.store, "2026-10", now=NOV_1 + 5, findings=store)
        nov = await build_monthly(
            seeded.repo, seeded.store, "2026-11", now=NOV_1 + 5 * 86400, findings=store
        )
    rows = {(r.township, r.compound): (r.judged, r.findings, r.not_on_post) for r in b.video_patrol}
    assert rows == {("North", "Rose Garden"): (2, 2, 1), ("North", "Lotus Court"): (1, 0, 0)}
    assert [(r.compound, r.findings) for r in nov.video_patrol] == [("Bamboo", 1)]

    html = pages.monthly_html(b)
    assert "值班室视频巡查" in html and "屡次发现" in html  # Chinese by default
    section = html.split('id="video-patrol"')[1].split("</section>")[0]
    assert section.count("<tr data-compound=") == 2
    english = pages.monthly_html(b, lang="en")
    assert "Video patrol of the duty rooms" in english and "repeated" in english

    without = await build_monthly(seeded.repo, seeded.store, "2026-10", now=NOV_1 + 5)
    assert without.video_patrol == ()
    assert "本月没有判定过值班室画面。" in pages.monthly_html(without)


async def test_the_monthly_command_reads_the_consoles_verdicts(tmp_path: Path) -> None:
    data = tmp_path / "centre"
    data.mkdir()
    await asyncio.to_thread(seed, data)
    out = tmp_path / "out"
    assert await asyncio.to_thread(run, data, "bulletin", "monthly", "--month", "2026-10",
                                   "--out", str(out)) == 0  # fmt: skip
    assert not (data / CONSOLE_DB).exists()  # the bulletin made no console database
    await judged(data / CONSOLE_DB)
    assert await asyncio.to_thread(run, data, "bulletin", "monthly", "--month", "2026-10",
                                   "--out", str(out)) == 0  # fmt: skip
    page = next(out.glob("monthly-2026-10*.html")).read_text(encoding="utf-8")
    section = page.split('id="video-patrol"')[1].split("</section>")[0]
    assert "Rose Garden" in section and "屡次发现" in section
