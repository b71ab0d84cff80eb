"""A simulated night at accelerated time, the engine's clock injected (issue 6's HIL scenario).

Two routes, two guards, four rounds each. One guard skips a checkpoint, one round starts late,
one reader is unplugged for an hour. The daily summary must match the expected table exactly.
"""

from __future__ import annotations

from typing import Any

from gateway.clock import ManualClock
from gateway.config.schema import parse_section
from gateway.patrol.config import PatrolSection
from gateway.patrol.engine import AlertRaised, AlertResolved, DailySummary, PatrolEngine
from gateway.patrol.report import render_summary
from tests.patrol.helpers import EventLog, after_midnight, at

CONFIG = {
    "timezone": "Asia/Shanghai",
    "summary_hour": 8,
    "routes": [
        {"id": "north", "checkpoints": ["n1", "n2", "n3", "n4"], "ordered": True, "min_walk_s": 60},
        {"id": "south", "checkpoints": ["s1", "s2", "s3"], "ordered": False},
    ],
    "shifts": [{"id": "nights", "guards": ["g1"]}],
    "schedules": [
        {
            "id": "north-night",
            "route": "north",
            "every_hours": 2,
            "start": "22:00",
            "end": "06:00",
            "grace_minutes": 15,
            "expected_minutes": 45,
            "shift": "nights",
        },
        {
            "id": "south-night",
            "route": "south",
            "every_hours": 2,
            "start": "22:00",
            "end": "06:00",
            "grace_minutes": 15,
            "expected_minutes": 45,
            "guards": ["g2"],
        },
    ],
}


def scripted_night() -> list[tuple[float, str, dict[str, Any]]]:
    """(time, kind, payload) of everything that happens, in time order."""
    script: list[tuple[float, str, dict[str, Any]]] = []

    def walk(guard: str, start: float, cps: list[str]) -> None:
        for i, cp in enumerate(cps):
            script.append(
                (start + i * 300, "tap", {"checkpoint": cp, "guard": guard, "wristband": guard})
            )

    for hour in (22, 0, 2, 4):
        t0 = at(hour) if hour == 22 else after_midnight(hour)
        # g1 skips n3 on the 02:00 round.
        walk("g1", t0 + 300, ["n1", "n2", "n4"] if hour == 2 else ["n1", "n2", "n3", "n4"])
        # g2 starts the 00:00 round 40 minutes late; s2's reader is unplugged 03:50-04:50.
        walk(
            "g2",
            t0 + (2400 if hour == 0 else 600),
            ["s1", "s3"] if hour == 4 else ["s3", "s1", "s2"],
        )
    unplug = {"reader": "rd-s2", "checkpoint": "s2"}
    script.append((after_midnight(3, 50), "reader.state", unplug | {"state": "offline"}))
    script.append((after_midnight(4, 50), "reader.state", unplug | {"state": "online"}))
    t = at(21, 0)
    while t < after_midnight(9):
        script.append((t, "health.sample", {}))
        t += 300
    script.sort(key=lambda item: item[0])
    return script


def run_night() -> tuple[PatrolEngine, list[object]]:
    section = parse_section(PatrolSection, CONFIG, "patrol")
    clock = ManualClock(wall=at(20, 59), synced=True)
    log = EventLog()
    engine = PatrolEngine(section)
    out: list[object] = list(engine.feed_events([log.add("daemon.started", clock.wall())]))
    script = scripted_night()
    i = 0
    while clock.wall() < after_midnight(9):
        clock.advance(20)  # accelerated: the whole night runs in a fraction of a second
        while i < len(script) and script[i][0] <= clock.wall():
            when, kind, payload = script[i]
            out += engine.feed_events([log.add(kind, when, payload)])
            i += 1
        out += engine.advance(clock.wall(), clock.synced())
    return engine, out


def test_simulated_night_summary_matches_the_expected_table() -> None:
    _, out = run_night()
    summaries = [o for o in out if isinstance(o, DailySummary)]
    assert [(s.day, s.at) for s in summaries] == [("2026-11-28", after_midnight(8))]
    summary = summaries[0]
    expected_rows = {
        # key: planned, completed, late, incomplete, missed, unassessable, done/due, on time,
        # in-order legs / judged legs
        "north": (4, 3, 0, 1, 0, 0, (15, 16), 0.75, (10, 10)),
        "south": (4, 2, 1, 0, 0, 1, (9, 9), 0.6667, (0, 0)),
        "g1": (4, 3, 0, 1, 0, 0, (15, 16), 0.75, (10, 10)),
        "g2": (4, 2, 1, 0, 0, 1, (9, 9), 0.6667, (0, 0)),
    }
    got = {
        row.key: (
            row.planned,
            row.completed,
            row.late,
            row.incomplete,
            row.missed,
            row.unassessable,
            (row.checkpoints_done, row.checkpoints_due),
            row.on_time_rate,
            (row.legs_in_order, row.legs_judged),
        )
        for row in summary.routes + summary.guards
    }
    assert got == expected_rows
    assert summary.missed_rounds == ()
    assert render_summary(summary) == "\n".join(
        [
            "patrol day 2026-11-28",
            "",
            "by route:",
            "key    planned  completed  late  incomplete  missed  unassessable  pending  "
            "checkpoints  on_time  sequence",
            "north  4        3          0     1           0       0             0        "
            "94%          75%      100%",
            "south  4        2          1     0           0       1             0        "
            "100%         67%      -",
            "",
            "by guard:",
            "key  planned  completed  late  incomplete  missed  unassessable  pending  "
            "checkpoints  on_time  sequence",
            "g1   4        3          0     1           0       0             0        "
            "94%          75%      100%",
            "g2   4        2          1     0           0       1             0        "
            "100%         67%      -",
        ]
    )


def test_simulated_night_verdicts_and_alerts() -> None:
    engine, out = run_night()
    states = {rid: engine.report(rid).state for rid in engine.round_ids("2026-11-28")}
    assert states == {
        "north-night@2026-11-28T22:00": "completed",
        "north-night@2026-11-29T00:00": "completed",
        "north-night@2026-11-29T02:00": "incomplete",
        "north-night@2026-11-29T04:00": "completed",
        "south-night@2026-11-28T22:00": "completed",
        "south-night@2026-11-29T00:00": "late_completed",
        "south-night@2026-11-29T02:00": "completed",
        "south-night@2026-11-29T04:00": "unassessable",
    }
    assert engine.report("south-night@2026-11-29T04:00").reasons == (
        "short of s2, each explained by an outage: reader at s2 offline 04:00-04:50",
    )
    alerts = [
        (type(o).__name__, o.alert_id, o.at)
        for o in out
        if isinstance(o, AlertRaised | AlertResolved)
    ]
    assert alerts == [
        ("AlertRaised", "south-night@2026-11-29T00:00/not_started", after_midnight(0, 15)),
        ("AlertResolved", "south-night@2026-11-29T00:00/not_started", after_midnight(0, 40)),
        (
            "AlertRaised",
            "north-night@2026-11-29T02:00/checkpoint_overdue/n3",
            after_midnight(2, 50),
        ),
        ("AlertResolved", "north-night@2026-11-29T02:00/checkpoint_overdue/n3", after_midnight(4)),
        ("AlertRaised", "north-night@2026-11-29T02:00/incomplete", after_midnight(4)),
        ("AlertResolved", "north-night@2026-11-29T02:00/incomplete", after_midnight(8)),
    ]
