"""``compound-gw demo``: the real daemon on a simulated compound, a short scripted scenario.

    compound-gw demo            # human summary
    compound-gw demo --json     # one JSON object of counts
    compound-gw demo --keep     # then keep the demo centre (and its console) up until Ctrl-C

The compound is ``hil_tests/benches/sim.toml``: two OSDP reader buses (Secure Channel), a relay
bus with two boards, two cameras, a modem, all simulated and paced at their real baud rates.
Each step below is one capability seen from outside: what the guard sees at the reader, what the
relays really do, what the journal holds. Nothing is left running: the daemon and every
simulator stop, even on failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import itertools
import json
import os
import re
import secrets
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import zoneinfo
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from osdp import CommandLEDColor

from centre.pki import CentrePaths
from gateway.journal import check_integrity, read_events
from hil_tests.benchfile import load_bench
from hil_tests.compound import ROSTER, SimCompound

# The WeChat Work robot mock of the push tests (`compound-gw demo` runs from a checkout only:
# gateway/cli.py puts the repository on sys.path, so tests/ is importable like hil_tests/).
from tests.centre.push.mock_robot import MARKDOWN_LIMIT, MockRobot

GREEN = CommandLEDColor.Green
GUARD_BAND = next(iter(ROSTER))
UNKNOWN_BAND = "04deadbeef0001"
LED_TIMEOUT_S = 5.0
GUARD_RETAPS = 2  # taps again after seeing no light at all
TZ = "Asia/Shanghai"
ROBOT_KEY = "demo-robot-key-0001"
PUSH_GROUP = "district leaders"


class WeChatRobot:
    """The mock WeChat Work group robot on its own event loop in a thread, for the push steps."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="wechat-robot")
        self.thread.start()
        self.robot = MockRobot(keys={ROBOT_KEY}, clock=time.time)
        try:
            asyncio.run_coroutine_threadsafe(self.robot.start(), self.loop).result(30)
        except BaseException:
            self.close()
            raise

    def accepted(self) -> list[str]:
        """What the group got so far (read on the robot's loop: it appends there)."""

        async def snapshot() -> list[str]:
            return [r.content for r in self.robot.accepted]

        return asyncio.run_coroutine_threadsafe(snapshot(), self.loop).result(30)

    def close(self) -> None:
        if self.robot.port:
            asyncio.run_coroutine_threadsafe(self.robot.close(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(30)
        self.loop.close()


def _seen_line(markdown: str) -> str:
    """A message's first line as the group reads it (no heading marks, no colour tags)."""
    first = markdown.splitlines()[0] if markdown else ""
    return re.sub(r"<[^>]*>|\*\*", "", first).lstrip("# ").strip()


@dataclass
class Centre:
    """A real ``compound-centre serve`` on loopback, for the demo's sync step."""

    folder: Path
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    ca_fingerprint: str = ""

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "centre.cli", "--data", str(self.folder), *args],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip

    def start(self) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        log = open(self.folder.parent / "centre.log", "ab")  # noqa: SIM115 - child owns it
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "centre.cli", "--data", str(self.folder), "serve",
                 "--host", "127.0.0.1", "--port", str(self.port)],
                stdout=log, stderr=log, stdin=subprocess.DEVNULL,
            )  # fmt: skip
        finally:
            log.close()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), 0.2),
            ):
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError("the centre did not start listening")

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def add_officer(self, name: str = "demo-officer") -> str:
        """A console officer account with a freshly generated password (returned)."""
        password = secrets.token_urlsafe(12)
        out = subprocess.run(
            [sys.executable, "-m", "centre.cli", "--data", str(self.folder),
             "users", "add", name, "--role", "officer"],
            input=password + "\n", capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        if out.returncode != 0:
            raise AssertionError(f"users add failed: {out.stderr.strip()[-300:]}")
        return password

    def wait_until_interrupted(self) -> None:
        """Serve until Ctrl-C (or until the centre stops by itself)."""
        with contextlib.suppress(KeyboardInterrupt):
            while self.proc is not None and self.proc.poll() is None:
                time.sleep(0.5)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def media(self, wanted: set[str]) -> dict[str, Path]:
        """Which of ``wanted`` (sha256) the centre holds, and where."""
        db = self.folder / "centre.db"
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            rows = conn.execute("SELECT sha256, path FROM media").fetchall()
        except sqlite3.OperationalError:
            return {}
        finally:
            conn.close()
        return {str(s): self.folder / "media" / str(p) for s, p in rows if s in wanted}

    def watermark(self, gateway_id: str) -> int:
        db = self.folder / "centre.db"
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            row = conn.execute(
                "SELECT watermark FROM gateways WHERE gateway_id = ?", (gateway_id,)
            ).fetchone()
            return int(row[0]) if row else 0
        finally:
            conn.close()


@dataclass
class Demo:
    compound: SimCompound
    centre: Centre
    report: dict[str, Any] = field(default_factory=dict)
    lines: list[str] = field(default_factory=list)
    green_taps: list[tuple[str, str, float]] = field(default_factory=list)  # (reader, band, t)
    console: tuple[str, str, str] | tuple[()] = ()  # (address, login, password) when made
    robot: WeChatRobot | None = None  # the push steps' group robot, once started

    def say(self, line: str) -> None:
        self.lines.append(line)

    def events(self, kind: str | None = None) -> list[Any]:
        evs = read_events(self.compound.journal_path, limit=10_000_000)
        return [e for e in evs if kind is None or e.kind == kind]

    def wait_event(self, kind: str, pred: Callable[[Any], bool], timeout: float) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for e in self.events(kind):
                if pred(e):
                    return e
            time.sleep(0.1)
        raise AssertionError(f"no {kind} event within {timeout} s")

    def tap(self, reader: str, band: str) -> bool:
        """Tap and wait for the reader's answer; True if the guard saw green."""
        sim = self.compound.reader(reader)
        t = sim.tap(band)
        led = sim.wait_led(None, after=t, timeout=LED_TIMEOUT_S)
        green = led is not None and led.color == GREEN
        if green:
            self.green_taps.append((reader, band, t))
        return green


Step = Callable[[Demo], None]


def step_enroll(d: Demo) -> None:
    """A district centre on loopback; the gateway enrolls with a one-time token."""
    c = d.centre
    out = c.cli("init")
    if out.returncode != 0:
        raise AssertionError(out.stderr)
    tok = c.cli("token", "create", "--compound", "HIL Compound", "--township", "Bench", "--json")
    info = json.loads(tok.stdout)
    c.start()
    prov = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "provision", "--config", str(d.compound.config_path),
         "--centre", c.url, "--ca-fingerprint", info["ca_fingerprint"]],
        input=info["token"] + "\n",  # the token on stdin, never in argv (ps, shell history)
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    if prov.returncode != 0:
        raise AssertionError(f"provisioning failed: {prov.stderr or prov.stdout}")
    key = d.compound.folder / "data" / "sync" / "gateway-key.pem"
    d.say(
        f"centre up at {c.url}; gateway enrolled with a one-time token, CA pinned by "
        f"fingerprint, key made on the gateway (mode {key.stat().st_mode & 0o777:04o})"
    )


