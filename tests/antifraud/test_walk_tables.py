"""Walking-time tables from the centre's data folder (walks/<gateway id>.toml): loaded,
checked at start, read again when they change, and used by the running centre's detectors."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from centre.antifraud import WalkingTableError, WalkingTimes
from centre.antifraud.tables import WalkTables, load_walk_table
from centre.cli import main
from gateway.clock import ManualClock
from gateway.journal import Journal
from tests.antifraud.test_journal_tamper import sync_until
from tests.sync.conftest import (  # noqa: F401 - centre, centre_dir: the real-centre fixtures
    Centre,
    centre,
    centre_dir,
    enroll,
)

TABLE = """
top_speed_m_s = 2.0
[positions]
gate = [0, 0]
yard = [300, 400]

[[patrol.routes]]
id = "night"
checkpoints = ["gate", "hub", "yard"]
min_walk_s = 60
[[patrol.routes.legs]]
from_checkpoint = "gate"
to_checkpoint = "hub"
min_walk_s = 90
"""


def test_a_table_in_the_gateways_patrol_shape_loads(tmp_path: Path) -> None:
    path = tmp_path / "gw-rose-01.toml"
    path.write_text(TABLE)
    walks = load_walk_table(path)
    assert walks.minimum("gate", "hub") == 90.0  # the leg overrides the route
    assert walks.minimum("hub", "yard") == 60.0
    assert walks.minimum("gate", "yard") == 250.0  # 500 m at 2 m/s beats the route's 60 s
    plain = tmp_path / "plain.toml"
    plain.write_text('[[routes]]\nid = "r"\ncheckpoints = ["a", "b"]\nmin_walk_s = 30\n')
    assert load_walk_table(plain).minimum("b", "a") == 30.0


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('[[routes]]\nid = "r"\ncheckpoints = ["a"]\nmin_walk_s = "60"\n', "routes[0].min_walk_s"),
        ("[positions]\ngate = [0]\n", "positions.gate"),
        ("top_speed_m_s = 99\n", "top_speed_m_s"),
        ("routes = [1, 2\n", "x.toml"),
    ],
)
def test_a_malformed_table_names_the_file_and_the_key(tmp_path: Path, text: str, key: str) -> None:
    path = tmp_path / "x.toml"
    path.write_text(text)
    with pytest.raises(WalkingTableError) as err:
        load_walk_table(path)
    assert str(err.value).startswith("x.toml")
    assert key in str(err.value)


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_any_bytes_load_or_raise_the_documented_error(tmp_path_factory, raw: bytes) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path_factory.mktemp("t") / "gw.toml"
    path.write_bytes(raw)
    try:
        table = load_walk_table(path)
    except WalkingTableError as exc:
        assert str(exc).startswith("gw.toml")  # it names the file
    else:
        assert isinstance(table, WalkingTimes)


def test_tables_are_read_again_when_they_change(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "walks"
    tables = WalkTables(folder)
    assert tables("gw-rose-01") is None and tables.problems() == []  # no folder yet
    folder.mkdir()
    path = folder / "gw-rose-01.toml"
    path.write_text(TABLE)
    first = tables("gw-rose-01")
    assert first is not None and first.minimum("gate", "hub") == 90.0
    assert tables("gw-rose-01") is first  # unchanged: not parsed again
    assert tables("../walks/gw-rose-01") is None  # never a path outside the folder
    path.write_text(TABLE.replace("min_walk_s = 90", "min_walk_s = 120"))
    os.utime(path, ns=(1, 1))  # a different signature even within one mtime tick
    changed = tables("gw-rose-01")
    assert changed is not None and changed.minimum("gate", "hub") == 120.0
    path.write_text("[positions]\ngate = 'here'\n")
    with caplog.at_level(logging.WARNING, logger="centre.antifraud.tables"):
        assert tables("gw-rose-01") is None
        assert tables("gw-rose-01") is None
    assert len([r for r in caplog.records if "gw-rose-01.toml" in r.getMessage()]) == 1
    (folder / "not an id!.toml").write_text("")
    assert tables.problems() == [
        "walks/gw-rose-01.toml: positions.gate: must be [x, y] in metres (finite, within 1000 km)",
        "walks/not an id!.toml: the name is not a gateway id",
    ]


def test_serve_refuses_to_start_on_a_malformed_table(
    centre: Centre,  # noqa: F811 - the fixture imported above
    capsys: pytest.CaptureFixture[str],
) -> None:
    walks = centre.paths.root / "walks"
    walks.mkdir()
    (walks / "gw-rose-01.toml").write_text('[[routes]]\nid = "r"\ncheckpoints = 3\n')
    assert main(["--data", str(centre.paths.root), "serve", "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert "walks/gw-rose-01.toml: routes[0].checkpoints" in err


async def test_the_running_centre_judges_travel_with_the_compounds_table(
    centre: Centre,  # noqa: F811 - the fixture imported above
    tmp_path: Path,
) -> None:
    """One band at the gate and, 20 s later, at a yard the table says takes 250 s to reach."""
    walks = centre.paths.root / "walks"
    walks.mkdir()
    (walks / "gw-rose-01.toml").write_text(TABLE)
    data = tmp_path / "gw"
    await enroll(centre, data)
    clock = ManualClock()
    journal = await Journal.open(data / "journal.db", gateway_id="gw-rose-01", clock=clock)
    for cp in ("gate", "yard"):
        clock.advance(20)
        await journal.append("tap", {"checkpoint": cp, "wristband": "band-1", "guard": "g1"})
    repo = centre.running.repo

    async def alerted() -> bool:
        alerts = await repo.alerts(gateway_id="gw-rose-01")
        return any(a.kind == "impossible_travel" for a in alerts)

    try:
        await sync_until(journal, data, alerted)
    finally:
        await journal.close()
    [alert] = await repo.alerts(gateway_id="gw-rose-01")
    assert alert.details["min_walk_s"] == 250.0 and alert.details["elapsed_s"] == 20.0
