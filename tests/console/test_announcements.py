"""The console's announcement library forms against a real centre: an officer uploads a recording
(good, damaged, wrong kind, too large), and typed text is heard as a preview before it is saved or
dropped. Each refusal is a page in words, never a 500; only officers may; CSRF as on every form;
each step one audit record.
"""

from __future__ import annotations

import hashlib
import io
import re
import wave
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from centre.announce.library import AnnouncementLibrary
from centre.announce.media import MAX_UPLOAD_BYTES
from centre.web.audit import AuditRecord
from centre.web.permissions import Role
from tests.console.district import District, running_district, tone_wav
from tests.console.test_http import Browser

pytestmark = pytest.mark.timeout(600)
SENTENCE = "近期电信诈骗高发，请勿向陌生人转账。"


@pytest.fixture
async def district(tmp_path: Path) -> AsyncIterator[District]:
    async with running_district(tmp_path, []) as d:
        yield d


async def audit(district: District) -> list[AuditRecord]:
    assert district.running.console is not None
    return await district.running.console.console.store.audit_records()


async def new_records(district: District, before: int) -> list[tuple[str, str, str]]:
    return [(r.action, r.target, r.outcome) for r in (await audit(district))[before:]]


def silent_wav(seconds: float = 1.0) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(b"\0\0" * int(seconds * 16000))
    return buf.getvalue()


async def page_csrf(b: Browser) -> str:
    status, page = await b.get("/console/announcements")
    assert status == 200
    found = re.search(r'name="csrf" value="([0-9a-f]{64})"', page)
    assert found is not None
    return found.group(1)


async def upload(
    b: Browser, fields: dict[str, str], data: bytes, filename: str
) -> tuple[int, str, str]:
    form = aiohttp.FormData()
    for k, v in fields.items():
        form.add_field(k, v)
    form.add_field("file", data, filename=filename, content_type="application/octet-stream")
    async with b.session.post(
        "/console/announcements/upload", data=form, allow_redirects=False
    ) as r:
        return r.status, r.headers.get("Location", ""), await r.text()


def listed(district: District) -> list[str]:
    return [a.id for a in AnnouncementLibrary(district.paths.root).list()]


