"""Monthly bulletin: uptime arithmetic on crafted state-change sequences (hand-computed hours),
patrol compliance over the month, broadcasts and open faults."""

from __future__ import annotations

import math
from typing import Any

import pytest

from centre.bulletins.model import (
    DOWN,
    UNKNOWN,
    UP,
    GatewayActivity,
    MonthlyBulletin,
    StateChange,
    Unit,
    broadcast_counts,
    device_uptime,
    gateway_down_spans,
    latest_verdicts,
    month_bounds,
    monthly_bulletin,
    state_changes,
)
from tests.bulletins.helpers import NOV_1, OCT_1, H, at_gateway, event, verdict

MONTH_H = 31 * 24  # October: 744 hours


def test_month_bounds_in_shanghai_and_elsewhere() -> None:
    assert month_bounds("2026-10") == (OCT_1, NOV_1)
    assert month_bounds("2026-12")[1] - month_bounds("2026-12")[0] == 31 * 86400
    # Europe/Berlin leaves summer time on 2026-10-25: October has 745 hours there.
    lo, hi = month_bounds("2026-10", "Europe/Berlin")
    assert hi - lo == 745 * H
    with pytest.raises(ValueError):
        month_bounds("2026-13")


def gateway_events() -> list[dict[str, Any]]:
    """One gateway's October, all times in hours from 2026-10-01 00:00 local."""

    def ev(seq: int, kind: str, payload: dict[str, Any], hours: float, **kw: Any) -> Any:
        return event(seq, kind, payload, OCT_1 + hours * H, **kw)

    reader = {"reader": "bus0:1", "checkpoint": "north-gate"}
    return [
        # Known before the month started: up from 00:00.
        ev(1, "reader.state", reader | {"state": "online"}, -5 * 24),
        ev(2, "link.up", {"centre": "c"}, -24),
        ev(3, "health.state", {"device": "relay-1", "kind": "relay", "state": "ok",
                               "previous": "unknown", "reason": "read-back"}, -24),
        ev(4, "reader.state", reader | {"state": "offline", "reason": "no reply"}, 10),
        ev(5, "reader.state", reader | {"state": "online"}, 13),
        # The camera's first state arrives a day in: the first 24 h are unknown.
        ev(6, "health.state", {"device": "cam-1", "kind": "camera", "state": "ok",
                               "previous": "unknown", "reason": ""}, 24),
        ev(7, "health.state", {"device": "cam-1", "kind": "camera", "state": "degraded",
                               "previous": "ok", "reason": "slow"}, 48),
        ev(8, "health.state", {"device": "cam-1", "kind": "camera", "state": "ok",
                               "previous": "degraded", "reason": ""}, 50),
        # Power cut: last event at 98 h, next boot at 100 h.
        ev(9, "daemon.started", {"last_event_wall": OCT_1 + 98 * H,
                                 "previous_stop": "unclean"}, 100, boot="boot-2"),
        ev(10, "link.down", {"reason": "timeout"}, 200),
        ev(11, "link.up", {}, 206),
        # Unsynchronised clock: this change cannot be placed, so 300 h..303 h is unknown.
        ev(12, "health.state", {"device": "relay-1", "kind": "relay", "state": "down",
                                "previous": "ok", "reason": "?"}, 300, synced=False),
        ev(13, "health.state", {"device": "relay-1", "kind": "relay", "state": "ok",
                                "previous": "unknown", "reason": "read-back"}, 303),
        ev(14, "health.state", {"device": "cam-1", "kind": "camera", "state": "down",
                                "previous": "ok", "reason": "connection refused"}, 740),
    ]  # fmt: skip


def hours(d: Any) -> tuple[float, float, float, float]:
    return (d.up_s / H, d.degraded_s / H, d.down_s / H, d.unknown_s / H)


def october(events: list[dict[str, Any]], horizon: float = NOV_1 + 86400) -> MonthlyBulletin:
    units = [Unit("Rose Garden", "North", ("gw-rose",))]
    evs = [at_gateway(e, "gw-rose", "Rose Garden", "North") for e in events]
    act = GatewayActivity(
        "gw-rose",
        horizon=horizon,
        state_events=[e for e in evs if e["kind"] in
                      ("reader.state", "health.state", "link.up", "link.down")],
        daemon_events=[e for e in evs if e["kind"].startswith("daemon.")],
        broadcast_events=[e for e in evs if e["kind"].startswith("broadcast.")],
    )  # fmt: skip
    verdicts = latest_verdicts(e for e in evs if e["kind"] == "patrol.round")
    return monthly_bulletin("2026-10", units, verdicts, {"gw-rose": act}, now=NOV_1 + 5 * 86400)


