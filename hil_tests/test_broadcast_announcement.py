"""HIL (issue 23): an announcement uploaded at a real centre plays on the simulated compound.

Real ``compound-centre serve``, real ``compound-gw run`` on the simulated relay boards, mTLS
provisioning on loopback. The gateway's audio player and audio input are the configured
commands (``broadcast.audio.command`` / ``capture_command``), here two small scripts: a fake
player that records the file it was given and that file's sha256 instead of sounding it, and a
fake recorder that "hears" a tone. Nothing of ours is patched.

1. ``compound-centre announce add`` → ``compound-centre broadcast --message <id>``: the gateway
   lacks the announcement, fetches it by hash from the centre, verifies it, then the relays go
   on and the player is handed exactly that file (same sha256); proof of sound is confirmed
   and acked to the centre as the fourth stage.
2. the gateway's cached copy is tampered on disk: detected, deleted, fetched again; the player
   still gets the right bytes.
3. the cached copy is tampered and the centre's copy too: refused with its reason (journaled,
   the centre shows ``refused``); no relay moves, nothing is played.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import struct
import subprocess
import sys
import time
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from centre.commands.store import SqliteCommandStore
from centre.pki import CentrePaths
from gateway.journal import read_events
from hil_tests.benchfile import load_bench
from hil_tests.compound import SimCompound
from hil_tests.demo import Centre
from hil_tests.test_commands_e2e import COMPOUND, order, wait_status

pytestmark = [pytest.mark.hil, pytest.mark.sim_only]

FAKE_PLAYER = """
import hashlib, json, sys
record, clip = sys.argv[1], sys.argv[2]
data = open(clip, "rb").read()
with open(record, "a") as f:
    f.write(json.dumps({"clip": clip, "sha256": hashlib.sha256(data).hexdigest(),
                        "bytes": len(data)}) + "\\n")
"""
FAKE_RECORDER = """
import math, struct, sys
n = 16000 * 5
sys.stdout.buffer.write(struct.pack("<%dh" % n,
    *[int(3000 * math.sin(2 * math.pi * 440 * i / 16000)) for i in range(n)]))
