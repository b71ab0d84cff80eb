"""A simulated IP camera: a JPEG snapshot endpoint behind Digest (or Basic) auth, and an RTSP
OPTIONS responder on its own TCP port, both on 127.0.0.1.

Faults: ``await cam.go_dark()`` closes both listeners (connections are refused, as for a camera
that lost power); ``await cam.come_back()`` reopens them on the same ports. ``cam.password`` can
be changed at any time, so the gateway's credentials turn wrong (401 on every attempt).
``cam.hang = True`` accepts connections and never answers (a wedged camera: timeouts);
``cam.serve_html = True`` answers 200 with an HTML error page instead of a JPEG.

The Digest check is written here from RFC 7616 (MD5 / SHA-256, qop=auth, opaque, nonce we issued),
independently of the client side, so the gateway's client and this server test each other.

    async with CameraSim("gate", username="admin", password="pw", algorithm="SHA-256") as cam:
        cam.snapshot_url, cam.rtsp_url, cam.served  # served: list of sha256 of served JPEGs
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import re
import secrets
from typing import Literal

from aiohttp import web

REALM = "SimCam"

_HASHES = {"MD5": hashlib.md5, "SHA-256": hashlib.sha256}


def digest_response(
    algorithm: str,
    username: str,
    realm: str,
    password: str,
    method: str,
    uri: str,
    nonce: str,
    nc: str,
    cnonce: str,
    qop: str = "auth",
) -> str:
    """RFC 7616 section 3.4.1 ``response`` for qop=auth (non-session algorithms)."""
    h = _HASHES[algorithm]

    def hx(s: str) -> str:
        return h(s.encode("utf-8")).hexdigest()

    ha1 = hx(f"{username}:{realm}:{password}")
    ha2 = hx(f"{method}:{uri}")
    return hx(f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")


def parse_auth_params(text: str) -> dict[str, str]:
    """``a="x", b=y`` -> {"a": "x", "b": "y"} (quoted strings may hold commas and escapes)."""
    out: dict[str, str] = {}
    for m in re.finditer(r'(\w+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))', text):
        out[m.group(1).lower()] = (
            re.sub(r"\\(.)", r"\1", m.group(2)) if m.group(2) is not None else m.group(3)
        )
    return out


def make_jpeg(tag: str, size: int) -> bytes:
    """A minimal JPEG-framed blob (SOI, a COM segment with ``tag`` and padding, EOI)."""
    body = tag.encode()[:60000]
    body += b" " * max(0, min(size - len(body) - 8, 65000 - len(body)))
    return b"\xff\xd8\xff\xfe" + (len(body) + 2).to_bytes(2, "big") + body + b"\xff\xd9"


class CameraSim:
    """One simulated camera. ``auth`` is "digest", "basic" or "none"."""

    def __init__(
        self,
        name: str = "cam",
        *,
        username: str = "admin",
        password: str = "secret",
        auth: Literal["digest", "basic", "none"] = "digest",
        algorithm: Literal["MD5", "SHA-256"] = "MD5",
        jpeg_bytes: int = 20_000,
        host: str = "127.0.0.1",
    ) -> None:
        self.name = name
        self.username = username
        self.password = password
        self.auth = auth
        self.algorithm = algorithm
        self.jpeg_bytes = jpeg_bytes
        self.host = host
        self.hang = False
        self.serve_html = False  # a 200 that is an error page, as some firmware does
        self.http_port = 0
        self.rtsp_port = 0
        self.frames = 0
        self.served: list[str] = []  # sha256 hex of every JPEG served
        self.rejected = 0  # 401s sent after a (wrong) Authorization header
        self.rtsp_requests = 0
        self._nonces: set[str] = set()
        self._opaque = secrets.token_hex(8)
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self._rtsp: asyncio.Server | None = None
        self._conns: set[asyncio.StreamWriter] = set()
        self._hung: set[asyncio.Task[None]] = set()

    @property
    def snapshot_url(self) -> str:
        return f"http://{self.host}:{self.http_port}/snapshot.jpg"

    @property
    def rtsp_url(self) -> str:
        return f"rtsp://{self.host}:{self.rtsp_port}/stream1"

    async def __aenter__(self) -> CameraSim:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/snapshot.jpg", self._snapshot)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        await self._listen()

    async def _listen(self) -> None:
        assert self._runner is not None
        self._site = web.TCPSite(self._runner, self.host, self.http_port, reuse_address=True)
        await self._site.start()
        if self.http_port == 0:
            server = self._site._server  # the bound port of a port-0 site
            assert isinstance(server, asyncio.Server)
            self.http_port = server.sockets[0].getsockname()[1]
        self._rtsp = await asyncio.start_server(
            self._rtsp_conn, self.host, self.rtsp_port, reuse_address=True
        )
        self.rtsp_port = self._rtsp.sockets[0].getsockname()[1]

    async def go_dark(self) -> None:
        """Stop answering: both ports refuse connections until :meth:`come_back`."""
        if self._site is not None:
            await self._site.stop()
            self._site = None
        if self._rtsp is not None:
            self._rtsp.close()
            for w in list(self._conns):
                w.close()
            await self._rtsp.wait_closed()
            self._rtsp = None
        for t in list(self._hung):
            t.cancel()

    async def come_back(self) -> None:
        if self._site is None:
            await self._listen()

    async def stop(self) -> None:
        await self.go_dark()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # --- HTTP ------------------------------------------------------------------------------

    def _challenge(self) -> web.Response:
        if self.auth == "basic":
            header = f'Basic realm="{REALM}"'
        else:
            nonce = secrets.token_hex(16)
            self._nonces.add(nonce)
            header = (
                f'Digest realm="{REALM}", qop="auth", algorithm={self.algorithm}, '
                f'nonce="{nonce}", opaque="{self._opaque}"'
            )
        return web.Response(status=401, headers={"WWW-Authenticate": header})

    def _authorised(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        if self.auth == "none":
            return True
        if self.auth == "basic":
            if not header.startswith("Basic "):
                return False
            try:
                user, _, pw = base64.b64decode(header[6:]).decode().partition(":")
            except ValueError:
                return False
            return secrets.compare_digest(f"{user}:{pw}", f"{self.username}:{self.password}")
        if not header.startswith("Digest "):
            return False
        p = parse_auth_params(header[7:])
        if (
            p.get("username") != self.username
            or p.get("realm") != REALM
            or p.get("nonce") not in self._nonces
            or p.get("opaque") != self._opaque
            or p.get("qop") != "auth"
            or p.get("algorithm", "MD5").upper() != self.algorithm
            or p.get("uri") != request.path_qs
        ):
            return False
        expected = digest_response(
            self.algorithm,
            self.username,
            REALM,
            self.password,
            request.method,
            p["uri"],
            p["nonce"],
            p.get("nc", ""),
            p.get("cnonce", ""),
        )
        return secrets.compare_digest(expected, p.get("response", ""))

    async def _snapshot(self, request: web.Request) -> web.StreamResponse:
        if self.hang:
            await self._hang_forever()
        if not self._authorised(request):
            if "Authorization" in request.headers:
                self.rejected += 1
            return self._challenge()
        if self.serve_html:
            return web.Response(text="<html>Service Unavailable</html>", content_type="text/html")
        self.frames += 1
        data = make_jpeg(f"sim camera {self.name} frame {self.frames}", self.jpeg_bytes)
        self.served.append(hashlib.sha256(data).hexdigest())
        return web.Response(body=data, content_type="image/jpeg")

    async def _hang_forever(self) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._hung.add(task)
        try:
            await asyncio.Event().wait()
        finally:
            self._hung.discard(task)

    # --- RTSP ------------------------------------------------------------------------------

    async def _rtsp_conn(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._conns.add(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                if self.hang:
                    continue
                self.rtsp_requests += 1
                lines = head.decode("latin-1").split("\r\n")
                cseq = next(
                    (ln.split(":", 1)[1].strip() for ln in lines if ln.lower().startswith("cseq:")),
                    "0",
                )
                if lines[0].startswith("OPTIONS "):
                    reply = (
                        f"RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\n"
                        "Public: OPTIONS, DESCRIBE, SETUP, TEARDOWN, PLAY\r\n\r\n"
                    )
                else:
                    reply = f"RTSP/1.0 405 Method Not Allowed\r\nCSeq: {cseq}\r\n\r\n"
                writer.write(reply.encode())
                await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass
        finally:
            self._conns.discard(writer)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
