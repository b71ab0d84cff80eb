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

Snapshot profiles (docs/cameras.md) name the snapshot URL of the two camera families most
installed in Chinese compounds, so an installer types an address and a channel, not a URL:
``hikvision`` (ISAPI ``/ISAPI/Streaming/channels/<N>01/picture``), ``dahua`` (CGI
``/cgi-bin/snapshot.cgi?channel=<N>``), ``http`` (any snapshot URL) and ``rtsp`` (no snapshot URL
at all: :class:`RtspCamera` grabs one frame with ffmpeg). :func:`open_camera` builds the right
camera from a config section.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from dataclasses import dataclass
from typing import Final, Literal, Protocol
from urllib.parse import quote, urlsplit, urlunsplit

import aiohttp

MAX_SNAPSHOT_BYTES = 8 * 1024 * 1024  # a real 4K JPEG is ~2 MB; more is a misbehaving camera
MAX_RTSP_REPLY_BYTES = 16 * 1024

AuthScheme = Literal["digest", "basic", "none"]
CameraProfile = Literal["hikvision", "dahua", "http", "rtsp"]
PROFILES: Final[tuple[CameraProfile, ...]] = ("hikvision", "dahua", "http", "rtsp")
MAX_CHANNEL: Final = 256  # the largest NVRs of either family have 256 channels


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


# --- snapshot profiles ---------------------------------------------------------------------------

_DNS_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")
_ADDRESS_MAX = 255


def _config_error(reason: str) -> CameraError:
    return CameraError(reason, fault="config")


def _host_ok(host: str) -> bool:
    """An IPv4/IPv6 literal or a DNS name (letters, digits, hyphens; dots between labels)."""
    import ipaddress

    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        pass
    labels = host.rstrip(".").split(".")
    if labels[-1].isdigit():  # 10.0.0.300 is a bad IPv4 address, not a host name
        return False
    return all(_DNS_LABEL.fullmatch(label) for label in labels)


def parse_camera_address(address: str) -> tuple[str, str]:
    """``(scheme, netloc)`` of a camera address: ``host``, ``host:port`` or ``[v6]:port``,
    optionally led by ``http://`` or ``https://`` (plain HTTP when absent).

    No path, query, fragment or credentials (those have their own keys); CameraError(fault=
    "config") naming what is wrong otherwise.
    """
    if not isinstance(address, str) or not address:
        raise _config_error("is empty")
    if len(address) > _ADDRESS_MAX:
        raise _config_error(f"is longer than {_ADDRESS_MAX} characters")
    if any(not ("!" <= c <= "~") for c in address):
        raise _config_error("must be ASCII without spaces or control characters")
    scheme, sep, rest = address.partition("://")
    if not sep:
        scheme, rest = "http", address
    scheme = scheme.lower()
    if scheme not in ("http", "https"):
        raise _config_error(f"scheme {scheme[:10]!r} is not http or https")
    rest = rest.removesuffix("/")
    for char, what in (
        ("/", "a path"),
        ("?", "a query"),
        ("#", "a fragment"),
        ("@", "credentials"),
    ):
        if char in rest:
            raise _config_error(f"must not hold {what} (only host and port)")
    try:
        parts = urlsplit(f"//{rest}")
        host, port = parts.hostname, parts.port
    except ValueError as exc:
        raise _config_error(f"is not host[:port]: {_clip(exc, 80)}") from exc
    if not host or not _host_ok(host):
        raise _config_error(f"{rest[:60]!r} is not a host name or IP address")
    if port == 0:
        raise _config_error("port 0 is not a usable port")
    if rest.endswith(":"):
        raise _config_error("has ':' but no port")
    return scheme, rest


