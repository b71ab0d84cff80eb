"""Walking-time tables per gateway, from TOML files in the centre's data folder.

    tables = WalkTables(data_dir / "walks")
    tables("gw-rose-01")     # WalkingTimes from walks/gw-rose-01.toml, or None (no file)
    tables.problems()        # ["walks/gw-x.toml: routes[0].min_walk_s: ..."]: checked at start

One file per compound, named by its gateway id. It holds the compound's routes in the shape of
the gateway's ``[[patrol.routes]]`` (copy the gateway's patrol section: ``[[patrol.routes]]``
or plain ``[[routes]]`` both work), optional checkpoint positions in metres on a site plan and
an optional ``top_speed_m_s`` (see :mod:`centre.antifraud.walking`)::

    top_speed_m_s = 3.0
    [positions]
    gate = [0, 0]
    hub = [120, 40]
    [[routes]]
    id = "night"
    checkpoints = ["gate", "hub"]
    min_walk_s = 60

A file is read again when it changes, so a table can be added or fixed without a restart.
``compound-centre serve`` refuses to start while a file is malformed (the message names the file
and the key); a file broken while the centre runs is logged once and its gateway's taps are not
judged for impossible travel until it is fixed (buddy taps still are).
"""

from __future__ import annotations

import logging
import re
import tomllib
from pathlib import Path
from typing import Any

from centre.antifraud.walking import WalkingTableError, WalkingTimes, walking_times_from_routes

log = logging.getLogger(__name__)

MAX_TABLE_BYTES = 1 << 20
_GATEWAY_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def load_walk_table(path: Path) -> WalkingTimes:
    """One table file, or :class:`WalkingTableError` whose key starts with the file's name."""
    name = path.name
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise WalkingTableError(name, f"cannot be read ({exc.strerror or exc})") from None
    if len(raw) > MAX_TABLE_BYTES:
        raise WalkingTableError(name, f"is larger than {MAX_TABLE_BYTES} bytes")
    try:
        doc: dict[str, Any] = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise WalkingTableError(name, f"is not valid TOML: {exc}") from None
    patrol = doc.get("patrol")
    routes = patrol.get("routes") if isinstance(patrol, dict) else None
    if routes is None:
        routes = doc.get("routes", [])
    try:
        return walking_times_from_routes(
            routes,
            positions=doc.get("positions"),
            top_speed_m_s=doc.get("top_speed_m_s", 3.0),
        )
    except WalkingTableError as exc:
        raise WalkingTableError(f"{name}: {exc.key}", exc.reason.split(": ", 1)[-1]) from None


class WalkTables:
    """``walks(gateway_id)`` for :class:`centre.antifraud.monitor.AntifraudMonitor`."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        # gateway id -> (file signature, table or None)
        self._cache: dict[str, tuple[tuple[int, int], WalkingTimes | None]] = {}

    def __call__(self, gateway_id: str) -> WalkingTimes | None:
        if not _GATEWAY_ID.match(gateway_id):
            return None
        path = self.folder / f"{gateway_id}.toml"
        try:
            st = path.stat()
        except OSError:
            self._cache.pop(gateway_id, None)
            return None
        sig = (st.st_mtime_ns, st.st_size)
        cached = self._cache.get(gateway_id)
        if cached is not None and cached[0] == sig:
            return cached[1]
        table: WalkingTimes | None
        try:
            table = load_walk_table(path)
        except WalkingTableError as exc:
            log.warning("walking table %s/%s ignored: %s", self.folder.name, path.name, exc)
            table = None
        self._cache[gateway_id] = (sig, table)
        return table

    def problems(self) -> list[str]:
        """Every malformed table file, as ``walks/<file>: <key>: <reason>``."""
        out: list[str] = []
        if not self.folder.is_dir():
            return out
        for path in sorted(self.folder.glob("*.toml")):
            if not _GATEWAY_ID.match(path.stem):
                out.append(f"{self.folder.name}/{path.name}: the name is not a gateway id")
                continue
            try:
                load_walk_table(path)
            except WalkingTableError as exc:
                out.append(f"{self.folder.name}/{exc}")
        return out


__all__ = ["WalkTables", "load_walk_table"]
