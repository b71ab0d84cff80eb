"""The weekly silent test on the simulated relay board (Waveshare profile, 9600 baud, paced):
the runtime built from the config section switches amplifier and zone on, the fake player and
loopback recorder of tests/broadcast hear the tone, and every relay is off at the board after."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from gateway.broadcast.silent_test import PASSED, SilentTest
from hil_tests.sims.relay_board import SimBoard
from hil_tests.test_broadcast_controller import bench
from tests.broadcast.benchkit import board_config, section_data
from tests.broadcast.test_silent_test import FAKE_RECORDER

pytestmark = [pytest.mark.hil, pytest.mark.sim_only]  # asserts on the simulator's records


async def test_a_zone_passes_its_silent_test_and_the_board_ends_all_off(tmp_path: Path) -> None:
    marker = tmp_path / "played"
    player = tmp_path / "player.sh"
    player.write_text(f'#!/bin/sh\necho "$1" > {marker}.tmp && mv {marker}.tmp {marker}\n')
    player.chmod(0o755)
    recorder = tmp_path / "fake_arecord.py"
    recorder.write_text(FAKE_RECORDER)

    def data(port: str) -> dict[str, Any]:
        return section_data(
            port,
            [board_config("waveshare_v2", 1, "main")],
            {1: ("main", 1), 2: ("main", 2)},
            amplifier=("main", 0),
            audio={
                "enabled": True,
                "command": [str(player)],
                "capture_command": [sys.executable, str(recorder), "loop", str(marker), "5"],
                "cache_dir": str(tmp_path / "ann"),
            },
            silent_test={"enabled": True, "zones": [2], "tone_s": 1.0, "lead_s": 0.3},
        )

    sim = SimBoard(1, "waveshare_v2")
    async with bench(tmp_path, [sim], data) as b:
        [silent] = [s for s in b.runtime.services if isinstance(s, SilentTest)]
        result = await silent.test_zone(2, "hil")
        assert result["result"] == PASSED and result["relays_off"] is True
        assert sim.coils == [False] * 8
        on = [c.channel for c in sim.changes if c.on]
        assert 0 in on and 2 in on and 1 not in on
        # the board's own timer was armed: the zone cannot outlive the gateway
        assert {ch for ch, _ in sim.flash_writes} >= {0, 2}
        [event] = [e.payload for e in await b.events("broadcast.selftest")]
        assert event["zone"] == 2 and event["result"] == PASSED
        assert await b.events("broadcast.no_sound") == []
