"""``compound-gw nodes update``: refusals before the bus is touched, usage errors, and a real
transfer from the command to the node firmware running in MicroPython behind a pty."""

from __future__ import annotations

import argparse
import json
import os
import threading
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.update.bundle import make_bundle, public_key_hex
from gateway.update.node_cli import add_cli
from gateway.update.outbox import OUTBOX_NAME
from tests.firmware._live import LiveNode

KEY = bytes.fromhex("a1b2c3d4e5f60718293a4b5c6d7e8f90")
HARDWARE = "node-rp2040"


def run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="compound-gw")
    add_cli(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.handler(args))


def setup_site(tmp: Path, port: str, address: int = 101) -> dict[str, Path]:
    cp = tmp / "cp.toml"
    cp.write_text(
        f'[checkpoints]\n[[checkpoints.buses]]\nname = "a"\nport = "{port}"\n'
        f'[[checkpoints.points]]\nid = "north-gate"\nbus = "a"\naddress = {address}\n'
    )
    keys = tmp / "keys"
    keys.mkdir()
    fd = os.open(keys / f"a-{address}.scbk", os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, KEY.hex().encode() + b"\n")
    os.close(fd)
    gw = tmp / "gateway.toml"
    gw.write_text('[gateway]\nid = "gw-n-01"\ncompound = "Lotus"\ndata_dir = "data"\n')
    key = Ed25519PrivateKey.generate()
    pub = tmp / "update-key.pub"
    pub.write_text(public_key_hex(key))
    src = tmp / "src"
    src.mkdir()
    (src / "node.img").write_bytes(bytes(range(256)) * 8)
    bundle = tmp / "bundle"
    make_bundle(src, bundle, private_key=key, version="1.2.0", release=2, hardware=[HARDWARE],
                expires=int(time.time()) + 3600)  # fmt: skip
    return {"cp": cp, "gw": gw, "pub": pub, "bundle": bundle}


def argv(site: dict[str, Path], *extra: str) -> list[str]:
    return ["nodes", "update", str(site["bundle"]), "--config", str(site["gw"]),
            "--checkpoints-file", str(site["cp"]), "--trusted-key", str(site["pub"]),
            "--bus", "a", "--address", "101", "--hardware", HARDWARE, *extra]  # fmt: skip


def test_tampered_bundle_refused_and_recorded(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    site = setup_site(tmp_path, "/dev/nonexistent-bus")
    img = site["bundle"] / "files" / "node.img"
    data = bytearray(img.read_bytes())
    data[5] ^= 1
    img.write_bytes(bytes(data))
    assert run_cli(argv(site)) == 1
    assert "differs from its description" in capsys.readouterr().err
    lines = (tmp_path / "data" / OUTBOX_NAME).read_text().splitlines()
    ev = json.loads(lines[-1])
    assert ev["kind"] == "update.refused"
    assert ev["payload"]["code"] == "hash_mismatch" and ev["payload"]["node"] == "a/101"


def test_rollback_and_wrong_hardware_refused(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    site = setup_site(tmp_path, "/dev/nonexistent-bus")
    assert run_cli(argv(site, "--installed-release", "2")) == 1
    assert "not newer" in capsys.readouterr().err
    a = argv(site)
    a[a.index(HARDWARE)] = "node-esp32c3"
    assert run_cli(a) == 1
    assert "other hardware" in capsys.readouterr().err


def test_unknown_node_and_missing_port(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    site = setup_site(tmp_path, "/dev/nonexistent-bus")
    a = argv(site)
    a[a.index("101")] = "9"
    assert run_cli(a) == 2
    assert "a/9" in capsys.readouterr().err
    assert run_cli(argv(site, "--timeout", "5")) == 1
    assert "/dev/nonexistent-bus" in capsys.readouterr().err


@pytest.mark.timeout(400)
def test_command_sends_image_to_live_node_through_a_pty(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    master, slave = os.openpty()
    port = os.ttyname(slave)
    site = setup_site(tmp_path, port)
    flash = tmp_path / "flash"
    flash.mkdir()
    node = LiveNode(flash)
    stop = threading.Event()

    def pump() -> None:  # pty <-> the node's byte pipe
        os.set_blocking(master, False)
        while not stop.is_set():
            try:
                data = os.read(master, 4096)
            except (BlockingIOError, OSError):
                data = b""
            if data:
                node.channel.write(data)
            back = node.channel.read(4096)
            if back:
                os.write(master, back)
            if not data and not back:
                time.sleep(0.002)

    t = threading.Thread(target=pump, daemon=True)
    try:
        node.send(f"config 101 {KEY.hex()} 3000")
        node.expect("ready")
        t.start()
        assert run_cli(argv(site, "--timeout", "300")) == 0, capsys.readouterr().err
        assert "sent to a/101" in capsys.readouterr().out
        node.expect("ota staged 2")
    finally:
        stop.set()
        t.join(timeout=5)
        assert node.stop() == 0
        os.close(master)
        os.close(slave)
    assert (flash / "slot_b").read_bytes() == bytes(range(256)) * 8