def test_uptime_hours_per_device() -> None:
    b = october(gateway_events())
    devices = {(d.kind, d.device): d for d in b.townships[0].compounds[0].devices}
    assert set(devices) == {
        ("reader", "bus0:1"),
        ("camera", "cam-1"),
        ("relay", "relay-1"),
        ("link", "centre link"),
    }
    # reader: offline 10-13 h (3 h down); gateway down 98-100 h (2 h unknown); rest up.
    assert hours(devices[("reader", "bus0:1")]) == (739, 0, 3, 2)
    assert devices[("reader", "bus0:1")].label == "north-gate"
    # camera: unknown 0-24 and 98-100, ok 24-48, degraded 48-50, ok 50-740 less 2 h, down 740-744.
    assert hours(devices[("camera", "cam-1")]) == (712, 2, 4, 26)
    # relay: unknown 300-303 (unsynchronised clock) and 98-100; up otherwise.
    assert hours(devices[("relay", "relay-1")]) == (739, 0, 0, 5)
    # link: down 200-206, and down while the gateway was stopped (98-100): 8 h.
    assert hours(devices[("link", "centre link")]) == (736, 0, 8, 0)
    for d in devices.values():
        assert d.period_s == MONTH_H * H
    cam = devices[("camera", "cam-1")]
    assert cam.uptime == pytest.approx(714 / 744)
    assert cam.known == pytest.approx(718 / 744)
    kinds = b.townships[0].compounds[0].uptime_by_kind
    assert kinds["reader"].uptime == pytest.approx(739 / 744)
    assert kinds["link"].uptime == pytest.approx(736 / 744)
    assert b.townships[0].uptime_by_kind["camera"].unknown == pytest.approx(26 / 744)


def test_open_fault_at_month_end() -> None:
    b = october(gateway_events())
    faults = b.townships[0].compounds[0].faults
    assert [(f.kind, f.device, f.state, f.since, f.reason) for f in faults] == [
        ("camera", "cam-1", DOWN, OCT_1 + 740 * H, "connection refused")
    ]
    assert b.townships[0].faults == 1


def test_horizon_makes_the_rest_unknown_and_stale_gateway_is_a_fault() -> None:
    # The centre heard from this gateway last at 500 h: 500-744 h is unknown for every device.
    b = october(gateway_events(), horizon=OCT_1 + 500 * H)
    devices = {(d.kind, d.device): d for d in b.townships[0].compounds[0].devices}
    assert hours(devices[("reader", "bus0:1")]) == (495, 0, 3, 246)
    assert hours(devices[("link", "centre link")]) == (492, 0, 8, 244)
    faults = b.townships[0].compounds[0].faults
    assert [(f.kind, f.state, f.since, f.reason) for f in faults] == [
        ("gateway", UNKNOWN, OCT_1 + 500 * H, "no upload since")
    ]


def test_month_under_way_is_measured_to_now() -> None:
    units = [Unit("Rose Garden", "North", ("gw-rose",))]
    evs = [
        at_gateway(e, "gw-rose", "Rose Garden", "North")
        for e in (event(1, "link.up", {}, NOV_1 - H),)
    ]
    act = GatewayActivity("gw-rose", horizon=NOV_1 + 90 * H, state_events=evs)
    b = monthly_bulletin("2026-11", units, {}, {"gw-rose": act}, now=NOV_1 + 100 * H)
    assert b.partial and b.period_end == NOV_1 + 100 * H
    d = b.townships[0].compounds[0].devices[0]
    assert hours(d) == (90, 0, 0, 10)


def test_gateway_stopped_at_month_end() -> None:
    evs = [
        *gateway_events()[:3],
        event(20, "daemon.stopped", {"reason": "SIGTERM"}, OCT_1 + 700 * H),
    ]
    b = october(evs)
    devices = {(d.kind, d.device): d for d in b.townships[0].compounds[0].devices}
    assert hours(devices[("link", "centre link")]) == (700, 0, 44, 0)
    assert hours(devices[("reader", "bus0:1")]) == (700, 0, 0, 44)
    faults = b.townships[0].compounds[0].faults
    assert [(f.kind, f.state, f.since) for f in faults] == [("gateway", DOWN, OCT_1 + 700 * H)]


def test_device_uptime_edges() -> None:
    tl = [StateChange(10.0, 1, "reader", "r", DOWN), StateChange(10.0, 2, "reader", "r", UP)]
    totals, last, since, _ = device_uptime(tl, start=0.0, end=100.0, horizon=100.0)
    # Same-instant changes: the later seq holds from that instant.
    assert (totals[UNKNOWN], totals[UP], totals[DOWN]) == (10.0, 90.0, 0.0)
    assert (last, since) == (UP, 10.0)
    totals, last, since, _ = device_uptime([], start=0.0, end=50.0, horizon=50.0)
    assert totals[UNKNOWN] == 50.0 and last == UNKNOWN and since is None
    totals, *_ = device_uptime(tl, start=5.0, end=5.0, horizon=9.0)
    assert sum(totals.values()) == 0.0


