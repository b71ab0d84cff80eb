"""The bulletin commands on a parser shaped like compound-centre's (``--data`` then a command)."""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import stat
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pytest

from centre.bulletins.auth import OPERATORS_FILE, OperatorTokens
from centre.bulletins.cases import CaseImportError
from centre.bulletins.cli import add_bulletin_commands
from centre.bulletins.links import ExplanationLinks
from centre.errors import CentreError
from tests.bulletins.helpers import NOV_2, registry, upload
from tests.bulletins.test_daily import lotus_events, rose_events
from tests.bulletins.test_store import strip
from tests.chromium import needs_chromium


def run(data: Path, *argv: str) -> int:
    parser = argparse.ArgumentParser(prog="compound-centre")
    parser.add_argument("--data")
    sub = parser.add_subparsers(dest="command", required=True)
    add_bulletin_commands(sub)
    args = parser.parse_args(["--data", str(data), *argv])
    return int(args.func(args))


def seed(data: Path) -> None:
    async def go() -> None:
        repo = await registry(
            data, [("gw-rose", "Rose Garden", "North"), ("gw-lotus", "Lotus Court", "North")]
        )
        try:
            await upload(repo, "gw-rose", strip(rose_events()), now=NOV_2 + 2 * 86400)
            await upload(repo, "gw-lotus", strip(lotus_events()), now=NOV_2 + 2 * 86400)
        finally:
            await repo.close()

    asyncio.run(go())


