"""Explanation links: signed, expiring, once per compound and day, no account; the page is
Chinese by default and every refusal is a 4xx page, never a 500."""

from __future__ import annotations

import asyncio
import os
import stat
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit

import aiohttp
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from centre.bulletins import render
from centre.bulletins.auth import OperatorTokens
from centre.bulletins.links import (
    KEY_BYTES,
    KEY_FILE,
    LINK_RECORDER,
    ExplanationLinks,
    KeyFileError,
    LinkAltered,
    LinkExpired,
    LinkMalformed,
    LinkRefused,
)
from centre.bulletins.source import build_daily
from centre.bulletins.web import BulletinHandlers, make_app
from tests.bulletins.conftest import HOSTILE_COMPOUND, Seeded, serve
from tests.bulletins.helpers import NOV_2

NOW = NOV_2 + 2 * 86400.0
DAY = "2026-11-02"
KEY = bytes(range(KEY_BYTES))


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture
async def site(seeded: Seeded) -> AsyncIterator[tuple[str, ExplanationLinks, Clock, Seeded]]:
    clock = Clock(NOW)
    links = ExplanationLinks.load_or_create(seeded.data_dir)
    handlers = BulletinHandlers(
        seeded.repo, seeded.store, OperatorTokens(), wall=clock, links=links
    )
    async with serve(make_app(handlers)) as url:
        yield url, links, clock, seeded


async def fetch(
    method: str, url: str, data: dict[str, str] | bytes | None = None, lang: str | None = None
) -> tuple[int, str]:
    headers = {"Accept-Language": lang} if lang else {}
    async with (
        aiohttp.ClientSession() as s,
        s.request(
            method, url, data=data, headers=headers, timeout=aiohttp.ClientTimeout(total=60)
        ) as r,
    ):
        assert r.content_type == "text/html", (r.status, r.content_type)
        assert r.headers["Cache-Control"] == "no-store"
        assert r.headers["Referrer-Policy"] == "no-referrer"
        return r.status, await r.text()


def with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query)) | changes
    return f"{parts.scheme}://{parts.netloc}{parts.path}?{urlencode(query)}"


# -- the key -----------------------------------------------------------------------------


def test_key_is_made_once_0600_and_reused(tmp_path: Path) -> None:
    first = ExplanationLinks.load_or_create(tmp_path)
    path = tmp_path / KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(path.read_bytes()) == KEY_BYTES
    again = ExplanationLinks.load_or_create(tmp_path)
    assert again.key == first.key
    # A link made before a restart still verifies after it.
    q = first.query("Rose Garden", DAY, now=NOW)
    assert again.verify(q, now=NOW).compound == "Rose Garden"


def test_a_key_readable_by_others_or_of_the_wrong_size_is_refused(tmp_path: Path) -> None:
    ExplanationLinks.load_or_create(tmp_path)
    path = tmp_path / KEY_FILE
    os.chmod(path, 0o644)
    with pytest.raises(KeyFileError, match="chmod 600"):
        ExplanationLinks.load_or_create(tmp_path)
    os.chmod(path, 0o600)
    path.write_bytes(b"short")
    with pytest.raises(KeyFileError, match="not a 32-byte key"):
        ExplanationLinks.load_or_create(tmp_path)


# -- signing, pure -----------------------------------------------------------------------


def test_a_link_holds_for_its_compound_day_and_expiry_only() -> None:
    links = ExplanationLinks(KEY, ttl_s=3600)
    q = links.query("玫瑰园", DAY, now=NOW)
    claim = links.verify(q, now=NOW + 3599)
    assert (claim.compound, claim.day, claim.expires) == ("玫瑰园", DAY, int(NOW + 3600))
    for change in (
        {"compound": "Lotus Court"},
        {"compound": "玫瑰园 "},
        {"day": "2026-11-03"},
        {"expires": str(int(NOW) + 7200)},
        {"sig": q["sig"][:-1] + ("A" if q["sig"][-1] != "A" else "B")},
    ):
        with pytest.raises(LinkAltered):
            links.verify(q | change, now=NOW)
    with pytest.raises(LinkExpired):
        links.verify(q, now=NOW + 3600)
    # Another centre's key signs other links.
    with pytest.raises(LinkAltered):
        ExplanationLinks(bytes(KEY_BYTES)).verify(q, now=NOW)
    for broken in ({"sig": ""}, {"expires": "soon"}, {"day": "2026-02-30"}, {"day": "x" * 500}):
        with pytest.raises(LinkMalformed):
            links.verify(q | broken, now=NOW)
    with pytest.raises(LinkMalformed):
        links.verify({k: v for k, v in q.items() if k != "day"}, now=NOW)


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["compound", "day", "expires", "sig", "other"]),
        st.text(max_size=60) | st.sampled_from(["2026-11-02", "9999999999", "١٢٣"]),
    )
)
def test_any_query_gives_a_claim_or_a_link_refusal(query: dict[str, str]) -> None:
    links = ExplanationLinks(KEY)
    try:
        claim = links.verify(query, now=NOW)
    except LinkRefused as exc:
        assert 400 <= exc.status < 500
    else:  # only by forging the MAC, which random text does not
        pytest.fail(f"a random query was accepted: {claim}")


