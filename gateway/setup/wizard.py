"""``compound-gw setup``: from a new box to a validated config, step by step, resumable.

Theory of operation
-------------------
The wizard is a list of named steps run in order: ``ports -> scan -> pair -> name -> relays ->
cameras -> enroll -> write``. Each step reads what earlier steps found (from the state file,
:mod:`gateway.setup.state`) and returns a JSON result that is saved before the next step starts
(pairing also saves after each reader). Run again after an interruption, it skips every step
already finished and says so. The answers come from the installer at the terminal or from an
answers file (``--answers``, :mod:`gateway.setup.answers`); in answers mode the wizard also
prints machine-readable lines (``@@setup step-done scan``, ``@@setup tap-wanted north-gate``)
for scripts and tests. The config is written last, through the config model's validation and
``write_config_atomically`` (the old file is kept as ``.bak``).

    wizard = Wizard(answers, config_path=Path("/etc/compound-gw/gateway.toml"),
                    state=StateFile.load(state_path), out=sys.stdout)
    rc = wizard.run()
"""

from __future__ import annotations

import asyncio
import os
import secrets
import sys
import time
import tomllib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TextIO

from gateway.config import read_secret_file, write_secret_file
from gateway.errors import ConfigError, GatewayError
from gateway.setup.answers import Answers
from gateway.setup.checks import (
    TapSession,
    check_camera,
    click_zones,
    machine_line,
    running_daemon_pid,
)
from gateway.setup.progress import ProgressBar
from gateway.setup.scan import list_serial_ports, scan_modbus, scan_osdp
from gateway.setup.state import StateFile

STEPS = ("ports", "scan", "pair", "name", "relays", "cameras", "enroll", "write")
SCBK_LENGTH = 16
ONLINE_TIMEOUT_S = 30.0


class StepFailed(GatewayError):
    """A step could not finish; the wizard stops and the state keeps what was done."""


def reader_id(bus: str, address: int) -> str:
    return f"{bus}/{address}"


def deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in extra.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = v
    return out