def profile_snapshot_url(profile: str, address: str, channel: int = 1) -> str:
    """The snapshot URL a camera family serves for ``channel`` (1 = the first camera).

    ``hikvision``: ISAPI ``/ISAPI/Streaming/channels/<N>01/picture`` (stream id N*100+1: channel
    N, main stream). ``dahua``: ``/cgi-bin/snapshot.cgi?channel=<N>`` (channels count from 1).
    Other profiles have no address form (``http`` takes a URL, ``rtsp`` has no snapshot URL).
    Raises CameraError(fault="config") and nothing else.

        profile_snapshot_url("hikvision", "192.168.1.64", 2)
        # 'http://192.168.1.64/ISAPI/Streaming/channels/201/picture'
    """
    if profile not in ("hikvision", "dahua"):
        if profile in PROFILES:
            raise _config_error(f"profile {profile!r} has no address form; give its URL")
        raise _config_error(f"{str(profile)[:20]!r} is not one of {', '.join(PROFILES)}")
    if isinstance(channel, bool) or not isinstance(channel, int):
        raise _config_error("channel must be an integer")
    if not 1 <= channel <= MAX_CHANNEL:
        raise _config_error(f"channel {channel} is outside 1..{MAX_CHANNEL}")
    scheme, netloc = parse_camera_address(address)
    if profile == "hikvision":
        return f"{scheme}://{netloc}/ISAPI/Streaming/channels/{channel}01/picture"
    return f"{scheme}://{netloc}/cgi-bin/snapshot.cgi?channel={channel}"


# --- JPEG check --------------------------------------------------------------------------------

# SOF0..SOF15 except DHT (C4), JPG (C8) and DAC (CC), which share the range (ITU T.81 table B.1).
_SOF_MARKERS: Final = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def _bad_image(reason: str) -> CameraError:
    return CameraError(f"not a usable JPEG: {reason}", fault="bad_image")


def jpeg_dimensions(data: bytes) -> tuple[int, int]:
    """``(width, height)`` from a JPEG's frame header; CameraError(fault="bad_image") on junk.

    Walks the marker segments from SOI (ITU T.81 annex B) up to the first SOF; an HTML page, a
    truncated file, a segment running past the end, or a scan before any frame header is refused.
    A frame that declares 0 lines (height given later by DNL) is refused too: no camera sends one.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise _bad_image(f"expected bytes, got {type(data).__name__}")
    buf = bytes(data)
    if len(buf) < 4 or buf[:2] != b"\xff\xd8":
        raise _bad_image("no SOI marker at the start")
    end = len(buf)
    i = 2
    while True:
        if i >= end:
            raise _bad_image("ends before a frame header (SOF)")
        if buf[i] != 0xFF:
            raise _bad_image(f"byte {i} is not a marker")
        while i < end and buf[i] == 0xFF:  # fill bytes may precede a marker
            i += 1
        if i >= end:
            raise _bad_image("ends inside a marker")
        marker = buf[i]
        i += 1
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:  # TEM, RSTn: no length field
            continue
        if marker in (0x00, 0xD8, 0xD9, 0xDA):
            what = {0x00: "a stuffed 0xFF00", 0xD8: "a second SOI", 0xD9: "EOI", 0xDA: "a scan"}
            raise _bad_image(f"{what[marker]} before any frame header")
        if i + 2 > end:
            raise _bad_image("a segment length is cut off")
        length = int.from_bytes(buf[i : i + 2], "big")
        if length < 2 or i + length > end:
            raise _bad_image(f"a segment of {length} bytes runs past the data")
        if marker in _SOF_MARKERS:
            if length < 8:
                raise _bad_image("the frame header is too short")
            height = int.from_bytes(buf[i + 3 : i + 5], "big")
            width = int.from_bytes(buf[i + 5 : i + 7], "big")
            if width == 0 or height == 0:
                raise _bad_image(f"the frame header says {width}x{height}")
            return width, height
        i += length


# --- RTSP: one frame through ffmpeg ----------------------------------------------------------

# Protocols ffmpeg may open: the concat list on stdin (pipe), RTSP with RTP over TCP or UDP, and
# local files (recorded clips, tests). Nothing else, whatever the list says.
FFMPEG_PROTOCOLS: Final = "pipe,file,rtsp,rtsps,rtp,srtp,udp,tcp,tls"
RTSP_SCHEMES: Final = ("rtsp", "rtsps", "file")
_STDERR_KEEP = 8192
_URL_USERINFO = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://)[^\s/'\"@]*@")


def _ffconcat_quote(text: str) -> str:
    """A token for an ffconcat script: single-quoted, a quote itself written as '\\''."""
    return "'" + text.replace("'", "'\\''") + "'"


