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

from gateway.checkpoints.config import load_reader_key
from gateway.clock import SystemClock
from gateway.config import load_config
from gateway.config.model import GatewayConfig
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
                say(f"  tap a wristband on {p.id} ({p.name or p.bus + '/' + str(p.address)}) ...")
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
                        say(f"  {p.id}: tap seen")
                        break
                    other = by_reader.get(got)
                    say(f"  that was {other.id if other else got}, not {p.id}: tap {p.id}")
                    await session.feedback(got, ok=False)
                if not row["tapped"]:
                    say(f"  {p.id}: no tap within {tap_timeout_s:.0f} s")
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


async def _cameras(cfg: GatewayConfig) -> list[dict[str, Any]]:
    from gateway.health.config import read_password_file

    out = []
    for i, cam in enumerate(cfg.health.cameras):
        password = ""
        if cam.password_file:
            password = read_password_file(
                cfg.path(cam.password_file), f"health.cameras[{i}].password_file"
            )
        c = await check_camera(
            cam.name,
            cam.snapshot_url,
            cam.rtsp_url,
            cam.auth,
            cam.username,
            password,
            timeout=cam.timeout_s,
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


async def gather_report(
    cfg: GatewayConfig, *, tap_timeout_s: float, taps: bool, click_seconds: float
) -> dict[str, Any]:
    """Run every check; the report body (unsigned)."""
    clock = SystemClock()
    say("checking readers ...")
    readers = await _readers(cfg, tap_timeout_s, taps)
    say("clicking zones ...")
    zones, boards = await _zones(cfg, click_seconds)
    say("checking cameras ...")
    cameras = await _cameras(cfg)
    say("checking the link to the centre ...")
    link = await _link(cfg)
    synced = clock.synced()
    failures = []
    for r in readers:
        if not r["secure_channel"]:
            failures.append(f"reader {r['checkpoint']} not online in Secure Channel")
        elif taps and not r["tapped"]:
            failures.append(f"reader {r['checkpoint']} not tapped")
    failures += [f"zone {z['zone']} failed the click test" for z in zones if not z["ok"]]
    failures += [f"camera {c['camera']} unreachable" for c in cameras if not c["ok"]]
    if cfg.sync.enabled and not link["up"]:
        failures.append(f"link to the centre down ({link['detail']})")
    warnings = [] if synced else ["clock not synchronised (NTP): evidence times are flagged"]
    return {
        "gateway_id": cfg.gateway.id,
        "compound": cfg.gateway.compound,
        "created_at": round(time.time(), 3),
        "readers": readers,
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
        "warnings": warnings,
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
    b = envelope["body"]
    out = [
        f"COMMISSIONING REPORT {b['gateway_id']} ({b['compound']}) "
        f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(b['created_at']))}"
    ]

    def mark(ok: bool | None) -> str:
        return "ok  " if ok else ("--  " if ok is None else "FAIL")

    for r in b["readers"]:
        tapped = "tapped" if r["tapped"] else ("not asked" if r["tapped"] is None else "NOT tapped")
        ok = r["secure_channel"] and r["tapped"] is not False
        out.append(
            f"  {mark(ok)} reader {r['checkpoint']:<16} {r['reader']:<14} secure channel "
            f"{'yes' if r['secure_channel'] else 'NO'}, {tapped}, firmware "
            f"{r['firmware'] or '?'}"
        )
    for z in b["zones"]:
        out.append(
            f"  {mark(z['ok'])} zone {z['zone']:<3} on {'verified' if z['on'] else 'FAILED'}"
            f", off {'verified' if z['off'] else 'FAILED'}"
        )
    for bd in b["boards"]:
        out.append(f"  info board {bd['board']} ({bd['profile']}) firmware {bd['firmware'] or '?'}")
    for c in b["cameras"]:
        out.append(
            f"  {mark(c['ok'])} camera {c['camera']:<14} snapshot {c['snapshot_bytes']} bytes"
            f" in {c['elapsed_ms']:.0f} ms" + (f" ({c['detail']})" if c["detail"] else "")
        )
    link = b["link"]
    applicable = link["detail"] not in ("not provisioned", "sync disabled in the config")
    out.append(f"  {mark(link['up'] if applicable else None)} link to the centre: {link['detail']}")
    synced = b["clock"]["synchronised"]
    out.append(f"  {'ok  ' if synced else 'warn'} clock synchronised: {'yes' if synced else 'no'}")
    v = b["versions"]
    out.append(
        f"  info versions: compound-gateway {v['compound-gateway']}, libosdp {v['libosdp']}, "
        f"python {v['python']}"
    )
    for w in b["warnings"]:
        out.append(f"  warning: {w}")
    for f in b["failures"]:
        out.append(f"  failure: {f}")
    out.append("RESULT: " + ("PASS" if b["passed"] else "FAIL"))
    if envelope["sig"]:
        out.append(f"signed by gateway key {envelope['key_id']}: {envelope['sig']}")
    else:
        out.append("UNSIGNED: this gateway has no key yet (enroll with `compound-gw provision`)")
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
    cfg = load_config(config)
    pid = running_daemon_pid(cfg.path(cfg.gateway.runtime_dir) / "status.json", time.time())
    if pid is not None:
        say(
            f"the daemon is running (pid {pid}) and holds the devices and the journal: stop it "
            "first (sudo systemctl stop compound-gw), run selftest, then start it again"
        )
        return 1

    async def main() -> tuple[dict[str, Any], int]:
        body = await gather_report(
            cfg, tap_timeout_s=tap_timeout_s, taps=taps, click_seconds=click_seconds
        )
        envelope = sign_report(cfg, body)
        seq = await journal_report(cfg, envelope)
        return envelope, seq

    try:
        envelope, seq = asyncio.run(main())
    except OSError as exc:
        say(f"cannot open a device: {exc} (is the daemon running? stop it first)")
        return 1
    text = json.dumps(envelope, indent=2, sort_keys=True)
    if report_path is not None:
        report_path.write_text(text + "\n")
    say(text if as_json else format_report(envelope))
    say(f"journaled as {REPORT_KIND} (seq {seq}); it reaches the centre with the next upload")
    return 0 if envelope["body"]["passed"] else 1
