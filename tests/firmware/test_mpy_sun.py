"""NTAG 424 DNA SUN on the node (firmware_mpy/sun.py): the published vectors the gateway's
tests use (tests/vectors/ntag424_sun.json) pass under real MicroPython (WebAssembly port);
under CPython the same module agrees with the gateway's verifier on random inputs."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.credentials import sun as gateway_sun
from tests.firmware._mpy import CPYTHON_SHIM, FIRMWARE, HOST_SHIM, MPY_TESTS, ROOT, run_mpy

VECTORS = ROOT / "tests" / "vectors" / "ntag424_sun.json"


def test_published_vectors_pass_under_micropython(tmp_path: Path) -> None:
    # The harness loads .py modules only: hand the JSON over as a generated module.
    vectors = json.loads(VECTORS.read_text("utf-8"))
    (tmp_path / "sun_vectors.py").write_text(f"VECTORS = {vectors!r}\n", "utf-8")
    proc = run_mpy(MPY_TESTS / "t_sun.py", libs=[FIRMWARE, HOST_SHIM, MPY_TESTS, tmp_path])
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    summary = re.search(r"SUMMARY (\d+) passed (\d+) failed", proc.stdout)
    assert summary, out
    assert (int(summary.group(1)), int(summary.group(2))) == (9, 0), out
    assert "PASS test_an12196_encrypted_with_every_intermediate" in proc.stdout


@pytest.fixture(scope="module")
def node_sun() -> Iterator[object]:
    added = [str(FIRMWARE), str(HOST_SHIM), str(CPYTHON_SHIM)]
    before = set(sys.modules)
    sys.path[:0] = added
    import sun

    yield sun
    for p in added:
        sys.path.remove(p)
    for name in set(sys.modules) - before:  # firmware module names must not leak
        if str(getattr(sys.modules[name], "__file__", "")).startswith(str(FIRMWARE)):
            del sys.modules[name]


@settings(max_examples=60, deadline=None)
@given(
    meta=st.binary(min_size=16, max_size=16),
    file_key=st.binary(min_size=16, max_size=16),
    uid=st.binary(min_size=7, max_size=7),
    ctr=st.integers(0, 0xFFFFFF),
    mac_input=st.binary(max_size=70),
)
def test_node_and_gateway_agree_on_random_reads(
    node_sun: object, meta: bytes, file_key: bytes, uid: bytes, ctr: int, mac_input: bytes
) -> None:
    sun = node_sun
    mac = gateway_sun.sdmmac(file_key, uid, ctr, mac_input)
    assert sun.sdmmac(file_key, uid, ctr, mac_input) == mac  # type: ignore[attr-defined]
    assert sun.cmac(file_key, mac_input) == gateway_sun.aes_cmac(file_key, mac_input)  # type: ignore[attr-defined]
    assert sun.verify_plain(file_key, uid, ctr, mac, mac_input) == (uid, ctr)  # type: ignore[attr-defined]
    assert sun.diversify(meta, uid) == gateway_sun.diversify_key(meta, uid)  # type: ignore[attr-defined]
    assert sun.session_enc_key(file_key, uid, ctr) == gateway_sun.session_enc_key(  # type: ignore[attr-defined]
        file_key, uid, ctr
    )