class RtspCamera:
    """One frame from an RTSP stream, grabbed by ffmpeg, for cameras with no snapshot URL.

    ffmpeg runs once per snapshot (``-frames:v 1``, re-encoded as JPEG to stdout) and is killed
    when ``timeout_s`` runs out. The stream URL, with the credentials in it, goes to ffmpeg on
    stdin as a one-line concat list (``-f concat -i pipe:0``), never on its command line, so
    ``ps`` and ``/proc/<pid>/cmdline`` do not show the password; what ffmpeg prints is scrubbed
    of credentials before it reaches a CameraError.

        cam = RtspCamera("gate", "rtsp://10.0.0.20:554/Streaming/Channels/101", "gw", "s3cret")
        shot = await cam.snapshot()   # Snapshot(data=b"\\xff\\xd8...", elapsed_s=1.3, ...)
    """

    def __init__(
        self,
        name: str,
        rtsp_url: str,
        username: str = "",
        password: str = "",
        *,
        timeout_s: float = 10.0,
        ffmpeg: str = "ffmpeg",
        transport: Literal["tcp", "udp"] = "tcp",
    ) -> None:
        try:
            parts = urlsplit(rtsp_url)
        except ValueError as exc:
            raise _config_error(f"not a usable stream URL: {_clip(exc, 80)}") from exc
        if parts.scheme not in RTSP_SCHEMES or (parts.scheme != "file" and not parts.hostname):
            raise _config_error(f"not an rtsp:// URL with a host: {rtsp_url[:60]!r}")
        if parts.username is not None or parts.password is not None:
            raise _config_error("the stream URL must not hold credentials (use username/password)")
        if any(ord(c) < 0x20 or ord(c) == 0x7F for c in rtsp_url + username + password):
            raise _config_error("the stream URL and credentials must not hold control characters")
        self.name = name
        self.rtsp_url = rtsp_url
        self.timeout_s = timeout_s
        self.ffmpeg = ffmpeg
        self.transport = transport
        self._username = username
        self._password = password
        self.last_pid: int | None = None

    async def __aenter__(self) -> RtspCamera:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Nothing stays open between snapshots (each ffmpeg is waited for or killed)."""

    def command(self) -> list[str]:
        """ffmpeg's argument list: no URL and no credentials in it."""
        return [
            self.ffmpeg,
            "-hide_banner",
            "-nostdin",
            "-loglevel",
            "error",
            "-f",
            "concat",
            "-safe",
            "0",
            "-protocol_whitelist",
            FFMPEG_PROTOCOLS,
            "-i",
            "pipe:0",
            "-frames:v",
            "1",
            "-an",
            "-f",
            "image2pipe",
            "-c:v",
            "mjpeg",
            "-q:v",
            "3",
            "pipe:1",
        ]

    def concat_script(self) -> bytes:
        """The list ffmpeg reads on stdin: the stream URL with its credentials, and RTSP options."""
        parts = urlsplit(self.rtsp_url)
        url = self.rtsp_url
        if self._username and parts.scheme != "file":
            userinfo = quote(self._username, safe="") + ":" + quote(self._password, safe="")
            url = urlunsplit(parts._replace(netloc=f"{userinfo}@{parts.netloc}"))
        lines = ["ffconcat version 1.0", f"file {_ffconcat_quote(url)}"]
        if parts.scheme != "file":
            lines.append(f"option rtsp_transport {self.transport}")
        return ("\n".join(lines) + "\n").encode("utf-8")

    def _scrub(self, raw: bytes) -> str:
        text = raw.decode("utf-8", "replace")
        text = _URL_USERINFO.sub(r"\1***@", text)
        if len(self._password) >= 3:
            for secret in {self._password, quote(self._password, safe="")}:
                text = text.replace(secret, "***")
        lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
        return _clip(Exception(" | ".join(lines[-3:])), 300) if lines else ""

    async def snapshot(self) -> Snapshot:
        """Grab one frame as a JPEG; CameraError(fault=...) if ffmpeg cannot deliver one."""
        started = time.monotonic()
        try:
            proc = await asyncio.create_subprocess_exec(
                *self.command(),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
        except OSError as exc:
            raise CameraError(
                f"cannot run {self.ffmpeg}: {exc.strerror or exc}", camera=self.name, fault="config"
            ) from exc
        self.last_pid = proc.pid
        out = bytearray()
        err = bytearray()
        try:
            async with asyncio.timeout(self.timeout_s):
                await asyncio.gather(
                    self._feed(proc, self.concat_script()),
                    _read_into(proc.stdout, out, MAX_SNAPSHOT_BYTES + 1),
                    _read_into(proc.stderr, err, _STDERR_KEEP),
                )
                rc = await proc.wait()
        except TimeoutError as exc:
            detail = self._scrub(bytes(err))
            raise CameraError(
                f"rtsp: no frame within {self.timeout_s:g} s, ffmpeg killed"
                + (f" ({detail})" if detail else ""),
                camera=self.name,
                fault="timeout",
                pid=proc.pid,
            ) from exc
        finally:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                # Reap it even if we are being cancelled: no zombie, no stray ffmpeg.
                await asyncio.shield(proc.wait())
        if rc != 0:
            detail = self._scrub(bytes(err)) or f"exit status {rc}"
            raise CameraError(
                f"rtsp: ffmpeg could not grab a frame: {detail}",
                camera=self.name,
                fault=_ffmpeg_fault(detail),
                status=rc,
            )
        if len(out) > MAX_SNAPSHOT_BYTES:
            raise CameraError(
                f"rtsp frame too large: over {MAX_SNAPSHOT_BYTES} bytes",
                camera=self.name,
                fault="bad_image",
            )
        try:
            jpeg_dimensions(bytes(out))
        except CameraError as exc:
            raise CameraError(
                f"rtsp: ffmpeg gave {len(out)} bytes, {exc.reason}",
                camera=self.name,
                fault="bad_image",
            ) from exc
        return Snapshot(bytes(out), time.monotonic() - started, "image/jpeg")

    @staticmethod
    async def _feed(proc: asyncio.subprocess.Process, script: bytes) -> None:
        assert proc.stdin is not None
        try:
            proc.stdin.write(script)
            await proc.stdin.drain()
            proc.stdin.close()
            await proc.stdin.wait_closed()
        except (BrokenPipeError, ConnectionResetError):
            pass  # ffmpeg died before reading its list: its exit status and stderr say why


async def _read_into(stream: asyncio.StreamReader | None, buf: bytearray, limit: int) -> None:
    """Read ``stream`` to its end, keeping at most ``limit`` bytes (the rest is drained)."""
    assert stream is not None
    while chunk := await stream.read(65536):
        if len(buf) < limit:
            buf += chunk[: limit - len(buf)]


def _ffmpeg_fault(detail: str) -> str:
    """A fault name from ffmpeg's (scrubbed) error text."""
    text = detail.lower()
    if "401" in text or "unauthorized" in text or "authorization failed" in text:
        return "auth"
    if any(
        s in text
        for s in (
            "connection refused",
            "no route to host",
            "network is unreachable",
            "name or service not known",
            "host is down",
            "no such file",
        )
    ):
        return "unreachable"
    if "timed out" in text or "timeout" in text:
        return "timeout"
    return "rtsp_protocol"


# --- factory -----------------------------------------------------------------------------------

Camera = HttpCamera | RtspCamera


class CameraSettings(Protocol):
    """What :func:`open_camera` reads from a camera's config (``gateway.health.config``)."""

    @property
    def name(self) -> str: ...
    @property
    def profile(self) -> str: ...
    @property
    def snapshot_url(self) -> str: ...
    @property
    def rtsp_url(self) -> str: ...
    @property
    def address(self) -> str: ...
    @property
    def channel(self) -> int: ...
    @property
    def auth(self) -> str: ...
    @property
    def username(self) -> str: ...
    @property
    def timeout_s(self) -> float: ...


def open_camera(cfg: CameraSettings, password: str = "", *, ffmpeg: str = "ffmpeg") -> Camera:
    """The camera a config section describes: HttpCamera for hikvision/dahua/http, RtspCamera
    for rtsp. CameraError(fault="config") for a section it cannot use.

        cam = open_camera(cfg, load_camera_password(cfg, base_dir))
    """
    auth: AuthScheme = (
        "none" if cfg.auth == "none" else ("basic" if cfg.auth == "basic" else "digest")
    )
    username = "" if auth == "none" else cfg.username
    secret = "" if auth == "none" else password
    if cfg.profile == "rtsp":
        if not cfg.rtsp_url:
            raise _config_error("profile 'rtsp' needs rtsp_url")
        return RtspCamera(
            cfg.name, cfg.rtsp_url, username, secret, timeout_s=cfg.timeout_s, ffmpeg=ffmpeg
        )
    if cfg.profile == "http":
        if not cfg.snapshot_url:
            raise _config_error("profile 'http' needs snapshot_url")
        url = cfg.snapshot_url
    else:
        url = profile_snapshot_url(cfg.profile, cfg.address, cfg.channel)
    return HttpCamera(cfg.name, url, username, secret, auth=auth, timeout_s=cfg.timeout_s)
