"""``compound-gw selftest``: every check again, and a signed commissioning report.

Run with the daemon stopped (it owns the serial ports). The checks: each checkpoint reader
online in Secure Channel and tapped when asked (the installer taps them in turn), each
broadcast zone clicked on and off (verified by reading the relays back), each camera's live
snapshot (and RTSP), the link to the centre (a TLS request with this gateway's certificate),
the clock (synchronised or not) and the firmware versions (readers' osdp_PDID, relay boards
where they say, this software, libosdp). The report is signed with the gateway's own Ed25519
key from provisioning (``wire.sign``: the centre can verify it with the gateway's certificate;
unsigned, and says so, before enrollment), printed, and journaled as the evidence event
``commissioning.report`` so the uploader takes it to the centre::

    rc = run_selftest(Path("/etc/compound-gw/gateway.toml"), tap_timeout_s=60)
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import json
import sys
import time
from pathlib import Path
from typing import Any

from drivers.camera import CameraError, open_camera
from gateway.checkpoints.config import load_reader_key
from gateway.clock import SystemClock
from gateway.config import load_config
from gateway.config.model import GatewayConfig
from gateway.control import ControlClient, ControlError, socket_path
from gateway.i18n import _, choose_language, set_language
from gateway.setup.checks import (
    TapSession,
    check_camera,
    click_zones,
    machine_line,
    running_daemon_pid,
)
from gateway.setup.scan import board_firmware, scan_osdp

REPORT_KIND = "commissioning.report"
ONLINE_TIMEOUT_S = 30.0
LINK_TIMEOUT_S = 10.0
DAEMON_TIMEOUT_S = 30.0  # one control request (the click test has its own, longer budget)


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def say(text: str) -> None:
    print(text, flush=True)


async def _readers(cfg: GatewayConfig, tap_timeout_s: float, taps: bool) -> list[dict[str, Any]]:
    from drivers.osdp_bus import BusSpec, ReaderSpec

    section = cfg.checkpoints
    base = Path(cfg.base_dir)
    rows: dict[tuple[str, int], dict[str, Any]] = {}
    specs = []
    for bus in section.buses:
        points = [p for p in section.points if p.bus == bus.name]
        if not points:
            continue
        found = await asyncio.to_thread(scan_osdp, bus.port, bus.baud, [p.address for p in points])
        firmware = {r.address: r for r in found}
        for p in points:
            r = firmware.get(p.address)
            rows[(bus.name, p.address)] = {
                "checkpoint": p.id,
                "reader": f"{bus.name}/{p.address}",
                "answers": r is not None,
                "firmware": r.firmware if r else "",
                "vendor": r.vendor if r else "",
                "model": r.model if r else None,
                "secure_channel": False,
                "tapped": None,
            }
        specs.append(
            BusSpec(
                bus.name,
                bus.port,
                bus.baud,
                tuple(ReaderSpec(p.address, load_reader_key(section, p, base)) for p in points),
            )
        )
    if not specs:
        return []
    async with TapSession(specs) as session:
        await session.wait_online(ONLINE_TIMEOUT_S)
        for key, ok in session.online.items():
            rows[key]["secure_channel"] = ok
        session.drain()
        if taps:
            by_reader = {(p.bus, p.address): p for p in section.points}
            for p in section.points:
                row = rows[(p.bus, p.address)]
                if not row["secure_channel"]:
                    row["tapped"] = False
                    continue
                say(
                    _("  tap a wristband on {checkpoint} ({name}) ...").format(
                        checkpoint=p.id, name=p.name or f"{p.bus}/{p.address}"
                    )
                )
                say(machine_line("tap-wanted", p.id))
                deadline = time.monotonic() + tap_timeout_s
                row["tapped"] = False
                while (left := deadline - time.monotonic()) > 0:
                    got = await session.next_tap(left)
                    if got is None:
                        break
                    if got == (p.bus, p.address):
                        row["tapped"] = True
                        await session.feedback(got, ok=True)
                        say(_("  {checkpoint}: tap seen").format(checkpoint=p.id))
                        break
                    other = by_reader.get(got)
                    say(
                        _("  that was {other}, not {checkpoint}: tap {checkpoint}").format(
                            other=other.id if other else f"{got[0]}/{got[1]}", checkpoint=p.id
                        )
                    )
                    await session.feedback(got, ok=False)
                if not row["tapped"]:
                    say(
                        _("  {checkpoint}: no tap within {seconds:.0f} s").format(
                            checkpoint=p.id, seconds=tap_timeout_s
                        )
                    )
    return list(rows.values())


async def _zones(
    cfg: GatewayConfig, seconds: float
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    section = cfg.broadcast
    boards = []
    for port in section.ports:
        for b in port.boards:
            fw = await asyncio.to_thread(board_firmware, port.port, port.baud, b.address)
            boards.append(
                {"board": b.name, "address": b.address, "profile": b.profile, "firmware": fw}
            )
    if not section.enabled or not section.zones:
        return [], boards
    clicks = await click_zones(section, [z.number for z in section.zones], seconds)
    return [
        {"zone": c.zone, "on": c.on_verified, "off": c.off_verified, "ok": c.ok, "detail": c.detail}
        for c in clicks
    ], boards


TAP_KINDS = ("tap", "tap.repeat", "unknown_wristband", "tap.unmapped", "tap.refused")
TAP_POLL_S = 0.2


def _taps_after(journal_path: Path, seq: int) -> tuple[list[tuple[str, int]], int]:
    """Readers tapped (bus, address) in the journal after ``seq``, and the last seq read.
    The daemon writes the journal; a reader may open it read-only at any time."""
    from gateway.journal import read_events

    got = []
    for ev in read_events(journal_path, after_seq=seq, limit=10_000):
        seq = ev.seq
        reader = ev.payload.get("reader") if isinstance(ev.payload, dict) else None
        if ev.kind in TAP_KINDS and isinstance(reader, str) and "/" in reader:
            bus, _sep, address = reader.rpartition("/")
            if address.isdigit():
                got.append((bus, int(address)))
    return got, seq


async def _readers_via_daemon(
    cfg: GatewayConfig, daemon: ControlClient, tap_timeout_s: float, taps: bool
) -> list[dict[str, Any]]:
    """Readers as the running daemon sees them; taps are the daemon's own tap events in the
    journal (the guard's green light is the daemon's, as on any patrol night)."""
    section = cfg.checkpoints
    deadline = time.monotonic() + ONLINE_TIMEOUT_S
    while True:
        status = await daemon.call("status")
        seen = {r["reader"]: r for r in status["readers"]}
        rows = []
        for p in section.points:
            r = seen.get(f"{p.bus}/{p.address}", {})
            rows.append(
                {
                    "checkpoint": p.id,
                    "reader": f"{p.bus}/{p.address}",
                    "answers": bool(r.get("online")),
                    "firmware": "",
                    "vendor": "",
                    "model": None,
                    "secure_channel": bool(r.get("secure_channel")),
                    "tapped": None,
                }
            )
        if all(r["secure_channel"] for r in rows) or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.5)
    if not taps:
        return rows
    journal_path = cfg.journal_path
    seq = int(status["journal"]["last_seq"])
    by_reader = {(p.bus, p.address): p for p in section.points}
    for p, row in zip(section.points, rows, strict=True):
        if not row["secure_channel"]:
            row["tapped"] = False
            continue
        say(
            _("  tap a wristband on {checkpoint} ({name}) ...").format(
                checkpoint=p.id, name=p.name or f"{p.bus}/{p.address}"
            )
        )
        say(machine_line("tap-wanted", p.id))
        row["tapped"] = False
        until = time.monotonic() + tap_timeout_s
        while time.monotonic() < until and not row["tapped"]:
            await asyncio.sleep(TAP_POLL_S)
            got, seq = await asyncio.to_thread(_taps_after, journal_path, seq)
            for reader in got:
                if reader == (p.bus, p.address):
                    row["tapped"] = True
                    say(_("  {checkpoint}: tap seen").format(checkpoint=p.id))
                    break
                other = by_reader.get(reader)
                say(
                    _("  that was {other}, not {checkpoint}: tap {checkpoint}").format(
                        other=other.id if other else f"{reader[0]}/{reader[1]}", checkpoint=p.id
                    )
                )
                await daemon.call("reader.blink", reader=f"{reader[0]}/{reader[1]}", ok=False)
        if not row["tapped"]:
            say(
                _("  {checkpoint}: no tap within {seconds:.0f} s").format(
                    checkpoint=p.id, seconds=tap_timeout_s
                )
            )
    return rows


async def _zones_via_daemon(
    cfg: GatewayConfig, daemon: ControlClient, seconds: float
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The click test by the daemon's broadcast controller (the port's one owner)."""
    section = cfg.broadcast
    boards = [
        {"board": b.name, "address": b.address, "profile": b.profile, "firmware": ""}
        for port in section.ports
        for b in port.boards
    ]
    if not section.enabled or not section.zones:
        return [], boards
    numbers = [z.number for z in section.zones]
    budget = len(numbers) * (section.warmup_s + seconds + 60)
    try:
        clicks = await daemon.call("zones.click", timeout=budget, zones=numbers, seconds=seconds)
    except ControlError as exc:
        return [
            {"zone": n, "on": False, "off": False, "ok": False, "detail": exc.reason}
            for n in numbers
        ], boards
    return [{**c, "ok": bool(c["on"] and c["off"])} for c in clicks], boards


