"""The gateway's configuration: one TOML file, frozen dataclasses, errors that name the key.

    cfg = load_config(Path("/etc/compound-gw/gateway.toml"))
    cfg.gateway.id, cfg.journal.telemetry_budget_bytes

Relative paths inside the file are relative to the file's own folder (:meth:`GatewayConfig.path`).
Secrets never live in the TOML: keys are files referenced by path and read with
:func:`read_secret_file`, which refuses files that others can read.
"""

from __future__ import annotations

import os
import stat
import tomllib
import zoneinfo
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import tomli_w

from gateway.config.schema import dump_section, parse_section, setting
from gateway.errors import ConfigError

GATEWAY_ID_PATTERN = r"[a-z0-9][a-z0-9-]{1,62}"


@dataclass(frozen=True, slots=True)
class GatewaySection:
    id: str = setting(doc="this gateway's id, unique in the district", pattern=GATEWAY_ID_PATTERN)
    compound: str = setting(doc="compound name as the district knows it", pattern=r".{1,120}")
    township: str = setting("", doc="township (sub-district) the compound belongs to")
    timezone: str = setting("Asia/Shanghai", doc="IANA time zone for schedules and daily verdicts")
    runtime_dir: str = setting(
        "/run/compound-gw", doc="folder for live status files (a tmpfs: no SD writes)"
    )
    data_dir: str = setting(
        "/var/lib/compound-gw",
        doc="folder for the journal, keys and media (relative: to this file)",
    )

    def check(self) -> Iterable[tuple[str, str]]:
        try:
            zoneinfo.ZoneInfo(self.timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            yield "timezone", f"{self.timezone!r} is not a known IANA time zone"


@dataclass(frozen=True, slots=True)
class JournalSection:
    path: str = setting("journal.db", doc="journal file (relative: to data_dir)")
    telemetry_budget_bytes: int = setting(
        32 * 1024 * 1024,
        min=64 * 1024,
        doc="bytes of telemetry payload kept; past it the oldest telemetry is dropped and counted",
    )
    retention_days: float = setting(
        30.0, min=0.0, max=3650.0, doc="synced events older than this are pruned (0: never)"
    )
    max_group: int = setting(
        512, min=1, max=100_000, doc="most appends folded into one commit (group commit)"
    )


@dataclass(frozen=True, slots=True)
class SupervisorSection:
    backoff_initial_s: float = setting(1.0, min=0.01, max=600.0, doc="first restart delay")
    backoff_max_s: float = setting(60.0, min=0.01, max=3600.0, doc="longest restart delay")
    stable_after_s: float = setting(
        60.0, min=0.1, max=86400.0, doc="a service up this long gets its backoff reset"
    )

    def check(self) -> Iterable[tuple[str, str]]:
        if self.backoff_max_s < self.backoff_initial_s:
            yield "backoff_max_s", "must not be below backoff_initial_s"


@dataclass(frozen=True, slots=True)
class LogSection:
    level: Literal["debug", "info", "warning", "error"] = setting("info", doc="stderr log level")


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    gateway: GatewaySection = setting(doc="who this gateway is")
    journal: JournalSection = field(default_factory=JournalSection, metadata={"doc": "the journal"})
    supervisor: SupervisorSection = field(
        default_factory=SupervisorSection, metadata={"doc": "service restarts"}
    )
    log: LogSection = field(default_factory=LogSection, metadata={"doc": "logging"})
    # Folder the file was loaded from; relative paths resolve against it. Not a TOML key.
    base_dir: str = field(default=".", metadata={"doc": "", "internal": True}, compare=False)

    def path(self, value: str) -> Path:
        """``value`` as an absolute path, relative ones taken from the config file's folder."""
        p = Path(value)
        return p if p.is_absolute() else Path(self.base_dir) / p

    @property
    def data_dir(self) -> Path:
        return self.path(self.gateway.data_dir)

    @property
    def journal_path(self) -> Path:
        p = Path(self.journal.path)
        return p if p.is_absolute() else self.data_dir / p


def parse_config(data: Mapping[str, Any], base_dir: str | Path = ".") -> GatewayConfig:
    """Validate TOML data into a GatewayConfig (ConfigError names the first bad key)."""
    if "base_dir" in data:
        raise ConfigError("base_dir", "unknown key")
    cfg = parse_section(GatewayConfig, data, "")
    return _with_base(cfg, str(base_dir))


def _with_base(cfg: GatewayConfig, base_dir: str) -> GatewayConfig:
    values = {name: getattr(cfg, name) for name in GatewayConfig.__dataclass_fields__}
    values["base_dir"] = base_dir
    return GatewayConfig(**values)


def load_config(path: str | Path) -> GatewayConfig:
    """Read and validate a TOML config file."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise ConfigError("", f"cannot read {p}: {exc.strerror}") from exc
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError("", f"{p} is not UTF-8 text") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("", f"{p} is not valid TOML: {exc}") from exc
    return parse_config(data, p.resolve().parent)


def dump_config(cfg: GatewayConfig) -> str:
    """TOML text that :func:`parse_config` reads back to an equal config."""
    data = dump_section(cfg)
    data.pop("base_dir", None)
    return tomli_w.dumps(data)


def write_config_atomically(cfg: GatewayConfig, path: str | Path) -> None:
    """Write ``cfg`` to ``path`` via a temporary file and rename; the old file is kept as .bak."""
    p = Path(path)
    tmp = p.with_name(p.name + ".tmp")
    text = dump_config(cfg)
    parse_config(tomllib.loads(text), p.parent)  # never write what we could not read back
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    if p.exists():
        os.replace(p, p.with_name(p.name + ".bak"))
    os.replace(tmp, p)
    dir_fd = os.open(p.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def read_secret_file(path: str | Path, key: str, *, length: int | None = None) -> bytes:
    """Read a key file, refusing one that group or others can read (it must be 0600 or 0400).

    ``key`` is the config key that named the file, for the error message. Hex text files are
    decoded; ``length`` checks the decoded size.
    """
    p = Path(path)
    try:
        st = p.stat()
    except OSError as exc:
        raise ConfigError(key, f"cannot read secret file {p}: {exc.strerror}") from exc
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(key, f"secret file {p} has mode {stat.S_IMODE(st.st_mode):04o}; use 0600")
    raw = p.read_bytes().strip()
    try:
        value = bytes.fromhex(raw.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        value = raw
    if length is not None and len(value) != length:
        raise ConfigError(key, f"secret file {p} holds {len(value)} bytes, expected {length}")
    return value


def write_secret_file(path: str | Path, value: bytes, *, hex_text: bool = True) -> None:
    """Create a 0600 key file (never world-readable, not even for an instant)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, (value.hex() + "\n").encode() if hex_text else value)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.chmod(tmp, 0o600)
    os.replace(tmp, p)


__all__ = [
    "GatewayConfig",
    "GatewaySection",
    "JournalSection",
    "LogSection",
    "SupervisorSection",
    "dump_config",
    "load_config",
    "parse_config",
    "parse_section",
    "read_secret_file",
    "setting",
    "write_config_atomically",
    "write_secret_file",
]
