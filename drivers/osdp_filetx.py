"""Checkpoint node firmware over the bus: one file to one reader by libosdp's osdp_FILETRANSFER.

Transport only (no policy): the gateway verifies the signed node bundle
(:mod:`gateway.update.node`) and hands the image here. What goes over the bus is
:func:`pack_image`: a 44-byte header (``CGN1``, release, size, the sha256 from the signed
metadata) and the image. The node (firmware_mpy/ota.py) hashes the image as it arrives, compares
with the header, refuses a release not newer than its own, and only then stages the new slot; it
switches at its next start and falls back if that slot never reaches Secure Channel.

libosdp's control panel does the transfer (``register_file_ops`` + a ``FileTransfer`` command);
:func:`send_file` drives it and reports one :class:`TransferResult`. libosdp takes a node that
answers the last fragment with an error status offline (and so out of Secure Channel): that, or
the transfer stopping, is how a refusal shows on this side. Usage::

    result = send_image(cp, address, release, image, sha256, timeout=600)
"""

from __future__ import annotations

import hashlib
import struct
import time
from dataclasses import dataclass
from typing import Any, Protocol

NODE_FILE_TYPE = 1  # osdp_FILETRANSFER file type the node takes as a firmware image
MAGIC = b"CGN1"
HEADER_SIZE = 44
IMAGE_MAX = 96 * 1024  # firmware_mpy/ota.py SLOT_MAX
SETTLE_S = 1.5  # after the last fragment: the node stays in Secure Channel if it took the image
BAUD_BITS = 10  # 8N1: start + 8 data + stop per byte


@dataclass(frozen=True, slots=True)
class TransferResult:
    ok: bool
    # "sent", "refused" (node answered an error / left SC), "stalled", "timeout",
    # "no_secure_channel" (update_node_on_port: the node never came up)
    reason: str
    sent: int  # bytes the panel had delivered when it stopped
    size: int
    seconds: float


class FileTxPanel(Protocol):
    """The part of osdp.ControlPanel used here."""

    def register_file_ops(self, address: int, fops: dict[str, Any]) -> Any: ...
    def submit_command(self, address: int, cmd: dict[str, Any]) -> bool: ...
    def get_file_tx_status(self, address: int) -> dict[str, int] | None: ...
    def is_sc_active(self, address: int) -> bool: ...


def pack_image(release: int, image: bytes, sha256: bytes | None = None) -> bytes:
    """Header + image as the node expects it; ``sha256`` defaults to the image's own hash."""
    digest = hashlib.sha256(image).digest() if sha256 is None else sha256
    if len(digest) != 32 or not 0 < release < 2**32 or len(image) > IMAGE_MAX:
        raise ValueError("release must be 1..2**32-1, sha256 32 bytes, the image <= 96 KiB")
    return MAGIC + struct.pack("<II", release, len(image)) + digest + image


def wire_seconds(n_bytes: int, baud: int = 9600) -> float:
    """The least time ``n_bytes`` take on an 8N1 line at ``baud``."""
    return n_bytes * BAUD_BITS / baud


def send_file(
    cp: FileTxPanel, address: int, payload: bytes, *, timeout: float, poll: float = 0.05
) -> TransferResult:
    """Send ``payload`` as file NODE_FILE_TYPE; returns when the node took it, refused it, or
    ``timeout`` seconds passed. The panel must already be in Secure Channel with the node."""
    from osdp import Command

    def fopen(file_id: int, _size: int) -> int:
        return len(payload) if file_id == NODE_FILE_TYPE else -1

    def fread(size: int, offset: int) -> bytes:
        return payload[offset : offset + size]

    def fwrite(_data: bytes, _offset: int) -> int:
        return -1  # the panel only sends

    def fclose(_file_id: int) -> int:
        return 0

    cp.register_file_ops(address, {"open": fopen, "read": fread, "write": fwrite, "close": fclose})
    start = time.monotonic()
    if not cp.submit_command(
        address, {"command": Command.FileTransfer, "id": NODE_FILE_TYPE, "flags": 0}
    ):
        return TransferResult(False, "stalled", 0, len(payload), 0.0)
    sent = 0
    done_at: float | None = None
    started = False
    while True:
        now = time.monotonic()
        st = cp.get_file_tx_status(address)
        if st is not None:
            started = True
            sent = st["offset"]
        if not cp.is_sc_active(address):
            return TransferResult(
                False, "refused" if started else "stalled", sent, len(payload), now - start
            )
        if st is None and started:
            return TransferResult(False, "refused", sent, len(payload), now - start)
        if sent == len(payload):
            if done_at is None:
                done_at = now
            elif now - done_at >= SETTLE_S:
                return TransferResult(True, "sent", sent, len(payload), done_at - start)
        if now - start > timeout:
            return TransferResult(False, "timeout", sent, len(payload), now - start)
        time.sleep(poll)


def send_image(
    cp: FileTxPanel, address: int, release: int, image: bytes, sha256: bytes, *, timeout: float
) -> TransferResult:
    """Send a verified image (``sha256`` from its signed metadata) to the node at ``address``."""
    return send_file(cp, address, pack_image(release, image, sha256), timeout=timeout)


def update_node_on_port(
    port: str,
    baud: int,
    address: int,
    scbk: bytes,
    release: int,
    image: bytes,
    sha256: bytes,
    *,
    timeout: float,
) -> TransferResult:
    """Open ``port`` (exclusively: stop the daemon's bus first), bring the node up in Secure
    Channel with its key and send ``image``. Serial errors propagate (port busy, no adapter).

        update_node_on_port("/dev/ttyUSB0", 9600, 3, scbk, 5, image, sha256, timeout=900)
    """
    import serial
    from osdp import ControlPanel, LibFlag, LogLevel, PDInfo

    from drivers.osdp_bus import FrameSniffer, SerialChannel

    start = time.monotonic()
    ser = serial.Serial(port, baud, timeout=0, exclusive=True)
    try:
        channel = SerialChannel(ser, FrameSniffer(), on_fail=lambda _why: None, baud=baud)
        cp = ControlPanel(
            [PDInfo(address, channel, scbk=scbk, flags=[LibFlag.EnforceSecure])],
            log_level=LogLevel.Error,
        )
        cp.start()
        try:
            deadline = start + min(timeout, 30.0)
            while not cp.is_sc_active(address):
                if time.monotonic() > deadline:
                    return TransferResult(False, "no_secure_channel", 0, 0, 0.0)
                time.sleep(0.05)
            left = max(1.0, timeout - (time.monotonic() - start))
            return send_image(cp, address, release, image, sha256, timeout=left)
        finally:
            cp.teardown()
    finally:
        ser.close()