async def test_an_officer_uploads_a_recording_and_bad_files_are_refused_in_words(
    district: District,
) -> None:
    officer = await district.user("zhang.wei", Role.OFFICER)
    b = Browser(district)
    try:
        assert await b.login("zhang.wei", officer) == 303
        status, page = await b.get("/console/announcements")
        assert status == 200
        assert 'action="/console/announcements/upload"' in page and "上传录音" in page
        csrf = await page_csrf(b)
        good = {"csrf": csrf, "title": "防诈骗提醒", "language": "zh-CN", "id": "tone-1"}

        # a good WAV: converted, stored, shown with its level in words, audited
        n = len(await audit(district))
        status, where, _ = await upload(b, good, tone_wav(1.0), "提醒.wav")
        assert (status, where) == (303, "/console/announcements?added=tone-1")
        ann = AnnouncementLibrary(district.paths.root).get("tone-1")
        assert (ann.title, ann.language, ann.source) == ("防诈骗提醒", "zh-CN", "upload")
        assert 0.9 <= ann.duration_s <= 1.1
        status, page = await b.get(where)
        assert status == 200 and 'data-added="tone-1"' in page
        assert "已保存" in page and "音量正常" in page
        status, page = await b.get(where + "&lang=en")  # English on request
        assert status == 200 and "Saved to the library" in page and "Volume normal" in page
        assert "Upload a recording" in page and "Typed text, read by the computer" in page
        await b.get("/console/announcements?lang=zh-CN")  # back to Chinese (kept in a cookie)
        assert 'src="/console/announcements/audio?id=tone-1"' in page
        ((action, target, outcome),) = await new_records(district, n)
        assert (action, target) == ("announcement.upload", "announcement:tone-1")
        assert outcome == f"ok:sha256={ann.sha256[:16]}:level=sound"

        # a recording of nothing: stored (it is what was sent) but the page says so
        status, where, _ = await upload(b, {**good, "id": "quiet-1"}, silent_wav(), "q.wav")
        assert status == 303
        _, page = await b.get(where)
        assert 'data-level="silent"' in page and "无声" in page

        # refusals: each a Chinese page, 4xx, nothing stored, one audit record
        cases: list[tuple[dict[str, str], bytes, str, int, str, str]] = [
            (good | {"id": "bad-1"}, b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(range(256)) * 8,
             "broken.wav", 422, "bad_media", "无法使用"),
            (good | {"id": "bad-2"}, b"ID3\x03\x00" + b"\xff" * 2000, "broken.mp3", 422,
             "bad_media", "无法使用"),
            (good | {"id": "bad-3"}, tone_wav(0.5), "notes.txt", 400, "bad_format",
             "WAV、MP3 或 M4A"),
            (good | {"id": "bad-4", "title": " "}, tone_wav(0.5), "t.wav", 400, "bad_title",
             "标题"),
            (good | {"id": "tone-1"}, tone_wav(0.5), "t.wav", 409, "announcement_exists",
             "已有"),
            (good | {"id": "bad-5"}, b"\0" * (MAX_UPLOAD_BYTES + 1), "big.wav", 413,
             "too_large", "20 MB"),
        ]  # fmt: skip
        for fields, data, name, want, code, words in cases:
            n = len(await audit(district))
            status, _, page = await upload(b, fields, data, name)
            assert status == want, (name, status, page[:300])
            assert words in page and 'role="alert"' in page, (name, page[:2000])
            assert "<form" in page  # the library page again, the form kept
            ((action, _target, outcome),) = await new_records(district, n)
            assert (action, outcome) == ("announcement.upload", f"refused:{code}")
        assert sorted(listed(district)) == ["quiet-1", "tone-1"]

        # without the form's CSRF token: refused, nothing stored, nothing audited (no proof
        # the signed-in person sent it)
        n = len(await audit(district))
        for fields in ({k: v for k, v in good.items() if k != "csrf"}, good | {"csrf": "0" * 64}):
            status, _, page = await upload(b, fields | {"id": "no-csrf"}, tone_wav(0.5), "t.wav")
            assert status == 403 and "已过期" in page
        assert await new_records(district, n) == []
        assert "no-csrf" not in listed(district)

        # a script (no HTML asked for) gets the centre's JSON error, 4xx as well
        async with b.session.post(
            "/console/announcements/upload", data=b"not a form",
            headers={"Accept": "application/json", "Content-Type": "multipart/form-data"},
        ) as r:  # fmt: skip
            assert r.status == 400 and (await r.json())["error"] == "bad_form"
    finally:
        await b.close()


async def test_only_officers_may_change_the_library(district: District) -> None:
    clerk = await district.user("wang.fang", Role.CLERK)
    b = Browser(district)
    try:
        assert await b.login("wang.fang", clerk) == 303
        status, page = await b.get("/console/announcements")
        assert status == 200  # a clerk hears the library ...
        assert "/console/announcements/upload" not in page  # ... but has no forms
        assert "/console/announcements/preview" not in page
        csrf = await page_csrf(b)
        n = len(await audit(district))
        fields = {"csrf": csrf, "title": "提醒", "language": "zh-CN", "id": "clerk-1"}
        status, _, page = await upload(b, fields, tone_wav(0.5), "t.wav")
        assert status == 403 and "无权" in page
        status, _, page = await b.post(
            "/console/announcements/preview", {"csrf": csrf, "title": "提醒", "text": SENTENCE}
        )
        assert status == 403 and "无权" in page
        records = await new_records(district, n)
        assert records == [
            ("announcement.upload", "announcement:?", "refused:forbidden"),  # role first
            ("announcement.preview", "draft:?", "refused:forbidden"),
        ]
        assert listed(district) == []
        assert not (district.paths.root / "announcements" / ".drafts").exists()
    finally:
        await b.close()


async def _preview(b: Browser, csrf: str, title: str) -> tuple[str, str]:
    status, where, _ = await b.post(
        "/console/announcements/preview", {"csrf": csrf, "title": title, "text": SENTENCE}
    )
    assert status == 303, where
    found = re.fullmatch(r"/console/announcements\?draft=([0-9a-f]{32})", where)
    assert found is not None, where
    status, page = await b.get(where)
    assert status == 200
    return found.group(1), page


