"""The daily patrol bulletin from fixed verdict fixtures: every expected number is hand-computed
(see docs/bulletins.md, "Worked example", which walks through this very fixture)."""

from __future__ import annotations

import random
from typing import Any

from centre.bulletins.model import (
    STATUS_AWAITING,
    STATUS_EXPLAIN,
    STATUS_EXPLAINED,
    STATUS_NO_DATA,
    DailyBulletin,
    Explanation,
    Unit,
    daily_bulletin,
    latest_summaries,
    latest_verdicts,
)
from tests.bulletins.helpers import NOV_2, at_gateway, event, summary, verdict

DAY = "2026-11-02"
ROSE = ("gw-rose", "Rose Garden", "North")
LOTUS = ("gw-lotus", "Lotus Court", "North")
UNITS = [
    Unit("Lotus Court", "North", ("gw-lotus",)),
    Unit("Rose Garden", "North", ("gw-rose",)),
    Unit("Bamboo", "South", ("gw-bamboo",)),
]


def rose_events() -> list[dict[str, Any]]:
    gw = ROSE
    t = NOV_2 + 86400.0  # verdicts journaled the next day; only their order matters here
    evs = [
        event(1, "patrol.round", verdict("night@2026-11-02T22:00", DAY, "completed"), t + 1),
        event(2, "patrol.round", verdict("night@2026-11-03T00:00", DAY, "late_completed"), t + 2),
        # 02:00 first judged missed, then revised: a buffered tap arrived (revision 2).
        event(3, "patrol.round", verdict("night@2026-11-03T02:00", DAY, "missed",
                                         counts={"a": 0, "b": 0, "c": 0}), t + 3),
        event(4, "patrol.round", verdict("night@2026-11-03T04:00", DAY, "missed",
                                         counts={"a": 0, "b": 0, "c": 0},
                                         reasons=["no credited tap between 04:00 and 06:00"],
                                         responsible=["g1", "g2"]), t + 4),
        event(5, "patrol.daily_summary", summary(DAY, [4]), t + 5),
        event(6, "patrol.round", verdict("night@2026-11-03T02:00", DAY, "incomplete",
                                         counts={"a": 1, "b": 0, "c": 1}, revision=2), t + 6),
        event(7, "patrol.daily_summary", summary(DAY, [4], revision=2), t + 7),
    ]  # fmt: skip
    return [at_gateway(e, *gw) for e in evs]


def lotus_events() -> list[dict[str, Any]]:
    t = NOV_2 + 86400.0
    evs = [
        # Another day's verdict: must not count on 2026-11-02.
        event(1, "patrol.round", verdict("gate@2026-11-01T12:30", "2026-11-01", "missed",
                                         counts={"a": 0, "b": 0}), t - 86400),
        event(2, "patrol.round", verdict("gate@2026-11-02T12:30", DAY, "completed",
                                         counts={"a": 2, "b": 2}, required=2), t + 1),
        event(3, "patrol.round", verdict("gate@2026-11-02T18:00", DAY, "unassessable",
                                         counts={"a": 1, "b": 0}, excused=["b"]), t + 2),
        # Three rounds planned, only two verdicts uploaded so far: one is awaited.
        event(4, "patrol.daily_summary", summary(DAY, [2, 1]), t + 3),
    ]  # fmt: skip
    return [at_gateway(e, *LOTUS) for e in evs]


def build(events: list[dict[str, Any]], explanations: list[Explanation] = ()) -> DailyBulletin:  # type: ignore[assignment]
    rounds = [e for e in events if e["kind"] == "patrol.round"]
    sums = [e for e in events if e["kind"] == "patrol.daily_summary"]
    return daily_bulletin(
        DAY,
        UNITS,
        latest_verdicts(rounds),
        latest_summaries(sums),
        explanations,
        now=NOV_2 + 2 * 86400.0,
    )


def table(b: DailyBulletin) -> list[tuple[Any, ...]]:
    return [
        (
            r.compound,
            r.tally.planned,
            r.tally.completed,
            r.tally.late,
            r.tally.incomplete,
            r.tally.missed,
            r.tally.unassessable,
            r.tally.awaiting,
            r.tally.checkpoints_done,
            r.tally.checkpoints_due,
            r.status,
        )
        for r in b.rows
    ]


EXPECTED = [
    # compound      plan done late inc miss unas await cp_done cp_due status
    ("Lotus Court", 3, 1, 0, 0, 0, 1, 1, 2, 2, STATUS_AWAITING),
    ("Rose Garden", 4, 1, 1, 1, 1, 0, 0, 8, 12, STATUS_EXPLAIN),
    ("Bamboo", 0, 0, 0, 0, 0, 0, 0, 0, 0, STATUS_NO_DATA),
]