async def _cameras(cfg: GatewayConfig) -> list[dict[str, Any]]:
    from gateway.health.config import read_password_file

    out = []
    for i, cam in enumerate(cfg.health.cameras):
        password = ""
        if cam.password_file:
            password = read_password_file(
                cfg.path(cam.password_file), f"health.cameras[{i}].password_file"
            )
        try:
            # The camera its profile describes, as the daemon opens it.
            camera = open_camera(cam, password)
        except CameraError as exc:
            out.append({"camera": cam.name, "ok": False, "snapshot_bytes": 0, "elapsed_ms": 0.0,
                        "rtsp": None, "detail": f"config: {exc.reason}"})  # fmt: skip
            continue
        c = await check_camera(
            cam.name,
            cam.snapshot_url,
            cam.rtsp_url,
            cam.auth,
            cam.username,
            password,
            timeout=cam.timeout_s,
            camera=camera,
        )
        out.append(
            {
                "camera": c.name,
                "ok": c.ok,
                "snapshot_bytes": c.snapshot_bytes,
                "elapsed_ms": c.elapsed_ms,
                "rtsp": c.rtsp_ok,
                "detail": c.detail,
            }
        )
    return out


async def _link(cfg: GatewayConfig) -> dict[str, Any]:
    import aiohttp

    from gateway.sync.config import SyncPaths
    from gateway.sync.tls import client_ssl_context
    from gateway.sync.uploader import INGEST_PATH

    section = cfg.sync
    paths = SyncPaths.from_section(section, cfg.data_dir)
    if not paths.provisioned():
        return {"up": False, "detail": "not provisioned"}
    if not section.enabled or not section.centre_url:
        return {"up": False, "detail": "sync disabled in the config"}
    ctx = client_ssl_context(paths.ca, paths.cert, paths.key)
    started = time.monotonic()
    try:
        timeout = aiohttp.ClientTimeout(total=LINK_TIMEOUT_S)
        url = f"{section.centre_url}{INGEST_PATH}/state"
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.get(url, ssl=ctx) as resp,
        ):
            await resp.read()
            up = resp.status == 200
            detail = f"HTTP {resp.status}"
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        up, detail = False, f"{type(exc).__name__}: {exc}"
    return {
        "up": up,
        "detail": detail,
        "centre_url": section.centre_url,
        "round_trip_ms": round((time.monotonic() - started) * 1000, 1),
    }


