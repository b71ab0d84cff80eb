"""Node firmware bundles: a signed bundle for a checkpoint node board, verified for the bus.

A checkpoint node's firmware is an ordinary update bundle (:mod:`gateway.update.bundle`) whose
hardware names a node board (``node-rp2040``, ``node-esp32c3``) and whose one file is
``node.img``. :func:`load_node_image` checks it exactly as the gateway checks its own bundles
(signature first, then expiry, hardware, rollback against the node's release) and reads the image
capped at its declared size, refusing on a hash mismatch; :mod:`drivers.osdp_filetx` sends it.

    image = load_node_image(bundle, pubkey, now=time.time(), hardware="node-rp2040")
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from drivers.osdp_filetx import IMAGE_MAX, pack_image
from gateway.update.bundle import (
    FILES_DIR,
    UpdateRefused,
    read_capped,
    read_signed,
    verify_metadata,
)

NODE_IMAGE_NAME = "node.img"


@dataclass(frozen=True, slots=True)
class NodeImage:
    version: str
    release: int
    sha256: bytes  # from the signed metadata (and equal to the image's own)
    image: bytes

    def packed(self) -> bytes:
        """What goes over the bus: the header the node checks, then the image."""
        return pack_image(self.release, self.image, self.sha256)


def load_node_image(
    bundle: Path,
    public_key: Ed25519PublicKey,
    *,
    now: float,
    hardware: str,
    installed_release: int = 0,
) -> NodeImage:
    """Verify a node bundle and return its image. Raises only :class:`UpdateRefused`."""
    data, sig = read_signed(bundle)
    meta = verify_metadata(
        data, sig, public_key, now=now, hardware=hardware, installed_release=installed_release
    )
    if [f.path for f in meta.files] != [NODE_IMAGE_NAME]:
        raise UpdateRefused("malformed", f"a node bundle holds exactly one file, {NODE_IMAGE_NAME}")
    entry = meta.files[0]
    if entry.size > IMAGE_MAX or meta.release >= 2**32:
        raise UpdateRefused("too_large", "node image larger than a slot", limit=IMAGE_MAX)
    image = read_capped(bundle / FILES_DIR / NODE_IMAGE_NAME, entry.size)
    digest = hashlib.sha256(image)
    if len(image) != entry.size or digest.hexdigest() != entry.sha256:
        raise UpdateRefused(
            "hash_mismatch", "node image differs from the metadata", path=entry.path
        )
    return NodeImage(meta.version, meta.release, digest.digest(), image)
