"""The gateway verifier: durable sequence across restarts, trusted time, damaged state."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.clock import ManualClock
from gateway.commands.state import CommandState, StateError, load_state, save_state
from gateway.commands.verifier import ChannelVerifier
from gateway.errors import CommandRefused
from wire.commands import BroadcastStart, Limits, build_command, seal_command

NOW = 1_795_881_600.0
GW = "gw-rose-01"
KEY = Ed25519PrivateKey.generate()
LIMITS = Limits(zones=frozenset({1, 2}), max_seconds=600)


def envelope(seq: int, issued_at: float = NOW, ttl_s: float = 120) -> bytes:
    cmd = build_command(
        command_id=f"c-{seq}",
        gateway=GW,
        seq=seq,
        action=BroadcastStart((1,), 30, "drill", "Test"),
        issued_at=issued_at,
        public_key=KEY.public_key(),
        ttl_s=ttl_s,
    )
    return seal_command(cmd, KEY)


async def open_verifier(path: Path, clock: ManualClock) -> ChannelVerifier:
    return await ChannelVerifier.open(KEY.public_key(), GW, path, clock, LIMITS)


async def test_accepted_sequence_survives_a_restart_and_a_replay_is_refused(tmp_path):
    path = tmp_path / "commands" / "state.json"
    clock = ManualClock(wall=NOW)
    v = await open_verifier(path, clock)
    raw = envelope(1)
    cmd = await v.verify(raw)
    assert (cmd.seq, cmd.zones, cmd.duration_s, cmd.status) == (1, (1,), 30.0, "Test")
    assert load_state(path) == CommandState(1, NOW, "c-1")  # on disk before verify returned
    assert os.stat(path).st_mode & 0o777 == 0o600
    again = await open_verifier(path, clock)  # the daemon restarted
    with pytest.raises(CommandRefused) as err:
        await again.verify(raw)
    assert err.value.fields["code"] == "replayed"
    assert (await again.verify(envelope(2))).seq == 2


async def test_refusals_do_not_advance_the_sequence(tmp_path):
    path = tmp_path / "state.json"
    v = await open_verifier(path, ManualClock(wall=NOW))
    with pytest.raises(CommandRefused):
        await v.verify(envelope(5, issued_at=NOW - 1000))  # expired
    assert not path.exists() and v.state.last_seq == 0
    assert (await v.verify(envelope(5))).seq == 5


async def test_a_clock_reset_after_reboot_cannot_revive_an_old_command(tmp_path):
    path = tmp_path / "state.json"
    v = await open_verifier(path, ManualClock(wall=NOW))
    await v.verify(envelope(1, issued_at=NOW))
    old = envelope(2, issued_at=NOW - 600)  # captured long ago, expired at NOW - 480
    # power cut, RTC-less box boots at an old time where the captured command would be valid
    rebooted = await open_verifier(path, ManualClock(wall=NOW - 590))
    assert rebooted.trusted_now() == NOW  # the centre-signed floor
    with pytest.raises(CommandRefused) as err:
        await rebooted.verify(old)
    assert err.value.fields["code"] == "expired"


async def test_trusted_time_never_goes_backwards_within_a_run(tmp_path):
    clock = ManualClock(wall=NOW + 100)
    v = await open_verifier(tmp_path / "s.json", clock)
    assert v.trusted_now() == NOW + 100
    clock.set_wall(NOW)
    assert v.trusted_now() == NOW + 100
    with pytest.raises(CommandRefused) as err:
        await v.verify(envelope(1, issued_at=NOW - 30))  # expires at NOW + 90
    assert err.value.fields["code"] == "expired"


async def test_a_local_clock_far_ahead_is_not_persisted(tmp_path):
    path = tmp_path / "s.json"
    v = await open_verifier(path, ManualClock(wall=NOW + 10))
    await v.verify(envelope(1, issued_at=NOW))
    assert load_state(path).floor == NOW  # centre time, not the local clock


async def test_damaged_state_refuses_to_guess(tmp_path):
    path = tmp_path / "s.json"
    path.write_text("{not json")
    with pytest.raises(StateError):
        await open_verifier(path, ManualClock(wall=NOW))
    save_state(path, CommandState(7, NOW, "c-7"))
    assert (await open_verifier(path, ManualClock(wall=NOW))).state.last_seq == 7
