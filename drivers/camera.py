"""IP cameras: an HTTP snapshot (Basic or Digest auth) and an RTSP OPTIONS liveness probe.

Digest authentication (RFC 7616: MD5, SHA-256, qop=auth) is aiohttp's own
``DigestAuthMiddleware`` (aiohttp >= 3.12), one instance per camera so its nonce counter and
cached challenge stay with that camera. RTSP is only asked ``OPTIONS`` over a plain TCP stream:
any well-formed ``RTSP/1.0`` status line (even 401) proves the streaming service is alive.

Failures are :class:`CameraError` with a ``fault`` field the health service maps
to a state: ``unreachable`` / ``timeout`` (down), ``auth`` / ``http`` / ``bad_image`` /
``rtsp_protocol`` (degraded), ``config`` (a URL we cannot use).

A camera is untrusted input: whatever it sends (a status line with a non-ASCII digit, a Digest
challenge with control bytes or non-UTF-8 bytes in its realm or nonce, a truncated head),
:meth:`HttpCamera.snapshot`, :func:`rtsp_options` and :func:`parse_rtsp_reply` raise
:class:`CameraError` and nothing else (cancellation aside).

    cam = HttpCamera("gate", "http://10.0.0.20/snapshot.jpg", "admin", "s3cret", auth="digest")
    async with cam:
        shot = await cam.snapshot()          # Snapshot(data=b"\\xff\\xd8...", elapsed_s=0.04)
        rtsp = await rtsp_options("rtsp://10.0.0.20:554/stream1", timeout=2.0)
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

import aiohttp

MAX_SNAPSHOT_BYTES = 8 * 1024 * 1024  # a real 4K JPEG is ~2 MB; more is a misbehaving camera
MAX_RTSP_REPLY_BYTES = 16 * 1024

AuthScheme = Literal["digest", "basic", "none"]


class CameraError(Exception):
    """A camera did not deliver; ``fault`` says how (see the module docstring).

    Shaped like ``gateway.errors.DeviceError`` (``reason`` plus fields) without importing the
    gateway (drivers sit below it); the health service maps ``fault`` to a state.
    """

    def __init__(self, reason: str, **fields: object) -> None:
        super().__init__(reason)
        self.reason = reason
        self.fields = fields


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A fetched JPEG and how long it took."""

    data: bytes
    elapsed_s: float
    content_type: str


@dataclass(frozen=True, slots=True)
class RtspReply:
    """The status of an RTSP OPTIONS request (``alive`` for any RTSP status line)."""

    status: int
    reason: str
    public: str  # the Public: header (the methods offered), "" if absent
    elapsed_s: float


def looks_like_jpeg(data: bytes) -> bool:
    """SOI at the start and EOI at the end: enough to catch an HTML error page served as 200."""
    return len(data) >= 4 and data[:2] == b"\xff\xd8" and data.rstrip(b"\x00")[-2:] == b"\xff\xd9"


class HttpCamera:
    """One camera's snapshot endpoint. Use as an async context manager, or call :meth:`close`."""

    def __init__(
        self,
        name: str,
        snapshot_url: str,
        username: str = "",
        password: str = "",
        *,
        auth: AuthScheme = "digest",
        timeout_s: float = 5.0,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self.name = name
        self.snapshot_url = snapshot_url
        self.auth: AuthScheme = auth
        self.timeout_s = timeout_s
        self._own_session = session is None
        self._session = session
        # aiohttp 3.14 deprecates BasicAuth objects in favour of a ready header.
        self._headers = (
            {"Authorization": aiohttp.encode_basic_auth(username, password)}
            if auth == "basic"
            else {}
        )
        self._digest = (
            aiohttp.DigestAuthMiddleware(username, password) if auth == "digest" else None
        )

    async def __aenter__(self) -> HttpCamera:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            # No connection reuse: a camera polled every few seconds gains nothing from keep-alive
            # and some embedded servers mishandle it.
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(force_close=True, limit=2)
            )
            self._own_session = True
        return self._session

    async def snapshot(self) -> Snapshot:
        """Fetch one JPEG; raise CameraError(fault=...) if the camera cannot deliver one."""
        session = self._get_session()
        started = time.monotonic()
        timeout = aiohttp.ClientTimeout(total=self.timeout_s)
        middlewares = (self._digest,) if self._digest is not None else ()
        try:
            async with session.get(
                self.snapshot_url, headers=self._headers, timeout=timeout, middlewares=middlewares
            ) as resp:
                if resp.status == 401:
                    raise CameraError(
                        "snapshot refused: wrong credentials (HTTP 401)",
                        camera=self.name,
                        fault="auth",
                        status=401,
                    )
                if resp.status != 200:
                    raise CameraError(
                        f"snapshot failed: HTTP {resp.status} {resp.reason or ''}".strip(),
                        camera=self.name,
                        fault="http",
                        status=resp.status,
                    )
                if (resp.content_length or 0) > MAX_SNAPSHOT_BYTES:
                    raise CameraError(
                        f"snapshot too large: {resp.content_length} bytes",
                        camera=self.name,
                        fault="bad_image",
                    )
                data = await resp.content.read(MAX_SNAPSHOT_BYTES + 1)
                ctype = resp.headers.get("Content-Type", "")
        except TimeoutError as exc:
            raise CameraError(
                f"no snapshot within {self.timeout_s:g} s", camera=self.name, fault="timeout"
            ) from exc
        except aiohttp.ClientConnectorError as exc:
            raise CameraError(
                f"unreachable: {exc.os_error.strerror or exc.os_error}",
                camera=self.name,
                fault="unreachable",
            ) from exc
        except aiohttp.ClientConnectionError as exc:
            raise CameraError(
                f"snapshot failed: {type(exc).__name__}: {exc}",
                camera=self.name,
                fault="unreachable",
            ) from exc
        except aiohttp.ClientError as exc:
            # It answered, but not in a way we can use (a malformed head, a challenge
            # aiohttp refuses): degraded, not down.
            raise CameraError(
                f"snapshot failed: {type(exc).__name__}: {_clip(exc)}",
                camera=self.name,
                fault="http",
            ) from exc
        except (ValueError, UnicodeError, LookupError, TypeError) as exc:
            # aiohttp's Digest middleware builds its answer from the camera's challenge and
            # raises these on control bytes or undecodable bytes in realm/nonce: the camera's
            # fault, so it is a CameraError like any other bad answer.
            raise CameraError(
                f"unusable reply to the snapshot request: {type(exc).__name__}: {_clip(exc)}",
                camera=self.name,
                fault="http",
            ) from exc
        if len(data) > MAX_SNAPSHOT_BYTES or not looks_like_jpeg(data):
            raise CameraError(
                f"snapshot is not a JPEG ({len(data)} bytes, {ctype or 'no content type'})",
                camera=self.name,
                fault="bad_image",
            )
        return Snapshot(data, time.monotonic() - started, ctype)

    async def close(self) -> None:
        if self._own_session and self._session is not None:
            await self._session.close()
        self._session = None


