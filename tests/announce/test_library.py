"""The centre's announcement library: conversion, normalisation, hostile uploads, TTS, CLI."""

from __future__ import annotations

import hashlib
import io
import json
import math
import shutil
import struct
import subprocess
import wave
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from centre.announce.cli import add_announce_commands
from centre.announce.library import AnnouncementError, AnnouncementLibrary
from centre.announce.media import MAX_UPLOAD_BYTES, SAMPLE_RATE, MediaError, normalise, speak
from gateway.broadcast.level import check_wav

pytestmark = pytest.mark.skipif(
    not (shutil.which("ffmpeg") and shutil.which("espeak-ng")),
    reason="ffmpeg/espeak-ng missing (make bootstrap installs them)",
)

SENTENCE = "近期电信诈骗高发，请勿向陌生人转账，如有疑问请拨打一一零。"


def tone(path: Path, seconds: float, *, amplitude: float, rate: int = 44_100) -> Path:
    """A 440 Hz stereo WAV at the given amplitude (0..1)."""
    n = int(seconds * rate)
    frames = b"".join(
        struct.pack("<hh", v, v)
        for v in (int(amplitude * 32767 * math.sin(2 * math.pi * 440 * i / rate)) for i in range(n))
    )
    with wave.open(str(path), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(frames)
    return path


def rms_dbfs(wav: bytes) -> float:
    with wave.open(io.BytesIO(wav)) as w:
        raw = w.readframes(w.getnframes())
    samples = struct.unpack(f"<{len(raw) // 2}h", raw)
    return 20 * math.log10(math.sqrt(sum(s * s for s in samples) / len(samples)) / 32768)


def test_upload_becomes_16k_mono_normalised_and_keeps_the_original(tmp_path: Path) -> None:
    quiet = tone(tmp_path / "quiet.wav", 2.0, amplitude=0.01)
    loud = tone(tmp_path / "loud.wav", 2.0, amplitude=0.9)
    lib = AnnouncementLibrary(tmp_path / "centre")
    a = lib.add_upload(quiet, title="安静", ann_id="quiet")
    b = lib.add_upload(loud, title="响亮", ann_id="loud")
    for ann, src in ((a, quiet), (b, loud)):
        wav = lib.playable(ann.id).read_bytes()
        assert hashlib.sha256(wav).hexdigest() == ann.sha256
        with wave.open(io.BytesIO(wav)) as w:
            assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, SAMPLE_RATE)
        assert 1.9 <= ann.duration_s <= 2.1
        assert (lib.root / ann.id / "original.wav").read_bytes() == src.read_bytes()
    # -40 dBFS and -1 dBFS in; loudnorm brings both to within a few dB of each other
    before = rms_dbfs(quiet.read_bytes()) - rms_dbfs(loud.read_bytes())
    after = rms_dbfs(lib.playable("quiet").read_bytes()) - rms_dbfs(
        lib.playable("loud").read_bytes()
    )
    assert before < -30
    assert abs(after) < 3, after
    assert [x.id for x in lib.list()] == ["quiet", "loud"]
    assert lib.playable_by_hash(a.sha256) == lib.playable("quiet")
    with pytest.raises(AnnouncementError) as exc:
        lib.add_upload(quiet, title="again", ann_id="quiet")
    assert exc.value.code == "exists"


def test_tampered_file_at_the_centre_is_not_served_by_hash(tmp_path: Path) -> None:
    lib = AnnouncementLibrary(tmp_path)
    ann = lib.add_upload(tone(tmp_path / "t.wav", 1.0, amplitude=0.3), title="t")
    path = lib.playable(ann.id)
    path.write_bytes(path.read_bytes()[:-2] + b"\x00\x01")
    assert lib.playable_by_hash(ann.sha256) is None


def test_mp3_and_m4a_are_accepted(tmp_path: Path) -> None:
    src = tone(tmp_path / "t.wav", 1.0, amplitude=0.3)
    lib = AnnouncementLibrary(tmp_path / "c")
    for ext in ("mp3", "m4a"):
        out = tmp_path / f"t.{ext}"
        subprocess.run(["ffmpeg", "-v", "error", "-i", str(src), str(out)], check=True)
        ann = lib.add_upload(out, title=ext, ann_id=ext)
        assert 0.9 <= ann.duration_s <= 1.2


