"""The wizard's answers: what an installer would type, as a TOML file for scripts and tests.

    answers = load_answers(Path("site.toml"))
    answers.gateway["id"], answers.ports[0].path, answers.checkpoints[0].id

Every key is validated like the gateway config (errors name the key). Secrets are never
written in the answers themselves: the enrollment token and camera passwords are *files*
(``token_file``, ``password_file``) or environment variables, read when the step runs and
never copied into the state file, the output or the log. Example: docs/setup.md.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from gateway.config.schema import parse_section, setting
from gateway.errors import ConfigError

NAME = r"[a-z0-9][a-z0-9._-]{0,62}"
BOARD_NAME = r"[a-z0-9][a-z0-9_-]{0,39}"


@dataclass(frozen=True, slots=True)
class GatewayAnswers:
    id: str = setting(
        doc="this gateway's id, unique in the district", pattern=r"[a-z0-9][a-z0-9-]{1,62}"
    )
    compound: str = setting(doc="compound name as the district knows it", pattern=r".{1,120}")
    township: str = setting("", doc="township")
    timezone: str = setting("Asia/Shanghai", doc="IANA time zone")
    data_dir: str = setting("/var/lib/compound-gw", doc="journal, keys and media folder")
    runtime_dir: str = setting("/run/compound-gw", doc="live status folder")


@dataclass(frozen=True, slots=True)
class PortAnswer:
    path: str = setting(doc="serial device (prefer /dev/serial/by-id/...)")
    name: str = setting(doc="bus name in the config", pattern=NAME)
    baud: int = setting(9600, choices=(2400, 4800, 9600, 19200, 38400, 57600, 115200, 230400))
    kind: Literal["auto", "osdp", "modbus"] = setting(
        "auto", doc="what is wired to it: auto tries OSDP readers first, then Modbus boards"
    )


@dataclass(frozen=True, slots=True)
class ScanAnswers:
    osdp_first: int = setting(0, min=0, max=126, doc="lowest OSDP address probed")
    osdp_last: int = setting(126, min=0, max=126, doc="highest OSDP address probed")
    modbus_first: int = setting(1, min=1, max=247, doc="lowest Modbus address probed")
    modbus_last: int = setting(247, min=1, max=247, doc="highest Modbus address probed")


@dataclass(frozen=True, slots=True)
class CurrentKey:
    reader: str = setting(
        doc="bus/address of a reader that already holds a key", pattern=r"[^/]+/\d+"
    )
    key_file: str = setting(doc="0600 file with its current SCBK (hex)")


@dataclass(frozen=True, slots=True)
class PairingAnswers:
    current_keys: tuple[CurrentKey, ...] = setting((), doc="readers not in install mode")
    timeout_s: float = setting(15.0, min=1.0, max=120.0, doc="per reader")


@dataclass(frozen=True, slots=True)
class CheckpointAnswer:
    id: str = setting(doc="checkpoint id; the installer taps its reader when asked", pattern=NAME)
    name: str = setting("", doc="human name")
    location: str = setting("", doc="where the reader is mounted")


@dataclass(frozen=True, slots=True)
class BoardName:
    at: str = setting(doc="bus/address of a scanned board", pattern=r"[^/]+/\d+")
    name: str = setting(doc="board name used by zones", pattern=BOARD_NAME)


@dataclass(frozen=True, slots=True)
class ZoneAnswer:
    number: int = setting(min=1, max=64)
    board: str = setting(pattern=BOARD_NAME)
    channel: int = setting(min=0, max=31)
    name: str = setting("")


@dataclass(frozen=True, slots=True)
class RelayAnswers:
    boards: tuple[BoardName, ...] = setting(
        (), doc="names for scanned boards (default bus-address)"
    )
    amplifier: str = setting("", doc="board/channel of the amplifier power relay ('' none)")
    zones: tuple[ZoneAnswer, ...] = setting((), doc="loudspeaker zones")
    warmup_s: float = setting(2.0, min=0.0, max=30.0, doc="amplifier warm-up")
    click_seconds: float = setting(1.0, min=0.2, max=30.0, doc="each zone stays on this long")


@dataclass(frozen=True, slots=True)
class CameraAnswer:
    name: str = setting(pattern=NAME)
    profile: Literal["hikvision", "dahua", "http", "rtsp"] = setting(
        "http", doc="camera family: hikvision, dahua, http (snapshot_url) or rtsp (docs/cameras.md)"
    )
    snapshot_url: str = setting("", pattern=r"(https?://.+)?")
    address: str = setting("", doc="host[:port] of a hikvision or dahua camera")
    channel: int = setting(1, min=1, max=256, doc="its channel, 1 = the first")
    rtsp_url: str = setting("")
    auth: Literal["digest", "basic", "none"] = setting("digest")
    username: str = setting("")
    password_file: str = setting("", doc="file holding the password (never the password itself)")
    password_env: str = setting("", doc="or: environment variable holding it")

    def check(self) -> Iterable[tuple[str, str]]:
        # The same rules as the [health] camera the wizard will write.
        yield from self.as_camera_config().profile_problems()

    def as_camera_config(self) -> Any:
        """The ``health.cameras`` section this answer becomes (password file aside)."""
        from gateway.health.config import CameraConfig

        return CameraConfig(
            name=self.name, profile=self.profile, snapshot_url=self.snapshot_url,
            address=self.address, channel=self.channel, rtsp_url=self.rtsp_url, auth=self.auth,
            username=self.username,
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class EnrollAnswers:
    skip: bool = setting(False, doc="do not enroll now")
    centre_url: str = setting("", doc="https://... of the district centre")
    token_file: str = setting("", doc="file holding the one-time enrollment token")
    token_env: str = setting("", doc="or: environment variable holding it")
    ca_fingerprint: str = setting("", doc="the centre CA's SHA-256, given out of band")


@dataclass(frozen=True, slots=True)
class Answers:
    gateway: GatewayAnswers = setting(doc="who this gateway is")
    ports: tuple[PortAnswer, ...] = setting((), doc="serial ports to scan")
    scan: ScanAnswers = setting(ScanAnswers(), doc="address ranges")
    pairing: PairingAnswers = setting(PairingAnswers(), doc="reader keys")
    checkpoints: tuple[CheckpointAnswer, ...] = setting((), doc="checkpoints in tapping order")
    tap_timeout_s: float = setting(120.0, min=1.0, max=3600.0, doc="wait for each tap")
    relays: RelayAnswers = setting(RelayAnswers(), doc="boards, amplifier, zones")
    cameras: tuple[CameraAnswer, ...] = setting((), doc="IP cameras")
    enroll: EnrollAnswers = setting(EnrollAnswers(), doc="enrollment with the centre")
    # [config] tables are merged into the written gateway config as they are (web, patrol...).
    config: dict[str, Any] | None = None
    base_dir: str = "."

    def path(self, value: str) -> Path:
        p = Path(value)
        return p if p.is_absolute() else Path(self.base_dir) / p


def parse_answers(data: dict[str, Any], base_dir: str | Path = ".") -> Answers:
    """Validate answers (ConfigError names the key, e.g. ``ports[1].baud``)."""
    data = dict(data)
    extra = data.pop("config", {})
    if not isinstance(extra, dict):
        raise ConfigError("config", "must be a table")
    if "base_dir" in data:
        raise ConfigError("base_dir", "unknown key")
    parsed = parse_section(Answers, data, "")
    return Answers(
        **{
            n: getattr(parsed, n)
            for n in Answers.__dataclass_fields__
            if n not in ("config", "base_dir")
        },
        config=extra,
        base_dir=str(base_dir),
    )


def load_answers(path: str | Path) -> Answers:
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError("", f"cannot read {p}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("", f"{p} is not valid TOML: {exc}") from exc
    return parse_answers(data, p.resolve().parent)
