"""The ``[health]`` configuration section: cameras, modem, GPIO, self-monitoring, evidence media.

[health]
media_budget_bytes = 268435456

[[health.cameras]]
name = "gate"
snapshot_url = "http://192.168.1.20/cgi-bin/snapshot.jpg"
rtsp_url = "rtsp://192.168.1.20:554/stream1"
username = "gw"
password_file = "secrets/cam-gate.pass"      # mode 0600, relative: to the config file

[[health.cameras]]
name = "duty-room"
profile = "hikvision"                        # or "dahua": the URL follows from address + channel
address = "192.168.1.64"
channel = 1
username = "gw"
password_file = "secrets/cam-duty.pass"

[[health.snapshot_triggers]]
kind = "tap"
field = "checkpoint"
equals = "north-gate"
cameras = ["gate"]

[health.modem]
port = "/dev/ttyModem"

[health.gpio]
tamper_pin = 17
mains_pin = 22
led_pin = 27
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from drivers.camera import MAX_CHANNEL, CameraError, parse_camera_address
from gateway.config.schema import setting
from gateway.errors import ConfigError

NAME_PATTERN = r"[a-z0-9][a-z0-9._-]{0,62}"


def _url_problem(url: str) -> str | None:
    """Why a camera URL cannot be used (no host, a port that is not 1..65535), or None."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        return f"is not a usable URL: {exc}"
    if not parts.hostname:
        return "has no host"
    if port == 0:
        return "port 0 is not a usable port"
    return None


@dataclass(frozen=True, slots=True)
class CameraConfig:
    name: str = setting(doc="camera name (device id in health and evidence)", pattern=NAME_PATTERN)
    profile: Literal["hikvision", "dahua", "http", "rtsp"] = setting(
        "http",
        doc="how snapshots are taken: hikvision (ISAPI) or dahua (CGI) from address and channel, "
        "http from snapshot_url, rtsp (one frame through ffmpeg) from rtsp_url",
    )
    snapshot_url: str = setting(
        "", doc="HTTP(S) URL of a JPEG snapshot (profile http only)", pattern=r"(https?://.+)?"
    )
    address: str = setting(
        "", doc="camera host[:port], http:// or https:// optional (profiles hikvision and dahua)"
    )
    channel: int = setting(
        1, min=1, max=MAX_CHANNEL, doc="video channel, 1 = the first (profiles hikvision and dahua)"
    )
    rtsp_url: str = setting(
        "",
        doc="rtsp:// URL, no credentials in it: probed with OPTIONS for liveness, and the "
        "snapshot source of profile rtsp ('' to skip)",
    )
    auth: Literal["digest", "basic", "none"] = setting("digest", doc="HTTP authentication scheme")
    username: str = setting("", doc="HTTP user name")
    password_file: str = setting(
        "", doc="file holding the HTTP password (mode 0600; relative: to the config file)"
    )
    interval_s: float = setting(30.0, min=0.05, max=3600.0, doc="seconds between health polls")
    timeout_s: float = setting(5.0, min=0.05, max=60.0, doc="snapshot and RTSP timeout")
    slow_ms: float = setting(
        3000.0, min=1.0, max=60000.0, doc="a snapshot slower than this makes the camera degraded"
    )

    def check(self) -> Iterable[tuple[str, str]]:
        yield from self.profile_problems()
        for key, url in (("snapshot_url", self.snapshot_url), ("rtsp_url", self.rtsp_url)):
            problem = _url_problem(url) if url else None
            if problem:
                yield key, problem
        if self.rtsp_url and not self.rtsp_url.startswith("rtsp://"):
            yield "rtsp_url", "must start with rtsp://"
        if self.profile == "rtsp" and "@" in urlsplit(self.rtsp_url).netloc:
            # The password would sit in the TOML file and in every error message.
            yield "rtsp_url", "must not hold credentials: use username and password_file"
        if self.auth != "none" and not self.username:
            yield "username", f"is required with auth = {self.auth!r}"
        if ":" in self.username or any(ord(c) < 0x20 or ord(c) == 0x7F for c in self.username):
            # RFC 7617 / 7616: aiohttp refuses these when the camera object is built, which
            # would stop the daemon at start; say so here instead.
            yield "username", "must not contain ':' or control characters"

    def profile_problems(self) -> Iterable[tuple[str, str]]:
        """Each profile's own key is required and the others' keys are refused, so a camera
        never silently uses a URL other than the one the installer thinks it does."""
        needs = {"hikvision": "address", "dahua": "address", "http": "snapshot_url"}
        needs["rtsp"] = "rtsp_url"
        wanted = needs[self.profile]
        if not getattr(self, wanted):
            yield wanted, f"is required with profile = {self.profile!r}"
        for key in ("snapshot_url", "address"):
            if key != wanted and getattr(self, key):
                yield key, f"is not used with profile = {self.profile!r} (remove it)"
        if self.channel != 1 and wanted != "address":
            yield "channel", f"is not used with profile = {self.profile!r} (remove it)"
        if self.address:
            try:
                parse_camera_address(self.address)
            except CameraError as exc:
                yield "address", exc.reason


