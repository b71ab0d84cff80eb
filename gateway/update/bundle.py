"""Signed update bundles: format, signing (release engineer) and verifying (gateway).

A bundle is a folder::

    metadata.json      one JSON object (below), at most METADATA_MAX_BYTES
    metadata.sig       64 bytes: Ed25519 over SIGNING_CONTEXT + the exact bytes of metadata.json
    files/<path>       the payload, every file named in metadata["files"]

metadata.json::

    {"format": 1, "product": "compound-gw", "version": "1.4.0", "release": 42,
     "hardware": ["rpi4"], "expires": 1798761600,
     "files": {"bin/compound-gw": {"sha256": "<64 hex>", "size": 1234, "exec": true}, ...}}

The update key is an Ed25519 key of its own (not the CA, not the command key): the private half
is a 0600 hex file on the release engineer's machine, the public half is pinned on the gateway.

Everything read from a bundle is hostile until verified. :class:`UpdateRefused` is the only error
the verifier raises; its ``code`` is one of :data:`REFUSAL_CODES`. The threat model follows The
Update Framework (docs/updates.md): rollback (``release`` must exceed the installed one, recorded
durably), freeze (``expires``), endless data (every read is capped at the declared size while
reading), mix-and-match (one signed metadata names every file's hash and size; nothing else in
the folder is ever read).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from gateway.errors import GatewayError

FORMAT = 1
PRODUCT = "compound-gw"
SIGNING_CONTEXT = b"compound-gw update metadata v1\n"
METADATA_NAME = "metadata.json"
SIGNATURE_NAME = "metadata.sig"
FILES_DIR = "files"

METADATA_MAX_BYTES = 256 * 1024
MAX_FILES = 2000
FILE_MAX_BYTES = 256 * 1024 * 1024
TOTAL_MAX_BYTES = 512 * 1024 * 1024
MAX_RELEASE = 2**53
PUBLIC_KEY_FILE_MAX = 200
CHUNK = 64 * 1024

REFUSAL_CODES = (
    "malformed",  # metadata or signature file unreadable, not JSON, wrong shape
    "unsigned",  # no signature file
    "bad_signature",  # signature does not verify with the pinned key (tampered or other key)
    "expired",  # metadata past its expiry (freeze attack)
    "rollback",  # release not newer than the installed one
    "failed_before",  # this release was installed once and rolled back
    "wrong_hardware",  # not built for this gateway's hardware
    "wrong_product",  # a bundle for something else
    "too_large",  # over a size cap (metadata, a file, the total)
    "missing_file",  # a file named in the metadata is absent or not a regular file
    "hash_mismatch",  # a file's size or sha256 differs from the metadata
    "venv_failed",  # the bundle's wheels did not install into a new venv (offline)
)

_VERSION_RE = re.compile(r"[0-9A-Za-z][0-9A-Za-z.+-]{0,39}")
_HARDWARE_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")
_COMPONENT_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._+-]{0,99}")
_HEX64_RE = re.compile(r"[0-9a-f]{64}")


class UpdateRefused(GatewayError):
    """An update bundle was refused; ``code`` says why (one of :data:`REFUSAL_CODES`)."""

    def __init__(self, code: str, reason: str, **fields: Any) -> None:
        assert code in REFUSAL_CODES, code
        super().__init__(reason, code=code, **fields)
        self.code = code


@dataclass(frozen=True)
class FileEntry:
    path: str
    sha256: str
    size: int
    executable: bool


@dataclass(frozen=True)
class Metadata:
    version: str
    release: int
    hardware: tuple[str, ...]
    expires: int
    files: tuple[FileEntry, ...] = field(default_factory=tuple)

    @property
    def total_size(self) -> int:
        return sum(f.size for f in self.files)


# --------------------------------------------------------------------------- keys


def generate_key(private_path: Path) -> str:
    """Make a new update key: the private seed as a 0600 hex file; returns the public key hex."""
    from gateway.config import write_secret_file

    key = Ed25519PrivateKey.generate()
    seed = key.private_bytes_raw()
    write_secret_file(private_path, seed)
    return key.public_key().public_bytes_raw().hex()


def load_private_key(path: Path) -> Ed25519PrivateKey:
    """The release engineer's key (refused if group or others can read it)."""
    from gateway.config import read_secret_file

    return Ed25519PrivateKey.from_private_bytes(
        read_secret_file(path, "update signing key", length=32)
    )


