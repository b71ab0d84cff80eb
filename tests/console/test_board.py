"""What the console shows, from stored events: device counts, today's rounds, alerts and their
order, broadcast progress; and no stored payload, however odd, breaks the board."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from centre.commands.store import CommandRecord
from centre.store import GatewayRecord
from centre.web import board
from centre.web.store import AckRecord

TZ = "Asia/Shanghai"
NOW = dt.datetime(2026, 12, 6, 10, 0, tzinfo=ZoneInfo(TZ)).timestamp()
TODAY = "2026-12-06"


def gateway(gw: str, township: str, compound: str, last_seen: float | None) -> GatewayRecord:
    return GatewayRecord(
        gw, compound, township, "fp-" + gw, "", "", "", NOW - 86400, None, None, last_seen,
        0, 0, 0, 0,
    )  # fmt: skip


def event(gw: str, seq: int, kind: str, payload: Any, at: float = NOW - 60) -> dict[str, Any]:
    return {"gateway_id": gw, "seq": seq, "kind": kind, "wall_time": at, "payload": payload}


def command(cid: str, gw: str, status: str, summary: str, **times: float) -> CommandRecord:
    return CommandRecord(
        cid, gw, 1, "broadcast.start", summary, NOW - 30, NOW + 90, b"", status, "why", "console:a",
        times.get("delivered_at"), times.get("received_at"), times.get("on_at"),
        times.get("finished_at"),
    )  # fmt: skip


GATEWAYS = [
    gateway("gw-a", "North", "Rose Garden", NOW - 10),
    gateway("gw-b", "South", "Lotus Court", NOW - 3600),  # silent for an hour: link down
]
EVENTS = [
    event("gw-a", 1, "reader.state", {"reader": "r1", "checkpoint": "gate", "state": "online"}),
    event("gw-a", 2, "reader.state", {"reader": "r2", "checkpoint": "shed", "state": "online"}),
    event("gw-a", 3, "reader.state", {"reader": "r2", "checkpoint": "shed", "state": "offline"}),
    event("gw-a", 4, "health.state", {"device": "cam-1", "kind": "camera", "state": "ok"}),
    event("gw-a", 5, "relay_board.state", {"board": "main", "state": "up"}),
    event("gw-a", 6, "patrol.round", {"round": "r1", "day": TODAY, "verdict": "completed"}),
    event("gw-a", 7, "patrol.round", {"round": "r2", "day": TODAY, "verdict": "missed"}),
    # a later revision of r2: late after all (the alert follows the latest verdict)
    event(
        "gw-a",
        8,
        "patrol.round",
        {"round": "r2", "day": TODAY, "verdict": "late_completed", "revision": 1},
        at=NOW - 30,
    ),
    event("gw-a", 9, "patrol.daily_summary", {"day": TODAY, "routes": [{"planned": 4}]}),
    event("gw-b", 1, "tamper.open", {"input": "tamper"}, at=NOW - 600),
    event("gw-b", 2, "power.mains_lost", {}, at=NOW - 500),
    event("gw-b", 3, "patrol.round", {"round": "n1", "day": TODAY, "verdict": "missed"}),
    event("gw-b", 4, "tamper.open", {"input": "tamper"}, at=NOW - 8 * 86400),  # too old
]


def test_board_rows_count_devices_rounds_and_alerts() -> None:
    data = board.build(GATEWAYS, EVENTS, [], {}, now=NOW, tz=TZ, connected=())
    rose, lotus = sorted(data.compounds, key=lambda r: r.compound, reverse=True)
    assert (rose.compound, lotus.compound) == ("Rose Garden", "Lotus Court")
    assert rose.link_up and not lotus.link_up
    assert (rose.readers.up, rose.readers.total) == (1, 2)
    assert (rose.cameras.up, rose.cameras.total, rose.relays.total) == (1, 1, 1)
    assert rose.health == "down"  # the offline reader
    r = rose.rounds
    assert (r.done, r.planned, r.missed, r.late) == (2, 4, 0, 1)
    assert lotus.state == "down" and rose.state == "alert"
    assert data.townships == ["North", "South"]


def test_alerts_put_open_actual_priority_first_and_acknowledged_last() -> None:
    acks = {"ev:gw-b:1": AckRecord("ev:gw-b:1", "zhang", NOW - 100, "checked")}
    data = board.build(GATEWAYS, EVENTS, [], acks, now=NOW, tz=TZ)
    kinds = [(a.kind, a.open) for a in data.alerts]
    assert kinds == [
        ("missed_round", True),  # Actual priority, open, newest first
        ("mains_loss", True),
        ("late_round", True),  # open, routine
        ("device_fault", True),
        ("tamper", False),  # acknowledged: last, whatever its priority
    ]
    lotus = next(r for r in data.compounds if r.compound == "Lotus Court")
    assert (lotus.open_alerts, lotus.actual_alerts) == (2, 2)


def test_broadcast_progress_uses_operator_words_and_refusals_are_alerts() -> None:
    commands = [
        command("cmd-1", "gw-a", "done", "zones 1 30s drill [Exercise]", finished_at=NOW - 5),
        command("cmd-2", "gw-b", "refused", "zones 1 30s evacuate [Actual]", finished_at=NOW - 4),
        command("cmd-3", "gw-a", "on", "zones 2 30s drill [Test]", on_at=NOW - 3),
    ]
    data = board.build(GATEWAYS, [], commands, {}, now=NOW, tz=TZ)
    assert [(p.stage, p.status) for p in data.progress] == [
        ("finished", "Exercise"),
        ("refused", "Actual"),
        ("relays_on", "Test"),
    ]
    assert [(a.kind, a.alert_id, a.compound) for a in data.alerts] == [
        ("refused_command", "cmd:cmd-2", "Lotus Court")
    ]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
KINDS = sorted({*board.STATE_KINDS, *board.OTHER_KINDS, "tap"})
payload_keys = st.sampled_from(
    ["reader", "checkpoint", "state", "device", "kind", "board", "round", "day", "verdict",
     "revision", "routes", "planned", "input", "code", "reason", "route", "local_start"]
)  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["gw-a", "gw-b", "gw-unknown"]),
            st.sampled_from(KINDS),
            st.one_of(json_values, st.dictionaries(payload_keys, json_values, max_size=6)),
            st.floats(min_value=NOW - 10 * 86400, max_value=NOW + 86400),
        ),
        max_size=20,
    )
)
def test_no_stored_payload_breaks_the_board(items: list[tuple[str, str, Any, float]]) -> None:
    events = [event(gw, i, kind, payload, at) for i, (gw, kind, payload, at) in enumerate(items)]
    data = board.build(GATEWAYS, events, [], {}, now=NOW, tz=TZ)
    assert len(data.compounds) == 2
    for row in data.compounds:
        assert row.rounds.planned >= row.rounds.done + row.rounds.missed
        assert row.readers.up <= row.readers.total
    assert all(a.kind in board.ALERT_KINDS for a in data.alerts)
