"""What the gateway must remember across restarts to refuse replays: a small fsynced file.

    state = load_state(path)                      # CommandState(last_seq=0, floor=0.0) if new
    save_state(path, replace(state, last_seq=18))  # durable before the command runs

Why a file and not the journal: the journal is pruned by retention (synced events older than
``journal.retention_days``), so a "last accepted seq" derived from the journal could silently
fall back to an older value after a quiet month, which is exactly what a replay needs. The
file is tiny, read once at start, written (temp file, fsync, rename, fsync of the folder)
before every accepted command acts; the journal still gets a ``command.accepted`` evidence
event with the seq, for the record and the centre.

``floor`` is the trusted-time floor: the newest ``issued_at`` of an accepted command (time the
centre signed). Trusted now = max(wall clock, floor, the newest wall clock seen in this run),
so a clock reset to 1970 after a power cut cannot make an old command valid again, and a
wild jump of the local clock *ahead* is never persisted (only centre-signed time is).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from gateway.errors import GatewayError


@dataclass(frozen=True, slots=True)
class CommandState:
    last_seq: int = 0
    floor: float = 0.0
    last_command_id: str = ""


class StateError(GatewayError):
    """The command state file is unreadable: no command is accepted until it is fixed."""


def load_state(path: Path) -> CommandState:
    """The stored state; the default one when the file does not exist yet (first start)."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return CommandState()
    try:
        d = json.loads(raw)
        state = CommandState(int(d["last_seq"]), float(d["floor"]), str(d["last_command_id"]))
    except (ValueError, KeyError, TypeError) as exc:
        # Guessing a value here could let a replay through: refuse, loudly, until fixed.
        raise StateError("command state file is damaged", path=str(path), why=str(exc)) from exc
    if state.last_seq < 0:
        raise StateError("command state file holds a negative seq", path=str(path))
    return state


def save_state(path: Path, state: CommandState) -> None:
    """Atomically replace the file and make it durable (blocking: call in a thread)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(path.name + ".tmp")
    data = json.dumps(
        {"last_seq": state.last_seq, "floor": state.floor, "last_command_id": state.last_command_id}
    ).encode()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)  # the rename itself must survive a power cut
    finally:
        os.close(dfd)