@dataclass(frozen=True, slots=True)
class SnapshotTrigger:
    kind: str = setting(doc="event kind that triggers an evidence snapshot, e.g. 'tap'")
    cameras: tuple[str, ...] = setting(doc="cameras to snapshot", min_items=1)
    field: str = setting("", doc="payload field to match ('' matches every event of the kind)")
    equals: str = setting("", doc="value the payload field must have")


@dataclass(frozen=True, slots=True)
class ModemConfig:
    port: str = setting(doc="serial device of the modem's AT port (a stable udev name)")
    baudrate: int = setting(
        115200, choices=(9600, 19200, 38400, 57600, 115200, 230400, 460800), doc="AT port speed"
    )
    interval_s: float = setting(60.0, min=0.05, max=3600.0, doc="seconds between polls")
    command_timeout_s: float = setting(3.0, min=0.05, max=60.0, doc="wait for an AT reply")
    weak_dbm: int = setting(-100, min=-113, max=-51, doc="signal below this is 'degraded'")


@dataclass(frozen=True, slots=True)
class GpioConfig:
    tamper_pin: int | None = setting(None, min=0, max=53, doc="BCM pin of the tamper switch")
    tamper_pull: Literal["up", "down", "none"] = setting("up", doc="tamper pin pull resistor")
    tamper_open_when: Literal["high", "low"] = setting(
        "high", doc="level of the tamper pin while the cabinet is open"
    )
    mains_pin: int | None = setting(None, min=0, max=53, doc="BCM pin of the mains-present input")
    mains_pull: Literal["up", "down", "none"] = setting("down", doc="mains pin pull resistor")
    mains_present_when: Literal["high", "low"] = setting(
        "high", doc="level of the mains pin while mains power is present"
    )
    led_pin: int | None = setting(None, min=0, max=53, doc="BCM pin of the status LED")
    bounce_s: float = setting(0.05, min=0.0, max=5.0, doc="switch debounce time (0: none)")


@dataclass(frozen=True, slots=True)
class SelfConfig:
    interval_s: float = setting(60.0, min=0.05, max=3600.0, doc="seconds between self checks")
    temp_warn_c: float = setting(75.0, min=30.0, max=120.0, doc="CPU temperature: degraded")
    temp_crit_c: float = setting(85.0, min=30.0, max=120.0, doc="CPU temperature: down")
    disk_warn_bytes: int = setting(512 * 1024 * 1024, min=0, doc="free space below: degraded")
    disk_crit_bytes: int = setting(64 * 1024 * 1024, min=0, doc="free space below: down")
    require_clock_sync: bool = setting(True, doc="an unsynchronised clock makes 'degraded'")

    def check(self) -> Iterable[tuple[str, str]]:
        if self.temp_crit_c < self.temp_warn_c:
            yield "temp_crit_c", "must not be below temp_warn_c"
        if self.disk_crit_bytes > self.disk_warn_bytes:
            yield "disk_crit_bytes", "must not be above disk_warn_bytes"


