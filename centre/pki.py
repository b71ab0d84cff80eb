"""The centre's keys and certificates: CA, TLS server certificate, command key, client certs.

Keys: the CA and the TLS server use ECDSA P-256 (what every TLS stack and browser accepts);
gateways enroll Ed25519 keys (the same key signs their batches); the command key is a separate
Ed25519 key that never touches TLS, so a leaked TLS key cannot sign commands (issue 9)::

    paths = CentrePaths(Path("/var/lib/compound-centre"))
    init_centre(paths, hostnames=["centre.example"], ips=["127.0.0.1"], now=time.time())
    cert_pem = issue_client_certificate(paths, csr_pem, gateway_id="gw-01", compound="Rose", ...)

Every private key file is created 0600 with O_EXCL (never readable by others, not for an
instant, never overwritten); key folders are 0700.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from centre.errors import CentreError, EnrollmentRefused

CA_VALIDITY_DAYS: Final = 3650
SERVER_VALIDITY_DAYS: Final = 825
CLIENT_VALIDITY_DAYS: Final = 825
# Clock skew allowance: a gateway whose clock lags a little must still accept its new cert.
BACKDATE: Final = dt.timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class CentrePaths:
    """Where each file of a centre's data directory lives."""

    root: Path

    @property
    def ca_key(self) -> Path:
        return self.root / "ca" / "ca-key.pem"

    @property
    def ca_cert(self) -> Path:
        return self.root / "ca" / "ca-cert.pem"

    @property
    def server_key(self) -> Path:
        return self.root / "tls" / "server-key.pem"

    @property
    def server_cert(self) -> Path:
        return self.root / "tls" / "server-cert.pem"

    @property
    def command_key(self) -> Path:
        return self.root / "command" / "command-key.pem"

    @property
    def command_pub(self) -> Path:
        return self.root / "command" / "command-pub.pem"

    @property
    def database(self) -> Path:
        return self.root / "centre.db"