def public_key_hex(private: Ed25519PrivateKey) -> str:
    return private.public_key().public_bytes_raw().hex()


def parse_public_key(text: str) -> Ed25519PublicKey:
    """A pinned public key, 64 hex digits. Raises ValueError."""
    text = text.strip().lower()
    if not _HEX64_RE.fullmatch(text):
        raise ValueError("an update public key is 64 hex digits")
    return Ed25519PublicKey.from_public_bytes(bytes.fromhex(text))


def load_public_key(path: Path) -> Ed25519PublicKey:
    """Read the pinned public key file. Raises ValueError or OSError."""
    with open(path, "rb") as f:
        data = f.read(PUBLIC_KEY_FILE_MAX + 1)
    if len(data) > PUBLIC_KEY_FILE_MAX:
        raise ValueError("public key file too large")
    return parse_public_key(data.decode("ascii", errors="replace"))


# --------------------------------------------------------------------------- metadata parsing


def _malformed(reason: str) -> UpdateRefused:
    return UpdateRefused("malformed", reason)


def _valid_path(path: Any) -> bool:
    if not isinstance(path, str) or not 0 < len(path) <= 255:
        return False
    parts = path.split("/")
    return len(parts) <= 8 and all(
        _COMPONENT_RE.fullmatch(p) and p not in (".", "..") for p in parts
    )


def _int(obj: Mapping[str, Any], key: str, lo: int, hi: int) -> int:
    value = obj.get(key)
    if type(value) is not int or not lo <= value <= hi:
        raise _malformed(f"{key} must be a whole number in {lo}..{hi}")
    return value


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def decode_metadata(data: bytes) -> Metadata:
    """Parse metadata bytes (already signature-checked). Raises only :class:`UpdateRefused`."""
    if len(data) > METADATA_MAX_BYTES:
        raise UpdateRefused("too_large", "metadata too large", limit=METADATA_MAX_BYTES)
    try:
        obj = json.loads(data.decode("utf-8"), parse_constant=_no_constants)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise _malformed(f"metadata is not JSON: {type(exc).__name__}") from None
    if not isinstance(obj, dict):
        raise _malformed("metadata is not a JSON object")
    known = {"format", "product", "version", "release", "hardware", "expires", "files"}
    unknown = sorted(str(k) for k in obj if k not in known)
    if unknown:
        raise _malformed(f"unknown metadata keys: {', '.join(unknown)[:200]}")
    if obj.get("format") != FORMAT or type(obj.get("format")) is not int:
        raise _malformed(f"format must be {FORMAT}")
    if obj.get("product") != PRODUCT:
        raise UpdateRefused("wrong_product", "bundle is not for compound-gw")
    version = obj.get("version")
    if not isinstance(version, str) or not _VERSION_RE.fullmatch(version):
        raise _malformed("version must be 1..40 of 0-9 A-Z a-z . + -")
    release = _int(obj, "release", 1, MAX_RELEASE)
    expires = _int(obj, "expires", 0, MAX_RELEASE)
    hardware = obj.get("hardware")
    if (
        not isinstance(hardware, list)
        or not 0 < len(hardware) <= 32
        or not all(isinstance(h, str) and _HARDWARE_RE.fullmatch(h) for h in hardware)
    ):
        raise _malformed("hardware must be a list of 1..32 hardware names")
    files = obj.get("files")
    if not isinstance(files, dict) or not 0 < len(files) <= MAX_FILES:
        raise _malformed(f"files must be an object naming 1..{MAX_FILES} files")
    entries: list[FileEntry] = []
    total = 0
    seen_lower: set[str] = set()
    for path, entry in files.items():
        if not _valid_path(path):
            raise _malformed("a file path is not a plain relative path")
        if path.lower() in seen_lower:
            raise _malformed("two file paths differ only in case")
        seen_lower.add(path.lower())
        if not isinstance(entry, dict) or set(entry) - {"sha256", "size", "exec"}:
            raise _malformed("a file entry must be {sha256, size, exec}")
        digest = entry.get("sha256")
        if not isinstance(digest, str) or not _HEX64_RE.fullmatch(digest):
            raise _malformed("sha256 must be 64 lowercase hex digits")
        size = _int(entry, "size", 0, FILE_MAX_BYTES)
        executable = entry.get("exec", False)
        if not isinstance(executable, bool):
            raise _malformed("exec must be true or false")
        total += size
        entries.append(FileEntry(path, digest, size, executable))
    if total > TOTAL_MAX_BYTES:
        raise UpdateRefused("too_large", "bundle payload too large", limit=TOTAL_MAX_BYTES)
    # A file that is also a folder of another ("a" and "a/b") cannot be unpacked.
    names = {e.path for e in entries}
    for e in entries:
        parts = e.path.split("/")
        for i in range(1, len(parts)):
            if "/".join(parts[:i]) in names:
                raise _malformed("a file path is also a folder")
    return Metadata(
        version=version,
        release=release,
        hardware=tuple(hardware),
        expires=expires,
        files=tuple(sorted(entries, key=lambda e: e.path)),
    )


