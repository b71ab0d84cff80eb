"""Provisioning: make this gateway's key, enroll with the centre, keep certificate and pins.

    result = await provision("https://centre.example:8443", "cgt-...",
                             data_dir=Path("/var/lib/compound-gw"), gateway_id="gw-rose-01",
                             compound="Rose Garden", ca_fingerprint="sha256:80368097...")

Order of trust: (1) fetch the centre's CA certificate over TLS *without* trusting anything and
compare its SHA-256 with the fingerprint the installer was given out of band - mismatch, stop;
(2) from then on every connection verifies the centre's server certificate against that CA
(hostname included); (3) the enrollment reply must carry the same CA. With no fingerprint the
CA is trusted on first use and its fingerprint is reported for the installer to check.

The private key is Ed25519, generated here, written 0600 before anything else happens, and
never printed, logged or sent: only the CSR (public key) leaves the box.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.x509.oid import NameOID

from gateway.errors import SyncError
from gateway.sync.config import SyncPaths, SyncSection
from gateway.sync.replies import hostile, reply_error, reply_object
from gateway.sync.tls import pinned_ca_context, read_limited, unverified_context
from wire import encode, key_id, load_public_key_pem

log = logging.getLogger("gateway.sync.provision")

API = "/api/v1"


@dataclass(frozen=True, slots=True)
class ProvisionResult:
    gateway_id: str
    compound: str
    township: str
    centre_url: str
    ca_fingerprint: str
    key_id: str
    cert_path: Path
    trusted_on_first_use: bool


def normalise_fingerprint(text: str) -> str:
    """``AB:CD:...``, ``abcd...`` or ``sha256:abcd...`` → bare lowercase hex (64 digits)."""
    t = text.strip().lower()
    if t.startswith("sha256:"):
        t = t[len("sha256:") :]
    t = t.replace(":", "").replace(" ", "")
    if len(t) != 64 or any(c not in "0123456789abcdef" for c in t):
        raise SyncError("a CA fingerprint is 64 hex digits of SHA-256", given=text[:100])
    return t


def _check_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        raise SyncError("the centre URL must be https://host[:port]", url=url)
    return url.rstrip("/")


def _write_private_key(path: Path) -> Ed25519PrivateKey:
    """Generate and store the key 0600 (O_EXCL: never overwrite, never world-readable)."""
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, pem)
        os.fsync(fd)
    finally:
        os.close(fd)
    return key


def load_private_key(path: Path) -> Ed25519PrivateKey:
    """Load the gateway key, refusing a file that group or others can read."""
    st = path.stat()
    if st.st_mode & 0o077:
        raise SyncError(f"key file {path} has mode {st.st_mode & 0o777:04o}; it must be 0600")
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise SyncError(f"key file {path} does not hold an Ed25519 key")
    return key


def _write_public(path: Path, data: bytes) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def _centre_error(status: int, body: bytes) -> SyncError:
    return reply_error(status, None, body)


async def fetch_ca(session: aiohttp.ClientSession, centre_url: str) -> str:
    """The CA certificate PEM the centre offers (not yet trusted: compare its fingerprint)."""
    try:
        async with session.get(f"{centre_url}{API}/ca", ssl=unverified_context()) as resp:
            body = await read_limited(resp, 64 * 1024)
            if resp.status != 200:
                raise _centre_error(resp.status, body)
    except (aiohttp.ClientError, OSError, TimeoutError, ValueError) as exc:
        raise SyncError(f"cannot reach the centre: {str(exc)[:200]}", url=centre_url) from exc
    data = reply_object(body, "the centre's /ca reply", ("ca_certificate",), 64 * 1024)
    return data["ca_certificate"]


def ca_fingerprint_of(pem: str) -> str:
    """SHA-256 (hex) of a CA certificate in PEM, or SyncError (the PEM came from the network)."""
    with hostile("the centre's CA certificate is not valid PEM"):
        cert = x509.load_pem_x509_certificate(pem.encode("ascii"))
        return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


@dataclass(frozen=True, slots=True)
class EnrollmentReply:
    """The centre's answer to an enrollment, checked: PEM texts parsed, nothing else trusted."""

    certificate: x509.Certificate
    certificate_pem: str
    ca_pem: str
    command_key_pem: str
    command_key_id: str
    compound: str
    township: str


