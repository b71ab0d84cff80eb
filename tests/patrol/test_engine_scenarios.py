"""Worked scenarios: every verdict and every alert, midnight, time zones, late and unsynced taps."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from gateway.patrol.engine import (
    COMPLETED,
    INCOMPLETE,
    LATE_COMPLETED,
    MISSED,
    PLANNED,
    STARTED,
    UNASSESSABLE,
    AlertRaised,
    AlertResolved,
    DailySummary,
    Outage,
    PatrolEngine,
    RoundVerdict,
    Tap,
    engine_inputs_from_event,
    replay,
)
from gateway.patrol.report import (
    current_rows,
    explain,
    render_summary,
    render_today,
    today_rows,
)
from tests.patrol.helpers import EventLog, after_midnight, at, section

R22 = "night@2026-11-28T22:00"
R00 = "night@2026-11-29T00:00"
R02 = "night@2026-11-29T02:00"
R04 = "night@2026-11-29T04:00"


def run(log: EventLog, now: float, **cfg: object) -> tuple[PatrolEngine, list[object]]:
    engine, out = replay(section(**cfg), log.events, now=now, origin=at(12))
    return engine, list(out)


def started_log() -> EventLog:
    log = EventLog()
    log.add("daemon.started", at(12))
    return log


def alerts(out: list[object], cls: type) -> list[str]:
    return [o.alert_id for o in out if isinstance(o, cls)]  # type: ignore[attr-defined]


def test_round_ids_cross_midnight_and_belong_to_the_night() -> None:
    engine, _ = run(started_log(), at(12, 1))
    assert engine.round_ids("2026-11-28") == [R22, R00, R02, R04]
    rep = engine.report(R02)
    assert rep.state == PLANNED
    assert rep.local_start == "2026-11-29T02:00:00+08:00"
    assert rep.window_end - rep.window_start == 7200


def test_completed() -> None:
    log = started_log()
    log.tap("a", at(22, 5))
    log.tap("b", at(22, 10))
    log.tap("c", at(22, 20))
    engine, out = run(log, at(23, 59))
    assert engine.report(R22).state == STARTED  # not final before the window ends
    out += engine.advance(after_midnight(0, 0, 1))
    verdicts = [o for o in out if isinstance(o, RoundVerdict)]
    assert [v.report.round_id for v in verdicts] == [R22]
    rep = verdicts[0].report
    assert rep.state == COMPLETED
    assert rep.reasons == ("all 3 checkpoints tapped, started 22:05, finished 22:20",)
    assert rep.legs_in_order == rep.legs_judged == 2
    assert alerts(out, AlertRaised) == []


def test_late_start_is_late_completed_and_not_started_alert_resolves() -> None:
    log = started_log()
    log.tap("a", at(22, 31))
    log.tap("b", at(22, 40))
    log.tap("c", at(22, 50))
    engine, out = run(log, after_midnight(0, 0, 1))
    raised = [o for o in out if isinstance(o, AlertRaised)]
    resolved = [o for o in out if isinstance(o, AlertResolved)]
    assert [(a.alert_id, a.at) for a in raised] == [(f"{R22}/not_started", at(22, 15))]
    assert [(r.alert_id, r.at, r.resolution) for r in resolved] == [
        (f"{R22}/not_started", at(22, 31), "started at 22:31 by g1")
    ]
    rep = engine.report(R22)
    assert rep.state == LATE_COMPLETED
    assert "late_start" in rep.codes
    assert rep.reasons[0] == "started 22:31, 16 min after the grace ended at 22:15"


def test_late_finish_is_late_completed() -> None:
    log = started_log()
    log.tap("a", at(22, 5))
    log.tap("b", at(22, 30))
    log.tap("c", at(23, 10))  # due by 22:15 + 45 min = 23:00
    engine, _ = run(log, after_midnight(0, 1))
    rep = engine.report(R22)
    assert rep.state == LATE_COMPLETED
    assert rep.codes == ("late_finish",)


def test_incomplete_with_overdue_and_incomplete_alerts() -> None:
    log = started_log()
    log.tap("a", at(22, 5))
    log.tap("b", at(22, 10))
    engine, out = run(log, after_midnight(0, 0, 1))
    rep = engine.report(R22)
    assert rep.state == INCOMPLETE
    assert rep.missing == ("c",)
    assert rep.reasons[0] == "missing c (0 of 1 taps)"
    # c became overdue 45 min after the start (22:50), and the alert closed with the window.
    overdue = [
        o for o in out if isinstance(o, AlertRaised) and o.alert_kind == "checkpoint_overdue"
    ]
    assert [(o.checkpoint, o.at) for o in overdue] == [("c", at(22, 50))]
    assert f"{R22}/incomplete" in alerts(out, AlertRaised)
    assert f"{R22}/checkpoint_overdue/c" in alerts(out, AlertResolved)
    assert f"{R22}/incomplete" not in alerts(out, AlertResolved)
    # ...until the daily summary closes it.
    out = engine.advance(after_midnight(8, 0, 1))
    assert f"{R22}/incomplete" in alerts(out, AlertResolved)
    assert any(isinstance(o, DailySummary) for o in out)


def test_overdue_by_leg_max_walk_resolves_when_tapped() -> None:
    routes = [
        {
            "id": "r1",
            "checkpoints": ["a", "b", "c"],
            "legs": [{"from_checkpoint": "a", "to_checkpoint": "b", "max_walk_s": 600}],
        }
    ]
    log = started_log()
    log.tap("a", at(22, 0, 30))
    log.tap("b", at(22, 12))  # due 22:10:30
    log.tap("c", at(22, 20))
    engine, out = run(log, after_midnight(0, 0, 1), routes=routes)
    raised = [o for o in out if isinstance(o, AlertRaised)]
    assert [(o.alert_id, o.at) for o in raised] == [(f"{R22}/checkpoint_overdue/b", at(22, 10, 30))]
    resolved = [o for o in out if isinstance(o, AlertResolved)]
    assert [(o.at, o.resolution) for o in resolved] == [(at(22, 12), "tapped at 22:12")]
    assert engine.report(R22).state == COMPLETED


def test_missed() -> None:
    engine, out = run(started_log(), after_midnight(0, 0, 1))
    rep = engine.report(R22)
    assert rep.state == MISSED
    assert rep.reasons == ("no credited tap between 22:00 and 00:00",)
    assert f"{R22}/not_started" in alerts(out, AlertRaised)
    assert f"{R22}/not_started" in alerts(out, AlertResolved)


def test_reader_offline_makes_missed_unassessable() -> None:
    log = started_log()
    log.reader("b", at(21, 50), online=False)
    log.reader("b", at(23, 0), online=True)
    engine, _ = run(log, after_midnight(2, 0, 1))
    rep = engine.report(R22)
    assert rep.state == UNASSESSABLE
    assert rep.reasons == (
        "no tap recorded, but the round cannot be judged: reader at b offline 22:00-23:00",
    )
    assert engine.report(R00).state == MISSED  # the reader was back by then


def test_offline_reader_excuses_only_its_own_checkpoint() -> None:
    log = started_log()
    log.reader("c", at(22, 0), online=False)
    log.tap("a", at(22, 5))
    engine, _ = run(log, after_midnight(0, 0, 1))
    rep = engine.report(R22)
    assert rep.state == INCOMPLETE  # b was online and skipped
    assert rep.missing == ("b",)
    assert rep.excused == ("c",)
    log.tap("b", at(22, 10))
    engine, _ = run(log, after_midnight(0, 0, 1))
    rep = engine.report(R22)
    assert rep.state == UNASSESSABLE
    assert rep.excused == ("c",)


def test_gateway_down_from_journal_gap_is_unassessable() -> None:
    log = started_log()
    log.tick(at(21, 30))
    log.boot_id = "boot-2"  # power cut: no daemon.stopped, a new boot
    log.add("daemon.started", after_midnight(0, 30), {"previous_stop": "unclean"})
    engine, out = run(log, after_midnight(4, 0, 1))
    rep = engine.report(R22)
    assert rep.state == UNASSESSABLE
    assert "gateway down 22:00-00:00" in rep.reasons[0]
    # No not-started alert could be fair while the gateway was down, and no "missed" was
    # ever emitted for it, not even provisionally.
    assert f"{R22}/not_started" not in alerts(out, AlertRaised)
    assert [
        o.report.state for o in out if isinstance(o, RoundVerdict) and o.report.round_id == R22
    ] == [UNASSESSABLE]
    assert engine.report(R00).state == UNASSESSABLE  # down until 00:30
    assert engine.report(R02).state == MISSED


def test_clean_stop_and_start_is_a_down_span() -> None:
    log = started_log()
    log.add("daemon.stopped", at(22, 30))
    log.add("daemon.started", at(22, 40))
    log.tap("a", at(22, 45))
    engine, _ = run(log, after_midnight(0, 0, 1))
    rep = engine.report(R22)
    assert rep.state == UNASSESSABLE
    assert rep.excused == ("b", "c")
    assert engine.outages_in(at(22), at(23)) == [("gateway", "", at(22, 30), at(22, 40))]


def test_clock_unsynchronised_period() -> None:
    log = started_log()
    log.tick(at(22, 50))
    # NTP lost: events carry a wrong clock (here: a year behind) and clock_synced false.
    log.tap("a", at(22, 55) - 365 * 86400, synced=False)
    log.tick(at(23, 0) - 365 * 86400, synced=False)
    log.tick(at(23, 20))  # synchronised again
    engine, _ = run(log, after_midnight(2, 0, 1))
    rep = engine.report(R22)
    assert rep.state == UNASSESSABLE
    assert "clock not synchronised 22:50-23:20" in rep.reasons[0]
    assert engine.unplaced_taps == 1
    assert engine.report(R00).state == MISSED


def test_positive_evidence_wins_over_an_outage() -> None:
    log = started_log()
    log.reader("c", at(22, 30), online=False)
    log.tap("a", at(22, 5))
    log.tap("b", at(22, 10))
    log.tap("c", at(22, 20))
    engine, _ = run(log, after_midnight(0, 0, 1))
    rep = engine.report(R22)
    assert rep.state == COMPLETED
    assert "reader_offline" in rep.codes


def test_late_start_during_an_outage_is_unassessable_not_late() -> None:
    log = started_log()
    log.reader("a", at(21, 0), online=False)
    log.reader("a", at(22, 25), online=True)
    log.tap("a", at(22, 30))
    log.tap("b", at(22, 40))
    log.tap("c", at(22, 50))
    engine, _ = run(log, after_midnight(0, 0, 1))
    rep = engine.report(R22)
    assert rep.state == UNASSESSABLE
    assert rep.reasons[0].startswith("completed late, but lateness cannot be judged")


def test_buffered_taps_revise_the_verdict() -> None:
    log = started_log()
    log.reader("a", at(21, 55), online=False)
    log.reader("b", at(21, 55), online=False)
    log.reader("c", at(21, 55), online=False)
    # The node bus is cut; the nodes keep the taps in flash and deliver them at 00:20.
    log.reader("a", after_midnight(0, 20), online=True)
    log.tap("a", after_midnight(0, 20, 1), tapped_at=at(22, 5))
    log.tap("b", after_midnight(0, 20, 2), tapped_at=at(22, 10))
    log.reader("b", after_midnight(0, 20, 3), online=True)
    log.reader("c", after_midnight(0, 20, 4), online=True)
    log.tap("c", after_midnight(0, 20, 5), tapped_at=at(22, 20))
    engine, out = run(log, after_midnight(1, 0))
    verdicts = [
        (o.report.state, o.revision, o.at)
        for o in out
        if isinstance(o, RoundVerdict) and o.report.round_id == R22
    ]
    # Judged unassessable at window end; each delivered tap narrows what is excused, and the
    # last one completes the round. Never missed, never incomplete.
    assert verdicts == [
        (UNASSESSABLE, 1, after_midnight(0, 0)),
        (UNASSESSABLE, 2, after_midnight(0, 20, 1)),
        (UNASSESSABLE, 3, after_midnight(0, 20, 2)),
        (COMPLETED, 4, after_midnight(0, 20, 5)),
    ]
    rep = engine.report(R22)
    assert rep.buffered_taps == 3
    assert "3 credited tap(s) arrived late from a node's offline buffer" in rep.reasons
    lines = explain(engine, R22)
    assert any("from offline buffer" in line for line in lines)
    assert "  00:00:00 verdict unassessable (revision 1)" in lines
    assert "  00:20:05 verdict completed (revision 4)" in lines


def test_out_of_order_flagged_and_adherence() -> None:
    log = started_log()
    log.tap("b", at(22, 5))
    log.tap("a", at(22, 10))
    log.tap("c", at(22, 20))
    engine, _ = run(log, after_midnight(0, 0, 1))
    rep = engine.report(R22)
    assert rep.state == COMPLETED
    assert rep.out_of_order == ("a>b",)
    assert (rep.legs_in_order, rep.legs_judged) == (1, 2)
    summary = engine.daily_summary("2026-11-28")
    assert summary.routes[0].sequence_adherence == 0.5


def test_implausible_walk_raises_suspicious_alert() -> None:
    log = started_log()
    log.tap("a", at(22, 5))
    log.tap("b", at(22, 5, 20))  # 20 s < 60 s minimum walk
    log.tap("c", at(22, 20))
    engine, out = run(log, after_midnight(0, 0, 1))
    raised = [o for o in out if isinstance(o, AlertRaised)]
    assert [(o.alert_id, o.at, o.message) for o in raised] == [
        (
            f"{R22}/suspicious/implausible_walk/a>b",
            at(22, 5, 20),
            f"implausible walk on round {R22}: a to b in 20 s (fastest plausible 60 s)",
        )
    ]
    assert f"{R22}/suspicious/implausible_walk/a>b" in alerts(out, AlertResolved)
    rep = engine.report(R22)
    assert rep.state == COMPLETED
    assert rep.implausible_legs == ("a>b:20s<60s",)


def test_repeated_taps_do_not_inflate_counts() -> None:
    schedules = [
        {
            "id": "night",
            "route": "r1",
            "every_hours": 2,
            "start": "22:00",
            "end": "06:00",
            "min_taps": 2,
            "expected_minutes": 90,
        }
    ]
    log = started_log()
    for cp, base in (("a", 0), ("b", 2), ("c", 4)):
        log.tap(cp, at(22, 5 + base))
    for i in range(3):  # trying to reach two taps at a by tapping again and again
        log.tap("a", at(22, 6, 10 * i))
    engine, out = run(log, after_midnight(0, 0, 1), schedules=schedules)
    rep = engine.report(R22)
    assert rep.state == INCOMPLETE
    assert dict(rep.counts) == {"a": 1, "b": 1, "c": 1}
    assert rep.repeated_taps == 3
    assert f"{R22}/suspicious/repeated_taps/a" in alerts(out, AlertRaised)
    # Genuine second visits, 10+ minutes apart, count.
    for cp, base in (("a", 40), ("b", 45), ("c", 50)):
        log.tap(cp, at(22, base))
    engine, _ = run(log, after_midnight(0, 0, 1), schedules=schedules)
    assert engine.report(R22).state == COMPLETED


def test_responsible_guards_and_unknown_wristbands() -> None:
    schedules = [
        {
            "id": "night",
            "route": "r1",
            "every_hours": 2,
            "start": "22:00",
            "end": "06:00",
            "guards": ["g1"],
        }
    ]
    log = started_log()
    log.tap("a", at(22, 5), guard="g9")
    log.tap("b", at(22, 10), guard="unknown")
    log.tap("c", at(22, 20), guard="g1")
    engine, _ = run(log, after_midnight(0, 0, 1), schedules=schedules)
    assert engine.report(R22).state == INCOMPLETE
    statuses = [status for _, status in engine.round_taps(R22)]
    assert statuses == [
        "guard g9 is not responsible for night",
        "unknown wristband",
        "credited",
    ]


def test_time_zone_is_configurable() -> None:
    log = EventLog()
    log.add("daemon.started", at(12))
    utc = ZoneInfo("UTC")
    log.tap("a", at(22, 5, tz=utc))
    engine, _ = replay(section(timezone="UTC"), log.events, now=at(22, 6, tz=utc), origin=at(12))
    rid = "night@2026-11-28T22:00"
    assert engine.report(rid).window_start == at(22, tz=utc)
    assert engine.report(rid).state == STARTED
    # The same instant is 06:05 the next morning in Shanghai: no round of the night is open.
    shanghai, _ = replay(section(), log.events, now=at(22, 6, tz=utc), origin=at(12))
    assert at(22, 5, tz=utc) == after_midnight(6, 5)
    assert [shanghai.report(r).state for r in shanghai.round_ids("2026-11-28")] == [MISSED] * 4


def test_dst_zone_uses_zoneinfo_offsets() -> None:
    # New York leaves DST on 2026-11-01: a schedule's local times keep their wall-clock hours.
    ny = ZoneInfo("America/New_York")
    from datetime import datetime

    origin = datetime(2026, 10, 31, 12, tzinfo=ny).timestamp()
    engine = PatrolEngine(section(timezone="America/New_York"), origin=origin)
    engine.advance(origin + 1)
    before = engine.report("night@2026-10-31T22:00").window_start
    after = engine.report("night@2026-11-01T22:00").window_start
    assert after - before == 25 * 3600  # the day of the fall-back has 25 hours
    assert (
        engine.report("night@2026-11-01T00:00").window_end
        - engine.report("night@2026-11-01T00:00").window_start
        == 7200
    )


def test_daily_summary_due_at_local_hour_and_on_demand() -> None:
    log = started_log()
    log.tap("a", at(22, 5))
    log.tap("b", at(22, 10))
    log.tap("c", at(22, 20))
    engine, out = run(log, after_midnight(8, 0))
    assert not any(isinstance(o, DailySummary) for o in out)  # due at 08:00, not yet past
    on_demand = engine.daily_summary("2026-11-28")
    assert on_demand.routes[0].as_dict() | {"key": "r1"} == {
        "key": "r1",
        "planned": 4,
        "completed": 1,
        "late": 0,
        "incomplete": 0,
        "missed": 3,
        "unassessable": 0,
        "pending": 0,
        "checkpoints_done": 3,
        "checkpoints_due": 12,
        "checkpoint_completion": 0.25,
        "on_time_rate": 0.25,
        "sequence_adherence": 1.0,
    }
    out = engine.advance(after_midnight(8, 0, 1))
    summaries = [o for o in out if isinstance(o, DailySummary)]
    assert [s.day for s in summaries] == ["2026-11-28"]
    assert summaries[0].at == after_midnight(8)
    assert summaries[0].missed_rounds == (R00, R02, R04)
    text = render_summary(summaries[0])
    assert "missed rounds: " + ", ".join((R00, R02, R04)) in text


def test_today_table_and_explain() -> None:
    log = started_log()
    log.tap("a", at(22, 5))
    engine, _ = run(log, at(22, 30))
    rows = today_rows(engine)
    assert [r["round"] for r in rows] == [R22, R00, R02, R04]
    assert rows[0] == {
        "round": R22,
        "route": "r1",
        "window": "22:00-00:00",
        "state": STARTED,
        "done": "1/3",
        "started": "22:05",
        "guards": "g1",
        "note": "",
    }
    text = render_today(rows)
    assert text.splitlines()[0].split() == [
        "round",
        "route",
        "window",
        "state",
        "done",
        "started",
        "guards",
        "note",
    ]
    lines = explain(engine, R22)
    assert (
        lines[0]
        == "round night@2026-11-28T22:00: route North loop (ordered, 3 checkpoints, each 1x)"
    )
    assert "  b: 0 of 1 tap(s) [pending]" in lines


def test_explicit_outage_input_and_adapter_shapes() -> None:
    engine = PatrolEngine(section(), origin=at(12))
    engine.feed([Outage("reader", at(22, 30), at(23, 0), subject="a")])
    engine.advance(after_midnight(0, 0, 1))
    assert engine.report(R22).state == UNASSESSABLE
    inputs = engine_inputs_from_event(
        {
            "seq": 7,
            "kind": "tap",
            "wall_time": 100.0,
            "boot_id": "b",
            "clock_synced": True,
            "payload": {"checkpoint": "a", "guard": "g1", "wristband": "04aa", "tapped_at": 40.0},
        }
    )
    assert inputs[1] == Tap(7, "a", "g1", "04aa", 40.0, 100.0, True, True, "")
    assert (
        len(
            engine_inputs_from_event(
                {"seq": 8, "kind": "patrol.round", "wall_time": 1.0, "payload": {"round": "x"}}
            )
        )
        == 1
    )


def test_forget_before_drops_whole_summarised_days() -> None:
    log = started_log()
    log.tap("a", at(22, 5))
    engine, _ = run(log, at(9, day=30))  # the nights of the 28th and 29th are summarised
    assert engine.round_ids("2026-11-28") and engine.round_ids("2026-11-29")
    assert engine.forget_before(after_midnight(8, 0, 1)) == 4
    assert engine.round_ids("2026-11-28") == []
    assert len(engine.round_ids("2026-11-29")) == 4
    # A late tap for a forgotten night changes nothing and raises nothing.
    assert engine.feed([Tap(99, "b", "g1", "w", at(22, 10), at(9, 1, day=30))]) == []


def test_fixed_time_schedule() -> None:
    schedules = [{"id": "gate", "route": "r1", "times": ["12:30", "18:00"], "window_minutes": 60}]
    log = started_log()
    for i, cp in enumerate("abc"):
        log.tap(cp, at(18, 10 + 2 * i))
    engine, _ = run(log, at(19, 1), schedules=schedules)
    assert engine.round_ids("2026-11-28") == ["gate@2026-11-28T12:30", "gate@2026-11-28T18:00"]
    assert engine.report("gate@2026-11-28T12:30").state == MISSED
    assert engine.report("gate@2026-11-28T18:00").state == COMPLETED


def test_a_round_open_before_the_summary_hour_is_shown_now() -> None:
    """07:25-09:25 belongs to the patrol day whose summary is tomorrow at 08:00, but at 07:30
    guards walk it: `patrol today` and the status page list it after the day in progress."""
    morning = [
        {"id": "am", "route": "r1", "times": ["07:25", "10:00"], "window_minutes": 120},
    ]
    log = started_log()
    log.tap("a", after_midnight(7, 27))
    engine, _ = run(log, after_midnight(7, 30), schedules=morning)
    day, rows = current_rows(engine)
    assert day == "2026-11-28"  # the day in progress ends at 08:00 on the 29th
    assert [r["round"] for r in today_rows(engine, day)] == []
    assert [(r["round"], r["done"], r["guards"]) for r in rows] == [
        ("am@2026-11-29T07:25", "1/3", "g1")
    ]  # the 10:00 round of the same day is not open yet
    assert today_rows(engine) == rows
