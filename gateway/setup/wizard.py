"""``compound-gw setup``: from a new box to a validated config, step by step, resumable.

Theory of operation
-------------------
The wizard is a list of named steps run in order: ``ports -> scan -> pair -> name -> guards ->
route -> schedule -> relays -> cameras -> enroll -> write``. Each step reads what earlier steps
found (from the state file, :mod:`gateway.setup.state`) and returns a JSON result that is saved
before the next step starts (pairing also saves after each reader). Run again after an
interruption, it skips every step already finished and says so. The answers come from the
installer at the terminal or from an answers file (``--answers``, :mod:`gateway.setup.answers`);
in answers mode the wizard also prints machine-readable lines (``@@setup step-done scan``,
``@@setup tap-wanted north-gate``) for scripts and tests. The config is written last, through
the config model's validation and ``write_config_atomically`` (the old file is kept as
``.bak``); the guards, the route and the schedule go to the patrol data file beside it
(:mod:`gateway.patrol.store`), which ``compound-gw guards`` and ``compound-gw patrol
routes|schedules`` edit later.

At the terminal (an :class:`~gateway.setup.interactive.Asker`), every answer is checked where
it is typed and kept in the state file, so a resumed wizard does not ask it again; questions
that need the scan (board names, channels as printed on the board) are asked after it. A tap
step shows a countdown and can be skipped (Enter, or let the countdown run out).

    wizard = Wizard(answers, config_path=Path("/etc/compound-gw/gateway.toml"),
                    state=StateFile.load(state_path), out=sys.stdout)
    rc = wizard.run()
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import itertools
import os
import secrets
import select
import sys
import threading
import time
import tomllib
from collections.abc import AsyncIterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal, TextIO

from drivers.camera import CameraError, open_camera
from gateway.config import read_secret_file, write_secret_file
from gateway.errors import ConfigError, GatewayError
from gateway.i18n import _
from gateway.patrol.taps import ReaderTaps, WristbandTap
from gateway.setup.answers import Answers
from gateway.setup.checks import (
    CameraCheck,
    check_camera,
    click_zones,
    machine_line,
    running_daemon_pid,
)
from gateway.setup.interactive import (
    AnswerError,
    Asker,
    InputEnded,
    parse_auth,
    parse_board_channel,
    parse_choice,
    parse_count,
    parse_every_hours,
    parse_guard_id,
    parse_id_list,
    parse_name,
    parse_optional_text,
    parse_required_text,
    parse_time_of_day,
    parse_times,
    parse_zones,
)
from gateway.setup.progress import ProgressBar
from gateway.setup.scan import list_serial_ports, scan_modbus, scan_osdp
from gateway.setup.state import StateFile

STEPS = (
    "ports",
    "scan",
    "pair",
    "name",
    "guards",
    "route",
    "schedule",
    "relays",
    "cameras",
    "enroll",
    "write",
)
# Steps that wait for taps: the reader buses stay open across them (TapHost).
TAP_STEPS = ("name", "guards", "route")
# Steps whose answers ``--redo`` forgets, besides the step's own (answers keyed "<step>.*").
REDO_ANSWERS = {"ports": ("ports",), "enroll": ("enroll",), "gateway": ("gateway",)}
# Walking a route takes minutes per leg; an enrolment tap is quick once asked.
ROUTE_LEG_TIMEOUT_S = 900.0
COUNTDOWN_EVERY_S = 15.0
# Suggested walking limits from the walk the installer did: a guard faster than half of it is
# implausible, slower than three times it (at least 5 minutes) makes the checkpoint overdue.
MIN_WALK_FACTOR = 0.5
MAX_WALK_FACTOR = 3.0
MAX_WALK_FLOOR_S = 300.0
SCBK_LENGTH = 16
ONLINE_TIMEOUT_S = 30.0


# The order after setup, the same in docs/setup.md and in selftest's own words.
def next_steps() -> str:
    return _(
        "setup complete. Next: 1. start the daemon (sudo systemctl start compound-gw); "
        "2. run `sudo -u compound-gw compound-gw selftest` and tap each reader when asked."
    )


class StepFailed(GatewayError):
    """A step could not finish; the wizard stops and the state keeps what was done."""


def _duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    if seconds < 60:
        return _("{s} s").format(s=seconds)
    return _("{m} min {s} s").format(m=seconds // 60, s=seconds % 60)


def _enter_pressed() -> bool:
    """At a terminal: whether a line (Enter) is waiting on stdin; it is read and dropped."""
    try:
        if not sys.stdin.isatty():
            return False
        ready, _w, _x = select.select([sys.stdin], [], [], 0)
    except (OSError, ValueError):
        return False
    if ready:
        sys.stdin.readline()
        return True
    return False


def preview_rounds(sched: Any, timezone: str, now: float) -> list[str]:
    """Tomorrow's rounds of a schedule, as "22:00 - 00:00" lines in local time."""
    import zoneinfo

    tz = zoneinfo.ZoneInfo(timezone)
    day = (dt.datetime.fromtimestamp(now, tz) + dt.timedelta(days=1)).date()
    midnight = dt.datetime(day.year, day.month, day.day, tzinfo=tz)
    window = dt.timedelta(minutes=sched.window_minutes_effective() or 60)
    lines = []
    for offset in sched.start_offsets_minutes():
        start = midnight + dt.timedelta(minutes=offset)
        end = start + window
        mark = _(" (next day)") if start.date() != day else ""
        lines.append(f"{start:%H:%M} - {end:%H:%M}{mark}")
    return lines


def reader_id(bus: str, address: int) -> str:
    return f"{bus}/{address}"


def _camera_config(result: Mapping[str, Any]) -> dict[str, Any]:
    """A camera step's result as a ``[[health.cameras]]`` table: the profile's own keys only
    (a result from before profiles, with no ``profile``, is an http camera)."""
    profile = result.get("profile", "http")
    keys = ["name", "rtsp_url", "auth", "username", "password_file"]
    if profile == "http":
        keys.insert(1, "snapshot_url")
    else:
        keys.insert(1, "profile")
    if profile in ("hikvision", "dahua"):
        keys[2:2] = ["address", "channel"]
    return {k: result[k] for k in keys}


def deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in extra.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = v
    return out


