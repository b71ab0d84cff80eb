"""Patrol config sections: parsing, cross-field rules, errors that name the key."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.config.schema import dump_section, parse_section
from gateway.errors import ConfigError
from gateway.patrol.config import PatrolSection, check_checkpoints
from tests.patrol.helpers import section


def _bad(data: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as info:
        parse_section(PatrolSection, data, "patrol")
    return str(info.value)


def test_defaults_and_round_trip() -> None:
    sec = section()
    assert sec.timezone == "Asia/Shanghai"
    assert sec.summary_hour == 8
    again = parse_section(PatrolSection, dump_section(sec), "patrol")
    assert again == sec


def test_every_hours_crosses_midnight() -> None:
    sched = section().schedules[0]
    # 22:00, 00:00, 02:00, 04:00 as minutes after the schedule day's midnight; 06:00 is the end.
    assert sched.start_offsets_minutes() == (1320, 1440, 1560, 1680)
    assert sched.window_minutes_effective() == 120


def test_fixed_times_need_a_window() -> None:
    msg = _bad(
        {
            "routes": [{"id": "r1", "checkpoints": ["a"]}],
            "schedules": [{"id": "s", "route": "r1", "times": ["21:30", "01:00"]}],
        }
    )
    assert msg == "patrol.schedules[0].window_minutes: is required with fixed times"


def test_fixed_times_sorted_offsets() -> None:
    sec = section(
        schedules=[{"id": "s", "route": "r1", "times": ["21:30", "01:00"], "window_minutes": 60}]
    )
    assert sec.schedules[0].start_offsets_minutes() == (60, 1290)


@pytest.mark.parametrize(
    ("patch", "expected"),
    [
        (
            {"schedules": [{"id": "s", "route": "nope", "every_hours": 2}]},
            "patrol.schedules[0].route: 'nope' is not a route id",
        ),
        (
            {"schedules": [{"id": "s", "route": "r1", "every_hours": 2, "times": ["01:00"]}]},
            "patrol.schedules[0].times: give either every_hours or times, not both",
        ),
        (
            {"schedules": [{"id": "s", "route": "r1"}]},
            "patrol.schedules[0].every_hours: give every_hours or times",
        ),
        (
            {"schedules": [{"id": "s", "route": "r1", "every_hours": 2, "window_minutes": 180}]},
            "patrol.schedules[0].window_minutes: must not exceed the every_hours interval "
            "(rounds overlap)",
        ),
        (
            {"schedules": [{"id": "s", "route": "r1", "every_hours": 2, "start": "25:00"}]},
            "patrol.schedules[0].start: '25:00' does not match ([01][0-9]|2[0-3]):[0-5][0-9]",
        ),
        (
            {"schedules": [{"id": "s", "route": "r1", "every_hours": 2, "shift": "late"}]},
            "patrol.schedules[0].shift: 'late' is not a shift id",
        ),
        (
            {"timezone": "Mars/Olympus"},
            "patrol.timezone: 'Mars/Olympus' is not a known IANA time zone",
        ),
        (
            {"colour": "red"},
            "patrol.colour: unknown key (known keys: repeat_interval_s, routes, "
            "schedules, shifts, summary_hour, suspicious_repeats, timezone)",
        ),
    ],
)
def test_errors_name_the_key(patch: dict[str, Any], expected: str) -> None:
    data: dict[str, Any] = {"routes": [{"id": "r1", "checkpoints": ["a", "b"]}]}
    data.update(patch)
    assert _bad(data) == expected


def test_route_rules() -> None:
    assert (
        _bad({"routes": [{"id": "r1", "checkpoints": ["a", "b", "a"]}]})
        == "patrol.routes[0].checkpoints[2]: 'a' is listed twice (also at [0])"
    )
    assert (
        _bad(
            {
                "routes": [
                    {
                        "id": "r1",
                        "checkpoints": ["a", "b"],
                        "legs": [{"from_checkpoint": "a", "to_checkpoint": "z", "min_walk_s": 5}],
                    }
                ]
            }
        )
        == "patrol.routes[0].legs[0].to_checkpoint: 'z' is not on this route"
    )
    assert (
        _bad({"routes": [{"id": "r1", "checkpoints": ["a"]}, {"id": "r1", "checkpoints": ["b"]}]})
        == "patrol.routes[1].id: 'r1' is already used by routes[0]"
    )


def test_known_checkpoints_are_checked_with_the_key() -> None:
    sec = parse_section(
        PatrolSection,
        {
            "routes": [
                {"id": "r1", "checkpoints": ["a"]},
                {"id": "r2", "checkpoints": ["a", "b", "x"]},
            ]
        },
        "patrol",
    )
    check_checkpoints(sec, {"a", "b", "x"})
    with pytest.raises(ConfigError) as info:
        check_checkpoints(sec, {"a", "b"})
    assert str(info.value) == "patrol.routes[1].checkpoints[2]: 'x' is not a known checkpoint"
    assert info.value.key == "patrol.routes[1].checkpoints[2]"


def test_responsible_guards_merge_shift() -> None:
    sec = section(
        shifts=[{"id": "nights", "guards": ["g2", "g3"]}],
        schedules=[
            {"id": "s", "route": "r1", "every_hours": 2, "guards": ["g1"], "shift": "nights"}
        ],
    )
    assert sec.responsible_guards(sec.schedules[0]) == {"g1", "g2", "g3"}