"""


def tone_wav(path: Path) -> Path:
    rate = 22_050
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(
            b"".join(
                struct.pack("<h", int(8000 * math.sin(2 * math.pi * 523 * i / rate)))
                for i in range(rate)
            )
        )
    return path


def played(record: Path) -> list[dict[str, Any]]:
    if not record.exists():
        return []
    return [json.loads(line) for line in record.read_text().splitlines()]


def events(compound: SimCompound, kind: str) -> list[dict[str, Any]]:
    return [dict(e.payload) for e in read_events(compound.journal_path) if e.kind == kind]


def wait_for(what: str, check: Any, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def centre_acks(centre: Centre, gateway_id: str) -> list[tuple[str, str, str]]:
    async def go() -> list[tuple[str, str, str]]:
        store = await SqliteCommandStore.open(CentrePaths(centre.folder).database)
        try:
            return await store.acks(gateway_id)
        finally:
            await store.close()

    return asyncio.run(go())


@pytest.fixture
def site(tmp_path: Path) -> Iterator[tuple[SimCompound, Centre, Path]]:
    centre = Centre(tmp_path / "centre")
    assert centre.cli("init").returncode == 0
    tok = json.loads(centre.cli("token", "create", "--compound", COMPOUND, "--json").stdout)
    centre.start()
    (tmp_path / "fake_player.py").write_text(FAKE_PLAYER)
    (tmp_path / "fake_arecord.py").write_text(FAKE_RECORDER)
    record = tmp_path / "played.jsonl"
    py = json.dumps(sys.executable)
    audio = "\n".join(
        [
            "[broadcast.audio]",
            "enabled = true",
            "repeat = false",
            f'command = [{py}, "{tmp_path / "fake_player.py"}", "{record}"]',
            f'capture_command = [{py}, "{tmp_path / "fake_arecord.py"}"]',
            "capture_s = 1.0",
            "capture_delay_s = 0.1",
        ]
    )
    compound = SimCompound(
        load_bench(),
        tmp_path / "site",
        gateway_id="gw-ann-01",
        extra_config=audio,
        sync_keys=("first_delay_max_s = 0.2", "backoff_initial_s = 0.2", "backoff_max_s = 1.0"),
    )
    try:
        compound.start()
        prov = subprocess.run(
            [sys.executable, "-m", "gateway.cli", "provision",
             "--config", str(compound.config_path), "--centre", centre.url,
             "--ca-fingerprint", tok["ca_fingerprint"]],
            input=tok["token"] + "\n", capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert prov.returncode == 0, prov.stderr or prov.stdout
        yield compound, centre, record
    finally:
        compound.stop()
        centre.stop()


def test_an_uploaded_announcement_is_fetched_verified_played_and_a_tampered_one_refused(
    site: tuple[SimCompound, Centre, Path], tmp_path: Path
) -> None:
    compound, centre, record = site
    board = compound.board(compound.bench.relay_boards[0].name)
    out = centre.cli(
        "announce", "add", str(tone_wav(tmp_path / "fraud.wav")),
        "--title", "防诈骗提示", "--id", "fraud-49", "--json",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    ann = json.loads(out.stdout)
    cache = compound.folder / "data" / "announcements" / f"{ann['sha256']}.wav"
    assert not cache.exists()  # the gateway lacks it
    gw = compound.daemon()
    gw.start()

    # 1. fetched first, verified, played exactly; sound confirmed, acked as the fourth stage
    cid = order(centre, "--zones", "1", "--seconds", "2", "--message", "fraud-49")
    wait_status(centre, cid, "done", timeout=60)
    fetched = events(compound, "broadcast.announcement_fetched")
    assert [(f["announcement"], f["sha256"]) for f in fetched] == [("fraud-49", ann["sha256"])]
    assert hashlib.sha256(cache.read_bytes()).hexdigest() == ann["sha256"]
    (play,) = wait_for("the player", lambda: played(record))
    assert play["sha256"] == ann["sha256"] and Path(play["clip"]) == cache
    accepted = events(compound, "command.accepted")
    assert accepted[-1]["announcement"] == "fraud-49"
    sound = wait_for("sound", lambda: events(compound, "broadcast.sound"))
    assert sound[0]["result"] == "confirmed"
    stages = wait_for(
        "the sound ack",
        lambda: [a for a in centre_acks(centre, compound.gateway_id) if a[1] == "sound"],
    )
    assert stages[0][0] == cid and stages[0][2].startswith("confirmed")
    shown = json.loads(centre.cli("commands", "--json").stdout)
    assert [c["sound"] for c in shown if c["command_id"] == cid] == ["confirmed"]

    # 2. the cached copy tampered on the gateway: detected, fetched again, the right bytes play
    cache.write_bytes(cache.read_bytes()[:-4] + b"\x01\x02\x03\x04")
    cid2 = order(centre, "--zones", "1", "--seconds", "1", "--message", "fraud-49")
    wait_status(centre, cid2, "done", timeout=60)
    tampered = events(compound, "broadcast.announcement_tampered")
    assert [t["where"] for t in tampered] == ["cache"]
    plays = wait_for("the second play", lambda: played(record)[1:])
    assert plays[0]["sha256"] == ann["sha256"]

    # 3. tampered at the gateway and the centre's copy damaged too: refused with its reason
    moved = len(board.changes)
    cache.write_bytes(b"RIFF tampered")
    centre_copy = centre.folder / "announcements" / "fraud-49" / "play.wav"
    centre_copy.write_bytes(centre_copy.read_bytes()[:-2] + b"\x7f\x7f")
    cid3 = order(centre, "--zones", "1", "--seconds", "1", "--message", "fraud-49")
    got = wait_status(centre, cid3, "refused", timeout=60)
    assert got["reason"].startswith("announcement_unknown:"), got["reason"]
    refused = events(compound, "broadcast.announcement_refused")
    assert [(r["command_id"], r["code"]) for r in refused] == [(cid3, "announcement_unknown")]
    assert len(board.changes) == moved and not any(board.coils)
    assert len(played(record)) == 2  # nothing more was played
    assert not cache.exists()  # the tampered copy was deleted, never played
    gw.terminate(timeout=15)
