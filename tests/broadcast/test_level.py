"""Proof of sound, the pure level check: generated WAV input (tone, silence, DC, noise floor)."""

from __future__ import annotations

import io
import math
import random
import struct
import wave

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.broadcast.level import (
    DISCONNECTED,
    SILENCE,
    SOUND,
    LevelError,
    check_wav,
    measure,
)

RATE = 16_000


def pcm(values: list[int]) -> bytes:
    return struct.pack(f"<{len(values)}h", *values)


def wav(values: list[int], channels: int = 1) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(pcm(values))
    return out.getvalue()


def sine(amplitude: float, seconds: float = 1.0, hz: float = 1000.0, dc: int = 0) -> list[int]:
    return [
        dc + int(amplitude * 32767 * math.sin(2 * math.pi * hz * i / RATE))
        for i in range(int(seconds * RATE))
    ]


def noise(lsb: int, seconds: float = 1.0, dc: int = 0) -> list[int]:
    rng = random.Random(7)
    return [dc + rng.randint(-lsb, lsb) for _ in range(int(seconds * RATE))]


def test_a_tone_at_line_level_is_sound_with_the_right_figures() -> None:
    level = check_wav(wav(sine(0.1)))
    assert level.verdict == SOUND and level.confirmed
    # a sine's RMS is its peak / sqrt(2): -20 dBFS peak, -23 dBFS RMS
    assert -23.5 < level.rms_dbfs < -22.5
    assert -20.5 < level.peak_dbfs < -19.5


def test_a_quiet_tone_above_and_below_the_threshold() -> None:
    assert measure(pcm(sine(0.01))).verdict == SOUND  # -43 dBFS RMS
    assert measure(pcm(sine(0.003))).verdict == SILENCE  # -53 dBFS RMS
    assert measure(pcm(sine(0.003)), threshold_dbfs=-60).verdict == SOUND


def test_the_noise_floor_of_a_connected_input_is_silence() -> None:
    level = check_wav(wav(noise(30)))  # about -64 dBFS
    assert level.verdict == SILENCE
    assert -70 < level.rms_dbfs < -60


def test_flat_zero_and_dc_are_a_disconnected_input() -> None:
    for values in ([0] * RATE, [-1200] * RATE, [5000 + (i % 2) for i in range(RATE)]):
        level = measure(pcm(values))
        assert level.verdict == DISCONNECTED and not level.confirmed
    assert measure(pcm([-1200] * RATE)).dc_offset == pytest.approx(-1200 / 32768)


def test_a_tone_riding_on_dc_is_still_sound() -> None:
    level = measure(pcm(sine(0.1, dc=8000)))
    assert level.verdict == SOUND and -23.5 < level.rms_dbfs < -22.5


def test_stereo_frames_are_judged_together() -> None:
    left = sine(0.1)
    both = [v for s in left for v in (s, 0)]
    assert check_wav(wav(both, channels=2)).verdict == SOUND


def test_bad_input_is_a_level_error() -> None:
    for data in (b"", b"\x00", b"\x00\x00\x00"):
        with pytest.raises(LevelError):
            measure(data, channels=2 if len(data) == 3 else 1)
    with pytest.raises(LevelError):
        check_wav(b"RIFF....WAVE")


@given(st.binary(max_size=4000), st.integers(1, 4))
def test_any_bytes_give_a_verdict_or_a_level_error(data: bytes, channels: int) -> None:
    try:
        level = measure(data, channels=channels)
    except LevelError:
        return
    assert level.verdict in (SOUND, SILENCE, DISCONNECTED)
    assert -120.0 <= level.rms_dbfs <= 6.1 and level.samples == len(data) // 2