def step_start(d: Demo) -> None:
    t0 = time.monotonic()
    gw = d.compound.daemon()
    gw.start()
    for name, sim in d.compound.readers.items():
        if not sim.wait_secure(15):
            raise AssertionError(f"reader {name} never reached Secure Channel")
    d.say(
        f"daemon READY and all {len(d.compound.readers)} readers in Secure Channel "
        f"after {time.monotonic() - t0:.1f} s (9600 baud, paced)"
    )
    off = d.wait_event("broadcast.off", lambda e: e.payload.get("cause") == "startup", 15)
    d.say(f"relays forced off at start and read back (verified={off.payload['verified']})")


def step_patrol_taps(d: Demo) -> None:
    route = list(d.compound.readers)
    greens = retaps = 0
    for r in route:
        # A guard who sees no light at all taps again, as guards do (a reader that dropped off
        # the bus for a moment on a busy machine holds the first tap and delivers it late).
        for attempt in range(1 + GUARD_RETAPS):
            sim = d.compound.reader(r)
            before = len(sim.leds_since(0.0))
            if d.tap(r, GUARD_BAND):
                greens += 1
                break
            if len(sim.leds_since(0.0)) > before:
                break  # a light that was not green: the guard does not tap again
            if attempt < GUARD_RETAPS:
                retaps += 1
    again = f" ({retaps} tapped again because nothing lit)" if retaps else ""
    d.say(f"guard {ROSTER[GUARD_BAND]} walked {len(route)} checkpoints: {greens} green lights"
          f"{again}")  # fmt: skip
    refused_green = d.tap(route[1], UNKNOWN_BAND)
    unknown = d.wait_event("unknown_wristband", lambda e: True, 5)
    d.say(
        f"an unknown wristband at {unknown.payload.get('checkpoint')}: "
        f"{'GREEN (wrong!)' if refused_green else 'refused (no green)'}, recorded as evidence"
    )
    d.report["checkpoints"] = {
        "readers": len(route),
        "green_for_guard": greens,
        "retaps": retaps,
        "unknown_refused": not refused_green,
    }


