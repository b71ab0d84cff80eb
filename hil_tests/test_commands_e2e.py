"""HIL: an operator's command at a real centre reaches the simulated relays through the real daemon.

Every piece is real and separate: ``compound-centre serve`` (a process), the HIL fault proxy,
``compound-gw run`` (a process) on the simulated compound (relay boards on a paced 9600 baud
line emulator), provisioning over mTLS on loopback, and ``compound-centre broadcast`` /
``compound-centre commands`` as the operator types them.

1. broadcast → the centre shows ``on`` only once the relays are verified on; the simulated
   board shows amplifier and zones on; then ``done`` and all off.
2. a forged command slipped into the centre's queue is refused by the daemon, reported back as
   ``refused`` (``bad_signature``), and no relay moves.
3. link cut (fault proxy) while a command with a 2 s TTL is queued for longer than that → the
   command is never sent, never executed (no relay moves), and shows ``expired``; after the
   link heals a fresh command is delivered and runs (the channel reconnected).
"""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from centre.commands.store import NewCommand, SqliteCommandStore
from centre.pki import CentrePaths
from gateway.journal import read_events
from hil_tests.benchfile import load_bench
from hil_tests.compound import SimCompound
from hil_tests.demo import Centre
from hil_tests.netproxy import FaultProxy
from wire import encode, key_id, load_public_key_pem, signed_bytes
from wire.commands import BroadcastStart, build_command
from wire.envelopes import COMMAND_TYPE

pytestmark = [pytest.mark.hil, pytest.mark.sim_only]  # asserts on the simulator's records

COMPOUND = "HIL Compound"


def commands(centre: Centre) -> dict[str, dict[str, Any]]:
    out = centre.cli("commands", "--json")
    assert out.returncode == 0, out.stderr
    return {c["command_id"]: c for c in json.loads(out.stdout)}


def order(centre: Centre, *args: str) -> str:
    out = centre.cli("broadcast", "--compound", COMPOUND, "--json", *args)
    assert out.returncode == 0, out.stderr
    (rec,) = json.loads(out.stdout)
    return str(rec["command_id"])


