"""Releases the centre can offer: signed bundle folders under ``<centre>/releases/<name>/``.

A release engineer places a bundle made by ``compound-gw update make-bundle`` there (the
folder as is: ``metadata.json``, ``metadata.sig``, ``files/...``). The centre does not hold the
update key's public half and does not judge the signature: each gateway verifies the bundle
against the key it pins before it uses a byte (docs/updates.md). The centre reads only what
it shows and serves: version, release number, hardware, expiry, and every file's sha256 and
size, and it serves a file by hash only if a release's metadata names that hash. Hostile or
damaged folders are skipped (:class:`ReleaseError`), never served.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

RELEASES_DIR: Final = "releases"
NAME_RE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,79}")
SHA256_RE: Final = re.compile(r"[0-9a-f]{64}")
MAX_METADATA: Final = 256 * 1024
MAX_SIGNATURE: Final = 64
_PATH_PART: Final = re.compile(r"[A-Za-z0-9._+-]+")


class ReleaseError(Exception):
    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Release:
    name: str
    folder: Path
    version: str
    release: int
    hardware: tuple[str, ...]
    expires: float
    metadata_sha256: str
    signature_sha256: str
    files: dict[str, tuple[str, int]]  # path -> (sha256, size)

    @property
    def total_bytes(self) -> int:
        return sum(size for _, size in self.files.values())

    def offer(self) -> dict[str, Any]:
        """What a gateway is told: enough to fetch every part by hash and check it."""
        return {
            "version": self.version,
            "release": self.release,
            "metadata": {"sha256": self.metadata_sha256},
            "signature": {"sha256": self.signature_sha256},
            "files": {p: {"sha256": h, "size": s} for p, (h, s) in sorted(self.files.items())},
        }

    def path_for(self, sha256: str) -> Path | None:
        """The file of this release whose hash is ``sha256``, if any."""
        if sha256 == self.metadata_sha256:
            return self.folder / "metadata.json"
        if sha256 == self.signature_sha256:
            return self.folder / "metadata.sig"
        for path, (h, _size) in self.files.items():
            if h == sha256:
                return self.folder / "files" / path
        return None


def _read_capped(path: Path, cap: int) -> bytes:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(fd, "rb") as f:
        data = f.read(cap + 1)
    if len(data) > cap:
        raise ReleaseError("too_large", f"{path.name} is larger than {cap} bytes")
    return data


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def load(folder: Path) -> Release:
    """Read one release folder; ReleaseError if it is not a usable bundle."""
    name = folder.name
    if not NAME_RE.fullmatch(name):
        raise ReleaseError("bad_name", "release folder names use letters, digits, . _ -")
    try:
        raw = _read_capped(folder / "metadata.json", MAX_METADATA)
        sig = _read_capped(folder / "metadata.sig", MAX_SIGNATURE)
    except OSError as exc:
        raise ReleaseError("unreadable", f"{name}: {type(exc).__name__}") from None
    try:
        meta = json.loads(raw)
    except (ValueError, RecursionError):
        raise ReleaseError("malformed", f"{name}: metadata.json is not JSON") from None
    if not isinstance(meta, dict):
        raise ReleaseError("malformed", f"{name}: metadata.json is not an object")
    version, number = meta.get("version"), meta.get("release")
    hardware, expires, files = meta.get("hardware"), meta.get("expires"), meta.get("files")
    if (
        not isinstance(version, str)
        or not 0 < len(version) <= 64
        or not isinstance(number, int)
        or isinstance(number, bool)
        or number < 1
        or not isinstance(hardware, list)
        or not all(isinstance(h, str) and len(h) <= 64 for h in hardware)
        or not isinstance(expires, int | float)
        or isinstance(expires, bool)
        or not isinstance(files, dict)
        or len(files) > 2000
    ):
        raise ReleaseError("malformed", f"{name}: metadata fields missing or of the wrong type")
    listed: dict[str, tuple[str, int]] = {}
    for path, entry in files.items():
        parts = path.split("/") if isinstance(path, str) else []
        if (
            not parts
            or any(p in ("", ".", "..") or not _PATH_PART.fullmatch(p) for p in parts)
            or not isinstance(entry, dict)
            or not isinstance(entry.get("sha256"), str)
            or not SHA256_RE.fullmatch(entry["sha256"])
            or not isinstance(entry.get("size"), int)
            or isinstance(entry.get("size"), bool)
            or entry["size"] < 0
        ):
            raise ReleaseError("malformed", f"{name}: a file entry is malformed")
        listed[path] = (entry["sha256"], entry["size"])
    return Release(
        name, folder, version, number, tuple(hardware), float(expires), _sha(raw), _sha(sig),
        listed,
    )  # fmt: skip


class Releases:
    """The releases folder, read again when asked (a release engineer adds folders by hand)."""

    def __init__(self, centre_root: Path) -> None:
        self.folder = Path(centre_root) / RELEASES_DIR

    def list(self) -> list[Release]:
        out = []
        try:
            entries = sorted(self.folder.iterdir())
        except FileNotFoundError:
            return []
        for entry in entries:
            if entry.is_dir() and not entry.is_symlink():
                try:
                    out.append(load(entry))
                except ReleaseError:
                    continue
        return sorted(out, key=lambda r: (-r.release, r.name))

    def get(self, name: str) -> Release:
        if not NAME_RE.fullmatch(name):
            raise ReleaseError("no_release", "no such release")
        folder = self.folder / name
        if not folder.is_dir() or folder.is_symlink():
            raise ReleaseError("no_release", "no such release")
        return load(folder)