def step_power_cut_during_taps(d: Demo) -> None:
    """Taps keep coming while the daemon is SIGKILLed and restarted."""
    gw = d.compound.daemon_processes[0]
    stop = threading.Event()
    readers = list(d.compound.readers)
    bands = list(ROSTER)

    def storm() -> None:
        for i in itertools.count():
            if stop.is_set():
                return
            d.tap(readers[i % len(readers)], bands[i % len(bands)])
            time.sleep(0.05)

    worker = threading.Thread(target=storm, name="tap-storm")
    before = len(d.green_taps)
    worker.start()
    time.sleep(2.0)
    gw.kill()
    d.say("power cut (SIGKILL) in the middle of a tap storm ...")
    _schedule_broadcast_soon(d, seconds_from_now=12)
    gw.start()
    time.sleep(2.5)
    stop.set()
    worker.join(30)
    greens = d.green_taps[before:]
    d.say(f"... restarted; {len(greens)} taps got a green light around the cut")


def _schedule_broadcast_soon(d: Demo, seconds_from_now: int) -> None:
    at = dt.datetime.now(zoneinfo.ZoneInfo(TZ)) + dt.timedelta(seconds=seconds_from_now)
    d.report["broadcast_scheduled_for"] = at.strftime("%H:%M:%S")
    extra = (
        "[[broadcast.schedule]]\n"
        'name = "demo-reminder"\n'
        f'time = "{at.strftime("%H:%M:%S")}"\n'
        "zones = [1, 2]\n"
        "seconds = 3.0\n"
    )
    d.compound.set_extra_config(extra + _demo_player(d))


def _demo_player(d: Demo) -> str:
    """No sound card here: the audio player is a command that writes down the sha256 of the
    file it is given (issue 23's announcement step reads it back)."""
    record = d.compound.folder / "played.txt"
    line = f'sha256sum "$1" >> {record}'
    return (
        "\n[broadcast.audio]\nenabled = true\nrepeat = false\n"
        f"command = {json.dumps(['sh', '-c', line, 'player'])}\n"
    )


def step_scheduled_broadcast(d: Demo) -> None:
    on = d.wait_event("broadcast.on", lambda e: e.payload.get("verified") is True, 30)
    board = d.compound.board("amp-main")
    amp_on = board.coils[0]
    off = d.wait_event(
        "broadcast.off", lambda e: e.seq > on.seq and e.payload.get("verified") is True, 30
    )
    seconds = off.wall_time - on.wall_time
    d.say(
        f"scheduled reminder at {d.report['broadcast_scheduled_for']}: amplifier and zones 1-2 "
        f"on (read back, amplifier relay {'on' if amp_on else 'off'} at the board), "
        f"off again after {seconds:.1f} s (planned 3 s)"
    )
    d.report["broadcast"] = {
        "on_verified": True,
        "off_verified": True,
        "seconds": round(seconds, 2),
    }


def step_camera_dark(d: Demo) -> None:
    cam_name, cam = next(iter(d.compound.cameras.items()))
    d.compound.on_loop(cam.go_dark())
    t0 = time.monotonic()
    down = d.wait_event(
        "health.state",
        lambda e: e.payload.get("device") == cam_name and e.payload.get("state") == "down",
        30,
    )
    d.say(
        f"camera {cam_name} lost power: 'down' after {time.monotonic() - t0:.1f} s "
        f"(hysteresis), reason: {down.payload.get('reason')}"
    )
    d.compound.on_loop(cam.come_back())
    d.wait_event(
        "health.state",
        lambda e: (
            e.seq > down.seq
            and e.payload.get("device") == cam_name
            and e.payload.get("state") == "ok"
        ),
        30,
    )
    d.say(f"camera {cam_name} back: 'ok'")
    snaps = d.events("camera.snapshot")
    # Snapshots as the camera's profile takes them (docs/cameras.md): the simulated gate camera
    # answers on Hikvision's ISAPI path, as most gate cameras in the district do.
    isapi = [p for p in cam.paths if p.startswith("/ISAPI/")]
    last = isapi[-1] if isapi else "-"
    d.say(f"camera {cam_name}: {len(isapi)} snapshots over Hikvision ISAPI ({last})")
    d.report["health"] = {
        "camera_down_detected": True,
        "evidence_snapshots": len(snaps),
        "isapi_snapshots": len(isapi),
    }


