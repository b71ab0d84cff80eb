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

Vendor paths (docs/cameras.md): besides ``/snapshot.jpg`` every simulated camera also answers
Hikvision's ISAPI ``/ISAPI/Streaming/channels/<N>01/picture`` and Dahua's
``/cgi-bin/snapshot.cgi?channel=<N>`` for channels 1..``channels`` (404 / 400 otherwise, as the
cameras do), behind the same auth; ``cam.address`` is the ``host:port`` a profile config names and
``cam.paths`` the path (and query) of every JPEG served. Each JPEG carries the camera's name and
channel and a frame header (SOF0) with the camera's ``width`` x ``height``, so two cameras, or two
channels, never serve the same bytes.

RTSP DESCRIBE checks the RTSP Digest (RFC 2069 form, what ffmpeg answers): wrong credentials get
401, right ones 503 (the simulator has no stream to play) and count in ``rtsp_authorised``.
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


def make_jpeg(tag: str, size: int, width: int = 640, height: int = 480) -> bytes:
    """A minimal JPEG-framed blob: SOI, a baseline frame header (SOF0, three components) giving
    ``width`` x ``height``, a COM segment with ``tag`` and padding, EOI. Not decodable (no
    scan), but framed like a camera's JPEG, so size and dimension checks see a real header."""
    sof = bytes([8]) + height.to_bytes(2, "big") + width.to_bytes(2, "big") + b"\x03"
    sof += b"\x01\x22\x00\x02\x11\x01\x03\x11\x01"
    body = tag.encode()[:60000]
    body += b" " * max(0, min(size - len(body) - 27, 65000 - len(body)))
    return (
        b"\xff\xd8\xff\xc0"
        + (len(sof) + 2).to_bytes(2, "big")
        + sof
        + b"\xff\xfe"
        + (len(body) + 2).to_bytes(2, "big")
        + body
        + b"\xff\xd9"
    )


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
        channels: int = 1,
        width: int = 640,
        height: int = 480,
    ) -> None:
        self.name = name
        self.channels = channels
        self.width = width
        self.height = height
        self.paths: list[str] = []  # path and query of every JPEG served
        self.rtsp_authorised = 0  # DESCRIBEs with the right RTSP Digest
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
    def address(self) -> str:
        """``host:port`` of the HTTP side: what a hikvision or dahua profile config names."""
        return f"{self.host}:{self.http_port}"

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
        app.router.add_get("/ISAPI/Streaming/channels/{stream}/picture", self._hikvision)
        app.router.add_get("/cgi-bin/snapshot.cgi", self._dahua)
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

    async def _snapshot(self, request: web.Request, channel: int = 1) -> web.StreamResponse:
        if self.hang:
            await self._hang_forever()
        if not self._authorised(request):
            if "Authorization" in request.headers:
                self.rejected += 1
            return self._challenge()
        if self.serve_html:
            return web.Response(text="<html>Service Unavailable</html>", content_type="text/html")
        self.frames += 1
        data = make_jpeg(
            f"sim camera {self.name} channel {channel} frame {self.frames}",
            self.jpeg_bytes,
            self.width,
            self.height,
        )
        self.served.append(hashlib.sha256(data).hexdigest())
        self.paths.append(request.path_qs)
        return web.Response(body=data, content_type="image/jpeg")

    async def _hikvision(self, request: web.Request) -> web.StreamResponse:
        """ISAPI: stream id <N>01 is channel N's main stream (<N>02 its sub stream)."""
        stream = request.match_info["stream"]
        channel = int(stream[:-2]) if stream.isascii() and stream.isdigit() else 0
        if not (stream.endswith("01") and 1 <= channel <= self.channels):
            return web.Response(status=404, text="<ResponseStatus>Invalid Operation")
        return await self._snapshot(request, channel)

    async def _dahua(self, request: web.Request) -> web.StreamResponse:
        """CGI: ``channel`` counts from 1 and defaults to 1."""
        text = request.query.get("channel", "1")
        channel = int(text) if text.isascii() and text.isdigit() else 0
        if not 1 <= channel <= self.channels:
            return web.Response(status=400, text="Error\r\nBad Request!\r\n")
        return await self._snapshot(request, channel)

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
                elif lines[0].startswith("DESCRIBE "):
                    reply = self._rtsp_describe(lines, cseq)
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

    def _rtsp_describe(self, lines: list[str], cseq: str) -> str:
        """401 with a Digest challenge unless the request's Digest is right; then 503."""
        header = next(
            (
                ln.split(":", 1)[1].strip()
                for ln in lines
                if ln.lower().startswith("authorization:")
            ),
            "",
        )
        if self.auth == "none" or self._rtsp_digest_ok("DESCRIBE", header):
            self.rtsp_authorised += 1
            return f"RTSP/1.0 503 Service Unavailable\r\nCSeq: {cseq}\r\n\r\n"
        if header:
            self.rejected += 1
        nonce = secrets.token_hex(16)
        self._nonces.add(nonce)
        return (
            f"RTSP/1.0 401 Unauthorized\r\nCSeq: {cseq}\r\n"
            f'WWW-Authenticate: Digest realm="{REALM}", nonce="{nonce}"\r\n\r\n'
        )

    def _rtsp_digest_ok(self, method: str, header: str) -> bool:
        """RFC 2069 Digest (no qop), as RTSP clients answer a challenge without one."""
        if not header.startswith("Digest "):
            return False
        p = parse_auth_params(header[7:])
        if p.get("username") != self.username or p.get("nonce") not in self._nonces:
            return False

        def md5(text: str) -> str:
            return hashlib.md5(text.encode("utf-8")).hexdigest()

        ha1 = md5(f"{self.username}:{REALM}:{self.password}")
        ha2 = md5(f"{method}:{p.get('uri', '')}")
        expected = md5(f"{ha1}:{p['nonce']}:{ha2}")
        return secrets.compare_digest(expected, p.get("response", ""))
