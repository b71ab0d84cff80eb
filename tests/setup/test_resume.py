"""Resume means resume (--redo forgets one step), and a gateway that cannot patrol says so."""

from __future__ import annotations

import io
from pathlib import Path

from gateway.patrol.store import data_path, parse_patrol_data, save_patrol_data
from gateway.setup.answers import parse_answers
from gateway.setup.interactive import Asker, parse_gateway_id
from gateway.setup.state import StateFile
from gateway.setup.wizard import Wizard

CONFIG = """
[gateway]
id = "gw-warn-01"
compound = "Warn"

[[checkpoints.buses]]
name = "a"
port = "/dev/null"

[[checkpoints.points]]
id = "north-gate"
bus = "a"
address = 1
"""


def test_redo_forgets_one_step_and_the_write(tmp_path: Path) -> None:
    state = StateFile.load(tmp_path / "state.json")
    for step in ("ports", "scan", "schedule", "write"):
        state.finish(step, {})
    state.answers().update(
        {"gateway.id": "gw-01", "schedule.pattern": "2", "schedule.times": "08:00"}
    )
    state.save()
    again = StateFile.load(tmp_path / "state.json")
    again.redo("schedule")
    reread = StateFile.load(tmp_path / "state.json")
    assert sorted(reread.data["steps"]) == ["ports", "scan"]
    assert reread.answers() == {"gateway.id": "gw-01"}
    never = Asker(reread.answers(), read_line=lambda _p: "asked again", out=io.StringIO())
    assert never.value("gateway.id", "id", parse_gateway_id) == "gw-01"


def test_the_wizard_warns_when_the_gateway_cannot_patrol(tmp_path: Path) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text(CONFIG)
    answers = parse_answers({"gateway": {"id": "gw-warn-01", "compound": "Warn"}}, tmp_path)
    wizard = Wizard(answers, config_path=config, state=StateFile.load(tmp_path / "s.json"))
    warnings = wizard.patrol_warnings()
    assert len(warnings) == 3
    assert "no guard is enrolled: every tap will be refused as an unknown wristband" in warnings[0]
    assert "no patrol route" in warnings[1] and "no patrol schedule" in warnings[2]
    save_patrol_data(
        data_path(config),
        parse_patrol_data(
            {
                "roster": [{"wristband": "04a1", "guard": "g-017"}],
                "routes": [{"id": "main", "checkpoints": ["north-gate"]}],
                "schedules": [{"id": "n", "route": "main", "every_hours": 2}],
            }
        ),
    )
    assert wizard.patrol_warnings() == []
