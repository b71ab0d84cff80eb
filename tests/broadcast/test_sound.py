"""The fourth step of a broadcast: the SoundProver runs the configured capture command (here a
fake recorder process writing generated PCM, plugged in at the command) and journals the result."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gateway.broadcast.config import AudioSection
from gateway.broadcast.sound import CONFIRMED, NO_SOUND, NOT_CHECKED, SoundProver

FAKE_RECORDER = """
import math, struct, sys
kind, seconds = sys.argv[1], float(sys.argv[2])
n = int(16000 * seconds)
if kind == "tone":
    vals = [int(3000 * math.sin(2 * math.pi * 440 * i / 16000)) for i in range(n)]
elif kind == "zero":
    vals = [0] * n
elif kind == "fail":
    sys.stderr.write("arecord: main:831: audio open error: No such device\\n"); sys.exit(1)
else:
    vals = [(i * 7919) % 41 - 20 for i in range(n)]   # a noise floor, about -60 dBFS
sys.stdout.buffer.write(struct.pack("<%dh" % n, *vals)); sys.stdout.flush()
"""


class Ticket:
    def __init__(self) -> None:
        self.stages: dict[str, dict[str, Any]] = {}
        self.event = asyncio.Event()

    def resolve(self, stage: str, detail: Mapping[str, Any]) -> None:
        self.stages[stage] = dict(detail)
        self.event.set()


async def prove(tmp_path: Path, command: tuple[str, ...]) -> tuple[dict[str, Any], list[str]]:
    events: list[tuple[str, Mapping[str, Any]]] = []

    async def record(kind: str, payload: Mapping[str, Any]) -> None:
        events.append((kind, payload))

    section = AudioSection(capture_command=command, capture_s=1.0, capture_delay_s=0.0)
    prover = SoundProver(section, record)
    ticket = Ticket()
    prover.start("cmd:c1", ticket)
    await asyncio.wait_for(ticket.event.wait(), 60)
    await prover.close()
    sound = [p for k, p in events if k == "broadcast.sound"]
    assert ticket.stages["sound"]["request_id"] == "cmd:c1"
    if command:  # journaled where an input is configured
        assert sound == [ticket.stages["sound"]]
    else:
        assert sound == []
    return ticket.stages["sound"], [k for k, _ in events]


def recorder(tmp_path: Path, kind: str, seconds: float = 5.0) -> tuple[str, ...]:
    script = tmp_path / "fake_arecord.py"
    script.write_text(FAKE_RECORDER)
    return (sys.executable, str(script), kind, str(seconds))


async def test_tone_on_the_input_is_sound_confirmed(tmp_path: Path) -> None:
    got, kinds = await prove(tmp_path, recorder(tmp_path, "tone"))
    assert got["result"] == CONFIRMED and got["rms_dbfs"] > -45
    assert kinds == ["broadcast.sound"]


async def test_silence_and_a_dead_input_are_no_sound_and_an_alert(tmp_path: Path) -> None:
    for kind, verdict in (("zero", "disconnected"), ("floor", "silence")):
        got, kinds = await prove(tmp_path, recorder(tmp_path, kind))
        assert got["result"] == NO_SOUND and got["verdict"] == verdict
        assert kinds == ["broadcast.sound", "broadcast.no_sound"]


async def test_no_input_configured_is_not_checked_never_confirmed(tmp_path: Path) -> None:
    got, kinds = await prove(tmp_path, ())
    assert got["result"] == NOT_CHECKED and "no audio input" in got["reason"]
    assert kinds == []


async def test_a_failing_or_missing_capture_is_not_checked_with_why(tmp_path: Path) -> None:
    got, _ = await prove(tmp_path, recorder(tmp_path, "fail"))
    assert got["result"] == NOT_CHECKED and "No such device" in got["reason"]
    got, _ = await prove(tmp_path, ("/nonexistent/arecord",))
    assert got["result"] == NOT_CHECKED and "could not run" in got["reason"]
    got, _ = await prove(tmp_path, recorder(tmp_path, "tone", seconds=0.2))
    assert got["result"] == NOT_CHECKED and "of 32000 bytes" in got["reason"]