# What each failed check means and how to fix it, in the order an installer works (the order
# of the wizard's steps and of docs/setup.md): readers, guards, routes, schedules, zones,
# cameras, the link to the centre, the clock. ``{subject}`` is the reader, zone, camera...
CHECK_ORDER = (
    "readers",
    "reader_secure",
    "reader_tapped",
    "guards",
    "routes",
    "schedules",
    "zone",
    "camera",
    "link",
    "clock",
)


def problem_text(check: str, subject: str, detail: str) -> tuple[str, str]:
    """(what is wrong, how to fix it) for a failed check, in the reader's language."""
    if check == "readers":
        return (
            _("no checkpoint reader configured"),
            _("run `compound-gw setup`: its scan, pair and name steps find and name the readers"),
        )
    if check == "reader_secure":
        return (
            _("reader {subject} is not online in Secure Channel").format(subject=subject),
            _(
                "check its power, RS-485 wiring and address, then pair it again: "
                "`compound-gw setup --redo pair`"
            ),
        )
    if check == "reader_tapped":
        return (
            _("reader {subject} was not tapped").format(subject=subject),
            _("tap a wristband on it when asked, or check that it reads cards"),
        )
    if check == "guards":
        return (
            _("no guard enrolled"),
            _("run `compound-gw guards add` or `compound-gw setup --redo guards`"),
        )
    if check == "routes":
        return (
            _("no patrol route"),
            _("run `compound-gw patrol routes add` or `compound-gw setup --redo route`"),
        )
    if check == "schedules":
        return (
            _("no patrol schedule"),
            _("run `compound-gw patrol schedules add` or `compound-gw setup --redo schedule`"),
        )
    if check == "zone":
        return (
            _("zone {subject} failed the click test").format(subject=subject),
            _(
                "check the relay board's power, address and wiring, then "
                "`compound-gw setup --redo relays`"
            ),
        )
    if check == "camera":
        return (
            _("camera {subject} gives no live snapshot").format(subject=subject),
            _("check its address, user and password: `compound-gw setup --redo cameras`"),
        )
    if check == "link":
        return (
            _("the link to the centre is down"),
            _(
                "check the network or 4G modem and the centre address; if this gateway "
                "is not enrolled yet: `compound-gw setup --redo enroll`"
            ),
        )
    if check == "clock":
        return (
            _("the clock is not synchronised"),
            _(
                "connect the gateway to the network so it can reach a time server "
                "(`timedatectl status` shows it); patrol times are not trusted until then"
            ),
        )
    return check, detail


