"""Helpers for the rollout tests: releases placed in a real centre, a gateway's mTLS context."""

from __future__ import annotations

import ssl
import time
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from centre.rollout.release import RELEASES_DIR
from gateway.sync.config import SyncPaths, SyncSection
from gateway.sync.tls import client_ssl_context
from gateway.update.bundle import make_bundle
from tests.console.district import District

HW = "rpi4"


def place_release(
    district: District,
    tmp: Path,
    key: Ed25519PrivateKey,
    release: int,
    files: dict[str, bytes],
    *,
    name: str | None = None,
) -> str:
    """Build and sign a bundle with the real tool and place it in the centre's releases."""
    name = name or f"gw-1.{release}.0"
    src = tmp / f"src-{name}"
    for rel, data in files.items():
        p = src / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        if rel.startswith("bin/"):
            p.chmod(0o755)
    make_bundle(
        src,
        district.paths.root / RELEASES_DIR / name,
        private_key=key,
        version=f"1.{release}.0",
        release=release,
        hardware=[HW],
        expires=int(time.time()) + 86400,
    )
    return name


def gateway_dir(tmp: Path, gateway_id: str) -> Path:
    return tmp / "gateways" / gateway_id  # where tests.console.district provisions it


def gateway_ssl(tmp: Path, gateway_id: str) -> ssl.SSLContext:
    paths = SyncPaths.from_section(SyncSection(), gateway_dir(tmp, gateway_id))
    return client_ssl_context(paths.ca, paths.cert, paths.key)
