"""The ``[checkpoints]`` configuration section: reader buses, the checkpoint map, the roster.

    [checkpoints]
    dedupe_window_s = 10.0

    [[checkpoints.buses]]
    name = "north"
    port = "/dev/serial/by-id/usb-FTDI_USB-RS485-if00-port0"
    baud = 9600

    [[checkpoints.points]]
    id = "north-gate"
    name = "North gate"
    location = "Block 3, north entrance"
    bus = "north"
    address = 1
    key_file = "keys/north-gate.scbk"      # mode 0600; relative: to the config file

    [[checkpoints.roster]]
    wristband = "04a1b2c3d4e5f6"
    guard = "g-017"

    # NTAG 424 DNA bands (docs/credentials.md), both optional:
    band_key_file = "keys/bands.key"   # site master key, 16 bytes hex, mode 0600
    require_verified_bands = false     # true: UID-only reads are refused

Parse with ``parse_section(CheckpointsSection, data["checkpoints"], "checkpoints")``; errors
name the key (``checkpoints.points[3].address: 300 is outside 0..126``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from drivers.checkpoints import MAX_ADDRESS, MIN_ADDRESS
from gateway.config import read_secret_file
from gateway.config.schema import setting

NAME_PATTERN = r"[a-z0-9][a-z0-9._-]{0,62}"
WRISTBAND_PATTERN = r"[0-9a-f]{2,128}"
BAUD_RATES = (9600, 19200, 38400, 57600, 115200, 230400)
SCBK_LENGTH = 16
BAND_KEY_LENGTH = 16


@dataclass(frozen=True, slots=True)
class BusConfig:
    name: str = setting(doc="bus name, used in reader ids (bus/address)", pattern=NAME_PATTERN)
    port: str = setting(doc="serial device of the RS-485 adapter (prefer /dev/serial/by-id/...)")
    baud: int = setting(9600, choices=BAUD_RATES, doc="line speed, 8N1; every reader must match")
    osdp_log_level: str = setting(
        "error",
        choices=("debug", "info", "warning", "error", "critical"),
        doc="libosdp's own log level (printed on stderr)",
    )


@dataclass(frozen=True, slots=True)
class PointConfig:
    id: str = setting(doc="checkpoint id, as routes and reports name it", pattern=NAME_PATTERN)
    bus: str = setting(doc="name of the bus the reader is wired to", pattern=NAME_PATTERN)
    address: int = setting(min=MIN_ADDRESS, max=MAX_ADDRESS, doc="the reader's OSDP address")
    name: str = setting("", doc="human name shown to operators")
    location: str = setting("", doc="where the reader is mounted")
    key_file: str = setting(
        "",
        doc="the reader's secure-channel key (SCBK, 16 bytes hex, mode 0600; relative: to the "
        "config file); '' means keys/<bus>-<address>.scbk",
    )


@dataclass(frozen=True, slots=True)
class GuardConfig:
    wristband: str = setting(
        doc="wristband id: the raw card data in lower-case hex", pattern=WRISTBAND_PATTERN
    )
    guard: str = setting(doc="guard id", pattern=r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")
    name: str = setting("", doc="guard's name (for operators; not sent in tap events)")


@dataclass(frozen=True, slots=True)
class CheckpointsSection:
    buses: tuple[BusConfig, ...] = setting((), doc="RS-485 buses of OSDP readers")
    points: tuple[PointConfig, ...] = setting((), doc="checkpoints: which reader is where")
    roster: tuple[GuardConfig, ...] = setting((), doc="wristband id -> guard id")
    dedupe_window_s: float = setting(
        10.0,
        min=0.0,
        max=3600.0,
        doc="the same wristband on the same reader within this many seconds is one tap "
        "(repeats are journaled as tap.repeat)",
    )

    band_key_file: str = setting(
        "",
        doc="site master key of NTAG 424 DNA bands (16 bytes hex, mode 0600; relative: to the "
        "config file); '' means SUN messages cannot be verified and are refused",
    )
    require_verified_bands: bool = setting(
        False,
        doc="refuse UID-only reads (cloneable bands): only verified NTAG 424 DNA bands count; "
        "needs band_key_file",
    )

    def check(self) -> Iterable[tuple[str, str]]:
        if self.require_verified_bands and not self.band_key_file:
            yield "require_verified_bands", "needs band_key_file (the site's band master key)"
        names: set[str] = set()
        for i, bus in enumerate(self.buses):
            if bus.name in names:
                yield f"buses[{i}].name", f"{bus.name!r} is used by another bus"
            names.add(bus.name)
        ids: set[str] = set()
        wired: dict[tuple[str, int], str] = {}
        for i, p in enumerate(self.points):
            if p.id in ids:
                yield f"points[{i}].id", f"{p.id!r} is used by another checkpoint"
            ids.add(p.id)
            if p.bus not in names:
                yield f"points[{i}].bus", f"{p.bus!r} is not a configured bus"
            other = wired.get((p.bus, p.address))
            if other is not None:
                yield f"points[{i}].address", f"address {p.address} on {p.bus} is also {other!r}"
            wired[(p.bus, p.address)] = p.id
        bands: set[str] = set()
        for i, g in enumerate(self.roster):
            if g.wristband in bands:
                yield f"roster[{i}].wristband", f"{g.wristband} is listed twice"
            bands.add(g.wristband)

    def bus(self, name: str) -> BusConfig | None:
        return next((b for b in self.buses if b.name == name), None)

    def point_at(self, bus: str, address: int) -> PointConfig | None:
        return next((p for p in self.points if p.bus == bus and p.address == address), None)


def key_path(point: PointConfig, base_dir: Path) -> Path:
    """Where a checkpoint's SCBK lives (relative paths: from the config file's folder)."""
    default = Path("keys") / f"{point.bus}-{point.address}.scbk"
    raw = Path(point.key_file) if point.key_file else default
    return raw if raw.is_absolute() else base_dir / raw


def key_config_key(section: CheckpointsSection, point: PointConfig) -> str:
    return f"checkpoints.points[{section.points.index(point)}].key_file"


def load_reader_key(section: CheckpointsSection, point: PointConfig, base_dir: Path) -> bytes:
    """The reader's SCBK from its 0600 key file (ConfigError names the key_file key)."""
    return read_secret_file(
        key_path(point, base_dir), key_config_key(section, point), length=SCBK_LENGTH
    )


def load_band_master_key(section: CheckpointsSection, base_dir: Path) -> bytes | None:
    """The bands' site master key from its 0600 file (None: not configured); ConfigError
    names ``checkpoints.band_key_file``."""
    if not section.band_key_file:
        return None
    raw = Path(section.band_key_file)
    path = raw if raw.is_absolute() else base_dir / raw
    return read_secret_file(path, "checkpoints.band_key_file", length=BAND_KEY_LENGTH)


def load_section_file(path: str | Path) -> tuple[CheckpointsSection, Path]:
    """A ``[checkpoints]`` table from its own TOML file (the bench, and until the lead wires
    the section into GatewayConfig); returns the section and the folder relative paths use."""
    import tomllib

    from gateway.config.schema import parse_section
    from gateway.errors import ConfigError

    p = Path(path)
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError("", f"cannot read {p}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("", f"{p} is not valid TOML: {exc}") from exc
    table = data.get("checkpoints")
    if not isinstance(table, dict):
        raise ConfigError("checkpoints", f"{p} has no [checkpoints] table")
    return parse_section(CheckpointsSection, table, "checkpoints"), p.resolve().parent
