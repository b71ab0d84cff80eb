"""Uploads and typed text to one playable form: 16 kHz mono 16-bit WAV, loudness normalised.

Theory of operation
-------------------
An upload (WAV, MP3 or M4A from an officer's phone or PC) is hostile input: it is capped in
size, probed with ``ffprobe`` (one audio stream, a known container, a bounded duration) and
converted once with ``ffmpeg`` through the ``loudnorm`` filter (EBU R128: integrated loudness
``TARGET_LUFS``, true peak ``TRUE_PEAK_DB``), resampled to 16 kHz mono PCM. Typed Mandarin text
is rendered offline by Debian's ``espeak-ng`` (voice ``cmn``) and goes through the same
normalisation. Every failure of the tools (unreadable bytes, a timeout, a missing binary, an
empty result) is one :class:`MediaError` with a short reason; nothing else escapes::

    wav = normalise(Path("upload.mp3"))     # bytes of the playable WAV, or MediaError
    wav = speak("请勿向陌生人转账。")           # espeak-ng -v cmn, then normalise
"""

from __future__ import annotations

import io
import json
import subprocess
import tempfile
import wave
from pathlib import Path
from typing import Final

MAX_UPLOAD_BYTES: Final = 20 * 1024 * 1024
MAX_DURATION_S: Final = 600.0
MAX_TEXT_CHARS: Final = 1000
TOOL_TIMEOUT_S: Final = 120.0
SAMPLE_RATE: Final = 16_000
TARGET_LUFS: Final = -16.0
TRUE_PEAK_DB: Final = -1.5
LOUDNESS_RANGE: Final = 11.0
TTS_VOICE: Final = "cmn"
# ffprobe's format_name for the containers we accept (M4A is the mp4 family).
ACCEPTED_FORMATS: Final = frozenset({"wav", "mp3", "mov,mp4,m4a,3gp,3g2,mj2"})


class MediaError(Exception):
    """The only error of this module: the input cannot become a playable announcement."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _run(argv: list[str], *, data: bytes | None = None) -> bytes:
    try:
        done = subprocess.run(
            argv, input=data, capture_output=True, timeout=TOOL_TIMEOUT_S, check=False
        )
    except FileNotFoundError as exc:
        raise MediaError(f"{argv[0]} is not installed (make bootstrap installs it)") from exc
    except subprocess.TimeoutExpired as exc:
        raise MediaError(f"{argv[0]} took longer than {TOOL_TIMEOUT_S:g} s") from exc
    except OSError as exc:
        raise MediaError(f"{argv[0]} could not run: {exc}") from exc
    if done.returncode != 0:
        last = done.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or ["no output"]
        raise MediaError(f"{argv[0]} failed: {last[0][:200]}")
    return done.stdout


def probe(path: Path) -> float:
    """Duration in seconds of an accepted upload; MediaError when it is not one."""
    size = path.stat().st_size
    if size == 0:
        raise MediaError("the file is empty")
    if size > MAX_UPLOAD_BYTES:
        raise MediaError(f"the file is {size} bytes, above {MAX_UPLOAD_BYTES}")
    out = _run(
        [
            "ffprobe",
            "-v",
            "error",
            "-of",
            "json",
            "-show_entries",
            "format=format_name,duration:stream=codec_type",
            str(path),
        ]
    )
    try:
        info = json.loads(out)
        fmt = str(info["format"]["format_name"])
        duration = float(info["format"]["duration"])
        kinds = [str(s.get("codec_type")) for s in info.get("streams", [])]
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise MediaError("ffprobe could not read the file as audio") from exc
    if fmt not in ACCEPTED_FORMATS:
        raise MediaError(f"container {fmt[:40]!r} is not WAV, MP3 or M4A")
    if kinds.count("audio") != 1:
        raise MediaError("the file must hold exactly one audio stream")
    if not 0.1 <= duration <= MAX_DURATION_S:
        raise MediaError(f"duration {duration:.1f} s is outside 0.1..{MAX_DURATION_S:g} s")
    return duration


def normalise(path: Path) -> bytes:
    """The playable WAV (16 kHz mono s16, loudness normalised) of an upload at ``path``."""
    probe(path)
    return _convert(path)


def _convert(path: Path) -> bytes:
    with tempfile.TemporaryDirectory(prefix="announce-out-") as tmp:
        out = Path(tmp) / "play.wav"  # a file, not a pipe: the WAV header then has its length
        _run(
            [
                "ffmpeg",
                "-nostdin",
                "-v",
                "error",
                "-i",
                str(path),
                "-vn",
                "-map",
                "0:a:0",
                "-af",
                f"loudnorm=I={TARGET_LUFS:g}:TP={TRUE_PEAK_DB:g}:LRA={LOUDNESS_RANGE:g}",
                "-ar",
                str(SAMPLE_RATE),
                "-ac",
                "1",
                "-c:a",
                "pcm_s16le",
                "-t",
                f"{MAX_DURATION_S:g}",
                "-f",
                "wav",
                "-bitexact",
                str(out),
            ]
        )
        wav = out.read_bytes() if out.exists() else b""
    check_playable(wav)
    return wav


def check_playable(wav: bytes) -> float:
    """Duration of a playable WAV (our one format); MediaError otherwise."""
    try:
        with wave.open(io.BytesIO(wav)) as w:
            ok = (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, SAMPLE_RATE)
            frames = w.getnframes()
    except (wave.Error, EOFError, ValueError) as exc:
        raise MediaError("the converted audio is not a valid WAV") from exc
    if not ok:
        raise MediaError("the converted audio is not 16 kHz mono 16-bit")
    if frames == 0:
        raise MediaError("the converted audio is empty")
    return frames / SAMPLE_RATE


def speak(text: str, voice: str = TTS_VOICE) -> bytes:
    """Typed text → playable WAV, offline: espeak-ng (Debian), then :func:`normalise`."""
    text = " ".join(text.split())
    if not text:
        raise MediaError("the text is empty")
    if len(text) > MAX_TEXT_CHARS:
        raise MediaError(f"the text has {len(text)} characters, above {MAX_TEXT_CHARS}")
    with tempfile.TemporaryDirectory(prefix="announce-") as tmp:
        src, raw = Path(tmp) / "text.txt", Path(tmp) / "speech.wav"
        src.write_text(text, encoding="utf-8")
        _run(["espeak-ng", "-v", voice, "-b", "1", "-f", str(src), "-w", str(raw)])
        if not raw.exists() or raw.stat().st_size <= 44:
            raise MediaError("espeak-ng produced no audio")
        return _convert(raw)