class TapHost:
    """The reader buses, kept open from one tapping step to the next (name, guards, route).

    Each new Secure Channel session costs a handshake, and a reader still answering the last
    session's poll can knock the next one offline for minutes. The buses live on an event loop
    in a thread of their own; the steps' code (and every question) stays on the main thread,
    so Ctrl-C at a question stops the wizard at once.

        host.open(); tap = host.next_tap(60.0); host.feedback(tap, ok=True); host.close()
    """

    def __init__(self, wizard: Wizard) -> None:
        self.wizard = wizard
        self.loop: asyncio.AbstractEventLoop | None = None
        self.thread: threading.Thread | None = None
        self.taps: ReaderTaps | None = None

    def run(self, coro: Any) -> Any:
        if self.loop is None:
            self.loop = asyncio.new_event_loop()
            self.thread = threading.Thread(
                target=self.loop.run_forever, name="setup-taps", daemon=True
            )
            self.thread.start()
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    @contextlib.asynccontextmanager
    async def session(self) -> AsyncIterator[ReaderTaps]:
        if self.taps is None:
            taps = ReaderTaps(self.wizard._bus_specs())
            await taps.__aenter__()
            self.taps = taps
        yield self.taps

    def open(self) -> None:
        async def go() -> None:
            async with self.session() as taps:
                await self.wizard._open_taps(taps)

        self.run(go())

    def next_tap(self, timeout: float) -> WristbandTap | None:
        async def go() -> WristbandTap | None:
            async with self.session() as taps:
                # No drain: a tap made while the last line was being printed counts.
                return await self.wizard.wait_tap(taps, timeout)

        result: WristbandTap | None = self.run(go())
        return result

    def feedback(self, tap: WristbandTap, ok: bool) -> None:
        async def go() -> None:
            async with self.session() as taps:
                await taps.feedback(tap, ok)

        self.run(go())

    def close(self) -> None:
        if self.loop is None:
            return
        if self.taps is not None:
            taps, self.taps = self.taps, None
            with contextlib.suppress(Exception):
                done = asyncio.run_coroutine_threadsafe(taps.__aexit__(None, None, None), self.loop)
                done.result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        if self.thread is not None:
            self.thread.join(10)
        self.loop.close()
        self.loop = None
        self.thread = None