def test_fixture_gives_the_hand_computed_table() -> None:
    b = build(rose_events() + lotus_events())
    assert table(b) == EXPECTED
    t = b.total
    assert (t.planned, t.completed, t.late, t.incomplete, t.missed, t.unassessable) == (
        7, 2, 1, 1, 1, 1,
    )  # fmt: skip
    assert (t.awaiting, t.checkpoints_done, t.checkpoints_due) == (1, 10, 14)
    assert round(t.checkpoint_completion or 0, 4) == 0.7143  # 10 / 14
    assert b.rows[1].tally.checkpoint_completion == 8 / 12
    assert b.rows[2].tally.checkpoint_completion is None  # nothing due: no rate, not 0 %
    assert [m.round_id for m in b.missed] == ["night@2026-11-03T04:00"]
    m = b.missed[0]
    assert (m.compound, m.township, m.responsible, m.explanations) == (
        "Rose Garden", "North", ("g1", "g2"), (),
    )  # fmt: skip
    assert m.reasons == ("no credited tap between 04:00 and 06:00",)
    assert b.must_explain == ("Rose Garden",)


def test_duplicates_and_any_order_change_nothing() -> None:
    events = rose_events() + lotus_events()
    resent = events + [dict(e) for e in events[2:6]] + events[:1]
    rng = random.Random(7)
    for _ in range(20):
        rng.shuffle(resent)
        assert table(build(resent)) == EXPECTED


def test_latest_revision_wins_even_when_it_arrives_first() -> None:
    evs = rose_events()
    revised = [e for e in evs if e["payload"].get("revision") == 2 and e["kind"] == "patrol.round"]
    first = [e for e in evs if e not in revised]
    v = latest_verdicts(revised + first)
    assert v[("gw-rose", "night@2026-11-03T02:00")].verdict == "incomplete"
    assert v[("gw-rose", "night@2026-11-03T02:00")].revision == 2
    # Without the revision the 02:00 round is a second missed round.
    b = build(first)
    assert table(b)[1] == ("Rose Garden", 4, 1, 1, 0, 2, 0, 0, 6, 12, STATUS_EXPLAIN)


def test_same_round_id_on_two_gateways_counts_twice() -> None:
    second = [
        at_gateway(e, "gw-rose-2", "Rose Garden", "North")
        for e in (
            event(1, "patrol.round", verdict("night@2026-11-02T22:00", DAY, "completed"), NOV_2),
        )
    ]
    units = [Unit("Rose Garden", "North", ("gw-rose", "gw-rose-2"))]
    evs = rose_events() + second
    b = daily_bulletin(
        DAY,
        units,
        latest_verdicts(e for e in evs if e["kind"] == "patrol.round"),
        latest_summaries(e for e in evs if e["kind"] == "patrol.daily_summary"),
        [],
        now=NOV_2,
    )
    assert (b.rows[0].tally.planned, b.rows[0].tally.completed) == (5, 2)


def test_explanations_mark_the_round_and_the_compound() -> None:
    x1 = Explanation(1, "Rose Garden", "night@2026-11-03T04:00", "guard g2 ill", "chief Wang",
                     "duty-1", NOV_2 + 3 * 86400)  # fmt: skip
    x2 = Explanation(2, "Rose Garden", "night@2026-11-03T04:00", "relief arranged", "",
                     "duty-2", NOV_2 + 4 * 86400)  # fmt: skip
    other = Explanation(3, "Lotus Court", "night@2026-11-03T04:00", "wrong compound", "",
                        "duty-1", NOV_2)  # fmt: skip
    b = build(rose_events() + lotus_events(), [x2, other, x1])
    rose = b.rows[1]
    assert rose.status == STATUS_EXPLAINED
    assert rose.tally.missed_explained == 1
    assert b.missed[0].explanations == (x1, x2)  # in the order they were recorded
    assert b.must_explain == ()


def test_malformed_verdicts_are_ignored() -> None:
    bad = [
        at_gateway(event(9, "patrol.round", {"round": 3, "day": DAY}, NOV_2), *ROSE),
        at_gateway(
            event(10, "patrol.round", {"round": "x@1", "day": DAY, "verdict": "great"}, NOV_2),
            *ROSE,
        ),
        at_gateway(event(11, "patrol.round", [], NOV_2), *ROSE),  # type: ignore[arg-type]
    ]
    assert latest_verdicts(bad) == {}
