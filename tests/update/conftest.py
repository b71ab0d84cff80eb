"""Shared helpers for the update tests: keys and bundles made with the real signing tool."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.update.bundle import make_bundle

HW = "rpi4"


@pytest.fixture
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def build(
    tmp: Path,
    key: Ed25519PrivateKey,
    release: int,
    files: dict[str, bytes],
    *,
    version: str | None = None,
    hardware: tuple[str, ...] = (HW,),
    expires: int | None = None,
    name: str = "",
) -> Path:
    src = tmp / f"src-{name or release}"
    for rel, data in files.items():
        p = src / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        if rel.startswith("bin/"):
            p.chmod(0o755)
    out = tmp / f"bundle-{name or release}"
    make_bundle(
        src,
        out,
        private_key=key,
        version=version or f"1.{release}.0",
        release=release,
        hardware=list(hardware),
        expires=expires if expires is not None else int(time.time()) + 86400,
    )
    return out
