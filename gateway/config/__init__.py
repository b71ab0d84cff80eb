"""The gateway's configuration: one TOML file, frozen dataclasses, errors that name the key.

    cfg = load_config(Path("/etc/compound-gw/gateway.toml"))
    cfg.gateway.id, cfg.journal.telemetry_budget_bytes

This package holds the schema machinery, the secret-file helpers and the base sections; each
capability keeps its own section next to its code (``gateway/patrol/config.py``...), and
``gateway/config/model.py`` assembles them into :class:`GatewayConfig`. That module is imported
lazily on first use of its names, so a capability's config module can import this package
without a cycle.

Relative paths inside the file are relative to the file's own folder (:meth:`GatewayConfig.path`).
Secrets never live in the TOML: keys are files referenced by path and read with
:func:`read_secret_file`, which refuses files that others can read.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from gateway.config.schema import parse_section, setting, timezone_problem
from gateway.errors import ConfigError
from gateway.i18n import SUPPORTED, supported_language

GATEWAY_ID_PATTERN = r"[a-z0-9][a-z0-9-]{1,62}"


@dataclass(frozen=True, slots=True)
class GatewaySection:
    id: str = setting(doc="this gateway's id, unique in the district", pattern=GATEWAY_ID_PATTERN)
    compound: str = setting(doc="compound name as the district knows it", pattern=r".{1,120}")
    township: str = setting("", doc="township (sub-district) the compound belongs to")
    timezone: str = setting("Asia/Shanghai", doc="IANA time zone for schedules and daily verdicts")
    language: str = setting(
        "zh-CN", doc="language of the status page and the CLI: zh-CN (Simplified Chinese) or en"
    )
    runtime_dir: str = setting(
        "/run/compound-gw", doc="folder for live status files (a tmpfs: no SD writes)"
    )
    data_dir: str = setting(
        "/var/lib/compound-gw",
        doc="folder for the journal, keys and media (relative: to this file)",
    )

    def check(self) -> Iterable[tuple[str, str]]:
        problem = timezone_problem(self.timezone)
        if problem is not None:
            yield "timezone", problem
        if supported_language(self.language) is None:
            yield "language", f"{self.language!r} is not one of {', '.join(SUPPORTED)}"


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
    try:
        raw = p.read_bytes().strip()
    except OSError as exc:  # a folder, or unreadable to us
        raise ConfigError(key, f"cannot read secret file {p}: {exc.strerror}") from exc
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


_MODEL_NAMES = frozenset(
    {
        "GatewayConfig",
        "check_config_file",
        "check_secret_files",
        "dump_config",
        "load_config",
        "parse_config",
        "write_config_atomically",
    }
)

if TYPE_CHECKING:
    from gateway.config.model import (
        GatewayConfig,
        check_config_file,
        check_secret_files,
        dump_config,
        load_config,
        parse_config,
        write_config_atomically,
    )


def __getattr__(name: str) -> Any:
    if name in _MODEL_NAMES:
        from gateway.config import model

        return getattr(model, name)
    raise AttributeError(f"module 'gateway.config' has no attribute {name!r}")


__all__ = [
    "GatewayConfig",
    "GatewaySection",
    "JournalSection",
    "LogSection",
    "SupervisorSection",
    "check_config_file",
    "check_secret_files",
    "dump_config",
    "load_config",
    "parse_config",
    "parse_section",
    "read_secret_file",
    "setting",
    "write_config_atomically",
    "write_secret_file",
]