def test_text_to_speech_of_a_fixed_sentence_is_plausible_and_audible(tmp_path: Path) -> None:
    wav = speak(SENTENCE)
    with wave.open(io.BytesIO(wav)) as w:
        seconds = w.getnframes() / w.getframerate()
    # 28 syllables of Mandarin: espeak-ng speaks about 3-6 per second
    assert 3.0 <= seconds <= 15.0, seconds
    assert check_wav(wav).verdict == "sound"
    ann = AnnouncementLibrary(tmp_path).add_text(SENTENCE, title="防诈骗")
    assert (AnnouncementLibrary(tmp_path).root / ann.id / "text.txt").read_text() == SENTENCE
    assert ann.source == "text"


@pytest.mark.parametrize(
    "data",
    [b"", b"RIFF\x00\x00\x00\x00WAVE", b"ID3" + b"\x00" * 100, b"\x00" * 5000, "文本".encode()],
)
def test_known_garbage_is_a_media_error(tmp_path: Path, data: bytes) -> None:
    lib = AnnouncementLibrary(tmp_path)
    with pytest.raises(MediaError):
        lib.add_bytes(data, ".mp3", title="x")
    assert lib.list() == []


def test_size_cap_and_wrong_suffix(tmp_path: Path) -> None:
    lib = AnnouncementLibrary(tmp_path)
    with pytest.raises(MediaError, match="above"):
        lib.add_bytes(b"\x00" * (MAX_UPLOAD_BYTES + 1), ".wav", title="x")
    with pytest.raises(MediaError, match="WAV, MP3 or M4A"):
        lib.add_bytes(b"RIFF", ".exe", title="x")


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    data=st.one_of(
        st.binary(max_size=4096),
        st.binary(max_size=2048).map(lambda b: b"RIFF\xff\xff\xff\xffWAVEfmt " + b),
        st.binary(max_size=2048).map(lambda b: b"ID3\x04\x00\x00\x00\x00\x00\x00" + b),
        st.binary(max_size=2048).map(lambda b: b"\x00\x00\x00\x18ftypM4A " + b),
    ),
    suffix=st.sampled_from([".wav", ".mp3", ".m4a"]),
)
def test_garbage_bytes_raise_only_media_error(tmp_path: Path, data: bytes, suffix: str) -> None:
    p = tmp_path / f"in{suffix}"
    p.write_bytes(data)
    try:
        wav = normalise(p)
    except MediaError as exc:
        assert exc.reason
    else:  # whatever ffmpeg made of it, it is our one playable format
        with wave.open(io.BytesIO(wav)) as w:
            assert (w.getnchannels(), w.getframerate()) == (1, SAMPLE_RATE)


def test_cli_add_say_list_in_chinese(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("--data", default=str(tmp_path))
    add_announce_commands(parser.add_subparsers(dest="cmd", required=True))

    def run(*argv: str) -> int:
        args = parser.parse_args(list(argv))
        return int(args.func(args))

    src = tone(tmp_path / "t.wav", 1.0, amplitude=0.3)
    assert run("announce", "add", str(src), "--title", "测试", "--id", "t1") == 0
    assert "已添加播报 t1" in capsys.readouterr().out
    assert run("announce", "say", SENTENCE, "--title", "转账", "--id", "t2", "--json") == 0
    said = json.loads(capsys.readouterr().out)
    assert said["id"] == "t2" and said["source"] == "text"
    assert run("announce", "list") == 0
    out = capsys.readouterr().out
    assert "t1" in out and "文字转语音" in out and "录音" in out
    bad = tmp_path / "bad.mp3"
    bad.write_bytes(b"not audio")
    assert run("announce", "add", str(bad), "--title", "x") == 2
    assert "此文件不能用作播报" in capsys.readouterr().err
    assert run("announce", "add", str(src), "--title", "x", "--id", "bad id!") == 2
    assert "编号只能使用" in capsys.readouterr().err


@pytest.mark.parametrize("bad", ["..", ".", ".drafts", "-x", "a/b"])
def test_an_id_that_names_a_folder_outside_the_library_is_refused(tmp_path: Path, bad: str) -> None:
    lib = AnnouncementLibrary(tmp_path / "lib")
    with pytest.raises(AnnouncementError) as refused:
        lib.get(bad)
    assert refused.value.code == "bad_id"