# -- the page ----------------------------------------------------------------------------


async def test_the_link_works_once_and_the_text_reaches_the_next_bulletin_escaped(
    site: tuple[str, ExplanationLinks, Clock, Seeded],
) -> None:
    url, links, clock, seeded = site
    link = links.url(url, "Rose Garden", DAY, now=NOW)
    before = await build_daily(seeded.repo, seeded.store, DAY, now=NOW)
    assert "Rose Garden" in before.must_explain

    status, body = await fetch("GET", link)
    assert status == 200, body
    assert '<html lang="zh-CN">' in body and "未巡查情况说明" in body
    assert "Rose Garden" in body and DAY in body
    assert 'name="text"' in body

    hostile = '<img src=x onerror=alert(1)> 保安生病 & "无人替班"'
    clock.t = NOW + 60
    status, body = await fetch("POST", link, {"text": hostile, "given_by": "王经理"})
    assert status == 200, body
    assert "情况说明已收到" in body
    assert "<img" not in body and "&lt;img src=x onerror=alert(1)&gt;" in body

    # Once: the same link again, and another link for the same compound and day, are refused.
    status, body = await fetch("POST", link, {"text": "second try"})
    assert status == 409 and "链接已使用" in body, body
    status, body = await fetch("GET", link)
    assert status == 409 and "链接已使用" in body, body
    fresh = links.url(url, "Rose Garden", DAY, now=NOW + 120)
    status, body = await fetch("POST", fresh, {"text": "third try"})
    assert status == 409, body

    stored = await seeded.store.all(compound="Rose Garden")
    assert [(x.round_id, x.text, x.given_by, x.recorded_by) for x in stored] == [
        ("night@2026-11-03T04:00", hostile, "王经理", LINK_RECORDER)
    ]
    after = await build_daily(seeded.repo, seeded.store, DAY, now=NOW + 600)
    assert "Rose Garden" not in after.must_explain
    page = render.daily_html(after)
    assert "&lt;img src=x onerror=alert(1)&gt; 保安生病 &amp; &#x27;" not in page  # sanity
    assert "&lt;img src=x onerror=alert(1)&gt; 保安生病 &amp; &#34;无人替班&#34;" in page
    assert "<img" not in page


async def test_another_compound_a_tampered_or_expired_link_is_refused_in_chinese(
    site: tuple[str, ExplanationLinks, Clock, Seeded],
) -> None:
    url, links, clock, seeded = site
    link = links.url(url, "Rose Garden", DAY, now=NOW)
    cases = [
        (with_query(link, compound=HOSTILE_COMPOUND), 403, "链接无效"),
        (with_query(link, compound="Lotus Court"), 403, "链接无效"),
        (with_query(link, day="2026-11-03"), 403, "链接无效"),
        (with_query(link, expires=str(int(NOW) + 10 * 86400)), 403, "链接无效"),
        (with_query(link, sig="A" * 43), 403, "链接无效"),
        (with_query(link, sig=""), 400, "链接不完整"),
        (f"{url}/bulletins/explain", 400, "链接不完整"),
        (f"{url}/bulletins/explain?day=%FF%FE&compound=%00&expires=-1&sig=x", 400, "链接不完整"),
    ]
    for target, status_wanted, words in cases:
        for method in ("GET", "POST"):
            status, body = await fetch(method, target, {"text": "should not be kept"})
            assert (status, words in body) == (status_wanted, True), (method, target, body)
            assert "<script" not in body
    clock.t = NOW + links.ttl_s
    status, body = await fetch("POST", link, {"text": "too late"})
    assert status == 410 and "链接已过期" in body, body
    # Nothing was recorded for anyone.
    assert await seeded.store.all() == []