def judge(
    cfg: GatewayConfig,
    readers: list[dict[str, Any]],
    zones: list[dict[str, Any]],
    cameras: list[dict[str, Any]],
    link: dict[str, Any],
    *,
    synced: bool,
    taps: bool,
) -> tuple[dict[str, Any], list[dict[str, str]]]:
    """The patrol-data counts and every failed check as ``{check, subject, detail}``, in
    CHECK_ORDER. A gateway with no guard, route or schedule cannot do patrol work: it fails."""
    patrol = {
        "guards": len(cfg.checkpoints.roster),
        "routes": len(cfg.patrol.routes),
        "schedules": len(cfg.patrol.schedules),
    }
    found: list[dict[str, str]] = []

    def fail(check: str, subject: str = "", detail: str = "") -> None:
        found.append({"check": check, "subject": subject, "detail": detail})

    if not cfg.checkpoints.points:
        fail("readers")
    for r in readers:
        if not r["secure_channel"]:
            fail("reader_secure", r["checkpoint"])
        elif taps and not r["tapped"]:
            fail("reader_tapped", r["checkpoint"])
    for name in ("guards", "routes", "schedules"):
        if patrol[name] == 0:
            fail(name)
    for z in zones:
        if not z["ok"]:
            fail("zone", str(z["zone"]), str(z.get("detail", "")))
    for c in cameras:
        if not c["ok"]:
            fail("camera", c["camera"], str(c.get("detail", "")))
    if cfg.sync.enabled and not link["up"]:
        fail("link", "", str(link.get("detail", "")))
    if not synced:
        fail("clock")
    found.sort(key=lambda f: CHECK_ORDER.index(f["check"]))
    return patrol, found


async def gather_report(
    cfg: GatewayConfig,
    *,
    tap_timeout_s: float,
    taps: bool,
    click_seconds: float,
    daemon: ControlClient | None = None,
) -> dict[str, Any]:
    """Run every check; the report body (unsigned). With ``daemon`` (the running daemon's
    control socket), readers, relays and the clock are checked through it."""
    say(_("checking readers ..."))
    if daemon is None:
        readers = await _readers(cfg, tap_timeout_s, taps)
        say(_("clicking zones ..."))
        zones, boards = await _zones(cfg, click_seconds)
        synced = SystemClock().synced()
    else:
        readers = await _readers_via_daemon(cfg, daemon, tap_timeout_s, taps)
        say(_("clicking zones ..."))
        zones, boards = await _zones_via_daemon(cfg, daemon, click_seconds)
        status = await daemon.call("status")
        synced = bool(status["clock"]["synchronised"])
    say(_("checking cameras ..."))
    cameras = await _cameras(cfg)
    say(_("checking the link to the centre ..."))
    link = await _link(cfg)
    patrol, failures = judge(cfg, readers, zones, cameras, link, synced=synced, taps=taps)
    return {
        "gateway_id": cfg.gateway.id,
        "compound": cfg.gateway.compound,
        "created_at": round(time.time(), 3),
        "through_daemon": daemon is not None,
        "readers": readers,
        "patrol": patrol,
        "zones": zones,
        "boards": boards,
        "cameras": cameras,
        "link": link,
        "clock": {"synchronised": synced},
        "versions": {
            "compound-gateway": _version("compound-gateway"),
            "libosdp": _version("libosdp"),
            "python": sys.version.split()[0],
        },
        "failures": failures,
        "passed": not failures,
    }


