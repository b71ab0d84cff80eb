"""Proof of sound: is there sound in a captured stretch of audio? Pure, no I/O.

Theory of operation
-------------------
Where the amplifier's line-out (or a microphone near a speaker) is wired back to the gateway's
audio input, the first seconds of each broadcast are captured as 16-bit PCM and judged here::

    level = measure(pcm_bytes, channels=1)          # or check_wav(wav_bytes)
    level.verdict    # "sound" | "silence" | "disconnected"

The DC offset (mean) is removed first, then the RMS and peak of what is left are expressed in
dBFS (0 dBFS = full scale, 32768). Verdicts, first match wins:

- ``disconnected``: the samples barely move (peak-to-peak of at most ``FLAT_LSB`` steps): a flat
  zero or a constant DC value is what an input with nothing plugged in, or a dead card, reads.
  A real line or microphone always has some noise.
- ``silence``: it moves, but its RMS is below ``threshold_dbfs`` (the noise floor of a
  connected input while the amplifier plays nothing).
- ``sound``: RMS at or above the threshold (default -45 dBFS: a normalised announcement at
  line level sits around -20 dBFS; a quiet room's noise floor well below -55 dBFS).
"""

from __future__ import annotations

import io
import math
import struct
import wave
from dataclasses import dataclass
from typing import Final

DEFAULT_THRESHOLD_DBFS: Final = -45.0
FLAT_LSB: Final = 4  # peak-to-peak of at most this many steps: nothing connected
FLOOR_DBFS: Final = -120.0  # what a digital zero is reported as
SOUND: Final = "sound"
SILENCE: Final = "silence"
DISCONNECTED: Final = "disconnected"


class LevelError(ValueError):
    """The bytes are not 16-bit PCM (odd length, no samples, not a WAV we can read)."""


@dataclass(frozen=True, slots=True)
class Level:
    verdict: str
    rms_dbfs: float
    peak_dbfs: float
    dc_offset: float  # mean sample value, as a fraction of full scale
    samples: int
    threshold_dbfs: float

    @property
    def confirmed(self) -> bool:
        return self.verdict == SOUND

    def describe(self) -> dict[str, float | str | int]:
        return {
            "verdict": self.verdict,
            "rms_dbfs": round(self.rms_dbfs, 1),
            "peak_dbfs": round(self.peak_dbfs, 1),
            "dc_offset": round(self.dc_offset, 4),
            "samples": self.samples,
            "threshold_dbfs": self.threshold_dbfs,
        }


def _dbfs(value: float) -> float:
    return max(FLOOR_DBFS, 20 * math.log10(value / 32768)) if value > 0 else FLOOR_DBFS


def measure(
    pcm: bytes, *, channels: int = 1, threshold_dbfs: float = DEFAULT_THRESHOLD_DBFS
) -> Level:
    """Judge little-endian signed 16-bit PCM frames (channels interleaved, all judged together)."""
    if channels < 1 or len(pcm) % (2 * channels) or not pcm:
        raise LevelError("expected whole 16-bit PCM frames")
    n = len(pcm) // 2
    samples = struct.unpack(f"<{n}h", pcm)
    mean = sum(samples) / n
    lo, hi = min(samples), max(samples)
    ac_power = sum((s - mean) ** 2 for s in samples) / n
    rms = _dbfs(math.sqrt(ac_power))
    peak = _dbfs(max(abs(hi - mean), abs(lo - mean)))
    if hi - lo <= FLAT_LSB:
        verdict = DISCONNECTED
    elif rms < threshold_dbfs:
        verdict = SILENCE
    else:
        verdict = SOUND
    return Level(verdict, rms, peak, mean / 32768, n, threshold_dbfs)


def check_wav(wav: bytes, *, threshold_dbfs: float = DEFAULT_THRESHOLD_DBFS) -> Level:
    """:func:`measure` over a 16-bit WAV file's frames."""
    try:
        with wave.open(io.BytesIO(wav)) as w:
            if w.getsampwidth() != 2:
                raise LevelError("only 16-bit WAV is judged")
            channels = w.getnchannels()
            frames = w.readframes(w.getnframes())
    except (wave.Error, EOFError) as exc:
        raise LevelError(f"not a readable WAV: {exc}") from exc
    return measure(frames, channels=channels, threshold_dbfs=threshold_dbfs)