class Wizard:
    def __init__(
        self,
        answers: Answers,
        *,
        config_path: Path,
        state: StateFile,
        out: TextIO | None = None,
        machine: bool = True,
        ask: Callable[[str], str] | None = None,
        owner: tuple[int, int] | None = None,
    ) -> None:
        self.a = answers
        self.config_path = config_path
        self.config_dir = config_path.resolve().parent
        self.state = state
        self.out = out or sys.stdout
        self.machine = machine
        self.ask = ask
        # (uid, gid) of the daemon's user when run as root: it must read the keys we write.
        self.owner = owner

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

    def confirm(self, question: str) -> bool:
        if self.ask is None:
            return True
        return self.ask(question + " [Y/n] ").strip().lower() in ("", "y", "yes")

    # ------------------------------------------------------------------ the state machine

    def run(self) -> int:
        runtime = Path(self.a.gateway.runtime_dir)
        status = (runtime if runtime.is_absolute() else self.config_dir / runtime) / "status.json"
        pid = running_daemon_pid(status, time.time())
        if pid is not None and not all(self.state.done(s) for s in STEPS):
            self.say(
                f"the daemon is running (pid {pid}) and holds the serial ports: stop it "
                "first (sudo systemctl stop compound-gw)"
            )
            return 1
        for step in STEPS:
            if self.state.done(step):
                self.say(f"step {step}: done earlier, skipped")
                self.signal("step-skipped", step)
                continue
            self.say(f"step {step}: ...")
            self.signal("step-start", step)
            try:
                result = getattr(self, f"step_{step}")()
            except (StepFailed, ConfigError, GatewayError, OSError) as exc:
                if isinstance(exc, OSError):
                    # Serial ports are opened exclusively: busy means the daemon holds them.
                    why = f"device error: {exc} (is the daemon running? stop it first)"
                else:
                    why = exc.reason if isinstance(exc, StepFailed) else str(exc)
                self.say(f"step {step}: FAILED: {why}")
                self.signal("step-failed", step)
                self.say("fix the cause and run `compound-gw setup` again: it resumes here")
                return 1
            self.state.finish(step, result)
            self.say(f"step {step}: done")
            self.signal("step-done", step)
        self.say(
            "setup complete: start the daemon (systemctl start compound-gw), then run "
            "`compound-gw selftest`"
        )
        return 0

    # ------------------------------------------------------------------ steps

    def step_ports(self) -> dict[str, Any]:
        found = list_serial_ports()
        for info in found:
            arrow = "" if info.path == info.device else f" -> {info.device}"
            self.say(f"  found {info.path}{arrow}")
        if not self.a.ports:
            raise StepFailed("no ports to scan: list them under [[ports]] in the answers")
        for p in self.a.ports:
            if not Path(p.path).exists():
                raise StepFailed(f"port {p.path} ({p.name}) does not exist: check the adapter")
            stable = not p.path.startswith("/dev/tty")  # by-id, /dev/compound-gw/NAME, ...
            self.say(
                f"  using {p.path} as bus {p.name} at {p.baud} baud"
                + ("" if stable else " (not a by-id name: it may move when re-plugged)")
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
            raise StepFailed(f"cannot open a port: {exc} (is the daemon running? stop it)") from exc
        for b in buses:
            for r in b["readers"]:
                sc = "Secure Channel" if r["secure_channel"] else "NO Secure Channel"
                self.say(
                    f"  {b['name']}/{r['address']}: OSDP reader vendor {r['vendor']} model "
                    f"{r['model']} firmware {r['firmware']}, {sc}"
                )
            for bd in b["boards"]:
                self.say(
                    f"  {b['name']}/{bd['address']}: Modbus board, profile {bd['profile']}, "
                    f"{bd['channels']} channels"
                )
            if b["kind"] == "none":
                self.say(f"  {b['name']}: nothing answered")
        for b in buses:
            for r in b["readers"]:
                if not r["secure_channel"]:
                    raise StepFailed(f"reader {b['name']}/{r['address']} has no Secure Channel")
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
                self.say(f"  {rid}: paired earlier")
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
                self.say(f"  {rid}: already holds our key")
            else:
                new_key = secrets.token_bytes(SCBK_LENGTH)
                write_secret_file(pending, new_key)  # on disk before the reader has it
                how = "install key (SCBK-D)" if current is None else "its current key"
                self.say(f"  {rid}: pairing with {how} ...")
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
                self.say(f"  {rid}: paired, key in {final.relative_to(self.config_dir)} (0600)")
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
        if not self.a.checkpoints:
            raise StepFailed("no checkpoints to name: list them under [[checkpoints]]")
        return asyncio.run(self._name())

    async def _name(self) -> dict[str, Any]:
        points: list[dict[str, Any]] = []
        assigned: dict[tuple[str, int], str] = {}
        async with TapSession(self._bus_specs()) as taps:
            offline = await taps.wait_online(ONLINE_TIMEOUT_S)
            if offline:
                names = ", ".join(reader_id(*k) for k in offline)
                raise StepFailed(f"readers not online in Secure Channel: {names}")
            self.say("  every reader is online in Secure Channel")
            taps.drain()
            for cp in self.a.checkpoints:
                self.say(
                    f"  tap a wristband on the reader at checkpoint {cp.id!r} "
                    f"({cp.name or cp.location or 'no description'}) ..."
                )
                self.signal("tap-wanted", cp.id)
                while True:
                    reader = await taps.next_tap(self.a.tap_timeout_s)
                    if reader is None:
                        raise StepFailed(
                            f"no tap for checkpoint {cp.id!r} within {self.a.tap_timeout_s:.0f} s"
                        )
                    if reader in assigned:
                        self.say(
                            f"  that was {reader_id(*reader)}, already {assigned[reader]!r}:"
                            " tap the other reader"
                        )
                        await taps.feedback(reader, ok=False)
                        continue
                    break
                assigned[reader] = cp.id
                await taps.feedback(reader, ok=True)
                self.say(f"  tapped: reader {reader_id(*reader)} is checkpoint {cp.id!r}")
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
        if unnamed:
            self.say(f"  not named (left out of the config): {', '.join(unnamed)}")
        return {"points": points}

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

    def step_relays(self) -> dict[str, Any]:
        from gateway.broadcast.config import BroadcastSection
        from gateway.config.schema import parse_section

        table = self.broadcast_table()
        if table is None or not table["zones"]:
            self.say("  no relay boards or zones: broadcast left out")
            return {"zones": []}
        section = parse_section(BroadcastSection, table, "broadcast")
        zones = [z.number for z in section.zones]
        bar = ProgressBar("click test", len(zones), self.out)
        heard: dict[int, bool] = {}

        async def on_zone(zone: int) -> None:
            bar.update(zones.index(zone) + 1)
            self.say(f"  zone {zone} is ON now")
            self.signal("zone-on", zone)
            if self.ask is not None:
                heard[zone] = await asyncio.to_thread(
                    self.confirm, f"  did zone {zone} click/sound?"
                )

        async def run() -> list[Any]:
            return await click_zones(section, zones, self.a.relays.click_seconds, on_zone)

        clicks = asyncio.run(run())
        bar.close()
        results = []
        for c in clicks:
            verdict = "verified on and off" if c.ok else f"FAILED ({c.detail})"
            self.say(f"  zone {c.zone}: {verdict}")
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
            raise StepFailed(f"zones failed the click test: {sorted(set(bad))}")
        return {"zones": results}

    # -- cameras ---------------------------------------------------------------------------

    def camera_password(self, cam: Any) -> str:
        if cam.password_file:
            return self.a.path(cam.password_file).read_text().strip()
        if cam.password_env:
            value = os.environ.get(cam.password_env)
            if value is None:
                raise StepFailed(f"camera {cam.name}: ${cam.password_env} is not set")
            return value
        if self.ask is not None:
            import getpass

            return getpass.getpass(f"  password for camera {cam.name} (user {cam.username}): ")
        return ""

    def step_cameras(self) -> dict[str, Any]:
        results = []
        for cam in self.a.cameras:
            password = self.camera_password(cam)
            check = asyncio.run(
                check_camera(
                    cam.name, cam.snapshot_url, cam.rtsp_url, cam.auth, cam.username, password
                )
            )
            if not check.ok:
                raise StepFailed(f"camera {cam.name}: live snapshot failed ({check.detail})")
            rel = Path("keys") / f"camera-{cam.name}.password"
            write_secret_file(self.config_dir / rel, password.encode(), hex_text=False)
            self.give_to_daemon(self.config_dir / rel)
            self.say(
                f"  {cam.name}: live snapshot {check.snapshot_bytes} bytes in "
                f"{check.elapsed_ms:.0f} ms" + (", RTSP answers" if check.rtsp_ok else "")
            )
            results.append(
                {
                    "name": cam.name,
                    "snapshot_url": cam.snapshot_url,
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
            self.say("  enrollment skipped: run `compound-gw provision` later")
            return {"enrolled": False}
        paths = SyncPaths.from_section(SyncSection(), self.data_dir())
        if paths.provisioned():
            self.say("  already enrolled (sync files present)")
            return {"enrolled": True, "centre_url": e.centre_url}
        if e.token_file:
            token = self.a.path(e.token_file).read_text().strip()
        elif e.token_env:
            token = os.environ.get(e.token_env, "")
        elif self.ask is not None:
            import getpass

            token = getpass.getpass("  enrollment token: ")
        else:
            token = ""
        if not token:
            raise StepFailed("no enrollment token (token_file or token_env)")
        result = asyncio.run(
            provision(
                e.centre_url,
                token,
                data_dir=self.data_dir(),
                gateway_id=self.a.gateway.id,
                compound=self.a.gateway.compound,
                ca_fingerprint=e.ca_fingerprint or None,
            )
        )
        sync_dir = SyncPaths.from_section(SyncSection(), self.data_dir()).key.parent
        for f in [sync_dir, *sync_dir.iterdir()]:
            self.give_to_daemon(f)
        tofu = (
            " (CA trusted on first use: check its fingerprint!)"
            if result.trusted_on_first_use
            else ""
        )
        self.say(
            f"  enrolled {result.gateway_id} for {result.compound!r} with {result.centre_url}; "
            f"CA sha256:{result.ca_fingerprint}{tofu}"
        )
        return {
            "enrolled": True,
            "centre_url": result.centre_url,
            "key_id": result.key_id,
            "ca_fingerprint": result.ca_fingerprint,
        }

    # -- the config ------------------------------------------------------------------------

    def build_config_data(self) -> dict[str, Any]:
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
            data["health"] = {
                "cameras": [
                    {
                        k: c[k]
                        for k in (
                            "name",
                            "snapshot_url",
                            "rtsp_url",
                            "auth",
                            "username",
                            "password_file",
                        )
                    }
                    for c in cams
                ]
            }
        enroll = self.state.result("enroll")
        data["sync"] = {"enabled": bool(enroll.get("enrolled"))}
        if enroll.get("enrolled"):
            data["sync"]["centre_url"] = enroll["centre_url"]
        return deep_merge(data, self.a.config or {})

    def step_write(self) -> dict[str, Any]:
        from gateway.config.model import parse_config, write_config_atomically

        data = self.build_config_data()
        cfg = parse_config(data, self.config_dir)
        for key, reason in cfg.check():
            raise StepFailed(f"the config would be invalid: {key}: {reason}")
        self.config_path.parent.mkdir(parents=True, exist_ok=True)
        had_old = self.config_path.exists()
        write_config_atomically(cfg, self.config_path)
        if self.owner is not None:
            # As install.sh leaves it: root's file, readable by the daemon's group only.
            os.chown(self.config_path, 0, self.owner[1])
            os.chmod(self.config_path, 0o640)
        tomllib.loads(self.config_path.read_text())
        backup = str(self.config_path.with_name(self.config_path.name + ".bak")) if had_old else ""
        self.say(
            f"  wrote {self.config_path}" + (f" (previous kept as {backup})" if backup else "")
        )
        return {"config": str(self.config_path), "backup": backup}


def default_state_path(config_path: Path) -> Path:
    return config_path.with_name(config_path.name + ".setup-state.json")


__all__ = ["STEPS", "StepFailed", "Wizard", "deep_merge", "default_state_path"]