async def test_a_compound_with_nothing_missed_and_bad_forms(
    site: tuple[str, ExplanationLinks, Clock, Seeded],
) -> None:
    url, links, _, seeded = site
    status, body = await fetch("GET", links.url(url, "Lotus Court", DAY, now=NOW))
    assert status == 409 and "无需说明" in body, body
    link = links.url(url, "Rose Garden", DAY, now=NOW)
    status, body = await fetch("POST", link, {"text": "   "})
    assert status == 400 and "请填写情况说明" in body, body
    status, body = await fetch("POST", link, {"text": "x" * 2001})
    assert status == 400 and "说明过长" in body, body
    status, body = await fetch("POST", link, {"text": "bell \x07"})
    assert status == 400 and "无法记录的字符" in body, body
    status, body = await fetch("POST", link, b"text=%FF%FE")
    assert status == 400 and "无法读取" in body, body
    status, body = await fetch("POST", link, b"text=" + b"a" * 40_000)
    assert status == 413 and "说明过长" in body, body
    assert await seeded.store.all() == []
    # The failed attempts did not use the link up.
    status, body = await fetch("POST", link, {"text": "门禁故障"})
    assert status == 200, body


async def test_english_on_request(site: tuple[str, ExplanationLinks, Clock, Seeded]) -> None:
    url, links, _, _ = site
    link = links.url(url, "Rose Garden", DAY, now=NOW)
    status, body = await fetch("GET", link, lang="en-GB,en;q=0.9")
    assert status == 200 and "Explain a missed patrol" in body and '<html lang="en">' in body
    status, body = await fetch("GET", link + "&lang=en")
    assert status == 200 and "Send the explanation" in body
    # The other language is one tap away, and the link in it still verifies.
    assert "lang=zh-CN" in body
    status, body = await fetch("GET", with_query(link, sig="B" * 43, lang="en"))
    assert status == 403 and "This link is not valid" in body


async def test_two_submissions_at_once_record_one(
    site: tuple[str, ExplanationLinks, Clock, Seeded],
) -> None:
    url, links, _, seeded = site
    link = links.url(url, "Rose Garden", DAY, now=NOW)
    results = await asyncio.gather(
        *(fetch("POST", link, {"text": f"attempt {i}"}) for i in range(4))
    )
    assert sorted(status for status, _ in results) == [200, 409, 409, 409]
    assert len(await seeded.store.all(compound="Rose Garden")) == 1


def test_every_word_of_the_pages_is_translated_to_zh_cn() -> None:
    from i18n.extract import missing_translations

    package = Path(__file__).resolve().parents[2] / "centre" / "bulletins"
    assert missing_translations(package, "zh_CN") == []


def test_processes_starting_at_once_agree_on_one_key(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(8) as pool:
        keys = list(pool.map(lambda _: ExplanationLinks.load_or_create(tmp_path).key, range(16)))
    assert len(set(keys)) == 1 and len(keys[0]) == KEY_BYTES
    assert [p.name for p in tmp_path.iterdir()] == [KEY_FILE]  # no temporary file left


async def test_the_running_centre_makes_its_key_0600_and_serves_the_page(tmp_path: Path) -> None:
    import ssl
    import time

    from centre.pki import CentrePaths, init_centre
    from centre.server import running_centre

    paths = CentrePaths(tmp_path / "centre")
    init_centre(paths, hostnames=["localhost"], ips=["127.0.0.1"], now=time.time(), name="T")
    assert not (paths.root / KEY_FILE).exists()
    async with running_centre(paths) as running:
        key = paths.root / KEY_FILE
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
        links = ExplanationLinks.load_or_create(paths.root)
        ctx = ssl.create_default_context(cafile=str(paths.ca_cert))
        async with aiohttp.ClientSession() as s:
            link = links.url(running.url, "Rose Garden", DAY, now=time.time())
            async with s.get(link, ssl=ctx) as r:
                # No gateway enrolled: nothing to explain, said as a page in Chinese.
                assert r.status == 409 and "无需说明" in await r.text()
            async with s.get(with_query(link, compound="Lotus Court"), ssl=ctx) as r:
                assert r.status == 403 and "链接无效" in await r.text()