def parse_enrollment_reply(body: bytes) -> EnrollmentReply:
    """Read the 201 reply of ``POST /enroll``; SyncError for anything malformed."""
    fields = ("certificate", "ca_certificate", "command_public_key", "compound")
    reply = reply_object(body, "enrollment reply", fields, 256 * 1024)
    with hostile("enrollment reply carries an unreadable certificate"):
        cert = x509.load_pem_x509_certificate(reply["certificate"].encode("ascii"))
    with hostile("enrollment reply carries an unreadable command key"):
        command_pub = load_public_key_pem(reply["command_public_key"].encode("ascii"))
    return EnrollmentReply(
        certificate=cert,
        certificate_pem=reply["certificate"],
        ca_pem=reply["ca_certificate"],
        command_key_pem=reply["command_public_key"],
        command_key_id=key_id(command_pub),
        compound=reply["compound"],
        township=reply.get("township", ""),
    )


async def provision(
    centre_url: str,
    token: str,
    *,
    data_dir: Path,
    gateway_id: str,
    compound: str | None = None,
    ca_fingerprint: str | None = None,
    section: SyncSection | None = None,
    timeout_s: float = 30.0,
) -> ProvisionResult:
    """Enroll this gateway (see module doc). Raises SyncError with the centre's reason."""
    centre_url = _check_url(centre_url)
    paths = SyncPaths.from_section(section or SyncSection(), Path(data_dir))
    if paths.cert.exists():
        raise SyncError(
            "this gateway is already provisioned (remove the sync files to enroll again)",
            cert=str(paths.cert),
        )
    expected = normalise_fingerprint(ca_fingerprint) if ca_fingerprint else None
    key = load_private_key(paths.key) if paths.key.exists() else _write_private_key(paths.key)
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, gateway_id)]))
        .sign(key, None)
    )
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        ca_pem = await fetch_ca(session, centre_url)
        seen = ca_fingerprint_of(ca_pem)
        if expected is not None and seen != expected:
            raise SyncError(
                "the centre's CA does not match the fingerprint given: refusing to enroll",
                expected=expected,
                got=seen,
            )
        if expected is None:
            log.warning(
                "no CA fingerprint given: trusting the centre's CA sha256:%s on first use", seen
            )
        request: dict[str, Any] = {
            "token": token.strip(),
            "gateway_id": gateway_id,
            "csr": csr.public_bytes(serialization.Encoding.PEM).decode("ascii"),
        }
        if compound is not None:
            request["compound"] = compound
        try:
            async with session.post(
                f"{centre_url}{API}/enroll",
                data=encode(request),
                headers={"Content-Type": "application/json"},
                ssl=pinned_ca_context(ca_pem),
            ) as resp:
                body = await read_limited(resp, 256 * 1024)
                if resp.status != 201:
                    raise _centre_error(resp.status, body)
        except (aiohttp.ClientError, OSError, TimeoutError, ValueError) as exc:
            raise SyncError(f"enrollment request failed: {str(exc)[:200]}", url=centre_url) from exc
    reply = parse_enrollment_reply(body)
    if ca_fingerprint_of(reply.ca_pem) != seen:
        raise SyncError("enrollment reply carries a different CA than the one pinned")
    cert_key = reply.certificate.public_key()
    if not isinstance(cert_key, Ed25519PublicKey) or cert_key.public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    ) != key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw):
        raise SyncError("the issued certificate is not for this gateway's key")
    _write_public(paths.ca, reply.ca_pem.encode("ascii"))
    _write_public(paths.command_key, reply.command_key_pem.encode("ascii"))
    record = {
        "centre_url": centre_url,
        "gateway_id": gateway_id,
        "compound": reply.compound,
        "township": reply.township,
        "ca_fingerprint": seen,
        "trusted_on_first_use": expected is None,
        "key_id": key_id(key.public_key()),
        "command_key_id": reply.command_key_id,
        "enrolled_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    _write_public(paths.enrollment, json.dumps(record, indent=2).encode("utf-8"))
    # The certificate last: its presence is what "provisioned" means.
    _write_public(paths.cert, reply.certificate_pem.encode("ascii"))
    log.info("provisioned %s for %r with %s", gateway_id, reply.compound, centre_url)
    return ProvisionResult(
        gateway_id=gateway_id,
        compound=reply.compound,
        township=reply.township,
        centre_url=centre_url,
        ca_fingerprint=seen,
        key_id=key_id(key.public_key()),
        cert_path=paths.cert,
        trusted_on_first_use=expected is None,
    )


def read_enrollment(paths: SyncPaths) -> dict[str, Any]:
    try:
        data = json.loads(paths.enrollment.read_text())
    except (OSError, ValueError) as exc:
        raise SyncError(
            "not provisioned (run `compound-gw provision`)", file=str(paths.enrollment)
        ) from exc
    if not isinstance(data, dict):
        raise SyncError("enrollment file is damaged", file=str(paths.enrollment))
    return data