def rtsp_options_request(url: str, cseq: int = 1) -> bytes:
    """The bytes of an RTSP/1.0 OPTIONS request (RFC 2326 section 10.1)."""
    return (f"OPTIONS {url} RTSP/1.0\r\nCSeq: {cseq}\r\nUser-Agent: compound-gw\r\n\r\n").encode(
        "ascii"
    )


def _clip(exc: BaseException, limit: int = 200) -> str:
    """An error's text cut short: a hostile camera chooses what goes into it."""
    text = str(exc)
    return text if len(text) <= limit else text[:limit] + "..."


_RTSP_STATUS_LINE = re.compile(r"RTSP/[0-9]\.[0-9] ([0-9]{3})(?: (.*))?")


def parse_rtsp_reply(head: bytes) -> tuple[int, str, dict[str, str]]:
    """Status, reason and headers of an RTSP reply head; CameraError if it is not RTSP.

    The status must be three ASCII digits (RFC 2326 section 7.1): ``str.isdigit`` would let
    through superscripts and other scripts' digits that ``int`` then refuses.
    """
    text = head.decode("latin-1")  # every byte maps: decoding itself never fails
    lines = text.split("\r\n")
    m = _RTSP_STATUS_LINE.fullmatch(lines[0])
    if m is None:
        raise CameraError(f"not an RTSP reply: {lines[0][:60]!r}", fault="rtsp_protocol")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return int(m.group(1)), m.group(2) or "", headers


async def rtsp_options(url: str, timeout: float = 3.0) -> RtspReply:
    """Ask an RTSP server for OPTIONS; return its reply or raise CameraError(fault=...)."""
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port or 554
    except ValueError as exc:  # a port out of range or not a number
        raise CameraError(f"not a usable rtsp:// URL: {exc}", fault="config") from exc
    if parts.scheme != "rtsp" or not host:
        raise CameraError(f"not an rtsp:// URL: {url}", fault="config")
    # Credentials never go on the wire in the URL of an OPTIONS probe.
    clean = f"rtsp://{host}:{port}{parts.path or '/'}"
    started = time.monotonic()
    writer: asyncio.StreamWriter | None = None
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(rtsp_options_request(clean))
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
    except TimeoutError as exc:
        raise CameraError(f"rtsp: no reply within {timeout:g} s", fault="timeout") from exc
    except asyncio.LimitOverrunError as exc:
        raise CameraError("rtsp: reply head too long", fault="rtsp_protocol") from exc
    except asyncio.IncompleteReadError as exc:
        raise CameraError("rtsp: connection closed before a reply", fault="rtsp_protocol") from exc
    except OSError as exc:
        raise CameraError(f"rtsp unreachable: {exc.strerror or exc}", fault="unreachable") from exc
    finally:
        if writer is not None:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
    status, reason, headers = parse_rtsp_reply(head[:MAX_RTSP_REPLY_BYTES])
    return RtspReply(status, reason, headers.get("public", ""), time.monotonic() - started)
