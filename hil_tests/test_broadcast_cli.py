"""``compound-gw broadcast test``: clicks the relays of the zones asked for and reports."""

from __future__ import annotations

import argparse
import asyncio
import json

import pytest

from gateway.broadcast.cli import add_cli, run_test
from gateway.broadcast.config import BroadcastSection
from gateway.config.schema import parse_section
from hil_tests.sims.relay_board import RelayBoardSim, SimBoard
from tests.broadcast.benchkit import board_config, section_data, serial_line

pytestmark = [pytest.mark.hil, pytest.mark.sim_only]


def test_cli_parses_the_installer_command():
    parser = argparse.ArgumentParser()
    add_cli(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["broadcast", "test", "--zones", "1,2", "--seconds", "5"])
    assert (args.zones, args.seconds, args.handler.__name__) == ("1,2", 5.0, "cmd_broadcast_test")


@pytest.mark.parametrize(("stuck", "code"), [(set(), 0), ({2}, 1)])
async def test_broadcast_test_clicks_relays_and_reports(capsys, stuck, code):
    sim = SimBoard(1, "waveshare_v2", stuck=stuck)
    with serial_line() as line:
        async with RelayBoardSim(line.device_path, [sim]):
            data = section_data(
                line.host_path,
                [board_config("waveshare_v2", 1, "main")],
                {1: ("main", 1), 2: ("main", 2)},
                amplifier=("main", 0),
            )
            section = parse_section(BroadcastSection, data, "broadcast")
            # The command runs its own event loop, as from a shell.
            rc = await asyncio.to_thread(run_test, section, "1,2", 0.5, as_json=True)
    out, err = capsys.readouterr()
    events = [json.loads(line) for line in out.splitlines()]
    kinds = [e["kind"] for e in events]
    assert rc == code
    if code == 0:
        assert "PASS" in err
        assert [c.channel for c in sim.changes if c.on] == [0, 1, 2]  # amplifier, then zones
        assert [ch for ch, _ in sim.flash_writes] == [0, 0, 1, 2]  # amplifier re-held with zones
        off = [e["payload"] for e in events if e["kind"] == "broadcast.off"]
        assert off[-1]["cause"] == "duration" and off[-1]["verified"] is True
        # Leaving the command is a shutdown: one more verified off, as the daemon does.
        assert kinds[-1] == "broadcast.failsafe_off" and events[-1]["payload"]["verified"]
        assert sim.coils == [False] * 8
    else:
        assert "FAIL" in err
        on = next(e for e in events if e["kind"] == "broadcast.on")
        assert on["payload"]["failed_zones"] == [2] and on["payload"]["zones"] == [1]