class Wizard:
    def __init__(
        self,
        answers: Answers,
        *,
        config_path: Path,
        state: StateFile,
        out: TextIO | None = None,
        machine: bool = True,
        asker: Asker | None = None,
        owner: tuple[int, int] | None = None,
    ) -> None:
        self.a = answers
        self.config_path = config_path
        self.config_dir = config_path.resolve().parent
        self.state = state
        self.out = out or sys.stdout
        self.machine = machine
        # Questions at the terminal; None with an answers file (nothing is asked then).
        self.asker = asker
        # (uid, gid) of the daemon's user when run as root: it must read the keys we write.
        self.owner = owner
        self.taps = TapHost(self)

    # ------------------------------------------------------------------ output

    def give_to_daemon(self, path: Path) -> None:
        """As root, hand a secret file to the daemon's user (it stays 0600)."""
        if self.owner is not None:
            os.chown(path, *self.owner)

    def say(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def signal(self, *words: object) -> None:
        if self.machine:
            self.say(machine_line(*words))

    def confirm(self, question: str, default: bool = True) -> bool:
        if self.asker is None:
            return default
        return self.asker.confirm(question, default)

    @property
    def interactive(self) -> bool:
        return self.asker is not None

    # ------------------------------------------------------------------ the state machine

    def run(self) -> int:
        runtime = Path(self.a.gateway.runtime_dir)
        status = (runtime if runtime.is_absolute() else self.config_dir / runtime) / "status.json"
        pid = running_daemon_pid(status, time.time())
        if pid is not None and not all(self.state.done(s) for s in STEPS):
            self.say(
                _(
                    "the daemon is running (pid {pid}) and holds the serial ports: stop it "
                    "first (sudo systemctl stop compound-gw)"
                ).format(pid=pid)
            )
            return 1
        try:
            return self._run_steps()
        finally:
            self.taps.close()

    def _run_steps(self) -> int:
        for step in STEPS:
            if step not in TAP_STEPS:
                self.taps.close()  # the readers are not needed any more
            if self.state.done(step):
                self.say(_("step {step}: done earlier, skipped").format(step=step))
                self.signal("step-skipped", step)
                continue
            self.say(_("step {step}: ...").format(step=step))
            self.signal("step-start", step)
            try:
                result = getattr(self, f"step_{step}")()
            except (InputEnded, KeyboardInterrupt):
                self.say("")
                self.say(
                    _(
                        "stopped at step {step}; every answer so far is kept: run `compound-gw "
                        "setup` again to continue"
                    ).format(step=step)
                )
                self.signal("step-failed", step)
                return 1
            except (StepFailed, ConfigError, GatewayError, OSError) as exc:
                if isinstance(exc, OSError):
                    # Serial ports are opened exclusively: busy means the daemon holds them.
                    why = _("device error: {exc} (is the daemon running? stop it first)").format(
                        exc=exc
                    )
                else:
                    why = exc.reason if isinstance(exc, StepFailed) else str(exc)
                self.say(_("step {step}: FAILED: {why}").format(step=step, why=why))
                self.signal("step-failed", step)
                self.say(_("fix the cause and run `compound-gw setup` again: it resumes here"))
                return 1
            self.state.finish(step, result)
            self.say(_("step {step}: done").format(step=step))
            self.signal("step-done", step)
        for warning in self.patrol_warnings():
            self.say(warning)
        self.say(next_steps())
        return 0

    def patrol_warnings(self) -> list[str]:
        """Why the gateway could not do patrol work yet, in words (empty: it can)."""
        from gateway.config.model import load_config

        try:
            cfg = load_config(self.config_path)
        except (ConfigError, OSError):
            return []
        out = []
        if not cfg.checkpoints.roster:
            out.append(
                _(
                    "warning: no guard is enrolled: every tap will be refused as an unknown "
                    "wristband. Add guards with `compound-gw guards add`."
                )
            )
        if not cfg.patrol.routes:
            out.append(_("warning: no patrol route: add one with `compound-gw patrol routes add`."))
        if not cfg.patrol.schedules:
            out.append(
                _(
                    "warning: no patrol schedule: no round is planned. Add one with "
                    "`compound-gw patrol schedules add`."
                )
            )
        return out

    # ------------------------------------------------------------------ steps

    def step_ports(self) -> dict[str, Any]:
        found = list_serial_ports()
        for info in found:
            arrow = "" if info.path == info.device else f" -> {info.device}"
            self.say(_("  found {path}{arrow}").format(path=info.path, arrow=arrow))
        if not self.a.ports:
            raise StepFailed(_("no ports to scan: list them under [[ports]] in the answers"))
        for p in self.a.ports:
            if not Path(p.path).exists():
                raise StepFailed(
                    _("port {path} ({name}) does not exist: check the adapter").format(
                        path=p.path, name=p.name
                    )
                )
            stable = not p.path.startswith("/dev/tty")  # by-id, /dev/compound-gw/NAME, ...
            self.say(
                _("  using {path} as bus {name} at {baud} baud").format(
                    path=p.path, name=p.name, baud=p.baud
                )
                + ("" if stable else _(" (not a by-id name: it may move when re-plugged)"))
            )
        return {"found": [p.path for p in found], "ports": [p.name for p in self.a.ports]}

    def step_scan(self) -> dict[str, Any]:
        scan = self.a.scan
        osdp_range = range(scan.osdp_first, scan.osdp_last + 1)
        modbus_range = range(scan.modbus_first, scan.modbus_last + 1)

        def one(port: Any) -> dict[str, Any]:
            entry: dict[str, Any] = {
                "name": port.name,
                "path": port.path,
                "baud": port.baud,
                "kind": "none",
                "readers": [],
                "boards": [],
            }
            # Modbus first: a reader resynchronises on the next OSDP start-of-message after
            # foreign bytes, but a Modbus board may take an OSDP frame for the start of a
            # request (the bench's pymodbus boards never recover from one).
            if port.kind in ("auto", "modbus"):
                bar = ProgressBar(f"{port.name}: Modbus", len(modbus_range), self.out)
                boards = scan_modbus(port.path, port.baud, modbus_range, progress=bar.update)
                bar.close()
                if boards:
                    entry["kind"] = "modbus"
                    entry["boards"] = [
                        {
                            "address": b.address,
                            "profile": b.profile,
                            "channels": b.channels,
                            "firmware": b.firmware,
                        }
                        for b in boards
                    ]
                    return entry
            if port.kind in ("auto", "osdp"):
                bar = ProgressBar(f"{port.name}: OSDP", len(osdp_range), self.out)
                readers = scan_osdp(port.path, port.baud, osdp_range, progress=bar.update)
                bar.close()
                if readers:
                    entry["kind"] = "osdp"
                    entry["readers"] = [
                        {
                            "address": r.address,
                            "vendor": r.vendor,
                            "model": r.model,
                            "version": r.version,
                            "serial": r.serial,
                            "firmware": r.firmware,
                            "secure_channel": r.secure_channel,
                        }
                        for r in readers
                    ]
            return entry

        try:
            with ThreadPoolExecutor(max_workers=len(self.a.ports) or 1) as pool:
                buses = list(pool.map(one, self.a.ports))
        except OSError as exc:
            raise StepFailed(
                _("cannot open a port: {exc} (is the daemon running? stop it)").format(exc=exc)
            ) from exc
        for b in buses:
            for r in b["readers"]:
                sc = _("Secure Channel") if r["secure_channel"] else _("NO Secure Channel")
                self.say(
                    _(
                        "  {reader}: OSDP reader vendor {vendor} model {model} firmware "
                        "{firmware}, {sc}"
                    ).format(
                        reader=f"{b['name']}/{r['address']}",
                        vendor=r["vendor"],
                        model=r["model"],
                        firmware=r["firmware"],
                        sc=sc,
                    )
                )
            for bd in b["boards"]:
                self.say(
                    _("  {board}: Modbus board, profile {profile}, {n} channels").format(
                        board=f"{b['name']}/{bd['address']}",
                        profile=bd["profile"],
                        n=bd["channels"],
                    )
                )
            if b["kind"] == "none":
                self.say(_("  {name}: nothing answered").format(name=b["name"]))
        for b in buses:
            for r in b["readers"]:
                if not r["secure_channel"]:
                    raise StepFailed(
                        _("reader {name}/{address} has no Secure Channel").format(
                            name=b["name"], address=r["address"]
                        )
                    )
        return {"buses": buses}

    # -- pairing ---------------------------------------------------------------------------

    def _readers(self) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        buses = self.state.result("scan")["buses"]
        return [(b, r) for b in buses for r in b["readers"]]

    def key_file(self, bus: str, address: int) -> Path:
        return self.config_dir / "keys" / f"{bus}-{address}.scbk"

    def step_pair(self) -> dict[str, Any]:
        from drivers.osdp_bus import pair_reader, verify_reader_key

        known = {k.reader: self.a.path(k.key_file) for k in self.a.pairing.current_keys}
        done = self.state.partial("pair")
        for bus, r in self._readers():
            rid = reader_id(bus["name"], r["address"])
            if rid in done:
                self.say(_("  {rid}: paired earlier").format(rid=rid))
                continue
            final = self.key_file(bus["name"], r["address"])
            pending = final.with_name(final.name + ".pending")
            # Candidates for the key the reader holds now, most likely first: a key we sent in
            # an interrupted run, our own finished key, the key the answers name, install mode.
            candidates: list[tuple[str, bytes | None]] = []
            for label, path in (("pending", pending), ("ours", final), ("given", known.get(rid))):
                if path is not None and path.exists():
                    candidates.append((label, read_secret_file(path, rid, length=SCBK_LENGTH)))
            candidates.append(("install", None))
            current: bytes | None = None
            already = False
            for label, key in candidates:
                if key is None or verify_reader_key(
                    bus["path"], bus["baud"], r["address"], key, 3.0
                ):
                    if label == "pending":
                        os.replace(pending, final)
                    already = label in ("pending", "ours")
                    current = key
                    break
            if already:
                self.say(_("  {rid}: already holds our key").format(rid=rid))
            else:
                new_key = secrets.token_bytes(SCBK_LENGTH)
                write_secret_file(pending, new_key)  # on disk before the reader has it
                how = _("install key (SCBK-D)") if current is None else _("its current key")
                self.say(_("  {rid}: pairing with {how} ...").format(rid=rid, how=how))
                result = pair_reader(
                    bus["path"],
                    bus["baud"],
                    r["address"],
                    new_key,
                    current_scbk=current,
                    timeout=self.a.pairing.timeout_s,
                )
                if not result.ok:
                    # The .pending key stays: the reader may have taken it before the proof
                    # failed, and the next run tries it first (never lock a reader out).
                    raise StepFailed(f"{rid}: {result.message}")
                os.replace(pending, final)
                self.say(
                    _("  {rid}: paired, key in {path} (0600)").format(
                        rid=rid, path=final.relative_to(self.config_dir)
                    )
                )
            self.give_to_daemon(final)
            done[rid] = {"key_file": str(final.relative_to(self.config_dir))}
            self.state.save_partial("pair", done)
            self.signal("paired", rid)
        return {"readers": done}

    # -- naming by tapping -----------------------------------------------------------------

    def _bus_specs(self) -> list[Any]:
        from drivers.osdp_bus import BusSpec, ReaderSpec

        specs = []
        for b in self.state.result("scan")["buses"]:
            if not b["readers"]:
                continue
            readers = tuple(
                ReaderSpec(
                    r["address"],
                    read_secret_file(
                        self.key_file(b["name"], r["address"]),
                        reader_id(b["name"], r["address"]),
                        length=SCBK_LENGTH,
                    ),
                )
                for r in b["readers"]
            )
            specs.append(BusSpec(b["name"], b["path"], b["baud"], readers))
        return specs

    def step_name(self) -> dict[str, Any]:
        if not self.a.checkpoints and self.asker is not None:
            readers = len(self._readers())
            self.say(
                _(
                    "  {n} readers were found. Name each checkpoint: you will tap its reader next."
                ).format(n=readers)
            )
            ids = self.asker.value(
                "name.checkpoints",
                _("checkpoint ids, in the order you will tap them (comma-separated)"),
                parse_id_list,
            )
            from gateway.setup.answers import CheckpointAnswer

            self.a = dataclasses.replace(
                self.a, checkpoints=tuple(CheckpointAnswer(id=i) for i in ids)
            )
        if not self.a.checkpoints:
            raise StepFailed(_("no checkpoints to name: list them under [[checkpoints]]"))
        result: dict[str, Any] = self.taps.run(self._name())
        return result

    async def _open_taps(self, taps: ReaderTaps) -> None:
        offline = await taps.wait_online(ONLINE_TIMEOUT_S)
        if offline:
            names = ", ".join(reader_id(*k) for k in offline)
            raise StepFailed(_("readers not online in Secure Channel: {names}").format(names=names))
        self.say(_("  every reader is online in Secure Channel"))
        taps.drain()

    async def wait_tap(self, taps: ReaderTaps, timeout: float) -> WristbandTap | None:
        """The next tap, or None when the countdown ran out or (at a terminal) Enter was
        pressed. At the terminal the time left is shown every COUNTDOWN_EVERY_S."""
        deadline = time.monotonic() + timeout
        next_note = time.monotonic() + COUNTDOWN_EVERY_S
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            tap = await taps.next_tap(min(1.0, left))
            if tap is not None:
                return tap
            if self.interactive and _enter_pressed():
                return None
            if self.interactive and time.monotonic() >= next_note:
                next_note += COUNTDOWN_EVERY_S
                self.say(_("    ... {s} s left (Enter: skip)").format(s=max(0, round(left))))

    async def _name(self) -> dict[str, Any]:
        points: list[dict[str, Any]] = []
        skipped: list[str] = []
        assigned: dict[tuple[str, int], str] = {}
        async with self.taps.session() as taps:
            await self._open_taps(taps)
            for cp in self.a.checkpoints:
                self.say(
                    _("  tap a wristband on the reader at checkpoint {id!r} ({what}) ...").format(
                        id=cp.id, what=cp.name or cp.location or _("no description")
                    )
                )
                self.signal("tap-wanted", cp.id)
                while True:
                    tap = await self.wait_tap(taps, self.a.tap_timeout_s)
                    if tap is None:
                        break
                    reader = (tap.bus, tap.address)
                    if reader in assigned:
                        self.say(
                            _("  that was {reader}, already {id!r}: tap the other reader").format(
                                reader=reader_id(*reader), id=assigned[reader]
                            )
                        )
                        await taps.feedback(tap, ok=False)
                        continue
                    break
                if tap is None:
                    if not self.interactive:
                        raise StepFailed(
                            _("no tap for checkpoint {id!r} within {s:.0f} s").format(
                                id=cp.id, s=self.a.tap_timeout_s
                            )
                        )
                    self.say(_("  checkpoint {cp!r} skipped").format(cp=cp.id))
                    skipped.append(cp.id)
                    continue
                assigned[reader] = cp.id
                await taps.feedback(tap, ok=True)
                self.say(
                    _("  tapped: reader {reader} is checkpoint {id!r}").format(
                        reader=reader_id(*reader), id=cp.id
                    )
                )
                self.signal("tapped", cp.id, reader_id(*reader))
                points.append(
                    {
                        "id": cp.id,
                        "name": cp.name,
                        "location": cp.location,
                        "bus": reader[0],
                        "address": reader[1],
                    }
                )
        unnamed = [
            reader_id(b["name"], r["address"])
            for b, r in self._readers()
            if (b["name"], r["address"]) not in assigned
        ]
        if skipped:
            self.say(
                _(
                    "  skipped (not in the config): {ids}; name them later with "
                    "`compound-gw setup --redo name`"
                ).format(ids=", ".join(skipped))
            )
        if unnamed:
            self.say(
                _("  not named (left out of the config): {readers}").format(
                    readers=", ".join(unnamed)
                )
            )
        if not points:
            raise StepFailed(_("no reader was tapped: the gateway would have no checkpoint"))
        return {"points": points, "skipped": skipped}

    # -- guards, a route, a schedule ---------------------------------------------------------

    def _checkpoint_at(self) -> dict[tuple[str, int], str]:
        return {(p["bus"], p["address"]): p["id"] for p in self.state.result("name")["points"]}

    def step_guards(self) -> dict[str, Any]:
        if self.asker is None:
            self.say(_("  guards: from the answers file ([[config.checkpoints.roster]])"))
            return {"guards": []}
        return self._guards(self.asker)

    def _guards(self, asker: Asker) -> dict[str, Any]:
        guards: list[dict[str, str]] = list(self.state.partial("guards").get("guards", []))
        for g in guards:
            self.say(_("  enrolled earlier: {id} {name}").format(id=g["guard"], name=g["name"]))
        self.say(
            _(
                "  Enrol the guards: tap each guard's wristband on any reader, then type the "
                "guard's number and name."
            )
        )
        # The readers stay open from step to step (TapHost).
        self.taps.open()
        while True:
            if guards and not asker.confirm(_("  enrol another guard?")):
                break
            self.say(
                _(
                    "  tap the next guard's wristband on any reader ({s:.0f} s; Enter: "
                    "no more guards) ..."
                ).format(s=self.a.tap_timeout_s)
            )
            tap = self.taps.next_tap(self.a.tap_timeout_s)
            if tap is None:
                break
            known = next((g for g in guards if g["wristband"] == tap.wristband), None)
            if known is not None:
                self.taps.feedback(tap, ok=False)
                self.say(
                    _("  this wristband is already guard {id} ({name})").format(
                        id=known["guard"], name=known["name"]
                    )
                )
                continue
            self.taps.feedback(tap, ok=True)
            self.say(_("  wristband read on reader {r}").format(r=reader_id(tap.bus, tap.address)))

            def new_id(
                text: str, taken: frozenset[str] = frozenset(g["guard"] for g in guards)
            ) -> str:
                gid = parse_guard_id(text)
                if gid in taken:
                    raise AnswerError(
                        _("{id} is already enrolled: type another number").format(id=gid)
                    )
                return gid

            gid = asker.value("", _("  guard number (e.g. g-017)"), new_id, remember=False)
            name = asker.value("", _("  guard name"), parse_required_text, remember=False)
            guards.append({"wristband": tap.wristband, "guard": gid, "name": name})
            self.state.save_partial("guards", {"guards": guards})
            self.say(_("  enrolled: {id} {name}").format(id=gid, name=name))
        if not guards:
            self.say(
                _(
                    "  no guard enrolled: taps will be refused as unknown until you add guards "
                    "with `compound-gw guards add`"
                )
            )
        return {"guards": guards}

    def step_route(self) -> dict[str, Any]:
        if self.asker is None:
            self.say(_("  route: from the answers file ([[config.patrol.routes]])"))
            return {"route": None}
        return self._route(self.asker)

    def _route(self, asker: Asker) -> dict[str, Any]:
        at = self._checkpoint_at()
        if not at:
            return {"route": None}
        route_id = asker.value("route.id", _("route id"), lambda t: parse_name(t, "main"), "main")
        name = asker.value("route.name", _("route name (shown in reports)"), parse_optional_text)
        count = asker.value(
            "route.count",
            _("how many checkpoints does a round visit"),
            lambda t: parse_count(t, 1, len(at)),
            str(len(at)),
        )
        self.say(
            _(
                "  Walk the route now, as a guard would, and tap a wristband on each checkpoint's "
                "reader in order ({n} checkpoints; Enter: the route ends here)."
            ).format(n=count)
        )
        visited: list[tuple[str, float]] = []
        # The readers stay open from step to step (TapHost).
        self.taps.open()
        while len(visited) < count:
            tap = self.taps.next_tap(ROUTE_LEG_TIMEOUT_S)
            if tap is None:
                break
            cp = at.get((tap.bus, tap.address))
            if cp is None or any(v == cp for v, _t in visited):
                self.taps.feedback(tap, ok=False)
                why = _("not a checkpoint") if cp is None else _("already on the route")
                self.say(
                    _("  {r}: {why}: tap the next checkpoint").format(
                        r=reader_id(tap.bus, tap.address), why=why
                    )
                )
                continue
            self.taps.feedback(tap, ok=True)
            if visited:
                walked = tap.mono_time - visited[-1][1]
                self.say(
                    _("  {n}. {cp} (walked {t})").format(
                        n=len(visited) + 1, cp=cp, t=_duration(walked)
                    )
                )
            else:
                self.say(_("  1. {cp} (start)").format(cp=cp))
            visited.append((cp, tap.mono_time))
        if not visited:
            self.say(_("  no route recorded: add one later with `compound-gw patrol routes add`"))
            return {"route": None}
        legs: list[dict[str, Any]] = []
        for (a, ta), (b, tb) in itertools.pairwise(visited):
            walked = tb - ta
            legs.append(
                {
                    "from_checkpoint": a,
                    "to_checkpoint": b,
                    "min_walk_s": float(round(walked * MIN_WALK_FACTOR)),
                    "max_walk_s": float(max(MAX_WALK_FLOOR_S, round(walked * MAX_WALK_FACTOR))),
                }
            )
        for leg in legs:
            self.say(
                _(
                    "    {a} -> {b}: faster than {lo} is implausible, slower than {hi} is overdue"
                ).format(
                    a=leg["from_checkpoint"],
                    b=leg["to_checkpoint"],
                    lo=_duration(leg["min_walk_s"]),
                    hi=_duration(leg["max_walk_s"]),
                )
            )
        route: dict[str, Any] = {"id": route_id, "checkpoints": [v for v, _t in visited]}
        if name:
            route["name"] = name
        if legs:
            accepted = asker.confirm(_("  use these walking times?"))
            if accepted:
                route["legs"] = legs
        return {"route": route}

    def step_schedule(self) -> dict[str, Any]:
        route = self.state.result("route").get("route")
        if self.asker is None or not route:
            if self.asker is not None:
                self.say(_("  no route: no schedule"))
            return {"schedule": None}
        asker = self.asker
        from gateway.config.schema import parse_section
        from gateway.patrol.config import ScheduleSection

        while True:
            self.say(_("  When should rounds be walked?"))
            self.say(_("    1. every 2 hours at night, 22:00 to 06:00"))
            self.say(_("    2. at fixed times (e.g. 08:00, 14:00, 20:00)"))
            self.say(_("    3. custom: every N hours between two times"))
            choice = asker.value(
                "schedule.pattern", _("choose 1, 2 or 3"), lambda t: parse_choice(t, 3), "1"
            )
            data: dict[str, Any] = {"id": f"{route['id']}-rounds", "route": route["id"]}
            if choice == 1:
                data.update(every_hours=2.0, start="22:00", end="06:00")
            elif choice == 2:
                times = asker.value(
                    "schedule.times", _("round start times (comma-separated, 24-hour)"), parse_times
                )
                window = asker.value(
                    "schedule.window",
                    _("minutes a round may take from its start"),
                    lambda t: parse_count(t, 16, 1440),
                    "60",
                )
                data.update(times=times, window_minutes=float(window))
            else:
                hours = asker.value(
                    "schedule.every", _("a round every how many hours"), parse_every_hours, "2"
                )
                start = asker.value(
                    "schedule.start", _("first round at"), parse_time_of_day, "22:00"
                )
                end = asker.value("schedule.end", _("no round after"), parse_time_of_day, "06:00")
                data.update(every_hours=hours, start=start, end=end)
            try:
                sched = parse_section(ScheduleSection, data, "schedule")
            except ConfigError as exc:
                self.say(_("  ! that schedule does not work: {why}").format(why=exc.detail))
                asker.forget("schedule")
                continue
            self.say(_("  rounds tomorrow:"))
            for line in preview_rounds(sched, self.a.gateway.timezone, time.time()):
                self.say(f"    {line}")
            if asker.confirm(_("  use this schedule?")):
                return {"schedule": data}
            asker.forget("schedule")

    # -- relays ----------------------------------------------------------------------------

    def _board_names(self) -> dict[str, str]:
        names = {b.at: b.name for b in self.a.relays.boards}
        out = {}
        for b in self.state.result("scan")["buses"]:
            for bd in b["boards"]:
                at = reader_id(b["name"], bd["address"])
                out[at] = names.get(at, f"{b['name']}-{bd['address']}")
        return out

    def broadcast_table(self) -> dict[str, Any] | None:
        names = self._board_names()
        ports = []
        for b in self.state.result("scan")["buses"]:
            if not b["boards"]:
                continue
            ports.append(
                {
                    "port": b["path"],
                    "baud": b["baud"],
                    "boards": [
                        {
                            "name": names[reader_id(b["name"], bd["address"])],
                            "address": bd["address"],
                            "profile": bd["profile"] if bd["profile"] != "unknown" else "coils",
                            "channels": bd["channels"],
                        }
                        for bd in b["boards"]
                    ],
                }
            )
        if not ports:
            return None
        table: dict[str, Any] = {
            "enabled": True,
            "warmup_s": self.a.relays.warmup_s,
            "ports": ports,
            "zones": [
                {"number": z.number, "board": z.board, "channel": z.channel, "name": z.name}
                for z in self.a.relays.zones
            ],
        }
        if self.a.relays.amplifier:
            board, _, channel = self.a.relays.amplifier.partition("/")
            table["amplifier"] = {"board": board, "channel": int(channel or 0)}
        return table

    def ask_relays(self) -> None:
        """At the terminal: zones and the amplifier, named as the scan found the boards and
        numbered as printed on them (CH1 first); kept in the state for resume."""
        if self.asker is None or self.a.relays.zones:
            return
        from gateway.setup.answers import RelayAnswers, ZoneAnswer

        boards: dict[str, int] = {}
        names = self._board_names()
        for b in self.state.result("scan")["buses"]:
            for bd in b["boards"]:
                boards[names[reader_id(b["name"], bd["address"])]] = int(bd["channels"])
        if not boards:
            return
        if "relays.zones" not in self.asker.saved:
            self.say(_("  relay boards found:"))
            for name, channels in boards.items():
                self.say(_("    {name}: channels CH1 to CH{n}").format(name=name, n=channels))
        zones = self.asker.value(
            "relays.zones",
            _(
                "loudspeaker zones as number=board/channel, comma-separated, e.g. {e} (empty: none)"
            ).format(e=f"1={next(iter(boards))}/CH1"),
            lambda t: parse_zones(t, boards),
        )
        amp = self.asker.value(
            "relays.amplifier",
            _("amplifier power relay as board/channel (empty: none)"),
            lambda t: parse_board_channel(t, boards),
        )
        self.a = dataclasses.replace(
            self.a,
            relays=dataclasses.replace(
                self.a.relays,
                zones=tuple(ZoneAnswer(number=z, board=b, channel=c) for z, b, c in zones),
                amplifier=f"{amp[0]}/{amp[1]}" if amp else "",
            ),
        )
        assert isinstance(self.a.relays, RelayAnswers)

    def step_relays(self) -> dict[str, Any]:
        from gateway.broadcast.config import BroadcastSection
        from gateway.config.schema import parse_section

        self.ask_relays()
        table = self.broadcast_table()
        if table is None or not table["zones"]:
            self.say(_("  no relay boards or zones: broadcast left out"))
            return {"zones": []}
        section = parse_section(BroadcastSection, table, "broadcast")
        zones = [z.number for z in section.zones]
        bar = ProgressBar("click test", len(zones), self.out)
        heard: dict[int, bool] = {}

        async def on_zone(zone: int) -> None:
            bar.update(zones.index(zone) + 1)
            self.say(_("  zone {zone} is ON now").format(zone=zone))
            self.signal("zone-on", zone)
            if self.asker is not None:
                heard[zone] = await asyncio.to_thread(
                    self.confirm, _("  did zone {zone} click/sound?").format(zone=zone)
                )

        async def run() -> list[Any]:
            return await click_zones(section, zones, self.a.relays.click_seconds, on_zone)

        clicks = asyncio.run(run())
        bar.close()
        results = []
        for c in clicks:
            verdict = (
                _("verified on and off") if c.ok else _("FAILED ({detail})").format(detail=c.detail)
            )
            self.say(_("  zone {zone}: {verdict}").format(zone=c.zone, verdict=verdict))
            results.append(
                {
                    "zone": c.zone,
                    "on": c.on_verified,
                    "off": c.off_verified,
                    "heard": heard.get(c.zone),
                }
            )
        bad = [c.zone for c in clicks if not c.ok] + [z for z, h in heard.items() if not h]
        if bad:
            raise StepFailed(
                _("zones failed the click test: {zones}").format(zones=sorted(set(bad)))
            )
        return {"zones": results}

    # -- cameras ---------------------------------------------------------------------------

    def camera_password(self, cam: Any) -> str:
        if cam.password_file:
            return self.a.path(cam.password_file).read_text().strip()
        if cam.password_env:
            value = os.environ.get(cam.password_env)
            if value is None:
                raise StepFailed(
                    _("camera {name}: ${password_env} is not set").format(
                        name=cam.name, password_env=cam.password_env
                    )
                )
            return value
        return ""

    def ask_cameras(self) -> None:
        """At the terminal: the cameras (no password here: it is asked and checked live)."""
        if self.asker is None or self.a.cameras:
            return
        from gateway.setup.answers import CameraAnswer
        from gateway.setup.interactive import parse_camera_source, parse_rtsp_url

        def parse_auth_kind(text: str) -> Literal["digest", "basic", "none"]:
            kind = parse_auth(text)
            return "basic" if kind == "basic" else "none" if kind == "none" else "digest"

        cams: list[Any] = []
        asker = self.asker
        for n in range(1, 65):

            def cam_name(text: str, taken: frozenset[str] = frozenset(c.name for c in cams)) -> str:
                if not text.strip():
                    return ""
                name = parse_name(text, "gate-cam")
                if name in taken:
                    raise AnswerError(_("{name} is already a camera").format(name=name))
                return name

            name = asker.value(
                f"cameras.{n}.name", _("camera name (empty: no more cameras)"), cam_name
            )
            if not name:
                break
            profile, where, channel = asker.value(
                f"cameras.{n}.snapshot_url",
                _("  snapshot address (a URL; or hikvision/dahua ADDRESS [CHANNEL]; or rtsp)"),
                parse_camera_source,
            )
            rtsp_url = asker.value(
                f"cameras.{n}.rtsp_url", _("  RTSP address (empty: none)"), parse_rtsp_url
            )
            while profile == "rtsp" and not rtsp_url:  # its snapshots come from this stream
                rtsp_url = asker.value(
                    f"cameras.{n}.rtsp_url",
                    _("  RTSP address (required: snapshots are taken from it)"),
                    parse_rtsp_url,
                    remember=False,
                )
            cams.append(
                CameraAnswer(
                    name=name,
                    profile=profile,  # type: ignore[arg-type]
                    snapshot_url=where if profile == "http" else "",
                    address=where if profile in ("hikvision", "dahua") else "",
                    channel=channel,
                    rtsp_url=rtsp_url,
                    auth=asker.value(
                        f"cameras.{n}.auth", _("  login kind"), parse_auth_kind, "digest"
                    ),
                    username=asker.value(
                        f"cameras.{n}.username", _("  user name"), parse_optional_text, "admin"
                    ),
                )
            )
        self.a = dataclasses.replace(self.a, cameras=tuple(cams))

    def _check_camera(self, cam: Any, password: str) -> Any:
        # The camera its profile describes, exactly as the daemon will open it.
        try:
            camera = open_camera(cam.as_camera_config(), password)
        except CameraError as exc:  # e.g. a control character in the password
            return CameraCheck(cam.name, False, 0, 0.0, None, f"config: {exc.reason}")
        return asyncio.run(
            check_camera(
                cam.name, cam.snapshot_url, cam.rtsp_url, cam.auth, cam.username, password,
                camera=camera,
            )
        )  # fmt: skip

    def step_cameras(self) -> dict[str, Any]:
        self.ask_cameras()
        results = []
        for cam in self.a.cameras:
            rel = Path("keys") / f"camera-{cam.name}.password"
            interactive = self.asker is not None and not (cam.password_file or cam.password_env)
            if interactive:
                assert self.asker is not None
                saved = self.config_dir / rel
                password = saved.read_text().strip() if saved.exists() else ""
                check = self._check_camera(cam, password) if password else None
                while check is None or not check.ok:
                    if check is not None:
                        self.say(
                            _("  camera {name} refused it or did not answer ({why})").format(
                                name=cam.name, why=check.detail
                            )
                        )
                        if not self.confirm(_("  type the password again?")):
                            raise StepFailed(
                                _("camera {name}: live snapshot failed ({detail})").format(
                                    name=cam.name, detail=check.detail
                                )
                            )
                    password = self.asker.secret(
                        _("  password for camera {name} (user {user}, not shown): ").format(
                            name=cam.name, user=cam.username
                        )
                    )
                    check = self._check_camera(cam, password)
            else:
                password = self.camera_password(cam)
                check = self._check_camera(cam, password)
                if not check.ok:
                    raise StepFailed(
                        _("camera {name}: live snapshot failed ({detail})").format(
                            name=cam.name, detail=check.detail
                        )
                    )
            write_secret_file(self.config_dir / rel, password.encode(), hex_text=False)
            self.give_to_daemon(self.config_dir / rel)
            self.say(
                _("  {name}: live snapshot {n} bytes in {ms:.0f} ms").format(
                    name=cam.name, n=check.snapshot_bytes, ms=check.elapsed_ms
                )
                + (_(", RTSP answers") if check.rtsp_ok else "")
            )
            results.append(
                {
                    "name": cam.name,
                    "profile": cam.profile,
                    "snapshot_url": cam.snapshot_url,
                    "address": cam.address,
                    "channel": cam.channel,
                    "rtsp_url": cam.rtsp_url,
                    "auth": cam.auth,
                    "username": cam.username,
                    "password_file": str(rel),
                    "snapshot_bytes": check.snapshot_bytes,
                }
            )
        return {"cameras": results}

    # -- enrollment ------------------------------------------------------------------------

    def data_dir(self) -> Path:
        p = Path(self.a.gateway.data_dir)
        return p if p.is_absolute() else self.config_dir / p

    def step_enroll(self) -> dict[str, Any]:
        from gateway.sync.config import SyncPaths, SyncSection
        from gateway.sync.provision import provision

        e = self.a.enroll
        if e.skip or not e.centre_url:
            self.say(_("  enrollment skipped: run `compound-gw provision` later"))
            return {"enrolled": False}
        paths = SyncPaths.from_section(SyncSection(), self.data_dir())
        if paths.provisioned():
            self.say(_("  already enrolled (sync files present)"))
            return {"enrolled": True, "centre_url": e.centre_url}
        if e.token_file:
            token = self.a.path(e.token_file).read_text().strip()
        elif e.token_env:
            token = os.environ.get(e.token_env, "")
        elif self.asker is not None:
            token = ""
        else:
            token = ""
        if not token and self.asker is None:
            raise StepFailed(_("no enrollment token (token_file or token_env)"))

        def enroll(token: str) -> Any:
            return asyncio.run(
                provision(
                    e.centre_url,
                    token,
                    data_dir=self.data_dir(),
                    gateway_id=self.a.gateway.id,
                    compound=self.a.gateway.compound,
                    ca_fingerprint=e.ca_fingerprint or None,
                )
            )

        from gateway.errors import SyncError

        while True:
            if not token:
                assert self.asker is not None
                token = self.asker.secret(_("  one-time enrollment token (not shown): "))
            try:
                result = enroll(token)
                break
            except SyncError as exc:
                if self.asker is None:
                    raise
                self.say(_("  enrollment failed: {why}").format(why=exc.reason))
                if not self.confirm(_("  type the token again?")):
                    raise StepFailed(
                        _("enrollment failed: {reason}").format(reason=exc.reason)
                    ) from exc
                token = ""
        sync_dir = SyncPaths.from_section(SyncSection(), self.data_dir()).key.parent
        for f in [sync_dir, *sync_dir.iterdir()]:
            self.give_to_daemon(f)
        tofu = (
            _(" (CA trusted on first use: check its fingerprint!)")
            if result.trusted_on_first_use
            else ""
        )
        self.say(
            _("  enrolled {id} for {compound!r} with {url}; CA sha256:{fp}").format(
                id=result.gateway_id,
                compound=result.compound,
                url=result.centre_url,
                fp=result.ca_fingerprint,
            )
            + tofu
        )
        return {
            "enrolled": True,
            "centre_url": result.centre_url,
            "key_id": result.key_id,
            "ca_fingerprint": result.ca_fingerprint,
        }

    # -- the config ------------------------------------------------------------------------

    def patrol_data(self, cfg: Any) -> tuple[Any, Path]:
        """The patrol data file's content after this run: what is there already, with this
        run's guards, route and schedule added (same wristband, guard or id: replaced)."""
        from gateway.config.schema import parse_section
        from gateway.patrol.store import PatrolData, data_path, load_patrol_data

        path = data_path(self.config_path)
        have = load_patrol_data(path)
        guards = self.state.result("guards").get("guards", []) if self.state.done("guards") else []
        route = self.state.result("route").get("route") if self.state.done("route") else None
        sched = (
            self.state.result("schedule").get("schedule") if self.state.done("schedule") else None
        )
        new = parse_section(
            PatrolData,
            {
                "roster": guards,
                "routes": [route] if route else [],
                "schedules": [sched] if sched else [],
            },
            "",
        )
        bands = {g.wristband for g in new.roster}
        ids = {g.guard for g in new.roster}
        data = PatrolData(
            roster=tuple(g for g in have.roster if g.wristband not in bands and g.guard not in ids)
            + new.roster,
            routes=tuple(r for r in have.routes if r.id not in {x.id for x in new.routes})
            + new.routes,
            schedules=tuple(x for x in have.schedules if x.id not in {y.id for y in new.schedules})
            + new.schedules,
            shifts=have.shifts,
        )
        return data, path

    def build_config_data(self) -> dict[str, Any]:
        self.ask_relays()
        g = self.a.gateway
        data: dict[str, Any] = {
            "gateway": {
                "id": g.id,
                "compound": g.compound,
                "township": g.township,
                "timezone": g.timezone,
                "data_dir": g.data_dir,
                "runtime_dir": g.runtime_dir,
            },
        }
        scan = self.state.result("scan")["buses"]
        paired = self.state.result("pair")["readers"]
        points = self.state.result("name")["points"]
        used = {p["bus"] for p in points}
        data["checkpoints"] = {
            "buses": [
                {"name": b["name"], "port": b["path"], "baud": b["baud"]}
                for b in scan
                if b["name"] in used
            ],
            "points": [
                {
                    "id": p["id"],
                    "bus": p["bus"],
                    "address": p["address"],
                    "name": p["name"],
                    "location": p["location"],
                    "key_file": paired[reader_id(p["bus"], p["address"])]["key_file"],
                }
                for p in points
            ],
        }
        table = self.broadcast_table()
        if table is not None and table["zones"]:
            data["broadcast"] = table
        cams = self.state.result("cameras")["cameras"]
        if cams:
            data["health"] = {"cameras": [_camera_config(c) for c in cams]}
        enroll = self.state.result("enroll")
        data["sync"] = {"enabled": bool(enroll.get("enrolled"))}
        if enroll.get("enrolled"):
            data["sync"]["centre_url"] = enroll["centre_url"]
        return deep_merge(data, self.a.config or {})

    def step_write(self) -> dict[str, Any]:
        from gateway.config.model import parse_config, write_config_atomically
        from gateway.patrol.store import save_patrol_data, with_patrol_data

        data = self.build_config_data()
        cfg = parse_config(data, self.config_dir)
        for key, reason in cfg.check():
            raise StepFailed(
                _("the config would be invalid: {key}: {reason}").format(key=key, reason=reason)
            )
        patrol, patrol_path = self.patrol_data(cfg)
        with_patrol_data(cfg, patrol, patrol_path)  # ConfigError names the key: nothing written
        self.config_path.parent.mkdir(parents=True, exist_ok=True)
        had_old = self.config_path.exists()
        write_config_atomically(cfg, self.config_path)
        if self.owner is not None:
            # As install.sh leaves it: root's file, readable by the daemon's group only.
            os.chown(self.config_path, 0, self.owner[1])
            os.chmod(self.config_path, 0o640)
        tomllib.loads(self.config_path.read_text())
        save_patrol_data(patrol_path, patrol, like=self.config_path)
        self.say(
            _("  wrote {path}: {g} guards, {r} routes, {s} schedules").format(
                path=patrol_path,
                g=len(patrol.roster),
                r=len(patrol.routes),
                s=len(patrol.schedules),
            )
        )
        backup = str(self.config_path.with_name(self.config_path.name + ".bak")) if had_old else ""
        self.say(
            _("  wrote {path}").format(path=self.config_path)
            + (_(" (previous kept as {backup})").format(backup=backup) if backup else "")
        )
        return {"config": str(self.config_path), "backup": backup}


def default_state_path(config_path: Path) -> Path:
    return config_path.with_name(config_path.name + ".setup-state.json")


__all__ = ["STEPS", "StepFailed", "Wizard", "deep_merge", "default_state_path"]