def step_sync(d: Demo) -> None:
    """Everything journaled so far reaches the centre, once."""
    gw_id = d.compound.gateway_id
    target = read_events(d.compound.journal_path, last=1)[0].seq
    deadline = time.monotonic() + 60
    while d.centre.watermark(gw_id) < target:
        if time.monotonic() > deadline:
            raise AssertionError(
                f"centre watermark stuck at {d.centre.watermark(gw_id)} < {target}"
            )
        time.sleep(0.2)
    d.say(f"the centre acknowledged every event up to seq {d.centre.watermark(gw_id)}")


def step_media(d: Demo) -> None:
    """An evidence image follows its camera.snapshot event to the centre, hash checked there."""
    snaps = d.events("camera.snapshot")
    if not snaps:
        d.say("no evidence snapshot was taken: no image to send to the centre")
        d.report["media"] = {"snapshots": 0}
        return
    want = {str(e.payload["sha256"]): e for e in snaps}
    deadline = time.monotonic() + 60
    while not (held := d.centre.media(set(want))):
        if time.monotonic() > deadline:
            raise AssertionError("no evidence image reached the centre within 60 s")
        time.sleep(0.2)
    sha, path = next(iter(held.items()))
    ok = hashlib.sha256(path.read_bytes()).hexdigest() == sha
    ev = want[sha]
    d.say(
        f"evidence image {ev.payload['file']} ({ev.payload['bytes']} bytes, {ev.payload['camera']})"
        f" reached the centre after its event: sha256 {sha[:16]}... "
        f"{'matches' if ok else 'DOES NOT MATCH'} ({len(held)} of {len(want)} there so far)"
    )
    d.report["media"] = {"snapshots": len(want), "at_centre": len(held), "hash_matches": ok}


def step_remote_broadcast(d: Demo) -> None:
    """An operator orders a broadcast at the centre; a signed command reaches the relays."""
    t0 = time.monotonic()
    out = d.centre.cli(
        "broadcast", "--compound", "HIL Compound", "--zones", "3", "--seconds", "2",
        "--message", "demo-drill", "--status", "Exercise", "--json",
    )  # fmt: skip
    if out.returncode != 0:
        raise AssertionError(f"centre refused to queue: {out.stderr or out.stdout}")
    command_id = json.loads(out.stdout)[0]["command_id"]
    seen: list[str] = []
    deadline = time.monotonic() + 30
    status = ""
    while time.monotonic() < deadline:
        rows = json.loads(d.centre.cli("commands", "--json").stdout)
        status = next(r["status"] for r in rows if r["command_id"] == command_id)
        if not seen or seen[-1] != status:
            seen.append(status)
        if status in ("done", "failed", "refused", "expired"):
            break
        time.sleep(0.1)
    accepted = d.events("command.accepted")
    d.say(
        f"operator broadcast (zone 3, 2 s, Exercise) from the centre: "
        f"{' -> '.join(seen)} in {time.monotonic() - t0:.1f} s; signature, target, sequence "
        f"and expiry verified on the gateway before any relay moved"
    )
    d.report["remote_command"] = {"status": status, "accepted_events": len(accepted)}


def step_look_now(d: Demo) -> None:
    """Look now: an officer orders a fresh picture; a signed command, no relay moves, and the
    image is first in the gateway's upload line."""
    cam_name = next(iter(d.compound.cameras))
    out = d.centre.cli(
        "snapshot", "--gateway", d.compound.gateway_id, "--camera", cam_name,
        "--wait", "60", "--json",
    )  # fmt: skip
    if out.returncode not in (0, 2):
        raise AssertionError(f"look now failed: {out.stderr or out.stdout}")
    got = json.loads(out.stdout)
    took = got["stored_at"] - got["issued_at"] if "stored_at" in got else None
    shot = [e for e in d.events("camera.snapshot") if e.payload.get("request") == got["command_id"]]
    d.say(
        f"look now (camera {cam_name}): gateway {got['status']}; "
        + (f"the picture was at the centre {took:.1f} s after the order" if took is not None
           else "the picture is still on its way")
        + (f", taken {shot[0].payload.get('file', '')}" if shot else "")
    )  # fmt: skip
    d.report["look_now"] = {
        "status": got["status"],
        "at_centre": took is not None,
        "seconds": None if took is None else round(took, 2),
        "journaled_with_request": bool(shot),
    }


