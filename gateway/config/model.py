"""The whole configuration: every capability's section, assembled and cross-checked.

cfg = load_config("/etc/compound-gw/gateway.toml")
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

from gateway.broadcast.config import BroadcastSection
from gateway.checkpoints.config import CheckpointsSection, load_reader_key
from gateway.commands.config import CommandsSection
from gateway.config import GatewaySection, JournalSection, LogSection, SupervisorSection
from gateway.config.schema import dump_section, parse_section, setting
from gateway.errors import ConfigError
from gateway.health.config import HealthSection, load_camera_password
from gateway.patrol.config import PatrolSection, check_checkpoints
from gateway.sync.config import SyncSection
from gateway.web.config import WebSection


def _section(cls: type, doc: str) -> Any:
    return field(default_factory=cls, metadata={"doc": doc})


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    gateway: GatewaySection = setting(doc="who this gateway is")
    journal: JournalSection = _section(JournalSection, "the journal")
    supervisor: SupervisorSection = _section(SupervisorSection, "service restarts")
    log: LogSection = _section(LogSection, "logging")
    checkpoints: CheckpointsSection = _section(
        CheckpointsSection, "checkpoint readers: buses, the checkpoint map, the guard roster"
    )
    patrol: PatrolSection = _section(PatrolSection, "patrol routes, schedules and verdicts")
    broadcast: BroadcastSection = _section(BroadcastSection, "public-safety broadcast relays")
    health: HealthSection = _section(HealthSection, "device health: cameras, modem, GPIO, self")
    sync: SyncSection = _section(SyncSection, "the secure link to the district centre")
    commands: CommandsSection = _section(CommandsSection, "signed remote commands from the centre")
    web: WebSection = _section(WebSection, "the local status page")
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

    def check(self) -> Iterable[tuple[str, str]]:
        """Rules across sections: every checkpoint a route names must exist."""
        known = {p.id for p in self.checkpoints.points}
        try:
            check_checkpoints(self.patrol, known, "patrol")
        except ConfigError as exc:
            yield exc.key, exc.detail


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


def load_config(path: str | Path, *, patrol_data: bool = True) -> GatewayConfig:
    """Read and validate a TOML config file, with the patrol data file beside it merged in
    (roster, routes, schedules: :mod:`gateway.patrol.store`) unless ``patrol_data=False``."""
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
    except ValueError as exc:  # an integer of more than 4300 digits (int's own limit)
        raise ConfigError("", f"{p} is not valid TOML: {str(exc)[:120]}") from exc
    except RecursionError:  # arrays or inline tables nested about a thousand deep
        raise ConfigError("", f"{p} is not valid TOML: nested too deeply") from None
    cfg = parse_config(data, p.resolve().parent)
    if not patrol_data:
        return cfg
    from gateway.patrol.store import data_path, load_patrol_data, with_patrol_data

    extra = data_path(p)
    return with_patrol_data(cfg, load_patrol_data(extra), extra)


def check_secret_files(cfg: GatewayConfig) -> None:
    """Read every secret file the daemon reads at start; ConfigError names the first bad one.

    ``compound-gw run`` refuses to start on a missing, unreadable, wrongly sized or
    group/world-readable key file; ``config check`` calls this so that it refuses exactly
    the same files, with the same message, instead of passing a config ``run`` will refuse
    (a restart loop under systemd). The same loader functions are used as at start-up.
    """
    base = Path(cfg.base_dir)
    for point in cfg.checkpoints.points:
        load_reader_key(cfg.checkpoints, point, base)
    for cam in cfg.health.cameras:
        load_camera_password(cam, base)


def check_config_file(path: str | Path) -> GatewayConfig:
    """:func:`load_config` plus :func:`check_secret_files`: what ``config check`` runs."""
    cfg = load_config(path)
    check_secret_files(cfg)
    return cfg


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
