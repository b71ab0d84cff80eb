"""The node's OSDP frame reader against hostile bus traffic, under real MicroPython.

Contract (firmware_mpy/osdp_frame.py): ``FrameReader`` never raises; a damaged frame is a
``BadFrame`` and noise is skipped (counted in ``dropped``). Property: for any stream -- valid
frames mutated, truncated, with lying length fields, security blocks of any size, mark bytes,
runs of SOM, pure noise -- fed in any chunking with any gaps, the reader returns only frames,
bad frames or "need more", never loops, and handles each stream within a second.

Hypothesis generates the streams; the same checking code (tests/firmware/mpy/frameprop.py)
runs them under CPython on the same module and, in batches, under the real MicroPython (the
WebAssembly port), whose every description must equal CPython's (a golden run per batch).
"""

from __future__ import annotations

import itertools
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.firmware._mpy import CPYTHON_SHIM, FIRMWARE, MPY_TESTS, run_mpy

LIMIT_MS = 1000


@pytest.fixture(scope="module")
def fw() -> Iterator[tuple[ModuleType, ModuleType]]:
    """osdp_frame and frameprop imported from the firmware tree (names must not leak)."""
    added = [str(FIRMWARE), str(CPYTHON_SHIM), str(MPY_TESTS)]
    before = set(sys.modules)
    sys.path[:0] = added
    try:
        import frameprop  # type: ignore[import-not-found]
        import osdp_frame  # type: ignore[import-not-found]

        yield osdp_frame, frameprop
    finally:
        for p in added:
            sys.path.remove(p)
        for name in set(sys.modules) - before:
            del sys.modules[name]


# -- streams ------------------------------------------------------------------------------------

Part = tuple[str, int, int, int, bytes, bool, bool, int, bytes, int, int]


@st.composite
def parts(draw: st.DrawFn) -> Part:
    kind = draw(st.sampled_from(["frame", "frame", "noise", "soms", "mark"]))
    return (
        kind,
        draw(st.integers(0, 255)),  # addr
        draw(st.integers(0, 3)),  # seq
        draw(st.integers(0, 255)),  # code
        draw(st.binary(max_size=40)),  # data / noise
        draw(st.booleans()),  # use_crc
        draw(st.booleans()),  # mark
        draw(st.integers(0, 6)),  # mutation
        draw(st.binary(min_size=0, max_size=8)),  # scb tail
        draw(st.integers(0, 0xFFFF)),  # a lying length / flipped byte position
        draw(st.integers(0, 255)),  # a byte value
    )


def _render(F: ModuleType, p: Part) -> bytes:
    kind, addr, seq, code, data, use_crc, mark, mutation, scb_tail, n, byte = p
    if kind == "noise":
        return data
    if kind == "soms":
        return b"\x53" * (1 + n % 40)
    if kind == "mark":
        return b"\xff\x53" + bytes([byte]) * (n % 6)
    scb = None
    if mutation == 6:  # a security block of any claimed length and type
        scb = bytes([len(scb_tail) + 2 if n & 1 else byte, byte]) + scb_tail
    mac = (lambda _b: b"\x00\x01\x02\x03") if scb is not None and byte >= 0x15 else None
    raw = bytearray(F.build(addr, seq, code, data, use_crc=use_crc, scb=scb, mac_fn=mac, mark=mark))
    if mutation == 1:  # one byte changed
        raw[n % len(raw)] = byte
    elif mutation == 2:  # truncated
        raw = raw[: n % len(raw)]
    elif mutation == 3:  # the length field lies
        o = 1 if mark else 0
        raw[o + 2], raw[o + 3] = n & 0xFF, n >> 8
    elif mutation == 4:  # control byte of any value
        raw[(1 if mark else 0) + 4] = byte
    return bytes(raw)


@st.composite
def streams(draw: st.DrawFn) -> tuple[list[Part], list[int], list[int]]:
    ps = draw(st.lists(parts(), min_size=1, max_size=6))
    cuts = draw(st.lists(st.integers(0, 400), max_size=8))
    gaps = draw(st.lists(st.sampled_from([0, 1, 10, 49, 51, 500]), min_size=9, max_size=9))
    return ps, cuts, gaps


def _case(
    F: ModuleType, s: tuple[list[Part], list[int], list[int]]
) -> tuple[list[bytes], list[int]]:
    ps, cuts, gaps = s
    stream = b"".join(_render(F, p) for p in ps)
    points = sorted({c % (len(stream) + 1) for c in cuts})
    bounds = [0, *points, len(stream)]
    chunks = [stream[a:b] for a, b in itertools.pairwise(bounds)]
    return chunks, gaps[: len(chunks)]


def _check(desc: str, elapsed_ms: int) -> None:
    assert "RAISED" not in desc and "LOOP" not in desc and "?" not in desc, desc
    assert elapsed_ms < LIMIT_MS, f"{elapsed_ms} ms: {desc}"


# -- CPython, same module ----------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(s=streams())
def test_reader_never_raises_cpython(fw: tuple[ModuleType, ModuleType], s) -> None:  # type: ignore[no-untyped-def]
    F, prop = fw
    chunks, gaps = _case(F, s)
    desc, elapsed = prop.run_case(chunks, gaps)
    _check(desc, elapsed)


def test_known_hostile_streams_cpython(fw: tuple[ModuleType, ModuleType]) -> None:
    """Fixed cases that must keep their meaning: a lying length, a SOM run, a bad SCB."""
    F, prop = fw
    poll = F.build(0x05, 1, 0x60)
    lying = bytearray(poll)
    lying[2], lying[3] = 0xFF, 0xFF
    bad_scb = bytearray(F.build(0x05, 1, 0x60, scb=b"\x09\x11\x00"))
    desc, _ = prop.run_case([bytes(lying) + poll, b"\x53" * 300 + poll, bytes(bad_scb)], [0, 1, 1])
    assert desc.split()[:2] == ["F5.96.0.0.0", "F5.96.0.0.0"], desc
    assert desc.split()[2].startswith("B5."), desc


# -- real MicroPython, in batches ---------------------------------------------------------------

BATCH = 40


@settings(
    max_examples=4,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(batch=st.lists(streams(), min_size=BATCH, max_size=BATCH))
def test_reader_never_raises_micropython_matches_cpython(
    fw: tuple[ModuleType, ModuleType], batch: list[tuple[list[Part], list[int], list[int]]]
) -> None:
    F, prop = fw
    cases = [_case(F, s) for s in batch]
    golden = [prop.run_case(chunks, gaps)[0] for chunks, gaps in cases]
    lines = ["import binascii", "import frameprop", "CASES = ["]
    for chunks, gaps in cases:
        hexes = ", ".join(f"'{c.hex()}'" for c in chunks)
        lines.append(f"    ([{hexes}], {gaps!r}),")
    lines += [
        "]",
        "for hexes, gaps in CASES:",
        "    chunks = [binascii.unhexlify(h) for h in hexes]",
        "    desc, ms = frameprop.run_case(chunks, gaps)",
        "    print('CASE', ms, desc)",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "frame_batch.py"
        script.write_text("\n".join(lines) + "\n")
        proc = run_mpy(script, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    got = [line.split(" ", 2) for line in proc.stdout.splitlines() if line.startswith("CASE")]
    assert len(got) == BATCH, proc.stdout[-2000:]
    for (_, ms, desc), want in zip(got, golden, strict=True):
        _check(desc, int(ms))
        assert desc == want, f"MicroPython {desc!r} != CPython {want!r}"
