"""Is there sound in an announcement? The centre's level check, pure, no I/O.

The console shows it beside a text-to-speech preview before anyone saves it: a voice that came
out silent (an engine with no Mandarin voice installed, a text of punctuation only) is caught
at the centre, not on the loudspeakers. The thresholds are the gateway's proof-of-sound ones
(``gateway/broadcast/level.py``; the centre may not import the gateway), judged on the
playable form (16-bit PCM, after loudness normalisation)::

    level = judge(wav_bytes)       # Level(verdict="sound", rms_dbfs=-17.2, peak_dbfs=-1.6)

Verdicts, first match wins: ``silent`` (the samples barely move, or RMS below
:data:`SILENCE_DBFS`), ``quiet`` (RMS below :data:`QUIET_DBFS`: it will be hard to hear),
``sound``.
"""

from __future__ import annotations

import io
import math
import sys
import wave
from array import array
from dataclasses import dataclass
from typing import Final

SILENCE_DBFS: Final = -45.0  # the gateway's DEFAULT_THRESHOLD_DBFS
QUIET_DBFS: Final = -30.0  # normalised speech sits near -17 dBFS RMS
FLAT_LSB: Final = 4  # peak-to-peak of at most this many steps: nothing there
FLOOR_DBFS: Final = -120.0
SOUND: Final = "sound"
QUIET: Final = "quiet"
SILENT: Final = "silent"


class LevelError(ValueError):
    """The bytes are not a 16-bit PCM WAV with samples in it."""


@dataclass(frozen=True, slots=True)
class Level:
    verdict: str
    rms_dbfs: float
    peak_dbfs: float


def _dbfs(value: float) -> float:
    return max(FLOOR_DBFS, 20 * math.log10(value / 32768)) if value > 0 else FLOOR_DBFS


def judge(wav: bytes) -> Level:
    """The level of a 16-bit WAV (all channels together); LevelError if it is not one."""
    try:
        with wave.open(io.BytesIO(wav)) as w:
            if w.getsampwidth() != 2:
                raise LevelError("only 16-bit WAV is judged")
            frames = w.readframes(w.getnframes())
    except (wave.Error, EOFError) as exc:
        raise LevelError(f"not a readable WAV: {exc}") from exc
    samples = array("h")
    samples.frombytes(frames[: len(frames) - len(frames) % 2])
    if sys.byteorder == "big":
        samples.byteswap()
    if not samples:
        raise LevelError("the WAV holds no samples")
    n = len(samples)
    mean = sum(samples) / n
    power = max(0.0, math.fsum(s * s for s in samples) / n - mean * mean)
    lo, hi = min(samples), max(samples)
    rms = _dbfs(math.sqrt(power))
    peak = _dbfs(max(abs(hi - mean), abs(lo - mean)))
    if hi - lo <= FLAT_LSB or rms < SILENCE_DBFS:
        verdict = SILENT
    elif rms < QUIET_DBFS:
        verdict = QUIET
    else:
        verdict = SOUND
    return Level(verdict, round(rms, 1), round(peak, 1))
