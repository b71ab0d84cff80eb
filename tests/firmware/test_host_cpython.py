"""The same firmware code under CPython: the pure-Python AES against an independent
implementation (cryptography), and the machine shim's UART over a real pty."""

from __future__ import annotations

import os
import sys
import time
import tty

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.firmware._mpy import CPYTHON_SHIM, FIRMWARE, HOST_SHIM


@pytest.fixture(scope="module", autouse=True)
def firmware_path():
    added = [str(FIRMWARE), str(HOST_SHIM), str(CPYTHON_SHIM)]
    before = set(sys.modules)
    sys.path[:0] = added
    yield
    for p in added:
        sys.path.remove(p)
    for name in set(sys.modules) - before:  # firmware module names must not leak
        mod = sys.modules[name]
        if str(getattr(mod, "__file__", "")).startswith(str(FIRMWARE)):
            del sys.modules[name]


@settings(max_examples=60, deadline=None)
@given(key=st.binary(min_size=16, max_size=16), iv=st.binary(min_size=16, max_size=16),
       blocks=st.integers(min_value=1, max_value=4), data=st.data())
def test_soft_aes_matches_cryptography(key: bytes, iv: bytes, blocks: int, data) -> None:
    import aes128

    plain = data.draw(st.binary(min_size=16 * blocks, max_size=16 * blocks))
    ref = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor().update(plain)
    assert aes128.backend() == "soft"
    assert aes128.cbc_encrypt(key, iv, plain) == ref
    assert aes128.cbc_decrypt(key, iv, ref) == plain
    ecb = Cipher(algorithms.AES(key), modes.ECB()).encryptor().update(plain[:16])
    assert aes128.ecb_encrypt(key, plain[:16]) == ecb


def test_shim_uart_over_pty_carries_osdp_frames() -> None:
    import machine
    import osdp_frame

    master, slave = os.openpty()
    tty.setraw(slave)
    try:
        uart = machine.UART(1, 9600, backend=machine.FdBackend(slave))
        frame = osdp_frame.build(0x05, 1, 0x60)
        os.write(master, frame)
        got = b""
        deadline = time.monotonic() + 30  # a bound on a busy machine, not a speed
        while len(got) < len(frame) and time.monotonic() < deadline:
            if uart.any():
                got += uart.read(uart.any())
            else:
                time.sleep(0.005)
        assert got == frame
        reply = osdp_frame.build(0x85, 1, 0x40)
        uart.write(reply)
        assert os.read(master, 64) == reply
        assert uart.tx_log[0][1] == reply
    finally:
        os.close(master)
        os.close(slave)


class _QuietApp:
    def on_led(self, recs): pass
    def on_buzzer(self, *a): pass
    def on_keyset(self, k): return True
    def on_comset(self, a, b): return True
    def next_report(self, now): return (0x50, b"\x00\x00\x20\x00\x01\x02\x03\x04", 1)
    def report_delivered(self, token): pass
    def on_mfg(self, v, d): return None


def _frames(data: bytes) -> list:
    import osdp_frame

    r = osdp_frame.FrameReader()
    r.feed(data, 0)
    out = []
    while (f := r.next_frame()) is not None:
        out.append(f)
    return out


@settings(max_examples=300, deadline=None)
@given(chunks=st.lists(st.binary(max_size=40), max_size=12), data=st.data())
def test_pd_survives_any_bytes_and_only_sends_valid_frames(chunks, data) -> None:
    """Garbage, truncated and spliced frames never raise, and every reply is one
    well-formed frame from our address."""
    import osdp_frame
    import osdp_pd

    pd = osdp_pd.PeripheralDevice(5, _QuietApp(), scbk=bytes(16), rng=bytes)
    valid = [osdp_frame.build(5, s, c, d) for s, c, d in (
        (0, 0x61, b"\x00"), (1, 0x60, b""), (2, 0x69, bytes(14)), (3, 0x76, bytes(8)))]
    valid.append(osdp_frame.build(5, 1, 0x76, bytes(8), scb=b"\x03\x11\x01"))
    valid.append(osdp_frame.build(5, 2, 0x77, bytes(16), scb=b"\x03\x13\x01"))
    valid.append(osdp_frame.build(5, 3, 0x60, scb=b"\x02\x15", mac_fn=lambda m: bytes(4)))
    t = 0
    for chunk in chunks:
        feed = chunk
        if data.draw(st.booleans()):
            v = data.draw(st.sampled_from(valid))
            cut = data.draw(st.integers(0, len(v)))
            feed = chunk + v[:cut] if data.draw(st.booleans()) else v + chunk
        t += 7
        for reply in pd.receive(feed, t):
            fs = _frames(reply)
            assert len(fs) == 1 and isinstance(fs[0], osdp_frame.Frame)
            assert fs[0].addr == 0x85
