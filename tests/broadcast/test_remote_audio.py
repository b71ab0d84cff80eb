"""Remote command verification (the local stand-in), the remote trigger's gate, audio."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import wire
from gateway.broadcast.audio import AudioPlayer
from gateway.broadcast.config import AudioSection, ClipSection
from gateway.broadcast.remote import LocalTestSigner, RemoteTrigger, VerifiedCommand
from gateway.clock import ManualClock
from gateway.errors import CommandRefused

NOW = 1_790_000_000.0


@pytest.fixture
def signer() -> LocalTestSigner:
    return LocalTestSigner.generate("gw-01")


async def test_good_command_verifies(signer):
    v = signer.verifier(ManualClock(wall=NOW))
    cmd = await v.verify(signer.start((1, 2), 90, now=NOW, announcement="fire"))
    assert isinstance(cmd, VerifiedCommand)
    assert (cmd.action, cmd.zones, cmd.duration_s, cmd.seq) == ("broadcast.start", (1, 2), 90, 1)
    assert cmd.announcement == "fire" and len(cmd.digest) == 64


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (
            lambda s, o: LocalTestSigner(Ed25519PrivateKey.generate(), "gw-01").start(
                (1,), 5, now=NOW
            ),
            "signature",
        ),
        (lambda s, o: s.start((1,), 5, now=NOW, gateway="gw-02"), "another gateway"),
        (lambda s, o: o, "sequence not above"),
        (lambda s, o: s.start((1,), 5, now=NOW, seq=1), "sequence not above"),
        (lambda s, o: s.start((1,), 5, now=NOW, seq=10_000_000), "jumps"),
        (lambda s, o: s.start((1,), 5, now=NOW - 500), "expired"),
        (lambda s, o: s.start((1,), 5, now=NOW + 500), "not yet valid"),
        (lambda s, o: o + b" ", "envelope refused"),
        (lambda s, o: s.envelope("broadcast.selfdestruct", {}, now=NOW), "unknown action"),
        (lambda s, o: wire.seal("batch", {"x": 1}, s.private_key), "envelope refused"),
    ],
)
async def test_bad_commands_are_refused(signer, make, reason):
    v = signer.verifier(ManualClock(wall=NOW))
    first = signer.start((1,), 5, now=NOW)
    await v.verify(first)  # seq 1 accepted
    with pytest.raises(CommandRefused) as err:
        await v.verify(make(signer, first))
    assert reason in err.value.reason


class RecordingController:
    def __init__(self) -> None:
        self.records: list[tuple[str, dict[str, Any]]] = []
        self.starts: list[Any] = []

    async def record(self, kind: str, payload: dict[str, Any]) -> None:
        self.records.append((kind, dict(payload)))

    def submit_start(self, req: Any) -> str:
        self.starts.append(req)
        return "ticket"

    def submit_stop(self, source: str, reason: str = "") -> None:
        self.starts.append(("stop", source))


async def test_remote_trigger_records_and_gates(signer):
    ctl = RecordingController()
    trig = RemoteTrigger(ctl, signer.verifier(ManualClock(wall=NOW)))  # type: ignore[arg-type]
    assert await trig.handle_envelope(signer.start((3,), 60, now=NOW)) == "ticket"
    assert await trig.handle_envelope(signer.start((3,), 60, now=NOW - 999)) is None
    kinds = [k for k, _ in ctl.records]
    assert kinds == [
        "broadcast.command_received",
        "broadcast.command_verified",
        "broadcast.command_received",
        "broadcast.command_refused",
    ]
    assert ctl.records[3][1]["reason"] == "expired"
    (req,) = ctl.starts
    assert req.source == "remote" and req.zones == (3,) and req.request_id == "cmd:c1"
    with pytest.raises(TypeError):
        await trig.execute({"action": "broadcast.start"})  # type: ignore[arg-type]


async def test_audio_without_aplay_is_reported_not_fatal(tmp_path):
    ctl = RecordingController()
    section = AudioSection(
        enabled=True,
        command=("no-such-player-here",),
        clips=(ClipSection(announcement="fire", file="fire.wav"),),
    )
    player = AudioPlayer(section, ctl.record, tmp_path)
    await player.start("fire", "r1")
    for _ in range(100):
        if ctl.records:
            break
        await asyncio.sleep(0.01)
    await player.stop()
    ((kind, payload),) = ctl.records
    assert kind == "broadcast.audio_unavailable" and payload["request_id"] == "r1"


async def test_audio_plays_until_stopped(tmp_path):
    ctl = RecordingController()
    marker = tmp_path / "played"
    script = tmp_path / "player.sh"
    script.write_text(f'#!/bin/sh\necho "$1" >> {marker}\nsleep 0.05\n')
    script.chmod(0o755)
    section = AudioSection(enabled=True, command=(str(script),), default_file="clip.wav")
    player = AudioPlayer(section, ctl.record, tmp_path)
    await player.start("unknown-id", "r2")
    await asyncio.sleep(0.3)
    await player.stop()
    lines = marker.read_text().split()
    assert lines and all(line == str(tmp_path / "clip.wav") for line in lines)
    assert ctl.records == []