def check_signature(public_key: Ed25519PublicKey, data: bytes, signature: bytes | None) -> None:
    if signature is None:
        raise UpdateRefused("unsigned", "bundle has no signature")
    if len(signature) != 64:
        raise UpdateRefused("bad_signature", "signature is not 64 bytes")
    try:
        public_key.verify(signature, SIGNING_CONTEXT + data)
    except InvalidSignature:
        raise UpdateRefused(
            "bad_signature", "signature does not verify with the pinned update key"
        ) from None


def verify_metadata(
    data: bytes,
    signature: bytes | None,
    public_key: Ed25519PublicKey,
    *,
    now: float,
    hardware: str,
    installed_release: int,
    failed_releases: frozenset[int] = frozenset(),
) -> Metadata:
    """Check signature, then shape, expiry, product, hardware and rollback, in that order.

    The signature is checked before any byte is parsed. Raises only :class:`UpdateRefused`.
    """
    if len(data) > METADATA_MAX_BYTES:
        raise UpdateRefused("too_large", "metadata too large", limit=METADATA_MAX_BYTES)
    check_signature(public_key, data, signature)
    meta = decode_metadata(data)
    if meta.expires <= now:
        raise UpdateRefused("expired", "bundle metadata has expired", expires=meta.expires)
    if hardware not in meta.hardware:
        raise UpdateRefused(
            "wrong_hardware",
            "bundle is not built for this gateway's hardware",
            hardware=hardware,
            bundle_hardware=list(meta.hardware),
        )
    if meta.release in failed_releases:
        raise UpdateRefused(
            "failed_before", "this release was rolled back here before", release=meta.release
        )
    if meta.release <= installed_release:
        raise UpdateRefused(
            "rollback",
            "bundle is not newer than the installed release",
            release=meta.release,
            installed_release=installed_release,
        )
    return meta


# --------------------------------------------------------------------------- reading files


