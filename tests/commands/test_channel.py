"""Through the real code path: centre queue → WebSocket (mTLS) → gateway verifier → relays.

Every refusal of issue 9's acceptance list is sent by the centre over the real channel and must
be refused, journaled (``command.refused`` with its code), reported back (the centre's ack log
and the command's status) — and no relay of the simulated board may move.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from centre.commands.issue import load_command_key
from gateway.commands.state import load_state
from gateway.sync.provision import load_private_key
from tests.commands.rig import GW, Rig, command_rig
from tests.sync.conftest import Centre
from wire import encode, key_id, seal, signed_bytes
from wire.commands import BroadcastStart, BroadcastStop, build_command, seal_command
from wire.envelopes import COMMAND_TYPE


def body(rig: Rig, seq: int, cid: str, **over: object) -> dict[str, object]:
    now = float(over.pop("issued_at", time.time()))  # type: ignore[arg-type]
    cmd = build_command(
        command_id=cid,
        gateway=str(over.pop("gateway", GW)),
        seq=seq,
        action=BroadcastStart(
            tuple(over.pop("zones", (1, 2))),  # type: ignore[arg-type]
            float(over.pop("seconds", 5)),  # type: ignore[arg-type]
            "drill",
            "Exercise",
        ),
        issued_at=now,
        public_key=rig.key.public_key(),
    )
    return cmd.to_dict() | over


def envelope(b: dict[str, object], signer: Ed25519PrivateKey, kid: str) -> bytes:
    sig = signer.sign(signed_bytes(COMMAND_TYPE, b))
    return encode(
        {"type": COMMAND_TYPE, "body": b, "key_id": kid, "sig": base64.b64encode(sig).decode()}
    )


def forged(rig: Rig) -> Callable[[int, str], bytes]:
    other = Ed25519PrivateKey.generate()
    return lambda seq, cid: envelope(body(rig, seq, cid), other, key_id(rig.key.public_key()))


def device_key(rig: Rig) -> Callable[[int, str], bytes]:
    dev = load_private_key(rig.gw_dir / "sync" / "gateway-key.pem")
    kid = key_id(dev.public_key())
    return lambda seq, cid: envelope(body(rig, seq, cid, key_id=kid), dev, kid)


def tls_key(rig: Rig) -> Callable[[int, str], bytes]:
    tls = serialization.load_pem_private_key(rig.centre.paths.server_key.read_bytes(), None)
    assert isinstance(tls, ec.EllipticCurvePrivateKey)
    der = tls.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    kid = hashlib.sha256(der).hexdigest()[:16]

    def make(seq: int, cid: str) -> bytes:
        b = body(rig, seq, cid)
        sig = tls.sign(signed_bytes(COMMAND_TYPE, b), ec.ECDSA(hashes.SHA256()))
        env = {
            "type": COMMAND_TYPE,
            "body": b,
            "key_id": kid,
            "sig": base64.b64encode(sig).decode(),
        }
        return encode(env)

    return make


def signed(rig: Rig, **over: object) -> Callable[[int, str], bytes]:
    """Signed by the real command key, with fields changed (after the centre's seq)."""

    def make(seq: int, cid: str) -> bytes:
        fields = dict(over)
        shift = int(fields.pop("seq_shift", 0))  # type: ignore[call-overload]
        return seal(COMMAND_TYPE, body(rig, seq + shift, cid, **fields), rig.key)

    return make


def mangled(rig: Rig, how: Callable[[bytes], bytes]) -> Callable[[int, str], bytes]:
    return lambda seq, cid: how(seal(COMMAND_TYPE, body(rig, seq, cid), rig.key))


CASES: list[tuple[str, Callable[[Rig], Callable[[int, str], bytes]], str]] = [
    ("forged signature", forged, "bad_signature"),
    ("gateway's device key", device_key, "wrong_key"),
    ("centre's TLS key", tls_key, "wrong_key"),
    ("wrong gateway", lambda r: signed(r, gateway="gw-lily-02"), "wrong_gateway"),
    ("huge sequence jump", lambda r: signed(r, seq_shift=50_000), "sequence_jump"),
    ("expired", lambda r: signed(r, issued_at=time.time() - 300), "expired"),
    ("not yet valid", lambda r: signed(r, issued_at=time.time() + 300), "not_yet_valid"),
    (
        "duplicate JSON keys",
        lambda r: mangled(r, lambda raw: raw.replace(b'"v":1', b'"v":1,"v":1', 1)),
        "bad_encoding",
    ),
    ("trailing bytes", lambda r: mangled(r, lambda raw: raw + b"\n"), "bad_encoding"),
    ("zone out of range", lambda r: signed(r, zones=(1, 9)), "zone_out_of_range"),
    ("duration above the cap", lambda r: signed(r, seconds=601), "duration_above_cap"),
    (
        "unknown action",
        lambda r: signed(r, action="relay.open_all", args={}),
        "unknown_action",
    ),
]


async def test_every_forged_or_invalid_command_is_refused_recorded_reported_and_moves_nothing(
    centre: Centre, tmp_path: Path
) -> None:
    async with command_rig(centre, tmp_path) as rig:
        for i, (name, factory, code) in enumerate(CASES):
            cid = f"bad-{i}"
            rec = await rig.inject(factory(rig), cid)
            done = await rig.wait_status(rec.command_id, "refused")
            assert done.reason.startswith(f"{code}:"), (name, done.reason)
            refused = [e for e in await rig.events("command.refused") if e["code"] == code]
            assert refused, f"{name}: no command.refused event with {code}"
            assert refused[-1]["digest"] == hashlib.sha256(rec.envelope).hexdigest()
        acks = await rig.store.acks(GW)
        assert sum(1 for a in acks if a[1] == "refused") == len(CASES)
        assert sum(1 for a in acks if a[1] == "received") == len(CASES)
        assert rig.board.changes == []  # not one relay moved
        assert rig.board.coils == [False] * 8
        assert await rig.events("command.accepted") == []
        assert load_state(rig.gw_dir / "commands" / "state.json").last_seq == 0


async def test_centre_command_reaches_the_relays_then_replays_and_lower_seqs_are_refused(
    centre: Centre, tmp_path: Path
) -> None:
    async with command_rig(centre, tmp_path) as rig:
        rec = await rig.order(BroadcastStart((1, 2), 0.6, "fire-drill", "Exercise"))
        on = await rig.wait_status(rec.command_id, "on")
        assert on.on_at is not None and on.received_at is not None
        assert rig.board.coils[1:3] == [True, True]  # zones 1, 2 = channels 1, 2
        done = await rig.wait_status(rec.command_id, "done")
        assert done.finished_at is not None and rig.board.coils == [False] * 8
        assert [(c.channel, c.on) for c in rig.board.changes] == [
            (1, True),
            (2, True),
            (1, False),
            (2, False),
        ] or sorted((c.channel, c.on) for c in rig.board.changes) == [
            (1, False),
            (1, True),
            (2, False),
            (2, True),
        ]
        accepted = await rig.events("command.accepted")
        assert [(a["command_id"], a["seq"], a["zones"]) for a in accepted] == [
            (rec.command_id, 1, [1, 2])
        ]
        assert [e["command_id"] for e in await rig.events("command.on")] == [rec.command_id]
        fin = await rig.events("command.finished")
        assert [(f["command_id"], f["outcome"]) for f in fin] == [(rec.command_id, "done")]
        state = load_state(rig.gw_dir / "commands" / "state.json")
        assert (state.last_seq, state.last_command_id) == (1, rec.command_id)

        moved = len(rig.board.changes)
        # the very same bytes again (a replay), then a validly signed but lower sequence
        replay = await rig.inject(lambda seq, cid: rec.envelope, "replay-1")
        await _wait_ack(rig, hashlib.sha256(rec.envelope).hexdigest(), "replayed")
        lower = await rig.inject(
            lambda seq, cid: seal_command(
                build_command(
                    command_id=cid,
                    gateway=GW,
                    seq=1,
                    action=BroadcastStart((1,), 5, "x", "Test"),
                    issued_at=time.time(),
                    public_key=rig.key.public_key(),
                ),
                rig.key,
            ),
            "lower-1",
        )
        low = await rig.wait_status(lower.command_id, "refused")
        assert low.reason.startswith("replayed:")  # seq 1 == last accepted
        lower2 = await rig.inject(
            lambda seq, cid: seal_command(
                build_command(
                    command_id=cid,
                    gateway=GW,
                    seq=1,
                    action=BroadcastStop(),
                    issued_at=time.time(),
                    public_key=rig.key.public_key(),
                ),
                rig.key,
            ),
            "lower-2",
        )
        assert lower2.seq == 4
        codes = [e["code"] for e in await rig.events("command.refused")]
        assert codes[:2] == ["replayed", "replayed"]
        assert replay.seq == 2
        assert len(rig.board.changes) == moved
        # a newer, valid stop still works: the refusals did not advance the sequence
        stop = await rig.order(BroadcastStop())
        await rig.wait_status(stop.command_id, "done")
        assert load_state(rig.gw_dir / "commands" / "state.json").last_seq == stop.seq


async def _wait_ack(rig: Rig, digest: str, code: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        events = await rig.events("command.refused")
        if any(e["digest"] == digest and e["code"] == code for e in events):
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"no refusal {code} for {digest[:12]}")


async def test_stale_sequence_below_the_last_accepted(centre: Centre, tmp_path: Path) -> None:
    async with command_rig(centre, tmp_path) as rig:
        for _ in range(3):
            rec = await rig.order(BroadcastStop())
            await rig.wait_status(rec.command_id, "done")
        assert load_state(rig.gw_dir / "commands" / "state.json").last_seq == 3
        bad = await rig.inject(signed(rig, seq_shift=-3), "stale-1")  # centre seq 4 → 1
        got = await rig.wait_status(bad.command_id, "refused")
        assert got.reason.startswith("stale_sequence:")
        assert rig.board.changes == []


@pytest.mark.parametrize("ttl", [0.5])
async def test_queued_while_offline_past_the_ttl_is_never_sent_and_shows_expired(
    centre: Centre, tmp_path: Path, ttl: float
) -> None:
    async with command_rig(centre, tmp_path) as rig:
        rig.channel_task.cancel()  # the gateway goes offline
        await asyncio.gather(rig.channel_task, return_exceptions=True)
        while GW in centre.running.commands.connections:
            await asyncio.sleep(0.02)
        rec = await rig.order(BroadcastStart((1,), 5, "drill", "Exercise"), ttl_s=1.0)
        await asyncio.sleep(1.2)
        (shown,) = [r for r in await rig.store.commands(gateway_id=GW)]
        assert shown.shown_status(time.time()) == "expired"
        assert await rig.store.deliverable(GW, now=time.time()) == []
        (stored,) = await rig.store.commands(gateway_id=GW)
        assert (stored.command_id, stored.status, stored.delivered_at) == (
            rec.command_id,
            "expired",
            None,
        )
        assert rig.board.changes == []


def test_command_key_is_not_the_tls_or_ca_key(centre_dir: tuple[object, str]) -> None:
    paths, _ = centre_dir
    key = load_command_key(paths)  # type: ignore[arg-type]
    cmd_pub = key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    for other in (paths.server_key, paths.ca_key):  # type: ignore[attr-defined]
        assert cmd_pub not in other.read_bytes()
        assert not isinstance(
            serialization.load_pem_private_key(other.read_bytes(), None), Ed25519PrivateKey
        )


async def test_a_newer_centre_command_replaces_a_running_one_and_both_are_reported(
    centre: Centre, tmp_path: Path
) -> None:
    async with command_rig(centre, tmp_path) as rig:
        first = await rig.order(BroadcastStart((1,), 30, "drill", "Exercise"))
        await rig.wait_status(first.command_id, "on")
        second = await rig.order(BroadcastStart((3,), 0.5, "drill", "Exercise"))
        await rig.wait_status(second.command_id, "on")
        replaced = await rig.wait_status(first.command_id, "done")
        assert "replaced" in replaced.reason
        await rig.wait_status(second.command_id, "done")
        assert rig.board.coils == [False] * 8
        fin = {f["command_id"]: f for f in await rig.events("command.finished")}
        assert fin[first.command_id]["cause"] == "replaced"
        assert fin[second.command_id]["outcome"] == "done"