def step_push_setup(d: Demo) -> None:
    """A WeChat Work group robot for the district's leaders; the alert scan places its cursors."""
    d.robot = WeChatRobot()
    data = d.centre.folder
    hook = data / "robot-leaders.url"
    hook.touch(mode=0o600)
    os.chmod(hook, 0o600)  # whoever has the address can post to the group
    hook.write_text(d.robot.robot.url(ROBOT_KEY) + "\n")
    (data / "push.toml").write_text(
        f'[[robot]]\ngroup = "{PUSH_GROUP}"\nwebhook_file = "{hook.name}"\n\n'
        f'[alerts.actual_broadcast]\ngroups = ["{PUSH_GROUP}"]\n'
    )
    out = d.centre.cli("push", "alerts", "--once")
    if out.returncode != 0:
        raise AssertionError(f"push alerts refused: {out.stderr or out.stdout}")
    d.say(
        f"WeChat Work robot for the group '{PUSH_GROUP}' (a local mock, address in a 0600 file); "
        f"Actual broadcasts routed to it; the first alert scan only marks where it starts "
        f"({len(d.robot.accepted())} messages sent: the centre's history is not pushed)"
    )


def step_push(d: Demo) -> None:
    """The day's bulletin and the Actual-broadcast alert reach the group through the robot."""
    assert d.robot is not None
    day = dt.datetime.now(zoneinfo.ZoneInfo(TZ)).date().isoformat()
    before = len(d.robot.accepted())
    out = d.centre.cli("push", "daily", "--date", day, "--tz", TZ)
    if out.returncode != 0:
        raise AssertionError(f"push daily failed: {out.stderr or out.stdout}")
    parts = d.robot.accepted()[before:]
    sizes = [len(p.encode("utf-8")) for p in parts]
    again = d.centre.cli("push", "daily", "--date", day, "--tz", TZ)
    resent = len(d.robot.accepted()) - before - len(parts)
    d.say(
        f"today's bulletin ({day}) pushed to '{PUSH_GROUP}': {len(parts)} part(s) arrived, "
        f"{', '.join(map(str, sizes))} bytes (limit {MARKDOWN_LIMIT}); the group sees "
        f"「{_seen_line(parts[0]) if parts else ''}」; pushed again: "
        f"{'nothing resent' if again.returncode == 0 and resent == 0 else 'RESENT'}"
    )
    # Orders since the cursors were placed: the Exercise drill (zone 3) and the announcement's
    # broadcast (zone 1, an Actual one: the centre's default status).
    before = len(d.robot.accepted())
    out = d.centre.cli("push", "alerts", "--once")
    if out.returncode != 0:
        raise AssertionError(f"push alerts failed: {out.stderr or out.stdout}")
    alerts = d.robot.accepted()[before:]
    actual = [a for a in alerts if "实战广播" in _seen_line(a)]
    lines = alerts[0].splitlines()[:3] if alerts else []
    exercise_pushed = len(actual) > 1  # two orders since the cursors: one Actual, one Exercise
    d.say(
        f"alert scan after the two centre orders: {len(alerts)} alert(s) pushed, "
        f"「{' / '.join(_seen_line(x) for x in lines)}」 for the announcement's Actual broadcast; "
        + (
            "the Exercise drill was pushed too (wrong!)"
            if exercise_pushed
            else "the Exercise drill was not pushed (only Actual broadcasts alert the group)"
        )
    )
    d.report["push"] = {
        "parts": len(parts),
        "part_bytes": sizes,
        "resent_on_rerun": resent,
        "alerts": len(alerts),
        "actual_broadcast_alerts": len(actual),
        "exercise_pushed": exercise_pushed,
    }


