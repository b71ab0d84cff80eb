"""The bulletin routes mounted on the centre's own application (its error middleware included),
as the lead will register them, over the centre's TLS listener with a gateway certificate
refused."""

from __future__ import annotations

import json
import ssl
import time
from pathlib import Path

import aiohttp
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.x509.oid import NameOID

from centre.app import CentreService, server_ssl_context
from centre.bulletins.auth import OPERATORS_FILE, OperatorTokens, add_operator
from centre.bulletins.web import BulletinHandlers
from centre.pki import CentrePaths, init_centre, issue_client_certificate, load_ca
from tests.bulletins.conftest import Seeded


async def test_mounted_on_the_centre_app(seeded: Seeded, tmp_path: Path) -> None:
    paths = CentrePaths(tmp_path / "centre")
    init_centre(paths, hostnames=["localhost"], ips=["127.0.0.1"], now=time.time(), name="T")
    token = add_operator(paths.root / OPERATORS_FILE, "duty-1")
    service = CentreService(seeded.repo, paths)
    app = service.make_app()
    handlers = BulletinHandlers(
        seeded.repo, seeded.store, OperatorTokens.load(paths.root / OPERATORS_FILE)
    )
    app.add_routes(handlers.routes())
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_ssl_context(paths))
        await site.start()
        port = runner.addresses[0][1]
        client_ctx = ssl.create_default_context(cafile=str(paths.ca_cert))
        url = f"https://127.0.0.1:{port}"
        bearer = {"Authorization": f"Bearer {token}"}
        async with aiohttp.ClientSession() as s:
            async with s.get(f"{url}/bulletins/daily?date=2026-11-02", ssl=client_ctx) as r:
                assert r.status == 401
            async with s.get(
                f"{url}/bulletins/daily?date=2026-11-02", headers=bearer, ssl=client_ctx
            ) as r:
                assert r.status == 200
                assert "Rose Garden" in await r.text()
            async with s.get(
                f"{url}/bulletins/daily?date=bad&format=csv", headers=bearer, ssl=client_ctx
            ) as r:
                # The centre's middleware turns our BadRequest into its JSON error body.
                assert r.status == 400
                assert json.loads(await r.text())["error"] == "bad_request"
            async with s.post(
                f"{url}/bulletins/login", data={"token": token}, ssl=client_ctx,
                allow_redirects=False,
            ) as r:  # fmt: skip
                assert r.status == 303 and r.headers["Location"] == "/bulletins"
            async with s.get(f"{url}/api/v1/health", ssl=client_ctx) as r:
                assert r.status == 200  # the centre's own routes are untouched
        # A gateway's valid client certificate opens no bulletin.
        gateway_ctx = ssl.create_default_context(cafile=str(paths.ca_cert))
        gateway_ctx.load_cert_chain(*gateway_certificate(paths, tmp_path))
        async with (
            aiohttp.ClientSession() as s,
            s.get(f"{url}/bulletins/daily?date=2026-11-02", ssl=gateway_ctx) as r,
        ):
            assert r.status == 401
            assert "Rose Garden" not in await r.text()
    finally:
        await runner.cleanup()


def gateway_certificate(paths: CentrePaths, where: Path) -> tuple[str, str]:
    """A client certificate the centre's CA issued to a gateway: (cert file, key file)."""
    key = Ed25519PrivateKey.generate()
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "gw-rose")]))
        .sign(key, None)
    )
    ca_key, ca_cert = load_ca(paths)
    cert = issue_client_certificate(
        ca_key, ca_cert, csr, gateway_id="gw-rose", compound="Rose Garden", now=time.time()
    )
    cert_file, key_file = where / "gw.crt", where / "gw.key"
    cert_file.write_bytes(cert.pem)
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return str(cert_file), str(key_file)
