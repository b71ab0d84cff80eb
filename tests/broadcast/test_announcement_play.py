"""A command naming a centre announcement: prepared (fetched, verified) before anything moves,
played exactly (never a local clip of the same id, never a file changed after the check), or
refused with its code. The player is a fake command that records what it was given."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import pytest

from gateway.broadcast.audio import MAX_PREPARED, AudioPlayer
from gateway.broadcast.config import AudioSection, ClipSection
from gateway.broadcast.library import TAMPERED, UNAVAILABLE, AnnouncementCache
from gateway.broadcast.remote import RemoteTrigger, VerifiedCommand
from gateway.errors import CommandRefused
from tests.broadcast.test_announcement_cache import GOOD, SHA, FakeCentre
from tests.broadcast.test_remote_audio import RecordingController


def command(sha: str = SHA) -> VerifiedCommand:
    return VerifiedCommand(
        command_id="c1", gateway="gw-01", action="broadcast.start", seq=1, issued_at=0.0,
        expires_at=120.0, key_id="0" * 16, digest="0" * 64, zones=(1,), duration_s=30.0,
        announcement="fire", announcement_sha256=sha,
    )  # fmt: skip


def rig(tmp_path: Path, centre: FakeCentre, *, audio: bool = True):  # type: ignore[no-untyped-def]
    ctl = RecordingController()
    tmp_path.mkdir(parents=True, exist_ok=True)
    marker = tmp_path / "played"
    script = tmp_path / "player.sh"
    script.write_text(f'#!/bin/sh\nsha256sum "$1" >> {marker}\n')
    script.chmod(0o755)
    (tmp_path / "fire.wav").write_bytes(b"the local clip of the same id")
    section = AudioSection(
        enabled=True,
        command=(str(script),),
        repeat=False,
        clips=(ClipSection(announcement="fire", file="fire.wav"),),
    )
    player = AudioPlayer(section, ctl.record, tmp_path) if audio else None
    cache = AnnouncementCache(tmp_path / "ann", centre, ctl.record)
    trig = RemoteTrigger(ctl, None, cache=cache, audio=player)  # type: ignore[arg-type]
    return ctl, trig, player, marker


async def wait_file(path: Path) -> str:
    for _ in range(500):
        if path.exists() and path.read_text():
            return path.read_text()
        await asyncio.sleep(0.01)
    raise AssertionError("the player never ran")


async def test_the_fetched_announcement_plays_not_the_local_clip(tmp_path: Path) -> None:
    ctl, trig, player, marker = rig(tmp_path, FakeCentre({SHA: GOOD}))
    await trig.prepare(command())
    assert [k for k, _ in ctl.records] == ["broadcast.announcement_fetched"]
    await player.start("fire", "cmd:c1")
    played = await wait_file(marker)
    await player.stop()
    assert played.split()[0] == SHA and played.split()[1].endswith(f"{SHA}.wav")
    # another request with the same id and no hash: the local clip, as before
    marker.unlink()
    await player.start("fire", "cmd:c2")
    local = await wait_file(marker)
    assert local.split()[1] == str(tmp_path / "fire.wav")


async def test_a_file_changed_after_the_check_is_not_played(tmp_path: Path) -> None:
    ctl, trig, player, marker = rig(tmp_path, FakeCentre({SHA: GOOD}))
    await trig.prepare(command())
    (tmp_path / "ann" / f"{SHA}.wav").write_bytes(b"swapped after the check")
    await player.start("fire", "cmd:c1")
    await asyncio.sleep(0.2)
    await player.stop()
    assert not marker.exists()
    kind, payload = ctl.records[-1]
    assert kind == "broadcast.announcement_tampered" and payload["where"] == "player"


async def test_tampered_download_and_no_player_are_refusals_with_codes(tmp_path: Path) -> None:
    ctl, trig, _, marker = rig(tmp_path, FakeCentre({SHA: GOOD + b"!"}))
    with pytest.raises(CommandRefused) as exc:
        await trig.prepare(command())
    assert exc.value.fields["code"] == TAMPERED
    assert ctl.records[-1][0] == "broadcast.announcement_refused"
    assert ctl.records[-1][1]["code"] == TAMPERED and ctl.records[-1][1]["command_id"] == "c1"
    ctl, trig, _, _ = rig(tmp_path / "b", FakeCentre({SHA: GOOD}), audio=False)
    with pytest.raises(CommandRefused, match="no audio player") as exc:
        await trig.prepare(command())
    assert exc.value.fields["code"] == UNAVAILABLE
    assert not marker.exists()


async def test_a_command_without_a_hash_needs_no_preparation(tmp_path: Path) -> None:
    ctl, trig, _, _ = rig(tmp_path, FakeCentre({}))
    await trig.prepare(command(sha=""))
    assert ctl.records == []
    assert hashlib.sha256(GOOD).hexdigest() == SHA


async def test_the_local_verifier_path_prepares_too(tmp_path: Path) -> None:
    """A command through RemoteTrigger.handle_envelope (the in-memory stand-in verifier) is
    refused the same way when its announcement cannot be had: never the local clip instead."""
    from gateway.broadcast.remote import LocalTestSigner
    from gateway.clock import ManualClock

    ctl, trig, player, marker = rig(tmp_path, FakeCentre({}))
    signer = LocalTestSigner.generate("gw-01")
    trig.verifier = signer.verifier(ManualClock(wall=1_790_000_000.0))
    env = signer.envelope(
        "broadcast.start",
        {"zones": [1], "duration_s": 30, "announcement": "fire", "status": "Actual",
         "announcement_sha256": SHA},
        now=1_790_000_000.0,
    )  # fmt: skip
    assert await trig.handle_envelope(env) is None
    assert ctl.starts == []
    kinds = [k for k, _ in ctl.records]
    assert kinds[-2:] == ["broadcast.announcement_refused", "broadcast.command_refused"]
    assert player is not None and not marker.exists()


def test_a_full_table_of_prepared_announcements_drops_only_the_oldest(tmp_path: Path) -> None:
    section = AudioSection(enabled=True, command=("true",), repeat=False, clips=())
    player = AudioPlayer(section, RecordingController().record, tmp_path)
    for i in range(MAX_PREPARED + 5):
        player.prepare(f"r{i}", tmp_path / f"{i}.wav", f"{i:064x}")
    kept = player._prepared  # the table itself: what start() will find per request
    assert len(kept) == MAX_PREPARED
    assert "r0" not in kept and "r4" not in kept
    assert f"r{MAX_PREPARED + 4}" in kept and "r5" in kept  # the newest, about to play, stays