def step_announcement(d: Demo) -> None:
    """Typed Mandarin at the centre, spoken offline, played on the gateway by its hash."""
    t0 = time.monotonic()
    text = "请注意：近期电信诈骗高发，请勿向陌生人转账。"
    out = d.centre.cli(
        "announce", "say", text, "--title", "防诈骗提示", "--id", "demo-fraud", "--json"
    )
    if out.returncode != 0:
        raise AssertionError(f"the centre could not make the announcement: {out.stderr}")
    ann = json.loads(out.stdout)
    out = d.centre.cli(
        "broadcast", "--compound", "HIL Compound", "--zones", "1", "--seconds", "2",
        "--message", "demo-fraud", "--json",
    )  # fmt: skip
    if out.returncode != 0:
        raise AssertionError(f"centre refused to queue: {out.stderr or out.stdout}")
    fetched = d.wait_event(
        "broadcast.announcement_fetched", lambda e: e.payload["sha256"] == ann["sha256"], 30
    )
    record = d.compound.folder / "played.txt"
    deadline = time.monotonic() + 30
    while not (record.exists() and ann["sha256"] in record.read_text()):
        if time.monotonic() > deadline:
            raise AssertionError("the announcement never reached the player")
        time.sleep(0.1)
    command_id = json.loads(out.stdout)[0]["command_id"]
    sound = ""
    while not sound:  # the fourth step, as the centre shows it
        if time.monotonic() > deadline:
            raise AssertionError("no proof-of-sound step reached the centre")
        rows = json.loads(d.centre.cli("commands", "--json").stdout)
        sound = next(r["sound"] for r in rows if r["command_id"] == command_id)
        time.sleep(0.1)
    d.say(
        f"announcement typed at the centre ({ann['duration_s']:.1f} s of espeak-ng Mandarin, "
        f"loudness normalised): fetched by hash ({fetched.payload['bytes']} bytes), verified, "
        f"played in {time.monotonic() - t0:.1f} s; proof of sound: {sound} "
        "(no audio input wired on the bench)"
    )
    d.report["announcement"] = {
        "played_sha256_ok": ann["sha256"] in record.read_text(),
        "fetched_bytes": fetched.payload["bytes"],
        "sound": sound,
    }


def _cli(d: Demo, *args: str) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "gateway.cli", *args, "--config", str(d.compound.config_path)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    return out.stdout.rstrip() if out.returncode == 0 else f"(exit {out.returncode}) {out.stderr}"


def step_operator_views(d: Demo) -> None:
    """What an installer or operator sees from the CLI while the daemon runs."""
    d.say("compound-gw readers:\n" + _cli(d, "readers"))
    rounds = _cli(d, "patrol", "today").splitlines()
    shown = rounds[:4] + ([f"... ({len(rounds) - 1} rounds today)"] if len(rounds) > 4 else [])
    d.say("compound-gw patrol today:\n" + "\n".join(shown))


def step_stop_and_verify(d: Demo) -> None:
    gw = d.compound.daemon_processes[0]
    t0 = time.monotonic()
    rc = gw.terminate(timeout=15)
    d.say(f"daemon stopped on SIGTERM with exit code {rc} in {time.monotonic() - t0:.2f} s")
    events = d.events()
    seqs = [e.seq for e in events]
    gaps = sum(b - a - 1 for a, b in itertools.pairwise(seqs) if b > a + 1)
    duplicated = len(seqs) - len(set(seqs))
    taps = [e for e in events if e.kind == "tap"]
    tap_keys = [(e.payload["checkpoint"], e.payload["wristband"]) for e in taps]
    missing_green = [(r, b) for r, b, _ in d.green_taps if (r, b) not in set(tap_keys)]
    kinds: dict[str, int] = {}
    for e in events:
        kinds[e.kind] = kinds.get(e.kind, 0) + 1
    integrity = check_integrity(d.compound.journal_path, full=True)
    d.report.update(
        events_journaled=len(events),
        lost=gaps + len(missing_green),
        duplicated=duplicated,
        journal_integrity=integrity,
        kinds=kinds,
        service_crashes=kinds.get("service.crashed", 0),
        daemon={
            "starts": gw.starts,
            "exit_code": rc,
            "unclean_stops_detected": sum(
                1 for e in events if e.payload.get("previous_stop") == "unclean"
            ),
        },
    )
    d.report["checkpoints"].update(
        taps_journaled=len(taps),
        green_lights=len(d.green_taps),
        green_but_missing=len(missing_green),
    )
    synced = d.centre.watermark(d.compound.gateway_id)
    audit = d.centre.cli("verify")
    d.report["synced"] = synced
    d.report["centre_audit_ok"] = audit.returncode == 0
    d.say(
        f"centre holds {synced} of {len(events)} events exactly once (the last ones wait for the "
        f"next start); audit: {'ok' if audit.returncode == 0 else audit.stdout + audit.stderr}"
    )
    d.say(
        f"journal: {len(events)} events, {len(taps)} taps; every tap that showed green is "
        f"there ({len(missing_green)} missing); sequence gaps {gaps}, duplicates {duplicated}, "
        f"integrity {integrity}"
    )