def test_daily_files_explain_then_again(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    seed(tmp_path)
    out = tmp_path / "out"
    assert run(tmp_path, "bulletin", "daily", "--date", "2026-11-02", "--out", str(out)) == 0
    printed = capsys.readouterr().out.split()
    assert [Path(p).name for p in printed] == [
        "daily-2026-11-02.html",
        "daily-2026-11-02.csv",
        "daily-2026-11-02-missed.csv",
    ]
    rows = list(csv.reader(io.StringIO((out / "daily-2026-11-02.csv").read_text(), newline="")))
    assert [(r[2], r[3], r[7], r[14]) for r in rows[1:]] == [
        ("Lotus Court", "3", "0", "verdicts awaited"),
        ("Rose Garden", "4", "1", "must explain"),
    ]
    page = (out / "daily-2026-11-02.html").read_text()
    assert "巡逻日通报 2026-11-02" in page and 'id="compliance-chart"' in page
    # North that day: Rose Garden walked 2 of its 4 judged rounds in full (completed, late;
    # not the incomplete or the missed one), Lotus Court 1 of 1: 3 / 5 = 60 % of 80 px.
    assert (
        'data-day="2026-11-02" data-value="60.0%" x="324.0" y="38.0" width="8" height="48.0"'
        in page
    )
    assert run(tmp_path, "explain", "--compound", "Rose Garden", "--round",
               "night@2026-11-03T04:00", "--text", "guard ill", "--given-by", "chief Wang",
               "--by", "duty-1") == 0  # fmt: skip
    assert "recorded for Rose Garden night@2026-11-03T04:00 by duty-1" in capsys.readouterr().out
    assert run(tmp_path, "bulletin", "daily", "--date", "2026-11-02", "--out", str(out)) == 0
    missed = (out / "daily-2026-11-02-missed.csv").read_text()
    assert "duty-1 (given by chief Wang): guard ill" in missed
    assert (
        "Rose Garden,4,1,1,1,1,0,0,8,12,66.7,1,explained"
        in (out / "daily-2026-11-02.csv").read_text()
    )


def test_monthly_and_operator(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    seed(tmp_path)
    assert run(tmp_path, "bulletin", "monthly", "--month", "2026-11", "--out", str(tmp_path)) == 0
    page = (tmp_path / "monthly-2026-11.html").read_text()
    assert (
        "月通报 2026-11" in page and 'id="uptime-chart"' in page and 'id="missed-heatmap"' in page
    )
    assert run(tmp_path, "operator", "add", "duty-1") == 0
    token = capsys.readouterr().out.strip().splitlines()[-1]
    path = tmp_path / OPERATORS_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert token not in path.read_text()  # only its hash is kept
    assert OperatorTokens.load(path).operator_for(token) == "duty-1"


def test_cases_import_and_explain_link(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    seed(tmp_path)
    good = tmp_path / "cases.csv"
    good.write_text(
        "小区,日期,类别,数量\nRose Garden,2026-11-03,入室盗窃,1\nLotus Court,2026-11-04,other,2\n"
    )
    assert run(tmp_path, "cases", "import", "--month", "2026-11", str(good), "--by", "duty-1") == 0
    assert "version 1: 2 rows, 3 cases, 1 preventable" in capsys.readouterr().out
    broken = tmp_path / "broken.csv"
    broken.write_text(
        "compound,date,category,count\n"
        "Rose Garden,2026-11-03,burglary,1\nNowhere,2026-11-04,other,2\n"
    )
    with pytest.raises(CaseImportError, match="row 3, column 'compound'"):
        run(tmp_path, "cases", "import", "--month", "2026-11", str(broken))
    assert run(tmp_path, "cases", "import", "--month", "2026-11", str(good)) == 0
    assert "version 2" in capsys.readouterr().out  # the broken file made no version

    assert run(tmp_path, "explain-link", "--compound", "Rose Garden", "--date", "2026-11-02",
               "--base-url", "https://centre.example/") == 0  # fmt: skip
    url = urlsplit(capsys.readouterr().out.strip())
    assert (url.scheme, url.netloc, url.path) == ("https", "centre.example", "/bulletins/explain")
    claim = ExplanationLinks.load_or_create(tmp_path).verify(dict(parse_qsl(url.query)), now=0)
    assert (claim.compound, claim.day) == ("Rose Garden", "2026-11-02")


def test_refusals(tmp_path: Path) -> None:
    with pytest.raises(CentreError, match="no centre database"):
        run(tmp_path, "bulletin", "daily", "--date", "2026-11-02")
    seed(tmp_path)
    for argv in (
        ("bulletin", "daily", "--date", "2026-02-30"),
        ("bulletin", "monthly", "--month", "2026-00"),
        ("bulletin", "daily", "--tz", "Mars/Olympus"),
        ("explain", "--compound", "Rose Garden", "--round", "night@2026-11-03T02:00",
         "--text", "not missed"),
        ("operator", "add", "bad name with spaces"),
        ("explain-link", "--compound", "x", "--date", "2026-11-31", "--base-url", "https://c"),
    ):  # fmt: skip
        with pytest.raises(CentreError):
            run(tmp_path, *argv)


def test_every_command_is_documented() -> None:
    parser = argparse.ArgumentParser(prog="compound-centre")
    sub = parser.add_subparsers(dest="command")
    add_bulletin_commands(sub)
    doc = (Path(__file__).resolve().parents[2] / "docs" / "bulletins.md").read_text()
    commands = []
    for name, p in sub.choices.items():
        nested = [a for a in p._actions if isinstance(a, argparse._SubParsersAction)]
        if nested:
            commands += [f"compound-centre {name} {n}" for n in nested[0].choices]
        else:
            commands.append(f"compound-centre {name}")
    assert len(commands) == 7
    for command in commands:
        assert command in doc, command


@needs_chromium
def test_monthly_pdf(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    seed(tmp_path)
    out = tmp_path / "out"
    argv = ("bulletin", "monthly", "--month", "2026-11", "--out", str(out), "--pdf")
    assert run(tmp_path, *argv) == 0
    printed = [Path(p).name for p in capsys.readouterr().out.split()]
    assert printed[-2:] == ["monthly-2026-11.pdf", "monthly-2026-11-page1.png"]
    assert (out / "monthly-2026-11.pdf").read_bytes().startswith(b"%PDF-")
    assert (out / "monthly-2026-11-page1.png").read_bytes().startswith(b"\x89PNG")


@needs_chromium
def test_security_bulletin(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    seed(tmp_path)
    out = tmp_path / "out"
    argv = ("bulletin", "security", "--month", "2026-11", "--out", str(out))
    assert run(tmp_path, *argv) == 0
    html = (out / "security-2026-11.html").read_text()
    assert "本月案件数据尚未导入" in html  # no case file yet: nobody is zero-incident
    cases = tmp_path / "cases.csv"
    cases.write_text("compound,date,category,count\nRose Garden,2026-11-03,burglary,1\n")
    assert run(tmp_path, "cases", "import", "--month", "2026-11", str(cases)) == 0
    capsys.readouterr()
    assert run(tmp_path, *argv, "--pdf") == 0
    printed = [Path(p).name for p in capsys.readouterr().out.split()]
    assert printed == [
        "security-2026-11.html",
        "security-2026-11.pdf",
        "security-2026-11-page1.png",
    ]
    html = (out / "security-2026-11.html").read_text()
    assert "本月案件数据尚未导入" not in html and "2026-11 治安月通报" in html
    lotus = html[html.index('<tr data-compound="Lotus Court">') :].split("</tr>")[0]
    rose = html[html.index('<tr data-compound="Rose Garden">') :].split("</tr>")[0]
    assert "零发案小区" in lotus and "零发案小区" not in rose
    # The charts are in the page (and so in its PDF): uptime, compliance by day, heatmap.
    for chart in ("uptime-chart", "compliance-chart", "missed-heatmap"):
        assert f'id="{chart}"' in html, chart
    assert "docs/" not in html
