"""``compound-gw setup`` end to end on the simulated compound, then the daemon, then selftest.

One scripted installation (answers file) against SimCompound's simulators and a real centre
on loopback TLS:

1. the wizard is SIGKILLed right after it paired the first reader (mid-step), and run again:
   it resumes from its state file (ports and scan skipped, the first reader not paired twice);
2. the bus scan found exactly the bench's readers and boards at their addresses;
3. naming: the test taps each simulated reader when the wizard asks (``@@setup tap-wanted``);
4. the written config (old one kept as .bak) starts the real daemon: READY, and every reader
   online in Secure Channel with the keys the wizard set;
5. ``selftest``, through the running daemon, fails while there is no guard, route or schedule
   (issue 15), then passes once they are there, and the daemon journals its signed
   ``commissioning.report``;
6. no token, reader key, camera password or private key shows in any output, log, state or config.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import stat
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable
from pathlib import Path

import tomli_w

from gateway.config import load_config
from gateway.sync.provision import load_private_key
from hil_tests.benchfile import Bench
from hil_tests.compound import CAMERA_PASSWORD, SimCompound
from hil_tests.harness import DaemonProcess
from hil_tests.sims.osdp_reader import journal_events
from tests.sync.conftest import Centre, centre, centre_dir  # noqa: F401 - fixtures
from wire import verify

REPO = Path(__file__).resolve().parents[1]
WRISTBAND = "04a1b2c3d4e5f6"


def add_patrol_data(config: Path, bench: Bench) -> None:
    """Give the config a guard (the wristband this test taps), a route over every reader and a
    schedule, as `compound-gw guards add` and `patrol routes|schedules add` would."""
    data = tomllib.loads(config.read_text())
    data["checkpoints"]["roster"] = [{"wristband": WRISTBAND, "guard": "g-001"}]
    patrol = data.setdefault("patrol", {})
    points = [r.name for r in bench.readers]
    patrol["routes"] = [{"id": "perimeter", "checkpoints": points, "ordered": False}]
    patrol["schedules"] = [
        {"id": "night", "route": "perimeter", "every_hours": 2.0, "start": "22:00", "end": "06:00"}
    ]
    config.write_text(tomli_w.dumps(data))


def answers_text(compound: SimCompound, centre_url: str, fingerprint: str, token_file: Path) -> str:
    """What an installer would answer for this bench (the sims' current keys are 'given')."""
    assert compound.lines is not None
    bench = compound.bench
    out = [
        "tap_timeout_s = 30.0",
        "[gateway]",
        'id = "gw-setup-01"',
        'compound = "Rose Garden"',
        'township = "North"',
        'data_dir = "data"',
        'runtime_dir = "run"',
    ]
    for line in bench.lines:
        if line.kind == "rs485":
            out += [
                "[[ports]]",
                f'path = "{compound.lines.host_path(line.name)}"',
                f'name = "{line.name}"',
                f"baud = {line.baud}",
            ]
    for r in bench.readers:
        out += [
            "[[pairing.current_keys]]",
            f'reader = "{r.line}/{r.address}"',
            f'key_file = "{compound.folder / "keys" / f"{r.name}.scbk"}"',
        ]
    for r in bench.readers:
        out += ["[[checkpoints]]", f'id = "{r.name}"', f'name = "{r.name.title()}"']
    out += [
        "[relays]",
        f'amplifier = "{bench.relay_boards[0].name}/0"',
        "warmup_s = 0.2",
        "click_seconds = 0.3",
    ]
    for b in bench.relay_boards:
        out += ["[[relays.boards]]", f'at = "{b.line}/{b.address}"', f'name = "{b.name}"']
    for number, board, ch in compound.zone_channels():
        out += ["[[relays.zones]]", f"number = {number}", f'board = "{board}"', f"channel = {ch}"]
    for c in bench.cameras:
        cam = compound.cameras[c.name]
        out += [
            "[[cameras]]",
            f'name = "{c.name}"',
            f'snapshot_url = "{cam.snapshot_url}"',
            f'rtsp_url = "{cam.rtsp_url}"',
            f'auth = "{c.auth}"',
            f'username = "{c.username}"',
            f'password_file = "{compound.folder / "keys" / f"{c.name}.password"}"',
        ]
    out += [
        "[enroll]",
        f'centre_url = "{centre_url}"',
        f'token_file = "{token_file}"',
        f'ca_fingerprint = "sha256:{fingerprint}"',
    ]
    # Test daemons: loopback web on a free port, quick restarts.
    out += [
        "[config.web]",
        'host = "127.0.0.1"',
        "port = 0",
        "[config.supervisor]",
        "backoff_initial_s = 0.05",
        "backoff_max_s = 1.0",
    ]
    return "\n".join(out) + "\n"


def run_tool(
    argv: list[str],
    compound: SimCompound,
    *,
    kill_on: str | None = None,
    timeout: float = 120,
    skip_taps: frozenset[str] = frozenset(),
) -> tuple[int, list[str]]:
    """Run ``python -m gateway.setup ARGV``; tap the reader the tool asks for; SIGKILL it at
    the first line starting with ``kill_on``; never tap the checkpoints in ``skip_taps``.
    Returns (exit code, output lines)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway.setup", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))
            if line.startswith("@@setup tap-wanted ") and line.split()[2] not in skip_taps:
                compound.reader(line.split()[2]).tap(WRISTBAND)
            if kill_on is not None and line.startswith(kill_on):
                proc.send_signal(signal.SIGKILL)
                break
            assert time.monotonic() < deadline, "tool took too long:\n" + "\n".join(lines)
        rc = proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()
    return rc, lines


def wait_for(check: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.2)
    return check()


def readers_table(status: Path) -> dict[str, dict[str, object]]:
    try:
        board = json.loads(status.read_text())
    except (OSError, ValueError):
        return {}
    return {r["reader"]: r for r in board.get("readers", {}).get("readers", [])}


async def test_setup_end_to_end(bench: Bench, tmp_path: Path, centre: Centre) -> None:  # noqa: F811
    compound = SimCompound(bench, tmp_path / "sim").start()
    daemon: DaemonProcess | None = None
    try:
        site = tmp_path / "site"
        site.mkdir()
        config = site / "gateway.toml"
        config.write_text("# the installer's old config\n")
        token = await centre.token("Rose Garden", township="North")
        token_file = site / "token"
        token_file.write_text(token + "\n")
        token_file.chmod(0o600)
        answers = site / "answers.toml"
        answers.write_text(answers_text(compound, centre.url, centre.fingerprint, token_file))
        argv = ["setup", "--config", str(config), "--answers", str(answers)]

        # 1. interrupted in the middle of pairing, then resumed
        t0 = time.monotonic()
        rc1, out1 = await asyncio.to_thread(
            run_tool, argv, compound, kill_on="@@setup paired readers-a/1"
        )
        first_run_s = time.monotonic() - t0
        assert rc1 == -signal.SIGKILL, out1
        state = json.loads((site / "gateway.toml.setup-state.json").read_text())
        assert set(state["steps"]) == {"ports", "scan"}
        assert set(state["partial"]["pair"]) == {"readers-a/1"}
        first = {(r.line, r.address): r for r in bench.readers}
        keys_before = {k: len(compound.reader(r.name).keys_received) for k, r in first.items()}
        assert keys_before[("readers-a", 1)] == 1

        rc2, out2 = await asyncio.to_thread(run_tool, argv, compound)
        assert rc2 == 0, "\n".join(out2)
        assert "step ports: done earlier, skipped" in out2
        assert "step scan: done earlier, skipped" in out2
        assert "  readers-a/1: paired earlier" in out2
        assert not any(": OSDP: " in line or ": Modbus: " in line for line in out2), "rescanned"
        keys_after = {k: len(compound.reader(r.name).keys_received) for k, r in first.items()}
        assert keys_after[("readers-a", 1)] == 1, "the first reader was paired twice"
        assert all(keys_after[k] == 1 for k in first), keys_after

        # 2. the scan found exactly the bench
        state = json.loads((site / "gateway.toml.setup-state.json").read_text())
        buses = state["steps"]["scan"]["result"]["buses"]
        found_readers = {(b["name"], r["address"]) for b in buses for r in b["readers"]}
        found_boards = {(b["name"], d["address"], d["profile"]) for b in buses for d in b["boards"]}
        assert found_readers == set(first)
        assert found_boards == {(b.line, b.address, b.profile) for b in bench.relay_boards}
        assert all(r["secure_channel"] for b in buses for r in b["readers"])

        # 3. naming by tapping; the config is valid and the old one kept
        cfg = load_config(config)
        assert {p.id: (p.bus, p.address) for p in cfg.checkpoints.points} == {
            r.name: (r.line, r.address) for r in bench.readers
        }
        assert (site / "gateway.toml.bak").read_text() == "# the installer's old config\n"
        assert [z.number for z in cfg.broadcast.zones] == [
            z for z, _, _ in compound.zone_channels()
        ]
        assert cfg.sync.enabled and cfg.sync.centre_url == centre.url
        for f in [*(site / "keys").iterdir(), site / "data" / "sync" / "gateway-key.pem"]:
            assert stat.S_IMODE(f.stat().st_mode) == 0o600, f
        relays = state["steps"]["relays"]["result"]["zones"]
        assert [z["zone"] for z in relays if z["on"] and z["off"]] == [
            z.number for z in cfg.broadcast.zones
        ]

        # 4. the real daemon starts on it; every reader online in Secure Channel. Its clock is a
        # bench clock at real speed, synchronised by definition (this machine's may not be).
        now = time.time()
        daemon = DaemonProcess(
            config,
            env={"GPIOZERO_PIN_FACTORY": "mock"},
            args=("--sim-clock", f"{now}@{now}", "--sim-rate", "1"),
        )
        await asyncio.to_thread(daemon.start)
        status = site / "run" / "status.json"
        ids = [f"{r.line}/{r.address}" for r in bench.readers]

        def all_secure() -> bool:
            table = readers_table(status)
            return all(table.get(i, {}).get("online") and table[i].get("sc_active") for i in ids)

        assert await asyncio.to_thread(wait_for, all_secure, 30), readers_table(status)
        selftest = ["selftest", "--config", str(config), "--click-seconds", "0.3"]
        # Issue 15: this config has readers, zones, cameras and a link but no guard, route or
        # schedule; selftest (through the running daemon) fails and says how to add each.
        rc, out = await asyncio.to_thread(run_tool, [*selftest, "--tap-timeout", "20"], compound)
        assert rc == 1 and any(line.startswith("the daemon is running") for line in out), out
        assert "RESULT: FAIL" in out
        failures = [line.strip() for line in out if line.startswith("  failure ")]
        assert failures == [
            "failure 1: no guard enrolled",
            "failure 2: no patrol route",
            "failure 3: no patrol schedule",
        ], out
        add_patrol_data(config, bench)

        # 5. selftest through the daemon: signed report, journaled by the daemon
        rc3, out3 = await asyncio.to_thread(
            run_tool,
            ["selftest", "--config", str(config), "--click-seconds", "0.3", "--tap-timeout", "20"],
            compound,
        )
        assert rc3 == 0, "\n".join(out3)
        assert "RESULT: PASS" in out3
        assert await asyncio.to_thread(daemon.terminate) == 0
        reports = journal_events(cfg.journal_path, "commissioning.report")
        assert len(reports) == 2
        envelope = reports[-1].payload
        body = envelope["body"]
        assert all(r["tapped"] and r["secure_channel"] for r in body["readers"])
        assert len(body["readers"]) == len(bench.readers)
        assert all(z["ok"] for z in body["zones"]) and len(body["zones"]) == len(relays)
        assert all(c["ok"] for c in body["cameras"]) and len(body["cameras"]) == 2
        assert body["link"]["up"] is True
        # Through the daemon the readers' firmware is not asked (its bus is busy polling):
        # hil_tests/test_setup_checks.py sees it when selftest opens the ports itself.
        assert body["through_daemon"] is True
        key = load_private_key(site / "data" / "sync" / "gateway-key.pem")
        verify("commissioning.report", body, base64.b64decode(envelope["sig"]), key.public_key())

        # 6. no secret anywhere it could leak
        secrets_ = [token]
        secrets_ += [f.read_text().strip() for f in (site / "keys").glob("*.scbk")]
        secrets_ += [CAMERA_PASSWORD.format(name=c.name) for c in bench.cameras]
        pem = (site / "data" / "sync" / "gateway-key.pem").read_text().splitlines()
        secrets_ += [line for line in pem if line and not line.startswith("-----")]
        texts = {
            "wizard run 1": "\n".join(out1),
            "wizard run 2": "\n".join(out2),
            "selftest": "\n".join(out3),
            "state": (site / "gateway.toml.setup-state.json").read_text(),
            "config": config.read_text(),
            "daemon log": daemon.log_path.read_text(),
            "report": json.dumps(envelope),
        }
        for name, text in texts.items():
            for s in secrets_:
                assert s not in text, f"a secret leaked into the {name}"
        print(f"\nfirst run to the kill (scan included): {first_run_s:.1f} s")
    finally:
        if daemon is not None:
            daemon.close()
        compound.stop()
