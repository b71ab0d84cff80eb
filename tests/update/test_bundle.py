"""Signed bundles: each kind of bad bundle is refused with its own code; garbage only ever
raises UpdateRefused."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.update import bundle as b
from gateway.update.bundle import UpdateRefused, decode_metadata, verify_metadata

from .conftest import HW, build

FILES = {"bin/compound-gw": b"#!/bin/sh\necho hi\n", "lib/data.txt": b"x" * 1000}


def verify(path: Path, key: Ed25519PrivateKey, **kw: object) -> b.Metadata:
    data, sig = b.read_signed(path)
    args: dict = {"now": time.time(), "hardware": HW, "installed_release": 0}
    args.update(kw)
    return verify_metadata(data, sig, key.public_key(), **args)


def code_of(fn, *a, **kw) -> str:  # type: ignore[no-untyped-def]
    with pytest.raises(UpdateRefused) as info:
        fn(*a, **kw)
    return info.value.code


def test_good_bundle_verifies(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    bundle = build(tmp_path, key, 3, FILES)
    meta = verify(bundle, key)
    assert meta.release == 3 and meta.version == "1.3.0"
    assert [f.path for f in meta.files] == ["bin/compound-gw", "lib/data.txt"]
    assert meta.files[0].executable and not meta.files[1].executable
    assert meta.total_size == len(FILES["bin/compound-gw"]) + 1000


def test_unsigned_refused(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    bundle = build(tmp_path, key, 3, FILES)
    (bundle / b.SIGNATURE_NAME).unlink()
    assert code_of(verify, bundle, key) == "unsigned"


def test_tampered_metadata_refused(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    bundle = build(tmp_path, key, 3, FILES)
    obj = json.loads((bundle / b.METADATA_NAME).read_bytes())
    obj["release"] = 99
    (bundle / b.METADATA_NAME).write_bytes(json.dumps(obj).encode())
    assert code_of(verify, bundle, key) == "bad_signature"


def test_other_key_refused(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    bundle = build(tmp_path, Ed25519PrivateKey.generate(), 3, FILES)
    assert code_of(verify, bundle, key) == "bad_signature"


def test_expired_refused(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    bundle = build(tmp_path, key, 3, FILES, expires=int(time.time()) - 1)
    assert code_of(verify, bundle, key) == "expired"


def test_rollback_and_replay_refused(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    bundle = build(tmp_path, key, 3, FILES)
    assert code_of(verify, bundle, key, installed_release=4) == "rollback"
    assert code_of(verify, bundle, key, installed_release=3) == "rollback"
    assert verify(bundle, key, installed_release=2).release == 3
    assert code_of(verify, bundle, key, failed_releases=frozenset({3})) == "failed_before"


def test_wrong_hardware_refused(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    bundle = build(tmp_path, key, 3, FILES, hardware=("rpi3", "cm4"))
    assert code_of(verify, bundle, key) == "wrong_hardware"


def test_payload_tampering_found_while_copying(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    bundle = build(tmp_path, key, 3, FILES)
    meta = verify(bundle, key)
    entry = meta.files[1]
    src = bundle / b.FILES_DIR / entry.path
    dst = tmp_path / "out" / entry.path
    b.copy_verified(src, dst, entry)
    assert dst.read_bytes() == FILES["lib/data.txt"]
    # Same size, other bytes (mix-and-match or tamper): refused, nothing left behind.
    src.write_bytes(b"y" * 1000)
    assert code_of(b.copy_verified, src, dst, entry) == "hash_mismatch"
    assert not dst.exists()
    # Endless data: reading stops one byte past the declared size.
    with open(src, "wb") as f:
        f.truncate(50 * 1024 * 1024)
    assert code_of(b.copy_verified, src, dst, entry) == "hash_mismatch"
    assert not dst.exists()
    src.unlink()
    assert code_of(b.copy_verified, src, dst, entry) == "missing_file"
    src.symlink_to(tmp_path / "out")
    assert code_of(b.copy_verified, src, dst, entry) == "missing_file"


def test_huge_metadata_refused_without_reading_it_all(
    tmp_path: Path, key: Ed25519PrivateKey
) -> None:
    bundle = build(tmp_path, key, 3, FILES)
    with open(bundle / b.METADATA_NAME, "wb") as f:
        f.truncate(2 * 1024 * 1024 * 1024)  # sparse 2 GiB
    assert code_of(verify, bundle, key) == "too_large"


def test_make_bundle_refuses_bad_paths(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    assert code_of(build, tmp_path, key, 3, {"bin/a b": b"x"}) == "malformed"
    assert code_of(build, tmp_path, key, 4, {"x": b"x"}, version="../1") == "malformed"


def _meta(**over: object) -> dict:
    obj: dict = {
        "format": 1,
        "product": "compound-gw",
        "version": "1.0",
        "release": 1,
        "hardware": ["rpi4"],
        "expires": 2**40,
        "files": {"a": {"sha256": "0" * 64, "size": 1, "exec": False}},
    }
    obj.update(over)
    return obj


@pytest.mark.parametrize(
    "over",
    [
        {"files": {"../etc/passwd": {"sha256": "0" * 64, "size": 1}}},
        {"files": {"/abs": {"sha256": "0" * 64, "size": 1}}},
        {"files": {"a/./b": {"sha256": "0" * 64, "size": 1}}},
        {"files": {"a": {"sha256": "0" * 64, "size": 1}, "a/b": {"sha256": "0" * 64, "size": 1}}},
        {"files": {"A": {"sha256": "0" * 64, "size": 1}, "a": {"sha256": "0" * 64, "size": 1}}},
        {"files": {"a": {"sha256": "0" * 64, "size": -1}}},
        {"files": {"a": {"sha256": "0" * 64, "size": True}}},
        {"files": {"a": {"sha256": "0" * 63, "size": 1}}},
        {"files": {}},
        {"release": 0},
        {"release": 1.5},
        {"format": 2},
        {"format": True},
        {"hardware": []},
        {"hardware": "rpi4"},
        {"extra": 1},
    ],
)
def test_bad_shapes_are_malformed(over: dict) -> None:
    with pytest.raises(UpdateRefused) as info:
        decode_metadata(json.dumps(_meta(**over)).encode())
    assert info.value.code == "malformed"


def test_total_size_cap() -> None:
    files = {f"f{i}": {"sha256": "0" * 64, "size": b.FILE_MAX_BYTES} for i in range(3)}
    with pytest.raises(UpdateRefused) as info:
        decode_metadata(json.dumps(_meta(files=files)).encode())
    assert info.value.code == "too_large"


def test_valid_shape_parses() -> None:
    meta = decode_metadata(json.dumps(_meta()).encode())
    assert meta.release == 1 and meta.files[0].path == "a"


JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2000))
def test_garbage_bytes_raise_only_update_refused(data: bytes) -> None:
    with pytest.raises(UpdateRefused):
        decode_metadata(data)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from([*sorted(_meta()), "x"]), JSONISH, max_size=8))
def test_wrong_fields_raise_only_update_refused(over: dict) -> None:
    try:
        meta = decode_metadata(json.dumps(_meta(**over)).encode())
    except UpdateRefused as exc:
        assert exc.code in b.REFUSAL_CODES
    else:
        assert type(meta.release) is int and meta.release >= 1 and meta.files


_SIGNER = Ed25519PrivateKey.generate()


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=3000), st.integers(min_value=0, max_value=3000), st.booleans())
def test_truncated_or_signed_garbage_raises_only_update_refused(
    data: bytes, cut: int, sign: bool
) -> None:
    good = json.dumps(_meta()).encode()
    body = (good[:cut] + data) if data else good[:cut]
    sig = _SIGNER.sign(b.SIGNING_CONTEXT + body) if sign else data[:64]
    with pytest.raises(UpdateRefused):
        verify_metadata(
            body, sig, _SIGNER.public_key(), now=time.time(), hardware=HW, installed_release=1
        )


def test_deep_nesting_is_refused_quickly() -> None:
    data = b"[" * 100_000 + b"]" * 100_000
    start = time.monotonic()
    with pytest.raises(UpdateRefused):
        decode_metadata(data)
    assert time.monotonic() - start < 5