async def test_typed_text_is_heard_first_then_saved_or_discarded(district: District) -> None:
    officer = await district.user("zhang.wei", Role.OFFICER)
    other = await district.user("liu.yang", Role.OFFICER)
    b, b2 = Browser(district), Browser(district)
    try:
        assert await b.login("zhang.wei", officer) == 303
        assert await b2.login("liu.yang", other) == 303
        csrf = await page_csrf(b)
        n = len(await audit(district))

        # preview: rendered, playable in the page, level in words, not in the library
        draft, page = await _preview(b, csrf, "转账提醒")
        assert f'data-draft="{draft}"' in page and "尚未保存" in page
        audio = f"/console/announcements/preview/audio?draft={draft}"
        assert f'<audio controls preload="auto" src="{audio}"' in page
        assert 'data-level="sound"' in page and "音量正常" in page
        async with b.session.get(audio) as r:
            assert r.status == 200 and r.content_type == "audio/wav"
            heard = await r.read()
        assert 3 * 32000 < len(heard) < 15 * 32000  # 3..15 s of 16 kHz 16-bit mono
        assert listed(district) == []
        # another officer neither hears nor saves someone else's draft
        async with b2.session.get(audio) as r:
            assert r.status == 404
        csrf2 = await page_csrf(b2)
        status, _, page = await b2.post(
            "/console/announcements/save", {"csrf": csrf2, "draft": draft, "id": ""}
        )
        assert status == 404 and "预览已不存在" in page

        # save: exactly the audio heard becomes the announcement
        status, where, _ = await b.post(
            "/console/announcements/save", {"csrf": csrf, "draft": draft, "id": "fraud-tts"}
        )
        assert (status, where) == (303, "/console/announcements?added=fraud-tts")
        ann = AnnouncementLibrary(district.paths.root).get("fraud-tts")
        assert ann.sha256 == hashlib.sha256(heard).hexdigest()
        assert (ann.title, ann.source) == ("转账提醒", "text")
        _, page = await b.get(where)
        assert 'data-added="fraud-tts"' in page and 'data-announcement="fraud-tts"' in page
        async with b.session.get(audio) as r:
            assert r.status == 404  # the draft is gone with the save
        status, _, page = await b.post(
            "/console/announcements/save", {"csrf": csrf, "draft": draft, "id": "again"}
        )
        assert status == 404 and "预览已不存在" in page

        # preview then discard: nothing reaches the library
        draft2, _ = await _preview(b, csrf, "不要的")
        status, where, _ = await b.post(
            "/console/announcements/discard", {"csrf": csrf, "draft": draft2}
        )
        assert (status, where) == (303, "/console/announcements")
        assert listed(district) == ["fraud-tts"]
        assert not (district.paths.root / "announcements" / ".drafts" / draft2).exists()

        # a discard without the CSRF token is refused and changes nothing
        draft3, _ = await _preview(b, csrf, "第三条")
        status, _, page = await b.post("/console/announcements/discard", {"draft": draft3})
        assert status == 403 and "已过期" in page
        assert (district.paths.root / "announcements" / ".drafts" / draft3).is_dir()

        # empty text: refused in words
        status, _, page = await b.post(
            "/console/announcements/preview", {"csrf": csrf, "title": "空", "text": "  "}
        )
        assert status == 400 and "输入要朗读的文字" in page

        records = await new_records(district, n)
        assert [(a, o.split(":")[0]) for a, _t, o in records] == [
            ("announcement.preview", "ok"),
            ("announcement.save", "refused"),  # the other officer
            ("announcement.save", "ok"),
            ("announcement.save", "refused"),  # saved already
            ("announcement.preview", "ok"),
            ("announcement.discard", "ok"),
            ("announcement.preview", "ok"),
            ("announcement.preview", "refused"),
        ]
        assert records[0][2] == "ok:level=sound"
        assert records[2][1] == f"draft:{draft}>announcement:fraud-tts"
        assert records[5][1] == f"draft:{draft2}"
    finally:
        await b.close()
        await b2.close()
