"""Checkpoint node firmware over the bus (issue 22): a signed node image goes from libosdp's
control panel over a simulated 9600-baud line to the firmware running in real MicroPython
(WebAssembly port); the node stages it in its other slot, switches at the next start and keeps
it once Secure Channel is up. A corrupted image is refused and the node stays on its slot; a
slot that never reaches Secure Channel is abandoned for the old one.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from osdp import ControlPanel, LibFlag, LogLevel, PDInfo

from drivers.osdp_filetx import pack_image, send_file
from gateway.update.bundle import UpdateRefused, make_bundle
from gateway.update.node import NodeImage, load_node_image
from tests.firmware._live import LiveNode
from tests.firmware._wire import PacedChannel

ADDRESS = 101
KEY = bytes.fromhex("a1b2c3d4e5f60718293a4b5c6d7e8f90")
OFFLINE_AFTER_MS = 3000
WAIT_S = 60.0  # a bound on waits, not a speed (see test_interop_libosdp.py)
SEND_S = 600.0  # bound on one transfer on a loaded machine; the bench measures the speed
HARDWARE = "node-rp2040"
NOW = 1_800_000_000


def wait_until(cond, timeout: float, step: float = 0.02) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(step)
    return cond()


class Node:
    """A live node on a paced 9600-baud line and, once connect()ed, libosdp's panel."""

    def __init__(self, flash: Path, runtime: str = "micropython") -> None:
        self.live = LiveNode(flash, runtime)
        self.live.send(f"config {ADDRESS} {KEY.hex()} {OFFLINE_AFTER_MS}")
        # "ready <boot> <pending> <slot-boot> <slot> <release>"
        self.ready = self.live.expect("ready", timeout=WAIT_S).split()
        self.line = PacedChannel(self.live.channel, 9600)
        self.cp: ControlPanel | None = None

    def connect(self) -> ControlPanel:
        end = time.monotonic() + WAIT_S
        while True:
            self.cp = ControlPanel(
                [PDInfo(ADDRESS, self.line, scbk=KEY, flags=[LibFlag.EnforceSecure])],
                log_level=LogLevel.Error,
            )
            self.cp.start()
            if wait_until(lambda: self.cp.is_sc_active(ADDRESS), 20.0):
                return self.cp
            self.disconnect()
            assert time.monotonic() < end, f"no Secure Channel; {self.live.stderr_tail()}"

    def disconnect(self) -> None:
        if self.cp is not None:
            self.cp.teardown()
            self.cp = None

    def close(self) -> int:
        self.disconnect()
        return self.live.stop()


@pytest.fixture
def flash(tmp_path: Path) -> Path:
    d = tmp_path / "flash"
    d.mkdir()
    return d


def _image(n: int, seed: int = 1) -> bytes:
    out = b""
    block = seed.to_bytes(4, "little")
    while len(out) < n:
        block = hashlib.sha256(block).digest()
        out += block
    return out[:n]


def _bundle(
    tmp: Path, image: bytes, release: int, name: str = "b"
) -> tuple[Path, Ed25519PublicKey]:
    key = Ed25519PrivateKey.generate()
    src = tmp / f"src-{name}"
    src.mkdir()
    (src / "node.img").write_bytes(image)
    out = tmp / f"bundle-{name}"
    make_bundle(src, out, private_key=key, version=f"1.{release}.0", release=release,
                hardware=[HARDWARE], expires=NOW + 86400)
    return out, key.public_key()


def _state(flash: Path) -> dict:
    return json.loads((flash / "ota.json").read_text())


@pytest.fixture
def signed_image(tmp_path: Path) -> NodeImage:
    image = _image(4096)
    bundle, pub = _bundle(tmp_path, image, 2)
    return load_node_image(bundle, pub, now=NOW, hardware=HARDWARE)


def test_image_over_9600_baud_switches_slot_at_next_start(flash: Path,
                                                          signed_image: NodeImage) -> None:
    n = Node(flash)
    try:
        assert n.ready[3:] == ["ok", "a", "0"]
        res = send_file(n.connect(), ADDRESS, signed_image.packed(), timeout=SEND_S)
        assert res.ok, (res, n.live.stderr_tail())
        assert res.sent == len(signed_image.packed())
        n.live.expect("ota staged 2")
        # the line was really paced: at least the wire time of what crossed it
        assert res.seconds >= (n.line.tx_bytes * 10 / 9600) * 0.9
    finally:
        assert n.close() == 0
    assert (flash / "slot_b").read_bytes() == signed_image.image
    st = _state(flash)
    assert (st["active"], st["next"], st["next_release"]) == ("a", "b", 2)
    n = Node(flash)  # reset: the staged slot starts on trial
    try:
        assert n.ready[3:] == ["switched", "b", "2"]
        n.connect()
        n.live.expect("ota confirmed")
    finally:
        assert n.close() == 0
    st = _state(flash)
    assert (st["active"], st["release"], st["trial"]) == ("b", 2, 0)


