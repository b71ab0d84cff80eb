"""Profiles as Modbus operations, schedule arithmetic, button lockout, config errors."""

from __future__ import annotations

import datetime as dt
import zoneinfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.relays import (
    COIL_OFF,
    COIL_ON,
    FC_READ_COILS,
    FC_READ_HOLDING,
    FC_WRITE_COIL,
    FC_WRITE_COILS,
    FC_WRITE_REGISTER,
    BoardSpec,
    ModbusOp,
    RelayBoardError,
    decode_read,
    flash_units,
    mismatches,
    read_op,
    write_ops,
)
from gateway.broadcast.button import PressGate
from gateway.broadcast.config import BroadcastSection, ScheduleEntry
from gateway.broadcast.schedule import due_runs, next_run, runs_between
from gateway.config.schema import parse_section
from gateway.errors import ConfigError

COILS = BoardSpec("c", 1, "coils")
WAVE = BoardSpec("w", 2, "waveshare_v2")
HOLD = BoardSpec("h", 3, "holding", register_base=1)
SH = zoneinfo.ZoneInfo("Asia/Shanghai")


def test_plain_coils_single_and_runs():
    ops = write_ops(COILS, {0: True, 1: True, 2: True, 5: False})
    assert ModbusOp(FC_WRITE_COIL, 5, value=COIL_OFF) == ops[0]  # offs first
    assert ModbusOp(FC_WRITE_COILS, 0, bits=(True, True, True)) in ops
    assert write_ops(COILS, {3: True}) == [ModbusOp(FC_WRITE_COIL, 3, value=COIL_ON)]
    # A hold time means nothing to a board without a timer.
    assert write_ops(COILS, {3: True}, hold_s=10) == [ModbusOp(FC_WRITE_COIL, 3, value=COIL_ON)]


def test_waveshare_flash_on_for_timed_on_plain_off():
    ops = write_ops(WAVE, {1: True, 4: False}, hold_s=95.0)
    assert ops == [
        ModbusOp(FC_WRITE_COIL, 4, value=COIL_OFF),
        ModbusOp(FC_WRITE_COIL, 0x0201, value=950),
    ]
    assert flash_units(0.01) == 1 and flash_units(0.3) == 3 and flash_units(1e9) == 0xFFFF
    with pytest.raises(ValueError):
        flash_units(0)


def test_holding_register_commands_and_read():
    assert write_ops(HOLD, {0: True, 2: False}) == [
        ModbusOp(FC_WRITE_REGISTER, 3, value=0x0200),
        ModbusOp(FC_WRITE_REGISTER, 1, value=0x0100),
    ]
    assert read_op(HOLD) == ModbusOp(FC_READ_HOLDING, 1, count=8)
    assert read_op(COILS) == ModbusOp(FC_READ_COILS, 0, count=8)
    assert decode_read(HOLD, [1, 0, 0, 0, 0, 0, 0, 1]) == (True, *([False] * 6), True)


def test_bad_channels_and_short_reads_are_errors():
    with pytest.raises(ValueError):
        write_ops(COILS, {8: True})
    with pytest.raises(RelayBoardError, match="read returned 7 values, need 8"):
        decode_read(COILS, [True] * 7)
    with pytest.raises(ValueError):
        BoardSpec("x", 0)
    assert mismatches({0: True, 1: False}, (True, True, False)) == {1: True}


@given(st.dictionaries(st.integers(0, 7), st.booleans(), min_size=1))
def test_coil_ops_set_exactly_the_named_channels(states):
    coils = [None] * 8
    for op in write_ops(COILS, states):
        if op.function == FC_WRITE_COIL:
            coils[op.address] = op.value == COIL_ON
        else:
            assert op.function == FC_WRITE_COILS
            for i, bit in enumerate(op.bits):
                assert coils[op.address + i] is None
                coils[op.address + i] = bit
    assert {i: v for i, v in enumerate(coils) if v is not None} == states


def entry(**kw) -> ScheduleEntry:
    base = {"name": "evening", "time": "19:30", "zones": (1, 2, 3), "seconds": 90.0}
    return ScheduleEntry(**{**base, **kw})


def at(y, m, d, hh, mm, ss=0) -> float:
    return dt.datetime(y, m, d, hh, mm, ss, tzinfo=SH).timestamp()