def wait_status(centre: Centre, cid: str, status: str, timeout: float = 30.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        rec = commands(centre)[cid]
        if rec["status"] == status:
            return rec
        if time.monotonic() > deadline:
            raise AssertionError(f"{cid} is {rec['status']} ({rec['reason']}), not {status}")
        time.sleep(0.1)


def wait_coils_on(board: Any, channels: list[int], timeout: float = 30.0) -> float:
    """Wait until the simulated board holds ``channels`` on; the monotonic time it saw them.

    Read from the simulator in this process, not through the centre's CLI: a CLI poll takes a
    second or more on a loaded machine, longer than a short broadcast stays on.
    """
    deadline = time.monotonic() + timeout
    while not all(board.coils[ch] for ch in channels):
        if time.monotonic() > deadline:
            raise AssertionError(f"channels {channels} not all on within {timeout} s")
        time.sleep(0.01)
    return max(c.t for c in board.changes if c.on and c.channel in channels)


async def _call(fn: Callable[[], None]) -> None:
    fn()


def on_proxy_loop(compound: SimCompound, fn: Callable[[], None]) -> None:
    """The proxy lives on the simulators' loop: change its mode there."""
    compound.on_loop(_call(fn))


def inject_forged(centre: Centre, gateway_id: str) -> str:
    """Queue, straight into the centre's database, a command signed by a key that is not the
    command key but claims to be (as an intruder on the centre's host might)."""
    paths = CentrePaths(centre.folder)
    pub = load_public_key_pem(paths.command_pub.read_bytes())
    intruder = Ed25519PrivateKey.generate()

    def build(seq: int) -> NewCommand:
        now = time.time()
        body = build_command(
            command_id="forged-1",
            gateway=gateway_id,
            seq=seq,
            action=BroadcastStart((1, 2, 3), 300, "panic", "Actual"),
            issued_at=now,
            public_key=pub,
        ).to_dict()
        sig = base64.b64encode(intruder.sign(signed_bytes(COMMAND_TYPE, body))).decode()
        env = {"type": COMMAND_TYPE, "body": body, "key_id": key_id(pub), "sig": sig}
        return NewCommand("forged-1", "broadcast.start", "forged", now, now + 120, encode(env))

    async def go() -> None:
        store = await SqliteCommandStore.open(paths.database)
        try:
            await store.enqueue(gateway_id, build, now=time.time(), issued_by="intruder")
        finally:
            await store.close()

    asyncio.run(go())
    return "forged-1"


@pytest.fixture
def site(tmp_path: Path) -> Iterator[tuple[SimCompound, Centre, FaultProxy]]:
    centre = Centre(tmp_path / "centre")
    assert centre.cli("init").returncode == 0
    tok = json.loads(centre.cli("token", "create", "--compound", COMPOUND, "--json").stdout)
    centre.start()
    compound = SimCompound(
        load_bench(),
        tmp_path / "site",
        gateway_id="gw-cmd-01",
        sync_keys=("first_delay_max_s = 0.2", "backoff_initial_s = 0.2", "backoff_max_s = 1.0"),
    )
    try:
        compound.start()
        proxy = FaultProxy(target=("127.0.0.1", centre.port))
        compound.on_loop(proxy.start())
        try:
            prov = subprocess.run(
                [sys.executable, "-m", "gateway.cli", "provision",
                 "--config", str(compound.config_path),
                 "--centre", f"https://127.0.0.1:{proxy.port}",
                 "--ca-fingerprint", tok["ca_fingerprint"]],
                input=tok["token"] + "\n",  # stdin: a token never goes in argv
                capture_output=True, text=True, timeout=60, check=False,
            )  # fmt: skip
            assert prov.returncode == 0, prov.stderr or prov.stdout
            yield compound, centre, proxy
        finally:
            compound.on_loop(proxy.stop())
    finally:
        compound.stop()
        centre.stop()


def test_centre_command_turns_relays_on_and_an_expired_one_never_runs(
    site: tuple[SimCompound, Centre, FaultProxy],
) -> None:
    compound, centre, proxy = site
    board_name = compound.bench.relay_boards[0].name
    board = compound.board(board_name)
    zones = {n: ch for n, b, ch in compound.zone_channels() if b == board_name}
    gw = compound.daemon()
    gw.start()

    # 1. centre command → relays verified on at the simulated board
    cid = order(centre, "--zones", "1,2", "--seconds", "2", "--message", "drill",
                "--status", "Exercise")  # fmt: skip
    wait_coils_on(board, [0, zones[1], zones[2]], timeout=30)
    # The gateway's "on" and "done" stages both reach the centre (the record keeps when).
    done = wait_status(centre, cid, "done", timeout=30)
    assert done["received_at"] is not None and done["on_at"] is not None
    assert done["received_at"] <= done["on_at"]
    assert not any(board.coils)
    moved = len(board.changes)
    assert moved >= 6  # amplifier + 2 zones, on then off

    # 2. a forged order slipped into the centre's queue: refused by the daemon, reported back
    forged = inject_forged(centre, compound.gateway_id)
    got = wait_status(centre, forged, "refused", timeout=20)
    assert got["reason"].startswith("bad_signature:")
    assert len(board.changes) == moved and not any(board.coils)

    # 3. the link is cut while a short-lived command waits at the centre
    on_proxy_loop(compound, proxy.cut)
    time.sleep(0.5)
    late = order(centre, "--zones", "1", "--seconds", "5", "--message", "drill", "--ttl", "2")
    time.sleep(3.0)  # longer than its TTL, link still down
    assert commands(centre)[late]["status"] == "expired"  # what the operator sees
    on_proxy_loop(compound, proxy.heal)
    fresh = order(centre, "--zones", "3", "--seconds", "1", "--message", "drill")
    wait_status(centre, fresh, "done", timeout=40)  # reconnected: the fresh one ran
    shown = commands(centre)[late]
    assert (shown["status"], shown["delivered_at"], shown["on_at"]) == ("expired", None, None)
    ran = {c.channel for c in board.changes[moved:] if c.on}
    assert ran == {0, zones[3]}  # only the fresh command's amplifier and zone moved

    gw.terminate(timeout=15)
    events = read_events(compound.journal_path)
    accepted = [e.payload["command_id"] for e in events if e.kind == "command.accepted"]
    assert accepted == [cid, fresh]
    refused = [e.payload for e in events if e.kind == "command.refused"]
    assert [(r["command_id"], r["code"]) for r in refused] == [("forged-1", "bad_signature")]
    assert late not in {e.payload.get("command_id") for e in events}


def test_link_cut_mid_broadcast_relays_still_go_off_on_time(
    site: tuple[SimCompound, Centre, FaultProxy],
) -> None:
    """Issue 7: the auto-off timer does not depend on the link to the centre."""
    compound, centre, proxy = site
    board_name = compound.bench.relay_boards[0].name
    board = compound.board(board_name)
    zones = {n: ch for n, b, ch in compound.zone_channels() if b == board_name}
    gw = compound.daemon()
    gw.start()
    seconds = 3.0
    order(centre, "--zones", "1", "--seconds", str(int(seconds)), "--message", "drill")
    on_at = wait_coils_on(board, [zones[1]], timeout=30)
    on_proxy_loop(compound, proxy.cut)  # the link dies while the loudspeakers play
    deadline = on_at + seconds + 5.0
    while any(board.coils) and time.monotonic() < deadline:
        time.sleep(0.02)
    released = time.monotonic() - on_at
    assert not any(board.coils), "relays still on with the link cut"
    # Off by the daemon's own timer, link or not. The stated tolerance (docs/broadcast.md:
    # 0.35 s after the planned end) is bench/'s to measure; here a bound a busy machine holds.
    assert released <= seconds + 5.0, f"released after {released:.2f} s for a {seconds} s order"
    off_changes = [c for c in board.changes if not c.on]
    assert off_changes, "the board must have seen the relays switched off"
    # The off is read back and journaled as evidence, still without the link.
    deadline = time.monotonic() + 5
    offs: list[Any] = []
    while not offs and time.monotonic() < deadline:
        offs = [
            e
            for e in read_events(compound.journal_path)
            if e.kind == "broadcast.off"
            and e.payload.get("verified")
            and e.payload.get("cause") != "startup"
        ]
        time.sleep(0.05)
    assert offs, "no verified broadcast.off after the timed end"
    gw.terminate(timeout=15)