def test_corrupted_image_refused_node_stays_on_old_slot(flash: Path,
                                                        signed_image: NodeImage) -> None:
    bad = bytearray(signed_image.image)
    bad[1000] ^= 0x40  # one bit flipped after the gateway's check
    payload = pack_image(signed_image.release, bytes(bad), signed_image.sha256)
    n = Node(flash)
    try:
        res = send_file(n.connect(), ADDRESS, payload, timeout=SEND_S)
        assert not res.ok and res.reason == "refused", res
        n.live.expect("ota refused hash")
    finally:
        assert n.close() == 0
    st = _state(flash) if (flash / "ota.json").exists() else {"active": "a", "next": None}
    assert (st["active"], st["next"]) == ("a", None)
    assert not (flash / "slot_b").exists()
    n = Node(flash)
    try:
        assert n.ready[3:] == ["ok", "a", "0"]
        n.connect()  # still a working node in Secure Channel
    finally:
        assert n.close() == 0


def test_slot_that_never_reaches_secure_channel_falls_back(flash: Path,
                                                          signed_image: NodeImage) -> None:
    n = Node(flash)
    try:
        assert send_file(n.connect(), ADDRESS, signed_image.packed(), timeout=SEND_S).ok
        n.live.expect("ota staged 2")
    finally:
        assert n.close() == 0
    boots = []
    for _ in range(3):  # no panel ever brings these starts up in Secure Channel
        n = Node(flash)
        boots.append(n.ready[3:])
        assert n.close() == 0
    assert boots == [["switched", "b", "2"], ["trial", "b", "2"], ["fallback", "a", "0"]]
    st = _state(flash)
    assert (st["active"], st["release"], st["trial"], st["failed"]) == ("a", 0, 0, 2)
    n = Node(flash)
    try:
        assert n.ready[3:] == ["ok", "a", "0"]
        n.connect()
    finally:
        assert n.close() == 0


# --- gateway side: what is refused before a byte goes on the bus -------------------------


def test_gateway_refuses_tampered_wrong_hardware_and_rollback_node_bundles(
        tmp_path: Path) -> None:
    image = _image(2000)
    bundle, pub = _bundle(tmp_path, image, 3)
    assert load_node_image(bundle, pub, now=NOW, hardware=HARDWARE).release == 3
    with pytest.raises(UpdateRefused) as e:
        load_node_image(bundle, pub, now=NOW, hardware="node-esp32c3")
    assert e.value.code == "wrong_hardware"
    with pytest.raises(UpdateRefused) as e:
        load_node_image(bundle, pub, now=NOW, hardware=HARDWARE,
                        installed_release=3)
    assert e.value.code == "rollback"
    img = bundle / "files" / "node.img"
    img.write_bytes(image[:-1] + bytes([image[-1] ^ 1]))
    with pytest.raises(UpdateRefused) as e:
        load_node_image(bundle, pub, now=NOW, hardware=HARDWARE)
    assert e.value.code == "hash_mismatch"
    src = tmp_path / "src-two"
    src.mkdir()
    (src / "node.img").write_bytes(image)
    (src / "extra.bin").write_bytes(b"x")  # a second file: not a node image bundle
    three = tmp_path / "three"
    key = Ed25519PrivateKey.generate()
    make_bundle(src, three, private_key=key, version="1.4.0", release=4,
                hardware=[HARDWARE], expires=NOW + 86400)
    with pytest.raises(UpdateRefused) as e:
        load_node_image(three, key.public_key(), now=NOW, hardware=HARDWARE)
    assert e.value.code == "malformed"


def test_pack_image_layout() -> None:
    p = pack_image(7, b"abc")
    assert p[:4] == b"CGN1" and len(p) == 44 + 3
    assert int.from_bytes(p[4:8], "little") == 7 and int.from_bytes(p[8:12], "little") == 3
    assert p[12:44] == hashlib.sha256(b"abc").digest()
    with pytest.raises(ValueError):
        pack_image(0, b"abc")