def test_down_spans_from_daemon_events() -> None:
    evs = [
        event(1, "daemon.stopped", {}, 100.0),
        event(2, "daemon.started", {"last_event_wall": 100.0}, 160.0),
        event(3, "daemon.started", {"last_event_wall": 300.0}, 360.0),  # crash
        event(4, "daemon.started", {"previous_stop": "first_start"}, 400.0),
        event(5, "daemon.stopped", {}, 900.0),
    ]
    assert gateway_down_spans(evs) == [(100.0, 160.0), (300.0, 360.0), (900.0, math.inf)]


def test_state_change_parsing() -> None:
    evs = [
        event(1, "reader.state", {"reader": "r", "checkpoint": "c", "state": "weird"}, 1.0),
        event(2, "health.state", {"device": "", "kind": "camera", "state": "ok"}, 1.0),
        event(3, "tap", {"checkpoint": "c"}, 1.0),
    ]
    got = state_changes(evs)
    assert list(got) == [("reader", "r")]
    assert got[("reader", "r")][0].state == UNKNOWN


def test_broadcast_counts_distinct_requests_in_the_period() -> None:
    evs = [
        event(1, "broadcast.on", {"request_id": "a"}, OCT_1 - 1),  # September
        event(2, "broadcast.on", {"request_id": "a"}, OCT_1 + 1),
        event(3, "broadcast.on", {"request_id": "b"}, OCT_1 + 2),
        event(4, "broadcast.on", {"request_id": "b"}, OCT_1 + 3),  # the same broadcast again
        event(5, "broadcast.failed", {"request_id": "c"}, OCT_1 + 4),
        event(6, "broadcast.refused", {"request_id": "d"}, OCT_1 + 5),
        event(7, "broadcast.command_refused", {"digest": "e"}, OCT_1 + 6),
        event(8, "broadcast.off", {"request_id": "a"}, OCT_1 + 7),
        event(9, "broadcast.on", {"request_id": "z"}, NOV_1),  # November
    ]
    c = broadcast_counts(evs, OCT_1, NOV_1)
    assert (c.run, c.failed, c.refused) == (2, 1, 2)


def test_monthly_patrol_compliance() -> None:
    rounds = [
        event(30, "patrol.round", verdict("n@2026-10-05T22:00", "2026-10-05", "completed"), OCT_1),
        event(31, "patrol.round", verdict("n@2026-10-06T00:00", "2026-10-05", "missed",
                                          counts={"a": 0, "b": 0, "c": 0}), OCT_1),
        event(32, "patrol.round", verdict("n@2026-10-31T22:00", "2026-10-31", "late_completed"),
              NOV_1),
        event(33, "patrol.round", verdict("n@2026-11-01T22:00", "2026-11-01", "missed"), NOV_1),
        event(34, "patrol.round", verdict("n@2026-09-30T22:00", "2026-09-30", "missed"), OCT_1),
        event(35, "patrol.round", verdict("n@2026-10-07T22:00", "2026-10-07", "unassessable",
                                          counts={"a": 0, "b": 0, "c": 0}), OCT_1),
    ]  # fmt: skip
    b = october(gateway_events() + rounds)
    t = b.townships[0].compounds[0].patrol
    assert (t.planned, t.completed, t.late, t.missed, t.unassessable) == (4, 1, 1, 1, 1)
    assert t.compliance == pytest.approx(2 / 3)
    assert t.on_time == pytest.approx(1 / 3)
    assert (t.checkpoints_done, t.checkpoints_due) == (6, 9)


def test_the_computation_is_pure() -> None:
    """model.py imports nothing that does I/O or reads a clock."""
    import ast
    from pathlib import Path

    from centre.bulletins import model

    tree = ast.parse(Path(model.__file__).read_text(encoding="utf-8"))
    imported = {
        (n.module or "") if isinstance(n, ast.ImportFrom) else a.name
        for n in ast.walk(tree)
        if isinstance(n, ast.Import | ast.ImportFrom)
        for a in n.names
    }
    roots = {name.split(".")[0] for name in imported}
    assert not roots & {"asyncio", "sqlite3", "time", "os", "aiohttp", "socket", "centre"}, roots


def test_relay_board_read_backs_count_as_relay_uptime() -> None:
    # The broadcast service journals relay_board.state up/down from its read-backs: the
    # monthly bulletin's relay column is built from them (hand-computed: 10 h up, 5 h down).
    evs = [
        event(1, "relay_board.state", {"board": "amp-main", "state": "up"}, 0.0),
        event(
            2,
            "relay_board.state",
            {"board": "amp-main", "state": "down", "error": "no answer"},
            10 * H,
        ),
        event(3, "relay_board.state", {"board": "amp-main", "state": "up"}, 15 * H),
    ]
    got = state_changes(evs)
    assert list(got) == [("relay", "amp-main")]
    timeline = got[("relay", "amp-main")]
    assert [c.state for c in timeline] == [UP, DOWN, UP]
    assert timeline[1].reason == "no answer"
    totals, last, _, _ = device_uptime(timeline, start=0.0, end=20 * H, horizon=20 * H)
    assert (totals[UP], totals[DOWN], totals[UNKNOWN]) == (15 * H, 5 * H, 0.0)
    assert last == UP