def read_capped(path: Path, cap: int) -> bytes:
    """A regular file's bytes, refusing (``too_large``) past ``cap`` while reading."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        raise UpdateRefused("missing_file", f"cannot open {path.name}: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            raise UpdateRefused("missing_file", f"{path.name} is not a regular file")
        data = f.read(cap + 1)
    if len(data) > cap:
        raise UpdateRefused("too_large", f"{path.name} is larger than {cap} bytes", limit=cap)
    return data


def read_signed(bundle: Path) -> tuple[bytes, bytes | None]:
    """(metadata bytes, signature bytes or None), both capped."""
    data = read_capped(bundle / METADATA_NAME, METADATA_MAX_BYTES)
    if not (bundle / SIGNATURE_NAME).exists() and not (bundle / SIGNATURE_NAME).is_symlink():
        return data, None
    return data, read_capped(bundle / SIGNATURE_NAME, 64)


def copy_verified(src: Path, dst: Path, entry: FileEntry) -> None:
    """Copy one payload file, reading at most its declared size + 1, then check size and hash.

    ``dst`` is written, fsynced and given its mode; a mismatch removes it and refuses.
    """
    try:
        fd = os.open(src, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        raise UpdateRefused(
            "missing_file", f"cannot open {entry.path}: {exc.strerror}", path=entry.path
        ) from None
    digest = hashlib.sha256()
    got = 0
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        with os.fdopen(fd, "rb") as f, open(dst, "wb") as out:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                raise UpdateRefused(
                    "missing_file", f"{entry.path} is not a regular file", path=entry.path
                )
            while True:
                chunk = f.read(min(CHUNK, entry.size + 1 - got))
                if not chunk:
                    break
                got += len(chunk)
                if got > entry.size:
                    raise UpdateRefused(
                        "hash_mismatch", f"{entry.path} is longer than declared", path=entry.path
                    )
                digest.update(chunk)
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        if got != entry.size or digest.hexdigest() != entry.sha256:
            raise UpdateRefused(
                "hash_mismatch", f"{entry.path} differs from the metadata", path=entry.path
            )
    except BaseException:
        dst.unlink(missing_ok=True)
        raise
    os.chmod(dst, 0o755 if entry.executable else 0o644)


def hash_file(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def tree_matches(root: Path, meta: Metadata) -> bool:
    """Whether every file of ``meta`` is present under ``root`` with its size and hash."""
    for entry in meta.files:
        p = root / entry.path
        try:
            if p.is_symlink() or not p.is_file() or p.stat().st_size != entry.size:
                return False
            if hash_file(p)[0] != entry.sha256:
                return False
        except OSError:
            return False
    return True


# --------------------------------------------------------------------------- making bundles


def _walk(src: Path) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(src):
        dirnames.sort()
        for name in sorted(filenames):
            yield Path(dirpath) / name


def make_bundle(
    src: Path,
    out: Path,
    *,
    private_key: Ed25519PrivateKey,
    version: str,
    release: int,
    hardware: list[str],
    expires: int,
) -> Metadata:
    """Build and sign a bundle folder ``out`` from every regular file under ``src``.

    The result is checked with :func:`decode_metadata`, so a bad version or path is refused
    here (as :class:`UpdateRefused`) rather than on 117 gateways.
    """
    files: dict[str, dict[str, Any]] = {}
    out.mkdir(parents=True, exist_ok=False)
    for path in _walk(src):
        if path.is_symlink() or not path.is_file():
            continue
        rel = path.relative_to(src).as_posix()
        digest, size = hash_file(path)
        files[rel] = {"sha256": digest, "size": size, "exec": bool(path.stat().st_mode & 0o111)}
        dst = out / FILES_DIR / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_bytes(path.read_bytes())
    obj = {
        "format": FORMAT,
        "product": PRODUCT,
        "version": version,
        "release": release,
        "hardware": hardware,
        "expires": expires,
        "files": files,
    }
    data = json.dumps(obj, indent=1, sort_keys=True).encode()
    meta = decode_metadata(data)
    (out / METADATA_NAME).write_bytes(data)
    (out / SIGNATURE_NAME).write_bytes(private_key.sign(SIGNING_CONTEXT + data))
    return meta


def sign_metadata(bundle: Path, private_key: Ed25519PrivateKey) -> None:
    """(Re)sign an existing bundle's metadata.json (after checking it parses)."""
    data = read_capped(bundle / METADATA_NAME, METADATA_MAX_BYTES)
    decode_metadata(data)
    (bundle / SIGNATURE_NAME).write_bytes(private_key.sign(SIGNING_CONTEXT + data))
