"""The wizard's and selftest's checks say no when they should, without leaking a secret.

* selftest on the simulated compound's own config with one reader never tapped and one relay
  welded: exit 1, the report names both, it is unsigned (not provisioned) and journaled;
* the camera step with a wrong password fails (the fault named, the password nowhere), and
  after the answer is fixed the wizard resumes at the cameras step and writes the config.
"""

from __future__ import annotations

import asyncio
import io
import os
import stat
from pathlib import Path

from gateway.config import load_config
from gateway.setup.answers import parse_answers
from gateway.setup.state import StateFile
from gateway.setup.wizard import Wizard
from hil_tests.benchfile import Bench
from hil_tests.compound import SimCompound
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
            "3",
        ]
        rc, out = await asyncio.to_thread(run_tool, argv, compound, skip_taps=frozenset({untapped}))
        text = "\n".join(out)
        assert rc == 1, text
        assert "RESULT: FAIL" in out
        assert f"  failure: reader {untapped} not tapped" in out
        assert f"  failure: zone {zone} failed the click test" in out
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
