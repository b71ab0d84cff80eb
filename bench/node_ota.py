"""Node firmware over the bus: time to send a 30 KB image at 9600 baud, beside the wire's minimum.

    .venv/bin/python bench/node_ota.py [--size 30720] [--baud 9600] [--runtime micropython]

A signed node bundle is made and verified as the gateway does (gateway/update/node.py), then
libosdp's control panel sends the image by osdp_FILETRANSFER inside Secure Channel over a paced
simulated line (tests/firmware/_wire.py) to the node firmware running in real MicroPython
(WebAssembly port, or CPython with --runtime cpython), which hashes, stores and stages it. Printed
in the same run: the measured transfer time; the wire's own minimum for the image bytes alone at
8N1 (10 bits a byte); and the minimum for every byte that actually crossed the line (frame
headers, Secure Channel MACs and padding, the node's osdp_FTSTAT replies), so the gap splits into
protocol overhead and turnaround (panel poll period, node processing, libosdp's 20 ms loop).
Figures, not pass/fail.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402
from osdp import ControlPanel, LibFlag, LogLevel, PDInfo  # noqa: E402

from drivers.osdp_filetx import send_file, wire_seconds  # noqa: E402
from gateway.update.bundle import make_bundle  # noqa: E402
from gateway.update.node import load_node_image  # noqa: E402
from tests.firmware._live import LiveNode  # noqa: E402
from tests.firmware._wire import PacedChannel  # noqa: E402

ADDRESS = 101
KEY = bytes.fromhex("a1b2c3d4e5f60718293a4b5c6d7e8f90")
HARDWARE = "node-rp2040"


def _image(n: int) -> bytes:
    out = b""
    block = b"bench"
    while len(out) < n:
        block = hashlib.sha256(block).digest()
        out += block
    return out[:n]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=30 * 1024, help="image bytes (default 30 KiB)")
    ap.add_argument("--baud", type=int, default=9600)
    ap.add_argument("--runtime", choices=("micropython", "cpython"), default="micropython")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        src = tmp / "src"
        src.mkdir()
        (src / "node.img").write_bytes(_image(args.size))
        key = Ed25519PrivateKey.generate()
        now = time.time()
        make_bundle(
            src,
            tmp / "bundle",
            private_key=key,
            version="1.1.0",
            release=2,
            hardware=[HARDWARE],
            expires=int(now) + 3600,
        )
        image = load_node_image(tmp / "bundle", key.public_key(), now=now, hardware=HARDWARE)
        flash = tmp / "flash"
        flash.mkdir()
        node = LiveNode(flash, args.runtime)
        cp = None
        try:
            node.send(f"config {ADDRESS} {KEY.hex()} 8000")
            node.expect("ready")
            line = PacedChannel(node.channel, args.baud)
            cp = ControlPanel(
                [PDInfo(ADDRESS, line, scbk=KEY, flags=[LibFlag.EnforceSecure])],
                log_level=LogLevel.Error,
            )
            cp.start()
            end = time.monotonic() + 60
            while not cp.is_sc_active(ADDRESS):
                if time.monotonic() > end:
                    print("no Secure Channel with the node in 60 s", file=sys.stderr)
                    return 1
                time.sleep(0.05)
            tx0, rx0 = line.tx_bytes, line.rx_bytes
            res = send_file(cp, ADDRESS, image.packed(), timeout=1800)
            staged = node.expect("ota ", timeout=60) if res.ok else "(not staged)"
            tx, rx = line.tx_bytes - tx0, line.rx_bytes - rx0
        finally:
            if cp is not None:
                cp.teardown()
            node.stop()
    packed = len(image.packed())
    print(
        f"node image over OSDP file transfer, {args.runtime} node, {args.baud} baud 8N1, "
        f"Secure Channel"
    )
    print(
        f"  image {args.size} bytes (+44 header = {packed}); result: {res.reason}, node: {staged}"
    )
    print(
        f"  measured transfer time            {res.seconds:8.1f} s "
        f"({packed / max(res.seconds, 1e-9):.0f} image bytes/s)"
    )
    print(f"  wire minimum, image bytes only    {wire_seconds(packed, args.baud):8.1f} s")
    print(
        f"  wire minimum, bytes on the line   {wire_seconds(tx + rx, args.baud):8.1f} s "
        f"(panel->node {tx}, node->panel {rx} bytes)"
    )
    return 0 if res.ok else 1


if __name__ == "__main__":
    sys.exit(main())
