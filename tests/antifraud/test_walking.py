"""The walking-time table: the gateway's route definitions, positions, and refusals."""

from __future__ import annotations

import ast
import itertools
from pathlib import Path
from typing import Any

import pytest

import centre.antifraud
from centre.antifraud import WalkingTableError, walking_times_from_routes
from gateway.config.schema import dump_section, parse_section
from gateway.patrol.config import PatrolSection
from gateway.patrol.engine import PatrolEngine
from tests.antifraud.simulate import POSITIONS, ROUTES


def test_route_default_bounds_every_pair_on_the_route_and_legs_override_it() -> None:
    walks = walking_times_from_routes(ROUTES)
    assert walks.minimum("gate", "lobby") == 20  # east and west both say 20
    assert walks.minimum("lobby", "b3") == 20  # not consecutive, still on "east"
    assert walks.minimum("b3", "b5") == 10  # east's leg says 40, loop's default 10: lenient
    assert walks.minimum("b5", "b3") == 10
    assert walks.minimum("gate", "b4") is None  # no route holds both, no positions
    assert walks.minimum("gate", "gate") == 0


def test_positions_bound_every_pair_and_the_larger_bound_wins() -> None:
    walks = walking_times_from_routes(ROUTES, positions=POSITIONS, top_speed_m_s=2.0)
    assert walks.minimum("gate", "b4") == pytest.approx((240**2 + 140**2) ** 0.5 / 2.0)
    assert walks.minimum("b3", "b5") == pytest.approx(100 / 2.0)  # 50 s > the 10 s route floor
    assert walks.minimum("hub", "b2") == pytest.approx(max(10, (30**2 + 15**2) ** 0.5 / 2.0))


def test_the_table_agrees_with_the_gateway_engines_legs_for_the_same_routes() -> None:
    """The centre reads the routes the gateway's config classes parse and dump, and bounds
    every pair the gateway's engine bounds with the same number (one route, so no leniency)."""
    for route in ROUTES:
        section = parse_section(PatrolSection, {"routes": [route]}, "patrol")
        dumped: dict[str, Any] = dump_section(section)
        walks = walking_times_from_routes(dumped["routes"])
        engine = PatrolEngine(section)
        parsed = section.routes[0]
        for a, b in itertools.permutations(parsed.checkpoints, 2):
            lo, _ = engine._leg_limits(parsed, a, b)
            assert walks.minimum(a, b) == lo, (route["id"], a, b)


@pytest.mark.parametrize(
    ("routes", "extra", "key"),
    [
        ({"id": "r"}, {}, "routes"),
        (["r"], {}, "routes[0]"),
        ([{"id": "r"}], {}, "routes[0].checkpoints"),
        ([{"checkpoints": ["a", 3]}], {}, "routes[0].checkpoints"),
        ([{"checkpoints": ["a"], "min_walk_s": "60"}], {}, "routes[0].min_walk_s"),
        ([{"checkpoints": ["a"], "min_walk_s": True}], {}, "routes[0].min_walk_s"),
        ([{"checkpoints": ["a"], "min_walk_s": float("nan")}], {}, "routes[0].min_walk_s"),
        ([{"checkpoints": ["a"], "min_walk_s": -1}], {}, "routes[0].min_walk_s"),
        ([{"checkpoints": ["a"], "legs": {"a": 1}}], {}, "routes[0].legs"),
        ([{"checkpoints": ["a"], "legs": [{"from_checkpoint": "a"}]}], {}, "routes[0].legs[0]"),
        (
            [{"checkpoints": ["a", "b"], "legs": [
                {"from_checkpoint": "a", "to_checkpoint": "b", "min_walk_s": 1e9}]}],
            {},
            "routes[0].legs[0].min_walk_s",
        ),
        ([], {"positions": ["a"]}, "positions"),
        ([], {"positions": {"a": [0]}}, "positions.a"),
        ([], {"positions": {"a": [0, float("inf")]}}, "positions.a"),
        ([], {"positions": {"a": [0, True]}}, "positions.a"),
        ([], {"top_speed_m_s": 0}, "top_speed_m_s"),
        ([], {"top_speed_m_s": float("nan")}, "top_speed_m_s"),
    ],
)  # fmt: skip
def test_a_malformed_table_raises_one_error_naming_the_key(
    routes: Any, extra: dict[str, Any], key: str
) -> None:
    with pytest.raises(WalkingTableError) as err:
        walking_times_from_routes(routes, **extra)
    assert err.value.key == key
    assert err.value.as_dict()["error"] == "bad_walking_table"


FORBIDDEN = {"asyncio", "sqlite3", "time", "socket", "os", "random", "threading", "aiohttp"}


def test_the_detectors_are_sans_io() -> None:
    for path in Path(centre.antifraud.__file__).parent.glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        names |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        assert not names & FORBIDDEN, (path.name, names & FORBIDDEN)