def write_private(path: Path, data: bytes) -> None:
    """Create a 0600 file that must not exist yet (its folder made 0700)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def write_public(path: Path, data: bytes) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def _pem_private(key: ec.EllipticCurvePrivateKey | Ed25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def fingerprint(cert: x509.Certificate) -> str:
    """SHA-256 over the DER certificate, lowercase hex (what installers compare)."""
    return cert.fingerprint(hashes.SHA256()).hex()


def normalise_fingerprint(text: str) -> str:
    """Accept ``AB:CD:..``, ``abcd..``, ``sha256:abcd..``; return bare lowercase hex."""
    t = text.strip().lower()
    if t.startswith("sha256:"):
        t = t[len("sha256:") :]
    t = t.replace(":", "").replace(" ", "")
    if len(t) != 64 or any(c not in "0123456789abcdef" for c in t):
        raise CentreError("a fingerprint is 64 hex digits (SHA-256)", value=text[:100])
    return t


def init_centre(
    paths: CentrePaths, *, hostnames: Sequence[str], ips: Sequence[str], now: float, name: str
) -> str:
    """Create the CA, server certificate and command key; return the CA fingerprint.

    Refuses to run over an existing CA (re-running would orphan every enrolled gateway).
    """
    if paths.ca_key.exists() or paths.ca_cert.exists():
        raise CentreError("this data directory already holds a CA", path=str(paths.ca_key))
    paths.root.mkdir(mode=0o700, parents=True, exist_ok=True)
    start = dt.datetime.fromtimestamp(now, dt.UTC) - BACKDATE

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, f"{name} CA"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Compound Gateway district centre"),
        ]
    )
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=CA_VALIDITY_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    write_private(paths.ca_key, _pem_private(ca_key))
    write_public(paths.ca_cert, ca_cert.public_bytes(serialization.Encoding.PEM))

    server_key = ec.generate_private_key(ec.SECP256R1())
    sans: list[x509.GeneralName] = [x509.DNSName(h) for h in hostnames]
    for ip in ips:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(ip)))
        except ValueError as exc:
            raise CentreError(f"{ip!r} is not an IP address") from exc
    if not sans:
        raise CentreError("the server certificate needs at least one hostname or IP")
    server_cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, (hostnames or ips)[0])]))
        .issuer_name(ca_name)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=SERVER_VALIDITY_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    write_private(paths.server_key, _pem_private(server_key))
    write_public(paths.server_cert, server_cert.public_bytes(serialization.Encoding.PEM))

    command_key = Ed25519PrivateKey.generate()
    write_private(paths.command_key, _pem_private(command_key))
    write_public(
        paths.command_pub,
        command_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
    )
    return fingerprint(ca_cert)


def load_ca(paths: CentrePaths) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = serialization.load_pem_private_key(paths.ca_key.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise CentreError("the CA key is not an ECDSA key", path=str(paths.ca_key))
    return key, x509.load_pem_x509_certificate(paths.ca_cert.read_bytes())


# What cryptography raises on a request it cannot parse or use (``InvalidVersion`` and
# ``UnsupportedAlgorithm`` are not ValueErrors).
_CSR_FAULTS: Final = (
    ValueError,
    TypeError,
    UnsupportedAlgorithm,
    InvalidSignature,
    x509.InvalidVersion,
)


@dataclass(frozen=True, slots=True)
class IssuedCertificate:
    pem: bytes
    fingerprint: str
    public_key_pem: bytes
    serial: int


def check_csr(csr_pem: bytes, gateway_id: str) -> x509.CertificateSigningRequest:
    """Parse a gateway's CSR: self-signature valid, Ed25519 key, CN equal to its gateway id.

    The bytes come from an unauthenticated client: whatever they hold, the only error raised is
    :class:`EnrollmentRefused` with code ``bad_csr`` (cryptography's own exceptions - a key it
    cannot load, an algorithm it does not support, a bad version - never escape).
    """
    try:
        csr = x509.load_pem_x509_csr(csr_pem)
    except _CSR_FAULTS as exc:
        raise EnrollmentRefused("bad_csr", "the CSR is not a PEM certificate request") from exc
    try:
        signature_valid = csr.is_signature_valid
        public_key = csr.public_key()
        cns = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    except _CSR_FAULTS as exc:
        raise EnrollmentRefused(
            "bad_csr", f"the CSR cannot be read ({type(exc).__name__}: {str(exc)[:80]})"
        ) from exc
    if not signature_valid:
        raise EnrollmentRefused("bad_csr", "the CSR's self-signature does not verify")
    if not isinstance(public_key, Ed25519PublicKey):
        raise EnrollmentRefused("bad_csr", "gateway keys must be Ed25519")
    if len(cns) != 1 or cns[0].value != gateway_id:
        raise EnrollmentRefused("bad_csr", "the CSR's common name must be the gateway id")
    return csr


def issue_client_certificate(
    ca_key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    csr: x509.CertificateSigningRequest,
    *,
    gateway_id: str,
    compound: str,
    now: float,
) -> IssuedCertificate:
    """Sign a gateway's client certificate; the subject is ours, nothing is copied from the CSR
    but its public key."""
    start = dt.datetime.fromtimestamp(now, dt.UTC) - BACKDATE
    public_key = csr.public_key()
    if not isinstance(public_key, Ed25519PublicKey):
        raise EnrollmentRefused("bad_csr", "gateway keys must be Ed25519")
    cert = (
        x509.CertificateBuilder()
        .subject_name(
            x509.Name(
                [
                    x509.NameAttribute(NameOID.COMMON_NAME, gateway_id),
                    x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, compound[:64]),
                ]
            )
        )
        .issuer_name(ca_cert.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=CLIENT_VALIDITY_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    return IssuedCertificate(
        pem=cert.public_bytes(serialization.Encoding.PEM),
        fingerprint=fingerprint(cert),
        public_key_pem=public_key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        serial=cert.serial_number,
    )


def der_fingerprint(der: bytes) -> str:
    """SHA-256 hex of a DER certificate as the TLS layer hands it over."""
    return hashlib.sha256(der).hexdigest()
