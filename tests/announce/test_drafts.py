"""Text-to-speech heard before it is published (drafts) and the centre's level check."""

from __future__ import annotations

import hashlib
import io
import math
import os
import shutil
import struct
import wave
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from centre.announce.level import QUIET, SILENT, SOUND, LevelError, judge
from centre.announce.library import DRAFT_TTL_S, AnnouncementError, AnnouncementLibrary
from gateway.broadcast.level import check_wav

SENTENCE = "近期电信诈骗高发，请勿向陌生人转账。"
needs_tools = pytest.mark.skipif(
    not (shutil.which("ffmpeg") and shutil.which("espeak-ng")),
    reason="ffmpeg/espeak-ng missing (make bootstrap installs them)",
)


def wav(samples: list[int], rate: int = 16_000) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(struct.pack(f"<{len(samples)}h", *samples))
    return buf.getvalue()


def sine(amplitude: float, seconds: float = 0.5, dc: int = 0) -> list[int]:
    n = int(16_000 * seconds)
    return [
        dc + int(amplitude * 32767 * math.sin(2 * math.pi * 440 * i / 16_000)) for i in range(n)
    ]


@pytest.mark.parametrize(
    ("samples", "verdict", "gateway"),
    [
        (sine(0.3), SOUND, "sound"),  # about -20 dBFS: normalised speech
        (sine(0.01), QUIET, "sound"),  # about -43 dBFS: heard by the gateway, too quiet here
        (sine(0.001), SILENT, "silence"),  # about -63 dBFS
        ([0] * 8000, SILENT, "disconnected"),
        ([1200] * 8000, SILENT, "disconnected"),  # DC only
        (sine(0.3, dc=5000), SOUND, "sound"),  # an offset does not count as level
    ],
)
def test_the_level_check_agrees_with_the_gateways(
    samples: list[int], verdict: str, gateway: str
) -> None:
    level = judge(wav(samples))
    assert level.verdict == verdict
    assert check_wav(wav(samples)).verdict == gateway
    if verdict == SOUND:
        assert -24 < level.rms_dbfs < -10 and level.peak_dbfs <= 0


@given(st.binary(max_size=200))
def test_the_level_check_of_junk_is_a_level_error(data: bytes) -> None:
    try:
        judge(data)
    except LevelError:
        return
    # a few byte strings happen to be valid WAVs: then it judged them
    assert data.startswith(b"RIFF")


def test_an_empty_wav_is_a_level_error() -> None:
    with pytest.raises(LevelError):
        judge(wav([]))


@needs_tools
def test_a_draft_is_heard_then_published_as_the_same_bytes(tmp_path: Path) -> None:
    lib = AnnouncementLibrary(tmp_path)
    draft = lib.preview_text(SENTENCE, title="转账提醒", owner="zhang.wei")
    assert draft.verdict == SOUND and 2.0 < draft.duration_s < 15.0
    assert lib.list() == []  # not in the library, not served by hash
    heard = lib.draft_audio(draft.id, owner="zhang.wei").read_bytes()
    assert lib.playable_by_hash(hashlib.sha256(heard).hexdigest()) is None
    with pytest.raises(AnnouncementError) as refused:
        lib.draft(draft.id, owner="liu.yang")  # someone else's draft does not exist for them
    assert refused.value.code == "no_draft"
    with pytest.raises(AnnouncementError) as refused:
        lib.publish_draft(draft.id, owner="zhang.wei", ann_id="bad id!")
    assert refused.value.code == "bad_id"
    ann = lib.publish_draft(draft.id, owner="zhang.wei", ann_id="transfer")
    assert ann.sha256 == hashlib.sha256(heard).hexdigest()
    assert (ann.title, ann.source, ann.language) == ("转账提醒", "text", "zh-CN")
    assert (lib.root / "transfer" / "text.txt").read_text("utf-8") == SENTENCE
    assert [a.id for a in lib.list()] == ["transfer"]
    with pytest.raises(AnnouncementError):
        lib.publish_draft(draft.id, owner="zhang.wei")  # gone with the save
    assert list(lib.drafts.iterdir()) == []


@needs_tools
def test_a_discarded_or_stale_draft_is_gone(tmp_path: Path) -> None:
    lib = AnnouncementLibrary(tmp_path)
    one = lib.preview_text(SENTENCE, title="一", owner="zhang.wei", now=1_000_000.0)
    lib.discard_draft(one.id, owner="zhang.wei")
    assert not (lib.drafts / one.id).exists()
    two = lib.preview_text(SENTENCE, title="二", owner="zhang.wei")
    stale = lib.drafts / two.id
    old = stale.stat().st_mtime - DRAFT_TTL_S - 60
    os.utime(stale, (old, old))
    three = lib.preview_text(SENTENCE, title="三", owner="zhang.wei")
    assert not stale.exists() and (lib.drafts / three.id).is_dir()
    assert lib.list() == []


@pytest.mark.parametrize("draft_id", ["", "..", "../x", "a" * 32, "0" * 31, "G" * 32, "0" * 33])
def test_hostile_draft_ids_are_not_found(tmp_path: Path, draft_id: str) -> None:
    lib = AnnouncementLibrary(tmp_path)
    with pytest.raises(AnnouncementError) as refused:
        lib.draft_audio(draft_id, owner="zhang.wei")
    assert refused.value.code == "no_draft"


def test_drafts_refuse_bad_titles_and_other_languages(tmp_path: Path) -> None:
    lib = AnnouncementLibrary(tmp_path)
    for kw, code in (({"title": " "}, "bad_title"), ({"title": "t", "language": "en"},
                                                     "bad_language")):  # fmt: skip
        with pytest.raises(AnnouncementError) as refused:
            lib.preview_text(SENTENCE, owner="zhang.wei", **kw)  # type: ignore[arg-type]
        assert refused.value.code == code
    assert not lib.drafts.exists()