def step_console_login(d: Demo) -> None:
    """An officer account on the demo centre, for its web console."""
    password = d.centre.add_officer()
    d.console = (f"{d.centre.url}/console", "demo-officer", password)
    d.report["console"] = {"url": f"{d.centre.url}/console", "user": "demo-officer"}


STEPS: list[Step] = [
    step_enroll,
    step_start,
    step_patrol_taps,
    step_power_cut_during_taps,
    step_scheduled_broadcast,
    step_camera_dark,
    step_operator_views,
    step_sync,
    step_media,
    step_push_setup,
    step_remote_broadcast,
    step_look_now,
    step_announcement,
    step_push,
    step_stop_and_verify,
    step_console_login,
]


def run(folder: Path, keep: bool = False) -> Demo:
    # This machine's clock may not be NTP-synchronised; the demo's schedule runs anyway.
    compound = SimCompound(
        load_bench(),
        folder,
        gateway_id="gw-demo",
        broadcast_keys=("schedule_requires_synced_clock = false",),
        sync_keys=(
            "first_delay_max_s = 0.2",
            "idle_poll_s = 0.5",
            "backoff_initial_s = 0.2",
            "backoff_max_s = 2.0",
        ),
    )
    centre = Centre(folder / "centre")
    compound.start()
    d = Demo(compound, centre)
    try:
        for step in STEPS:
            step(d)
    finally:
        if d.robot is not None:
            d.robot.close()
        compound.stop()
        if not keep or not d.console:
            centre.stop()
    return d


def main(json_output: bool = False, keep: bool = False) -> int:
    folder = Path(tempfile.mkdtemp(prefix="compound-demo-"))
    t0 = time.monotonic()
    try:
        d = run(folder, keep)
    except Exception as exc:
        print(f"demo failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        log = folder / "daemon.log"
        if log.exists():
            print("\n".join(log.read_text(errors="replace").splitlines()[-30:]), file=sys.stderr)
        if not keep:
            shutil.rmtree(folder, ignore_errors=True)
        return 1
    d.report["wall_time_s"] = round(time.monotonic() - t0, 2)
    ok = d.report.get("lost") == 0 and d.report.get("duplicated") == 0
    ok = ok and bool(d.report.get("centre_audit_ok")) and d.report.get("service_crashes") == 0
    ok = ok and d.report.get("remote_command", {}).get("status") == "done"
    ok = ok and d.report["daemon"].get("exit_code") == 0
    ok = ok and d.report.get("media", {}).get("hash_matches", True) is True
    push = d.report.get("push", {})
    ok = ok and push.get("parts", 0) >= 1 and push.get("actual_broadcast_alerts") == 1
    ok = ok and push.get("exercise_pushed") is False
    if json_output:
        print(json.dumps(d.report, sort_keys=True))
    else:
        print("Compound Gateway demo: the real daemon on a simulated compound")
        for line in d.lines:
            print(f"  - {line}")
        print(f"  {'OK' if ok else 'PROBLEM'}: {json.dumps(d.report, sort_keys=True)}")
        print(f"  (compound folder: {folder if keep else 'removed'})")
    if d.console:
        url, user, password = d.console
        out = sys.stderr if json_output else sys.stdout  # --json: stdout stays one object
        ca = CentrePaths(d.centre.folder).ca_cert
        print(
            f"Centre console: {url}" + (f"  (its CA certificate: {ca})" if keep else ""), file=out
        )
        print(f"  officer login: {user}  password: {password}  (generated for this run)", file=out)
        if keep:
            print("  the demo centre stays up; press Ctrl-C to stop it", file=out, flush=True)
            d.centre.wait_until_interrupted()
            d.centre.stop()
        else:
            print(
                "  (the demo centre has stopped; `compound-gw demo --keep` keeps it up)", file=out
            )
    if not keep:
        shutil.rmtree(folder, ignore_errors=True)
    return 0 if ok else 1
