"""Everything the factory builds, from a parsed [health] section, running together on the bench."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from gpiozero.pins.mock import MockFactory

from gateway.clock import SystemClock
from gateway.config.schema import parse_section
from gateway.health.config import HealthSection
from gateway.health.hub import HealthHub
from gateway.health.model import State
from gateway.health.services import (
    CameraMonitor,
    GpioMonitor,
    ModemMonitor,
    SelfMonitor,
    SnapshotService,
    build_services,
)
from hil_tests.sims.camera import CameraSim
from hil_tests.sims.modem import ModemSim
from tests.health.helpers import events_of, open_journal, running, wait_until, write_password

ROOT = Path(__file__).resolve().parents[1]


async def test_factory_wires_every_service(tmp_path: Path) -> None:
    write_password(tmp_path, "cams", "pw")
    factory = MockFactory()
    async with (
        CameraSim("gate", password="pw") as gate,
        CameraSim("yard", auth="none") as yard,
        ModemSim(tmp_path / "ttyModem") as modem,
        open_journal(tmp_path) as journal,
    ):
        section = parse_section(
            HealthSection,
            {
                "cameras": [
                    {"name": "gate", "snapshot_url": gate.snapshot_url, "rtsp_url": gate.rtsp_url,
                     "username": "admin", "password_file": "cams.pass", "interval_s": 0.1},
                    {"name": "yard", "snapshot_url": yard.snapshot_url, "auth": "none",
                     "interval_s": 0.1},
                ],
                "snapshot_triggers": [{"kind": "tap", "field": "checkpoint", "equals": "gate",
                                       "cameras": ["gate", "yard"]}],
                "modem": {"port": str(modem.path), "interval_s": 0.1},
                "gpio": {"tamper_pin": 17, "led_pin": 27, "bounce_s": 0},
                "system": {"interval_s": 0.1, "require_clock_sync": False,
                           "disk_warn_bytes": 0, "disk_crit_bytes": 0},
            },
            "health",
        )  # fmt: skip
        services = build_services(
            section, journal, SystemClock(), None, base_dir=tmp_path,
            data_dir=tmp_path / "data", pin_factory=factory,
        )  # fmt: skip
        kinds = [type(s) for s in services]
        assert kinds == [
            HealthHub, CameraMonitor, CameraMonitor, SnapshotService, ModemMonitor, SelfMonitor,
            GpioMonitor,
        ]  # fmt: skip
        assert len({s.name for s in services}) == len(services)  # supervisor needs unique names
        hub = services[0]
        assert isinstance(hub, HealthHub)
        async with running(*services):
            await wait_until(lambda: hub.model.get("cabinet") is not None, what="GPIO set up")
            factory.pin(17).drive_low()  # cabinet shut
            expected = {"gate", "yard", "modem", "gateway", "cabinet"}

            def all_ok() -> bool:
                return all(
                    (h := hub.model.get(d)) is not None and h.state is State.OK for d in expected
                )

            await wait_until(all_ok, timeout=8, what="every device ok")
            tap = await journal.append("tap", {"checkpoint": "gate", "guard": "g-1"})
            await wait_until(lambda: services[3].taken == 2, what="two snapshots")  # type: ignore[attr-defined]
            await hub.flush()
        shots = await events_of(journal, "camera.snapshot")
        assert {e.payload["camera"] for e in shots} == {"gate", "yard"}
        assert all(e.payload["trigger_seq"] == tap.seq for e in shots)
        assert sorted(p.name for p in (tmp_path / "data" / "media").iterdir()) == sorted(
            e.payload["file"] for e in shots
        )
    factory.reset()
    factory.close()


@pytest.mark.slow
def test_steady_state_soak_is_quiet() -> None:
    """A short accelerated soak: no crash, no state flapping, samples stay few."""
    out = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "health_soak.py"), "--seconds", "20", "--json"],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    r = json.loads(out.stdout)
    assert r["child_exit"] == 0
    states = r["device_states_at_end"]
    assert all(states[f"cam{i}"].startswith("ok") for i in range(8))
    assert states["modem"].startswith("ok")
    per_kind = r["journal_rows_per_hour_by_kind"]
    assert per_kind.get("evidence/health.state", 0) == 0  # steady: no state changes at all
    # 10 devices, a heartbeat every 15 min: ~40 rows/h; noise on a shared host adds a little.
    assert r["journal_rows_per_hour"] < 150