def sign_report(cfg: GatewayConfig, body: dict[str, Any]) -> dict[str, Any]:
    """``wire.sign`` envelope with the gateway's key, or the body marked unsigned."""
    from gateway.sync.config import SyncPaths
    from gateway.sync.provision import load_private_key
    from wire import sign

    paths = SyncPaths.from_section(cfg.sync, cfg.data_dir)
    if not paths.key.exists():
        return {"type": REPORT_KIND, "body": body, "key_id": None, "sig": None}
    return sign(REPORT_KIND, body, load_private_key(paths.key))


async def journal_report(cfg: GatewayConfig, envelope: dict[str, Any]) -> int:
    from gateway.journal import Journal

    journal = await Journal.open(
        cfg.journal_path,
        gateway_id=cfg.gateway.id,
        telemetry_budget_bytes=cfg.journal.telemetry_budget_bytes,
        max_group=cfg.journal.max_group,
    )
    try:
        ev = await journal.append(REPORT_KIND, envelope)
    finally:
        await journal.close()
    return ev.seq


def format_report(envelope: dict[str, Any]) -> str:
    """The report as a person reads it: one line per check, then each failure with its fix."""
    b = envelope["body"]
    created = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(b["created_at"]))
    out = [
        _("COMMISSIONING REPORT {gateway} ({compound}) {time}").format(
            gateway=b["gateway_id"], compound=b["compound"], time=created
        )
    ]
    yes, no = _("yes"), _("no")

    def mark(ok: bool | None) -> str:
        return _("ok  ") if ok else (_("--  ") if ok is None else _("FAIL"))

    for r in b["readers"]:
        if r["tapped"] is None:
            tapped = _("not asked")
        else:
            tapped = _("tapped") if r["tapped"] else _("NOT tapped")
        ok = r["secure_channel"] and r["tapped"] is not False
        out.append(
            "  "
            + mark(ok)
            + " "
            + _(
                "reader {checkpoint} ({reader}): secure channel {sc}, {tapped}, firmware {fw}"
            ).format(
                checkpoint=r["checkpoint"],
                reader=r["reader"],
                sc=yes if r["secure_channel"] else no,
                tapped=tapped,
                fw=r["firmware"] or "?",
            )
        )
    patrol = b.get("patrol", {})
    for name, label in (
        ("guards", _("guards enrolled: {n}")),
        ("routes", _("patrol routes: {n}")),
        ("schedules", _("patrol schedules: {n}")),
    ):
        n = int(patrol.get(name, 0))
        out.append(f"  {mark(n > 0)} " + label.format(n=n))
    for z in b["zones"]:
        out.append(
            f"  {mark(z['ok'])} "
            + _("zone {zone}: on {on}, off {off}").format(
                zone=z["zone"],
                on=_("verified") if z["on"] else _("FAILED"),
                off=_("verified") if z["off"] else _("FAILED"),
            )
        )
    for bd in b["boards"]:
        out.append(
            "  "
            + _("info")
            + " "
            + _("relay board {board} ({profile}), firmware {fw}").format(
                board=bd["board"], profile=bd["profile"], fw=bd["firmware"] or "?"
            )
        )
    for c in b["cameras"]:
        line = _("camera {camera}: snapshot {size} bytes in {ms:.0f} ms").format(
            camera=c["camera"], size=c["snapshot_bytes"], ms=c["elapsed_ms"]
        )
        out.append(f"  {mark(c['ok'])} {line}" + (f" ({c['detail']})" if c["detail"] else ""))
    link = b["link"]
    applicable = link["detail"] not in ("not provisioned", "sync disabled in the config")
    link_words = {
        "not provisioned": _("not enrolled yet"),
        "sync disabled in the config": _("sync is off in the config"),
    }
    out.append(
        f"  {mark(link['up'] if applicable else None)} "
        + _("link to the centre: {detail}").format(
            detail=link_words.get(link["detail"], link["detail"])
        )
    )
    synced = b["clock"]["synchronised"]
    out.append(
        f"  {mark(synced)} "
        + _("clock synchronised: {answer}").format(answer=yes if synced else no)
    )
    v = b["versions"]
    out.append(
        "  "
        + _("info")
        + " "
        + _("versions: compound-gateway {gw}, libosdp {osdp}, python {py}").format(
            gw=v["compound-gateway"], osdp=v["libosdp"], py=v["python"]
        )
    )
    for n, f in enumerate(b["failures"], 1):
        what, fix = problem_text(f["check"], f["subject"], f["detail"])
        shown = link_words.get(f["detail"], f["detail"])
        detail = f" ({shown})" if shown else ""
        out.append("  " + _("failure {n}: {what}{detail}").format(n=n, what=what, detail=detail))
        out.append("      " + _("fix: {fix}").format(fix=fix))
    out.append(_("RESULT: PASS") if b["passed"] else _("RESULT: FAIL"))
    if envelope["sig"]:
        out.append(
            _("signed by gateway key {key_id}: {sig}").format(
                key_id=envelope["key_id"], sig=envelope["sig"]
            )
        )
    else:
        out.append(_("UNSIGNED: this gateway has no key yet (enroll with `compound-gw provision`)"))
    return "\n".join(out)