@dataclass(frozen=True, slots=True)
class HysteresisConfig:
    kind: str = setting(doc="device kind (camera, modem, gateway, reader, relay, ...)")
    worsen_after: int = setting(3, min=1, max=100, doc="bad observations before a worse state")
    recover_after: int = setting(2, min=1, max=100, doc="good observations before a better one")
    stale_after_s: float = setting(
        0.0, min=0.0, max=86400.0, doc="no report this long makes the device unknown (0: never)"
    )


@dataclass(frozen=True, slots=True)
class HealthSection:
    cameras: tuple[CameraConfig, ...] = setting((), doc="IP cameras to watch", max_items=64)
    snapshot_triggers: tuple[SnapshotTrigger, ...] = setting(
        (), doc="events that take an evidence snapshot"
    )
    media_dir: str = setting("media", doc="evidence snapshots folder (relative: to data_dir)")
    media_budget_bytes: int = setting(
        256 * 1024 * 1024, min=1024 * 1024, doc="evidence snapshots kept; oldest deleted first"
    )
    modem: ModemConfig | None = setting(None, doc="the 4G modem's AT port (absent: no modem)")
    gpio: GpioConfig = field(default_factory=GpioConfig, metadata={"doc": "GPIO inputs and LED"})
    system: SelfConfig = field(
        default_factory=SelfConfig, metadata={"doc": "the gateway's own health"}
    )
    hysteresis: tuple[HysteresisConfig, ...] = setting(
        (), doc="per-kind hysteresis overriding the built-in defaults"
    )
    sample_heartbeat_s: float = setting(
        900.0, min=0.01, max=86400.0, doc="an unchanged sample is still written this often"
    )
    telemetry_batch_s: float = setting(
        300.0, min=0.0, max=600.0,
        doc="samples wait up to this long to share one commit (evidence never waits)",
    )  # fmt: skip

    def check(self) -> Iterable[tuple[str, str]]:
        names = [c.name for c in self.cameras]
        for i, name in enumerate(names):
            if name in names[:i]:
                yield f"cameras[{i}].name", f"{name!r} is used twice"
        for i, trig in enumerate(self.snapshot_triggers):
            for j, cam in enumerate(trig.cameras):
                if cam not in names:
                    yield f"snapshot_triggers[{i}].cameras[{j}]", f"no camera named {cam!r}"
        pins = [
            (k, p)
            for k, p in (
                ("tamper_pin", self.gpio.tamper_pin),
                ("mains_pin", self.gpio.mains_pin),
                ("led_pin", self.gpio.led_pin),
            )
            if p is not None
        ]
        for i, (key, pin) in enumerate(pins):
            if pin in [p for _, p in pins[:i]]:
                yield f"gpio.{key}", f"pin {pin} is used twice"


def read_password_file(path: Path, key: str) -> str:
    """A camera password from a file that only its owner can read (0600 / 0400).

    Unlike key files this is text as written (a password may well look like hex).
    """
    try:
        st = path.stat()
    except OSError as exc:
        raise ConfigError(key, f"cannot read password file {path}: {exc.strerror}") from exc
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(
            key, f"password file {path} has mode {stat.S_IMODE(st.st_mode):04o}; use 0600"
        )
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read().rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(key, f"cannot read password file {path}: {exc}") from exc


def load_camera_password(cam: CameraConfig, base_dir: Path) -> str:
    """A camera's password from its ``password_file`` ("" when it names none).

    The one place the daemon and ``config check`` read it, so both refuse the same files.
    """
    if not cam.password_file:
        return ""
    return read_password_file(
        resolve(base_dir, cam.password_file), f"health.cameras[{cam.name}].password_file"
    )


def resolve(base_dir: Path, value: str) -> Path:
    """``value`` as a path, relative ones taken from ``base_dir``."""
    p = Path(os.path.expanduser(value))
    return p if p.is_absolute() else base_dir / p
