"""The wizard's and selftest's checks say no when they should, without leaking a secret.

* selftest on the simulated compound's own config with one reader never tapped and one relay
  welded: exit 1, the report names both, it is unsigned (not provisioned) and journaled;
* selftest beside the running daemon works through its control socket (a hostile client
  on the socket first changes nothing): taps, clicks by the daemon's own controller, PASS;
* the camera step with a wrong password fails (the fault named, the password nowhere), and
  after the answer is fixed the wizard resumes at the cameras step and writes the config.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import stat
import time
from pathlib import Path

from gateway.config import load_config
from gateway.control import CONTROL_SOCKET, MAX_LINE_BYTES
from gateway.setup.answers import parse_answers
from gateway.setup.state import StateFile
from gateway.setup.wizard import Wizard
from hil_tests.benchfile import Bench
from hil_tests.compound import SimCompound
from hil_tests.harness import DaemonProcess
from hil_tests.sims.camera import CameraSim
from hil_tests.sims.osdp_reader import journal_events
from hil_tests.test_setup_wizard import run_tool


async def test_selftest_reports_untapped_reader_and_welded_relay(
    bench: Bench, tmp_path: Path
) -> None:
    compound = SimCompound(bench, tmp_path / "sim").start()
    try:
        untapped = bench.readers[-1].name
        zone, board, channel = compound.zone_channels()[-1]
        compound.board(board).stuck = {channel}
        argv = [
            "selftest",
            "--config",
            str(compound.config_path),
            "--click-seconds",
            "0.3",
            "--tap-timeout",
            # Long enough for a tap to cross a loaded machine (3 s was missed under CPU load);
            # only the untapped reader waits it out.
            "10",
        ]
        rc, out = await asyncio.to_thread(run_tool, argv, compound, skip_taps=frozenset({untapped}))
        text = "\n".join(out)
        assert rc == 1, text
        assert "RESULT: FAIL" in out
        failures = [line for line in out if line.startswith("  failure ")]
        assert any(line.endswith(f": reader {untapped} was not tapped") for line in failures)
        assert any(line.endswith(f": zone {zone} failed the click test") for line in failures)
        assert "UNSIGNED: this gateway has no key yet" in text
        (event,) = journal_events(compound.journal_path, "commissioning.report")
        body = event.payload["body"]
        assert event.payload["sig"] is None
        assert body["passed"] is False
        tapped = {r["checkpoint"]: r["tapped"] for r in body["readers"]}
        assert tapped == {r.name: r.name != untapped for r in bench.readers}
    finally:
        compound.stop()


def _state_up_to_relays(path: Path) -> StateFile:
    state = StateFile.load(path)
    state.finish("ports", {"found": [], "ports": []})
    state.finish("scan", {"buses": []})
    state.finish("pair", {"readers": {}})
    state.finish("name", {"points": []})
    state.finish("relays", {"zones": []})
    return state


async def test_camera_step_refuses_wrong_password_then_resumes(tmp_path: Path) -> None:
    async with CameraSim("gate", username="admin", password="right-horse-battery") as cam:
        wrong = tmp_path / "wrong.pass"
        wrong.write_text("wrong-staple-77\n")
        right = tmp_path / "right.pass"
        right.write_text("right-horse-battery\n")
        config = tmp_path / "site" / "gateway.toml"
        state_path = tmp_path / "site" / "state.json"

        def answers(password_file: Path) -> object:
            return parse_answers(
                {
                    "gateway": {
                        "id": "gw-cam-01",
                        "compound": "Cam",
                        "data_dir": "data",
                        "runtime_dir": "run",
                    },
                    "cameras": [
                        {
                            "name": "gate",
                            "snapshot_url": cam.snapshot_url,
                            "rtsp_url": cam.rtsp_url,
                            "auth": "digest",
                            "username": "admin",
                            "password_file": str(password_file),
                        }
                    ],
                    "enroll": {"skip": True},
                },
                tmp_path,
            )

        # As root (the installer runs setup with sudo) the secrets go to the daemon's user.
        owner = (65534, 65534) if os.geteuid() == 0 else None

        def run(password_file: Path) -> tuple[int, str]:
            out = io.StringIO()
            wizard = Wizard(
                answers(password_file),  # type: ignore[arg-type]
                config_path=config,
                state=StateFile.load(state_path),
                out=out,
                owner=owner,
            )
            return wizard.run(), out.getvalue()

        _state_up_to_relays(state_path)
        rc, out = await asyncio.to_thread(run, wrong)
        assert rc == 1, out
        assert "step cameras: FAILED: camera gate: live snapshot failed (auth" in out
        assert "wrong-staple-77" not in out
        assert not config.exists()

        rc, out = await asyncio.to_thread(run, right)
        assert rc == 0, out
        assert "step relays: done earlier, skipped" in out
        assert "right-horse-battery" not in out + state_path.read_text() + config.read_text()
        cfg = load_config(config)
        (camera,) = cfg.health.cameras
        secret = cfg.path(camera.password_file)
        assert secret.read_text() == "right-horse-battery"
        assert stat.S_IMODE(secret.stat().st_mode) == 0o600
        if owner is not None:
            assert (secret.stat().st_uid, secret.stat().st_gid) == owner
            assert (config.stat().st_uid, config.stat().st_gid) == (0, owner[1])
            assert stat.S_IMODE(config.stat().st_mode) == 0o640
        assert cfg.checkpoints.points == () and not cfg.sync.enabled


async def test_selftest_through_the_running_daemon(bench: Bench, tmp_path: Path) -> None:
    """The daemon keeps its devices: selftest asks it (control socket) to click the zones and
    report the readers and the clock, watches its tap events, and has it journal the report.
    A hostile client on the socket before that changes nothing."""
    compound = SimCompound(bench, tmp_path / "sim", sync_keys=("enabled = false",)).start()
    now = time.time()
    # A bench clock at real speed: the daemon's clock counts as synchronised (this machine's
    # own clock may not be), so the report can pass.
    daemon = DaemonProcess(
        compound.config_path,
        env={"GPIOZERO_PIN_FACTORY": "mock"},
        args=("--sim-clock", f"{now}@{now}", "--sim-rate", "1"),
    )
    try:
        await asyncio.to_thread(daemon.start)
        sock = compound.folder / compound.runtime_dir / CONTROL_SOCKET
        deadline = time.monotonic() + 30
        while not sock.exists():  # the control service starts with the others, around READY
            assert time.monotonic() < deadline, "no control socket 30 s after READY"
            await asyncio.sleep(0.05)
        assert stat.S_IMODE(sock.stat().st_mode) == 0o660
        reader, writer = await asyncio.open_unix_connection(str(sock))
        writer.write(b"\x00\xff garbage\n" + b"[" * (MAX_LINE_BYTES + 10) + b"\n")
        await writer.drain()
        replies = [json.loads(await asyncio.wait_for(reader.readline(), 30)) for _ in range(2)]
        writer.close()
        await writer.wait_closed()
        assert [r["error"]["code"] for r in replies] == ["bad_json", "too_long"]

        argv = ["selftest", "--config", str(compound.config_path), "--click-seconds", "0.3"]
        rc, out = await asyncio.to_thread(run_tool, [*argv, "--tap-timeout", "20"], compound)
        text = "\n".join(out)
        assert rc == 0, text
        assert any(line.startswith("the daemon is running (pid ") for line in out), text
        assert "RESULT: PASS" in out
        assert daemon.proc is not None and daemon.proc.poll() is None, "the daemon died"
        (event,) = journal_events(compound.journal_path, "commissioning.report")
        body = event.payload["body"]
        assert body["through_daemon"] is True and body["passed"] is True
        assert [r["tapped"] for r in body["readers"]] == [True] * len(bench.readers)
        assert len(body["zones"]) == len(compound.zone_channels())
        assert all(z["on"] and z["off"] for z in body["zones"])
        clicks = [
            e for e in journal_events(compound.journal_path, "broadcast.requested")
            if e.payload.get("source") == "cli" and e.payload.get("status") == "Test"
        ]  # fmt: skip
        assert len(clicks) == len(compound.zone_channels()), "the daemon's controller clicked"
        log = daemon.log_path.read_text()
        assert "control request refused" in log and "Traceback" not in log
    finally:
        daemon.close()
        compound.stop()