def run_selftest(
    config: Path,
    *,
    tap_timeout_s: float = 120.0,
    taps: bool = True,
    click_seconds: float = 1.0,
    report_path: Path | None = None,
    as_json: bool = False,
) -> int:
    """Every check, the signed report printed and journaled; 0 when everything passed.

    With the daemon running, the readers, relays, clock and the journal are reached through
    its control socket (``gateway.control``); without it, selftest opens the devices itself.
    """
    cfg = load_config(config)
    set_language(choose_language(cfg.gateway.language))
    runtime_dir = cfg.path(cfg.gateway.runtime_dir)
    pid = running_daemon_pid(runtime_dir / "status.json", time.time())

    async def alone() -> tuple[dict[str, Any], int]:
        body = await gather_report(
            cfg, tap_timeout_s=tap_timeout_s, taps=taps, click_seconds=click_seconds
        )
        envelope = sign_report(cfg, body)
        return envelope, await journal_report(cfg, envelope)

    async def through_daemon() -> tuple[dict[str, Any], int]:
        async with ControlClient(socket_path(runtime_dir), timeout=DAEMON_TIMEOUT_S) as ctl:
            body = await gather_report(
                cfg,
                tap_timeout_s=tap_timeout_s,
                taps=taps,
                click_seconds=click_seconds,
                daemon=ctl,
            )
            envelope = sign_report(cfg, body)
            reply = await ctl.call("report", envelope=envelope)
            return envelope, int(reply["seq"])

    if pid is not None:
        say(_("the daemon is running (pid {pid}): checking through it").format(pid=pid))
    else:
        say(
            _(
                "the daemon is not running: checking the devices directly "
                "(start it afterwards: sudo systemctl start compound-gw)"
            )
        )
    try:
        envelope, seq = asyncio.run(through_daemon() if pid is not None else alone())
    except ControlError as exc:
        say(
            _(
                "the daemon is running (pid {pid}) but does not answer on its control socket "
                "({reason}): restart it (sudo systemctl restart compound-gw) and run selftest again"
            ).format(pid=pid, reason=exc.reason)
        )
        return 1
    except OSError as exc:
        say(_("cannot open a device: {error} (is the daemon running?)").format(error=exc))
        return 1
    text = json.dumps(envelope, indent=2, sort_keys=True, ensure_ascii=False)
    if report_path is not None:
        report_path.write_text(text + "\n")
    say(text if as_json else format_report(envelope))
    say(
        _("report journaled (number {seq}); it reaches the centre with the next upload").format(
            seq=seq
        )
    )
    return 0 if envelope["body"]["passed"] else 1
