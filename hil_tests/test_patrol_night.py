"""Issue 6's HIL scenario: a night of patrols through the real daemon, at accelerated time.

The real ``compound-gw run`` on the simulated compound (four OSDP readers on two paced
9600-baud buses) runs on a bench clock 600 times faster than real time (``--sim-clock``); the
test shares the same mapping, so "02:40" is a known real instant. Rounds every 2 h from 22:00 to
06:00 over all four checkpoints. The guard:

- 22:00 round: taps all four → completed;
- 00:00 round: skips car-park → incomplete;
- 02:00 round: starts at 02:40 (grace 15 min) → late;
- 04:00 round: bus B (south-gate, car-park) unplugged from 03:40 to 04:40, the guard taps
  north-gate and block-3 only → unassessable (readers offline), never missed.

The daily summary (``compound-gw patrol summary --json``) must match the expected table exactly.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import time
import zoneinfo
from pathlib import Path

import pytest
from osdp import CommandLEDColor

from hil_tests.benchfile import load_bench
from hil_tests.compound import ROSTER, SimCompound

pytestmark = [pytest.mark.hil, pytest.mark.sim_only]  # unplugs a simulated bus

RATE = 600.0  # one real second is ten simulated minutes
TZ = zoneinfo.ZoneInfo("Asia/Shanghai")
NIGHT = dt.date(2026, 11, 27)
BAND = next(iter(ROSTER))
GUARD = ROSTER[BAND]
ALL = ["north-gate", "block-3", "south-gate", "car-park"]

PATROL = """[patrol]
timezone = "Asia/Shanghai"
summary_hour = 8
[[patrol.routes]]
id = "perimeter"
checkpoints = ["north-gate", "block-3", "south-gate", "car-park"]
ordered = false
[[patrol.schedules]]
id = "night"
route = "perimeter"
every_hours = 2.0
start = "22:00"
end = "06:00"
grace_minutes = 15.0
expected_minutes = 60.0
"""


def local(day_offset: int, hh: int, mm: int) -> float:
    d = NIGHT + dt.timedelta(days=day_offset)
    return dt.datetime(d.year, d.month, d.day, hh, mm, tzinfo=TZ).timestamp()


def test_simulated_night_daily_summary_matches_exactly(tmp_path: Path) -> None:
    sim_start = local(0, 21, 50)
    anchor = time.time() + 3.0  # the simulated night starts 3 s from now, for both sides
    compound = SimCompound(load_bench(), tmp_path, gateway_id="gw-night", patrol_toml=PATROL)
    with compound:

        def wait_until(hh_day: int, hh: int, mm: int) -> None:
            real = anchor + (local(hh_day, hh, mm) - sim_start) / RATE
            delay = real - time.time()
            assert delay > -0.5, f"the test fell behind the simulated clock at {hh:02d}:{mm:02d}"
            time.sleep(max(0.0, delay))

        def walk(cps: list[str]) -> None:
            for cp in cps:
                sim = compound.reader(cp)
                t = sim.tap(BAND)
                led = sim.wait_led(CommandLEDColor.Green, after=t, timeout=20)
                assert led is not None, f"no green at {cp}"

        gw = compound.daemon()
        gw.args = ("--sim-clock", f"{sim_start}@{anchor}", "--sim-rate", str(RATE))
        gw.start()
        for sim in compound.readers.values():
            assert sim.wait_secure(15)
        wait_until(0, 22, 10)
        walk(ALL)  # 22:10-22:12: completed
        wait_until(1, 0, 10)
        walk(ALL[:3])  # car-park skipped: incomplete
        wait_until(1, 2, 40)
        walk(ALL)  # started 02:40, grace ended 02:15: late
        wait_until(1, 3, 40)
        bus_b = compound.lines.emulator("readers-b")  # type: ignore[union-attr]
        bus_b.unplug()
        wait_until(1, 4, 10)
        walk(ALL[:2])  # bus B dead: south-gate and car-park cannot be tapped
        wait_until(1, 4, 40)
        bus_b.replug()
        wait_until(1, 6, 30)  # every window of the night has ended (plus the engine's lag)
        out = subprocess.run(
            [sys.executable, "-m", "gateway.cli", "patrol", "summary", "--day", "2026-11-27",
             "--json", "--config", str(compound.config_path)],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert gw.terminate(timeout=15) == 0
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    print(json.dumps(summary, indent=1))
    (route,) = summary["routes"]
    got = {k: route[k] for k in ("key", "planned", "completed", "late", "incomplete", "missed",
                                 "unassessable")}  # fmt: skip
    assert got == {
        "key": "perimeter",
        "planned": 4,
        "completed": 1,
        "late": 1,
        "incomplete": 1,
        "missed": 0,
        "unassessable": 1,
    }, out.stdout
    guards = {g["key"]: g for g in summary["guards"]}
    guard = guards[GUARD]
    assert (guard["completed"], guard["late"], guard["incomplete"], guard["missed"]) == (
        1,
        1,
        1,
        0,
    ), summary["guards"]