def test_daily_run_fires_at_local_time_in_shanghai():
    runs = runs_between([entry()], at(2026, 11, 28, 19, 0), at(2026, 11, 28, 20, 0), SH)
    assert [r.at for r in runs] == [at(2026, 11, 28, 19, 30)]
    assert runs[0].key == "evening@2026-11-28T19:30:00"
    # 19:30 in Shanghai is 11:30 UTC.
    assert dt.datetime.fromtimestamp(runs[0].at, dt.UTC).hour == 11


def test_due_runs_fire_once_and_late_ones_are_missed():
    e = [entry()]
    play, missed = due_runs(e, at(2026, 11, 28, 19, 29, 59), at(2026, 11, 28, 19, 30, 1), SH, 120)
    assert [r.key for r in play] == ["evening@2026-11-28T19:30:00"] and not missed
    again, _ = due_runs(
        e, at(2026, 11, 28, 19, 0), at(2026, 11, 28, 19, 31), SH, 120, fired=[play[0].key]
    )
    assert again == []
    # Clock stepped from 08:00 to 23:00 (NTP after a night offline): recorded, not played.
    play, missed = due_runs(e, at(2026, 11, 28, 8, 0), at(2026, 11, 28, 23, 0), SH, 120)
    assert not play and [r.key for r in missed] == ["evening@2026-11-28T19:30:00"]


def test_weekday_filter_and_next_run():
    e = [entry(days=("mon",))]  # 2026-11-28 is a Saturday
    nxt = next_run(e, at(2026, 11, 28, 20, 0), SH)
    assert nxt is not None and nxt.at == at(2026, 11, 30, 19, 30)


def test_press_gate_lockout_and_toggle():
    gate = PressGate(lockout_s=10)
    assert gate.press(100.0, playing=False) == "start"
    assert gate.press(105.0, playing=True) == "locked"
    assert gate.press(110.0, playing=True) == "stop"
    assert gate.press(111.0, playing=False) == "locked"
    assert gate.press(120.5, playing=False) == "start"


def good_config() -> dict:
    return {
        "amplifier": {"board": "main", "channel": 0},
        "ports": [
            {
                "port": "/dev/ttyUSB1",
                "boards": [
                    {"name": "main", "address": 1, "profile": "waveshare_v2"},
                    {"name": "aux", "address": 2},
                ],
            }
        ],
        "zones": [
            {"number": 1, "board": "main", "channel": 1},
            {"number": 2, "board": "aux", "channel": 0},
        ],
        "schedule": [{"name": "evening", "time": "19:30", "zones": [1, 2], "seconds": 90}],
    }


def test_config_parses_and_builds_layout():
    sec = parse_section(BroadcastSection, good_config(), "broadcast")
    lay = sec.layout()
    assert lay.amplifier is not None and str(lay.amplifier) == "main:0"
    assert {z: str(r) for z, r in lay.zones.items()} == {1: "main:1", 2: "aux:0"}


@pytest.mark.parametrize(
    ("mutate", "key"),
    [
        (
            lambda c: c["zones"].append({"number": 3, "board": "main", "channel": 0}),
            "broadcast.zones[2]",
        ),
        (
            lambda c: c["zones"].append({"number": 1, "board": "aux", "channel": 5}),
            "broadcast.zones[2].number",
        ),
        (
            lambda c: c["zones"].append({"number": 4, "board": "nope", "channel": 1}),
            "broadcast.zones[2].board",
        ),
        (
            lambda c: c["zones"].append({"number": 4, "board": "aux", "channel": 8}),
            "broadcast.zones[2].channel",
        ),
        (lambda c: c["schedule"][0].update(time="25:00"), "broadcast.schedule[0].time"),
        (lambda c: c["schedule"][0].update(zones=[9]), "broadcast.schedule[0].zones[0]"),
        (lambda c: c["schedule"][0].update(days=["funday"]), "broadcast.schedule[0].days[0]"),
        (
            lambda c: c["ports"][0]["boards"][1].update(address=1),
            "broadcast.ports[0].boards[1].address",
        ),
        (lambda c: c.update(max_duration_s=10), "broadcast.schedule[0].seconds"),
        (lambda c: c.update(colour="red"), "broadcast.colour"),
        (lambda c: c.update(timezone="Mars/Olympus"), "broadcast.timezone"),
    ],
)
def test_config_errors_name_the_key(mutate, key):
    cfg = good_config()
    mutate(cfg)
    with pytest.raises(ConfigError) as err:
        parse_section(BroadcastSection, cfg, "broadcast")
    assert err.value.key == key
