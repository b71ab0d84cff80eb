"""The patrol data file: the guard roster, routes and schedules, kept beside the config.

    data = load_patrol_data(data_path(config_path))          # empty when the file is absent
    cfg = with_patrol_data(load_config_alone(config_path), data, data_path(config_path))
    save_patrol_data(data_path(config_path), data)          # atomic: temp file, fsync, rename

Why a separate file: guards come and go, routes change with the seasons, and none of that
should mean editing the gateway config by hand (or re-running setup). The wizard and the
``compound-gw guards`` / ``patrol routes`` / ``patrol schedules`` commands write this file;
``load_config`` merges it into the config it returns, so the daemon, ``patrol today`` and
``config check`` all see one picture; the daemon reloads it on SIGHUP without a restart.

The file is validated with the same rules as the config loader (the same section classes:
``GuardConfig``, ``RouteSection``, ``ScheduleSection``, ``ShiftSection``), plus the rules across
files: a route's checkpoints must be in the config's checkpoint map, a schedule's route must
exist, and no id or wristband may be both in the config and in the file. Errors name the file
and the key: ``patrol-data.toml: routes[0].checkpoints[2]: 'x' is not a known checkpoint``.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomli_w

from gateway.checkpoints.config import GuardConfig
from gateway.config.schema import dump_section, parse_section, setting
from gateway.errors import ConfigError
from gateway.patrol.config import RouteSection, ScheduleSection, ShiftSection

DATA_FILE_NAME = "patrol-data.toml"


@dataclass(frozen=True, slots=True)
class PatrolData:
    """What the patrol data file holds (each list may be empty)."""

    roster: tuple[GuardConfig, ...] = setting((), doc="wristband id -> guard id and name")
    routes: tuple[RouteSection, ...] = setting((), doc="patrol routes")
    schedules: tuple[ScheduleSection, ...] = setting((), doc="when rounds are due")
    shifts: tuple[ShiftSection, ...] = setting((), doc="named guard groups")

    def check(self) -> Iterable[tuple[str, str]]:
        bands: dict[str, int] = {}
        guards: dict[str, int] = {}
        for i, g in enumerate(self.roster):
            if g.wristband in bands:
                yield (
                    f"roster[{i}].wristband",
                    f"{g.wristband} is already roster[{bands[g.wristband]}]",
                )
            bands.setdefault(g.wristband, i)
            if g.guard in guards:
                yield f"roster[{i}].guard", f"{g.guard!r} is already roster[{guards[g.guard]}]"
            guards.setdefault(g.guard, i)

    def guard(self, guard_id: str) -> GuardConfig | None:
        return next((g for g in self.roster if g.guard == guard_id), None)


def data_path(config_path: str | Path) -> Path:
    """The data file of a config: ``/etc/compound-gw/patrol-data.toml`` beside gateway.toml."""
    return Path(config_path).resolve().parent / DATA_FILE_NAME


def parse_patrol_data(raw: dict[str, Any], name: str = DATA_FILE_NAME) -> PatrolData:
    try:
        return parse_section(PatrolData, raw, "")
    except ConfigError as exc:
        raise ConfigError(f"{name}: {exc.key}" if exc.key else name, exc.detail) from exc


def load_patrol_data(path: Path) -> PatrolData:
    """The file's data (empty when there is no file); ConfigError names file and key."""
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        return PatrolData()
    except OSError as exc:
        raise ConfigError(path.name, f"cannot read {path}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(path.name, "is not UTF-8 text") from exc
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(path.name, f"is not valid TOML: {exc}") from exc
    return parse_patrol_data(raw, path.name)


def with_patrol_data(cfg: Any, data: PatrolData, path: Path | None = None) -> Any:
    """``cfg`` (a GatewayConfig) with the file's roster, routes, schedules and shifts added.

    Raises ConfigError (naming the file and key) when the two do not fit together.
    """
    name = path.name if path is not None else DATA_FILE_NAME
    known = {p.id for p in cfg.checkpoints.points}
    route_ids = {r.id for r in cfg.patrol.routes} | {r.id for r in data.routes}

    def fail(key: str, reason: str) -> ConfigError:
        return ConfigError(f"{name}: {key}", reason)

    for i, route in enumerate(data.routes):
        for j, cp in enumerate(route.checkpoints):
            if cp not in known:
                raise fail(f"routes[{i}].checkpoints[{j}]", f"{cp!r} is not a known checkpoint")
    for i, sched in enumerate(data.schedules):
        if sched.route not in route_ids:
            raise fail(f"schedules[{i}].route", f"{sched.route!r} is not a route id")
    for key, ours, theirs in (
        (
            "roster",
            [g.wristband for g in data.roster],
            {g.wristband for g in cfg.checkpoints.roster},
        ),
        ("routes", [r.id for r in data.routes], {r.id for r in cfg.patrol.routes}),
        ("schedules", [s.id for s in data.schedules], {s.id for s in cfg.patrol.schedules}),
        ("shifts", [s.id for s in data.shifts], {s.id for s in cfg.patrol.shifts}),
    ):
        for i, value in enumerate(ours):
            if value in theirs:
                raise fail(f"{key}[{i}]", f"{value!r} is also in the gateway config")
    checkpoints = dataclasses.replace(cfg.checkpoints, roster=cfg.checkpoints.roster + data.roster)
    patrol = dataclasses.replace(
        cfg.patrol,
        routes=cfg.patrol.routes + data.routes,
        schedules=cfg.patrol.schedules + data.schedules,
        shifts=cfg.patrol.shifts + data.shifts,
    )
    for section, prefix in ((checkpoints, "checkpoints"), (patrol, "patrol")):
        for key, reason in section.check():
            raise fail(f"{prefix}.{key}", reason)
    return dataclasses.replace(cfg, checkpoints=checkpoints, patrol=patrol)


def dump_patrol_data(data: PatrolData) -> str:
    return tomli_w.dumps(dump_section(data))


def save_patrol_data(path: Path, data: PatrolData, like: Path | None = None) -> None:
    """Write atomically: a temporary file, fsync, rename, fsync the folder.

    The file keeps its mode and group when it exists; a new one takes those of ``like`` (the
    config: 0640,
    group of the daemon's user after a root install), as the daemon must read it.
    """
    text = dump_patrol_data(data)
    parse_patrol_data(tomllib.loads(text), path.name)  # never write what we could not read back
    like = path if path.exists() else (like or path.with_name("gateway.toml"))
    mode, gid = 0o640, -1
    if like.exists():
        st = like.stat()
        mode, gid = st.st_mode & 0o777, st.st_gid
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, text.encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)
    os.chmod(tmp, mode)
    if gid != -1 and os.geteuid() == 0:
        os.chown(tmp, 0, gid)
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


__all__ = [
    "DATA_FILE_NAME",
    "PatrolData",
    "data_path",
    "dump_patrol_data",
    "load_patrol_data",
    "parse_patrol_data",
    "save_patrol_data",
    "with_patrol_data",
]
