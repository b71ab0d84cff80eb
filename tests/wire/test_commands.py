"""The pure command rules: a test per refusal of issue 9's acceptance list, and the happy path."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from wire import encode, key_id, signed_bytes
from wire.commands import (
    Accepted,
    BroadcastStart,
    BroadcastStop,
    CameraSnapshot,
    Command,
    Limits,
    Refused,
    build_command,
    check_command,
    peek_identity,
    seal_command,
)
from wire.envelopes import COMMAND_TYPE

NOW = 1_795_881_600.0
GW = "gw-rose-01"
CMD_KEY = Ed25519PrivateKey.generate()
PUB = CMD_KEY.public_key()
LIMITS = Limits(zones=frozenset({1, 2, 3, 4}), max_seconds=600.0)


def start(
    seq: int = 6,
    *,
    gateway: str = GW,
    zones: tuple[int, ...] = (1, 2),
    seconds: float = 90,
    issued_at: float = NOW,
    ttl_s: float = 120,
) -> Command:
    return build_command(
        command_id=f"cmd-{seq}",
        gateway=gateway,
        seq=seq,
        action=BroadcastStart(zones, seconds, "fire-drill", "Exercise"),
        issued_at=issued_at,
        public_key=PUB,
        ttl_s=ttl_s,
    )


def check(raw: bytes, last_seq: int = 5, now: float = NOW) -> Accepted | Refused:
    return check_command(raw, PUB, GW, last_seq, now, LIMITS)


def refused_code(raw: bytes, **kw: Any) -> str:
    verdict = check(raw, **kw)
    assert isinstance(verdict, Refused), verdict
    return verdict.code


def test_a_good_command_is_accepted_with_its_fields():
    verdict = check(seal_command(start(), CMD_KEY))
    assert isinstance(verdict, Accepted)
    cmd = verdict.command
    assert (cmd.command_id, cmd.seq, cmd.gateway) == ("cmd-6", 6, GW)
    assert cmd.action == BroadcastStart((1, 2), 90.0, "fire-drill", "Exercise")
    assert cmd.expires_at - cmd.issued_at == 120


def test_stop_is_accepted():
    cmd = build_command(
        command_id="s-1", gateway=GW, seq=6, action=BroadcastStop(), issued_at=NOW, public_key=PUB
    )
    verdict = check(seal_command(cmd, CMD_KEY))
    assert isinstance(verdict, Accepted) and verdict.command.action_name == "broadcast.stop"


def test_forged_signature_other_key_relabelled_as_the_command_key():
    forger = Ed25519PrivateKey.generate()
    body = start().to_dict()  # names the real command key id
    sig = forger.sign(signed_bytes(COMMAND_TYPE, body))
    env = {
        "type": COMMAND_TYPE,
        "body": body,
        "key_id": key_id(PUB),
        "sig": base64.b64encode(sig).decode(),
    }
    assert refused_code(encode(env)) == "bad_signature"


def test_tampered_body_fails_the_signature():
    env = json.loads(seal_command(start(), CMD_KEY))
    env["body"]["args"]["seconds"] = 600
    assert refused_code(encode(env)) == "bad_signature"


def test_device_key_instead_of_command_key():
    device = Ed25519PrivateKey.generate()  # e.g. the gateway's own enrolled key
    body = start().to_dict() | {"key_id": key_id(device.public_key())}
    raw = encode(
        {
            "type": COMMAND_TYPE,
            "body": body,
            "key_id": key_id(device.public_key()),
            "sig": base64.b64encode(device.sign(signed_bytes(COMMAND_TYPE, body))).decode(),
        }
    )
    verdict = check(raw)
    assert isinstance(verdict, Refused) and verdict.code == "wrong_key"
    assert verdict.fields["expected"] == key_id(PUB)


def test_tls_key_instead_of_command_key():
    tls = ec.generate_private_key(ec.SECP256R1())  # the centre's TLS/CA keys are P-256
    der = tls.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    body = start().to_dict()
    sig = tls.sign(signed_bytes(COMMAND_TYPE, body), ec.ECDSA(hashes.SHA256()))
    raw = encode(
        {
            "type": COMMAND_TYPE,
            "body": body,
            "key_id": hashlib.sha256(der).hexdigest()[:16],
            "sig": base64.b64encode(sig).decode(),
        }
    )
    assert refused_code(raw) == "wrong_key"
    # ... and relabelled with the command key's id, its signature still fails
    env = json.loads(raw) | {"key_id": key_id(PUB)}
    assert refused_code(encode(env)) == "bad_signature"


def test_batch_envelope_signed_by_the_command_key_is_not_a_command():
    from wire import seal

    assert refused_code(seal("batch", start().to_dict(), CMD_KEY)) == "bad_envelope"


def test_wrong_gateway():
    assert refused_code(seal_command(start(gateway="gw-lily-02"), CMD_KEY)) == "wrong_gateway"


def test_replayed_command_same_seq():
    raw = seal_command(start(6), CMD_KEY)
    assert isinstance(check(raw, last_seq=5), Accepted)
    assert refused_code(raw, last_seq=6) == "replayed"


@pytest.mark.parametrize("seq", [1, 4, 5])
def test_lower_or_equal_sequence(seq):
    code = refused_code(seal_command(start(seq), CMD_KEY), last_seq=5)
    assert code == ("replayed" if seq == 5 else "stale_sequence")


def test_huge_sequence_jump():
    assert refused_code(seal_command(start(5 + 10_001), CMD_KEY)) == "sequence_jump"
    assert isinstance(check(seal_command(start(5 + 10_000), CMD_KEY)), Accepted)


def test_expired():
    raw = seal_command(start(issued_at=NOW - 200), CMD_KEY)
    assert refused_code(raw) == "expired"
    assert isinstance(check(raw, now=NOW - 80.5), Accepted)  # inside its window


def test_not_yet_valid_beyond_the_skew():
    assert refused_code(seal_command(start(issued_at=NOW + 31), CMD_KEY)) == "not_yet_valid"
    assert isinstance(check(seal_command(start(issued_at=NOW + 29), CMD_KEY)), Accepted)


def test_lifetime_above_the_cap():
    assert refused_code(seal_command(start(ttl_s=7200), CMD_KEY)) == "ttl_too_long"


def test_duplicate_json_keys():
    raw = seal_command(start(), CMD_KEY)
    dup = raw.replace(b'"seq":6', b'"seq":6,"seq":6', 1)
    assert dup != raw
    assert refused_code(dup) == "bad_encoding"


@pytest.mark.parametrize("tail", [b" ", b"\n", b"{}", b"\x00"])
def test_trailing_bytes(tail):
    assert refused_code(seal_command(start(), CMD_KEY) + tail) == "bad_encoding"


def test_non_canonical_spelling_is_refused():
    env = json.loads(seal_command(start(), CMD_KEY))
    pretty = json.dumps(env, indent=1).encode()
    assert refused_code(pretty) == "bad_encoding"


def test_zone_out_of_range():
    assert refused_code(seal_command(start(zones=(1, 9)), CMD_KEY)) == "zone_out_of_range"


def test_duration_above_cap():
    assert refused_code(seal_command(start(seconds=601), CMD_KEY)) == "duration_above_cap"


def test_unknown_action_signed_by_the_real_key():
    body = start().to_dict() | {"action": "broadcast.selfdestruct", "args": {}}
    from wire import seal

    verdict = check(seal(COMMAND_TYPE, body, CMD_KEY))
    assert isinstance(verdict, Refused) and verdict.code == "unknown_action"
    assert verdict.command_id == "cmd-6"


def test_bad_args_and_body_fields():
    from wire import seal

    body = start().to_dict()
    body["args"] = body["args"] | {"extra": 1}
    assert refused_code(seal(COMMAND_TYPE, body, CMD_KEY)) == "bad_args"
    body = start().to_dict() | {"when": 1}
    assert refused_code(seal(COMMAND_TYPE, body, CMD_KEY)) == "bad_envelope"


def test_body_key_id_must_match_the_envelope():
    from wire import seal

    body = start().to_dict() | {"key_id": "0123456789abcdef"}
    assert refused_code(seal(COMMAND_TYPE, body, CMD_KEY)) == "wrong_key"


def test_oversized_envelope():
    assert refused_code(b"{" + b" " * 20_000 + b"}") == "bad_encoding"


def test_peek_identity_reads_claims_only():
    assert peek_identity(seal_command(start(9), CMD_KEY)) == ("cmd-9", 9)
    assert peek_identity(b"garbage") == ("", 0)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400))
def test_arbitrary_bytes_never_crash_and_never_pass(data):
    assert isinstance(check(data), Refused)


@settings(max_examples=100, deadline=None)
@given(
    st.integers(min_value=0, max_value=len(seal_command(start(), CMD_KEY)) - 1), st.integers(0, 255)
)
def test_any_single_byte_change_is_refused(pos, value):
    raw = bytearray(seal_command(start(), CMD_KEY))
    if raw[pos] == value:
        return
    raw[pos] = value
    assert isinstance(check(bytes(raw)), Refused)


# -- issue 23: an optional announcement_sha256 (older commands unchanged) -----------------------


def test_announcement_sha256_is_optional_and_round_trips():
    sha = hashlib.sha256(b"clip").hexdigest()
    plain = start()
    assert "announcement_sha256" not in plain.to_dict()["args"]  # old bodies byte-identical
    cmd = build_command(
        command_id="cmd-7", gateway=GW, seq=7, issued_at=NOW, public_key=PUB,
        action=BroadcastStart((1,), 30, "fraud-49", "Actual", sha),
    )  # fmt: skip
    verdict = check(seal_command(cmd, CMD_KEY))
    assert isinstance(verdict, Accepted)
    assert verdict.command.action == BroadcastStart((1,), 30.0, "fraud-49", "Actual", sha)


@pytest.mark.parametrize(
    "bad",
    ["", "A" * 64, "0" * 63, 5, None, ["0" * 64]],
    ids=["empty", "upper", "short", "int", "null", "list"],
)
def test_a_malformed_announcement_sha256_is_bad_args(bad):
    body = start().to_dict()
    body["args"]["announcement_sha256"] = bad
    raw = seal_command_body(body)
    assert refused_code(raw) == "bad_args"


def test_announcement_sha256_without_an_announcement_is_bad_args():
    body = start().to_dict()
    body["args"] |= {"announcement": "", "announcement_sha256": "0" * 64}
    assert refused_code(seal_command_body(body)) == "bad_args"


def seal_command_body(body: dict[str, Any]) -> bytes:
    from wire.signing import seal

    return seal(COMMAND_TYPE, body, CMD_KEY)


@pytest.mark.parametrize("bad", ["..", ".", ".drafts", "_x", "a/b", "a" * 81])
def test_an_announcement_that_could_name_a_folder_is_bad_args(bad):
    """The centre keeps each announcement in a folder of its id: "." and ".." never are ids."""
    body = start().to_dict()
    body["args"]["announcement"] = bad
    assert refused_code(seal_command_body(body)) == "bad_args"


# -- issue 17: look now (camera.snapshot) -------------------------------------------------------


def snapshot(camera: str = "duty-room", seq: int = 6) -> Command:
    return build_command(
        command_id=f"look-{seq}",
        gateway=GW,
        seq=seq,
        action=CameraSnapshot(camera),
        issued_at=NOW,
        public_key=PUB,
    )


def test_a_snapshot_command_is_accepted_and_round_trips():
    cmd = snapshot()
    assert cmd.to_dict()["action"] == "camera.snapshot"
    assert cmd.to_dict()["args"] == {"camera": "duty-room"}
    verdict = check(seal_command(cmd, CMD_KEY))
    assert isinstance(verdict, Accepted)
    assert verdict.command.action == CameraSnapshot("duty-room")
    assert Command.from_dict(cmd.to_dict()) == cmd


def test_a_snapshot_command_obeys_the_same_envelope_rules():
    raw = seal_command(snapshot(seq=5), CMD_KEY)
    assert refused_code(raw) == "replayed"  # last_seq 5
    other = Ed25519PrivateKey.generate()
    forged = seal_command(
        build_command(
            command_id="look-7",
            gateway=GW,
            seq=7,
            action=CameraSnapshot("duty-room"),
            issued_at=NOW,
            public_key=other.public_key(),
        ),
        other,
    )
    assert refused_code(forged) == "wrong_key"
    assert refused_code(seal_command(snapshot(), CMD_KEY), now=NOW + 121) == "expired"


@pytest.mark.parametrize(
    "args",
    [
        {},
        {"camera": "duty-room", "zones": [1]},
        {"camera": "Duty-Room"},
        {"camera": ""},
        {"camera": "../etc"},
        {"camera": "-x"},
        {"camera": "a" * 64},
        {"camera": 7},
        {"camera": None},
        ["duty-room"],
        "duty-room",
    ],
)
def test_snapshot_args_are_exact_or_bad_args(args):
    from wire import seal

    body = snapshot().to_dict() | {"args": args}
    assert refused_code(seal(COMMAND_TYPE, body, CMD_KEY)) == "bad_args"


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.dictionaries(st.text(max_size=8), st.none() | st.integers() | st.text(max_size=70)),
        st.fixed_dictionaries({"camera": st.text(max_size=70)}),
        st.none() | st.integers() | st.text() | st.lists(st.text(), max_size=2),
    )
)
def test_snapshot_args_parse_or_raise_envelope_error(args):
    """The parser either returns the camera it was given (exact keys, a config-style name) or
    raises EnvelopeError with field args.*: never anything else, never a guess."""
    from wire.commands import ACTIONS
    from wire.errors import EnvelopeError

    try:
        action = ACTIONS["camera.snapshot"](args)
    except EnvelopeError as exc:
        assert str(exc.fields.get("field", "")).startswith("args")
        return
    assert isinstance(args, dict) and set(args) == {"camera"}
    assert action == CameraSnapshot(args["camera"])
    assert re.fullmatch(r"[a-z0-9][a-z0-9._-]{0,62}", action.camera)
