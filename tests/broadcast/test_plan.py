"""The pure broadcast core: phases, concurrency rules, fail-off, interrupted detection."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from gateway.broadcast.plan import (
    BroadcastCore,
    Drive,
    Layout,
    Notify,
    Record,
    RelayRef,
    StartRequest,
    interrupted_broadcast,
)

AMP = RelayRef("main", 0)
Z = {1: RelayRef("main", 1), 2: RelayRef("main", 2), 3: RelayRef("aux", 0)}


def layout(amp: bool = True) -> Layout:
    return Layout(
        zones=Z,
        amplifier=AMP if amp else None,
        warmup_s=2.0,
        max_duration_s=300.0,
        hardware_grace_s=5.0,
    )


def req(rid: str = "r1", zones=(1, 2), dur: float = 60.0, source: str = "remote") -> StartRequest:
    return StartRequest(rid, tuple(zones), dur, source, reason="test")


def drives(effects) -> list[Drive]:
    return [e for e in effects if isinstance(e, Drive)]


def kinds(effects) -> list[str]:
    return [e.kind for e in effects if isinstance(e, Record)]


def notes(effects) -> list[tuple[str, str]]:
    return [(e.request_id, e.stage) for e in effects if isinstance(e, Notify)]


def booted(lay: Layout | None = None) -> BroadcastCore:
    core = BroadcastCore(lay or layout())
    (d,) = drives(core.boot(0.0))
    assert d.off | d.off_last == lay.all_relays() if lay else layout().all_relays()
    core.drive_done(d, {}, 0.1)
    assert core.phase == "idle"
    return core


def run_to_on(core: BroadcastCore, r: StartRequest, t: float = 10.0) -> float:
    eff = core.start(r, t)
    (amp,) = drives(eff)
    assert amp.on == {AMP} and amp.hold_s[AMP] == pytest.approx(2.0 + r.duration_s + 5.0)
    assert core.drive_done(amp, {}, t + 0.05) and core.phase == "warming"
    assert core.next_deadline() == pytest.approx(t + 2.05)
    assert core.due(t + 1.0) == []
    (zones,) = drives(core.due(t + 2.05))
    assert zones.on == {Z[z] for z in r.zones} | {AMP}
    eff = core.drive_done(zones, {}, t + 2.1)
    assert "broadcast.on" in kinds(eff) and (r.request_id, "on") in notes(eff)
    return t + 2.1


def test_boot_forces_every_relay_off_amplifier_last():
    core = BroadcastCore(layout())
    eff = core.boot(0.0)
    assert kinds(eff) == ["broadcast.force_off"]
    (d,) = drives(eff)
    assert d.off == {Z[1], Z[2], Z[3]} and d.off_last == {AMP} and not d.on
    out = core.drive_done(d, {}, 0.2)
    assert kinds(out) == ["broadcast.off"] and out[0].payload["cause"] == "startup"


def test_full_cycle_amp_warmup_zones_then_off_on_time():
    core = booted()
    on_at = run_to_on(core, req(dur=60.0))
    assert core.phase == "on" and core.next_deadline() == pytest.approx(on_at + 60.0)
    assert core.due(on_at + 59.9) == []
    eff = core.due(on_at + 60.0)
    assert kinds(eff) == ["broadcast.ending"]
    (off,) = drives(eff)
    assert off.off == {Z[1], Z[2], Z[3]} and off.off_last == {AMP}
    out = core.drive_done(off, {}, on_at + 60.1)
    assert kinds(out) == ["broadcast.off"] and out[0].payload["cause"] == "duration"
    assert ("r1", "done") in notes(out) and core.phase == "idle" and core.active is None


def test_without_amplifier_zones_go_on_at_once_with_hold():
    core = booted(layout(amp=False))
    (d,) = drives(core.start(req(dur=30.0), 1.0))
    assert d.purpose == "zones-on" and d.on == {Z[1], Z[2]}
    assert set(d.hold_s.values()) == {35.0}


@pytest.mark.parametrize(
    ("r", "reason"),
    [
        (req(zones=()), "no zones"),
        (req(zones=(1, 9)), "unknown zone"),
        (req(zones=(1, 1)), "twice"),
        (req(dur=0.0), "positive"),
        (req(dur=301.0), "above the maximum"),
        (req(source="nobody"), "unknown source"),
    ],
)
def test_invalid_requests_are_refused_and_recorded(r, reason):
    core = booted()
    eff = core.start(r, 1.0)
    assert kinds(eff) == ["broadcast.requested", "broadcast.refused"]
    assert reason in eff[1].payload["reason"]
    assert (r.request_id, "refused") in notes(eff) and not drives(eff)
    assert core.phase == "idle"


def test_lower_rank_start_is_refused_while_playing():
    core = booted()
    run_to_on(core, req("remote-1", source="remote"))
    eff = core.start(req("sched-1", source="schedule"), 20.0)
    assert kinds(eff)[-1] == "broadcast.refused" and "busy" in eff[-2].payload["reason"]
    assert core.active is not None and core.active.request.request_id == "remote-1"


def test_equal_or_higher_rank_replaces_zones_and_retimes():
    core = booted()
    on_at = run_to_on(core, req("s1", zones=(1, 2), source="schedule"))
    eff = core.start(req("b1", zones=(2, 3), dur=40.0, source="button"), on_at + 5)
    assert ("s1", "done") in notes(eff) and ("b1", "accepted") in notes(eff)
    (d,) = drives(eff)
    assert d.off == {Z[1]} and d.on == {Z[2], Z[3], AMP}
    out = core.drive_done(d, {}, on_at + 5.1)
    assert ("b1", "on") in notes(out)
    assert core.next_deadline() == pytest.approx(on_at + 45.1)


def test_replace_during_warmup_takes_over_and_reholds_amplifier():
    core = booted()
    (amp,) = drives(core.start(req("s1", source="schedule", dur=20), 0.0))
    core.drive_done(amp, {}, 0.1)
    eff = core.start(req("r2", zones=(3,), dur=100, source="remote"), 0.5)
    (rehold,) = drives(eff)
    assert rehold.on == {AMP} and rehold.hold_s[AMP] == pytest.approx(107.0)
    core.drive_done(rehold, {}, 0.6)
    assert core.phase == "warming" and core.next_deadline() == pytest.approx(2.1)
    (zones,) = drives(core.due(2.1))
    assert zones.on == {Z[3], AMP}


def test_stop_during_warmup_cancels_before_any_zone():
    core = booted()
    (amp,) = drives(core.start(req(), 0.0))
    core.drive_done(amp, {}, 0.1)
    eff = core.stop("button", "changed my mind", 0.5)
    (off,) = drives(eff)
    assert not off.on
    out = core.drive_done(off, {}, 0.6)
    assert out[0].kind == "broadcast.off" and out[0].payload["cause"] == "cancelled"
    assert core.due(5.0) == [] and core.phase == "idle"


def test_stop_when_idle_still_forces_everything_off():
    core = booted()
    eff = core.stop("remote", "", 1.0)
    assert eff[0].kind == "broadcast.stop_requested" and eff[0].payload["playing"] is None
    (off,) = drives(eff)
    assert off.off | off.off_last == layout().all_relays()


def test_amplifier_failure_fails_the_broadcast_off():
    core = booted()
    (amp,) = drives(core.start(req(), 0.0))
    eff = core.drive_done(amp, {AMP: "board did not answer"}, 0.5)
    assert kinds(eff) == ["broadcast.failed"] and ("r1", "failed") in notes(eff)
    (off,) = drives(eff)
    assert off.off | off.off_last == layout().all_relays()


def test_dead_zone_board_drops_its_zone_others_play():
    core = booted()
    core.start(req(zones=(1, 3)), 0.0)
    (amp,) = [core._drive]  # type: ignore[list-item]
    core.drive_done(amp, {}, 0.1)
    (zones,) = drives(core.due(2.1))
    eff = core.drive_done(zones, {Z[3]: "board did not answer"}, 2.2)
    on = next(e for e in eff if isinstance(e, Record))
    assert on.kind == "broadcast.on" and on.payload["zones"] == [1]
    assert on.payload["failed_zones"] == [3]
    # The half-switched relay is retried off at once, then every OFF_RETRY_S until verified.
    (retry,) = drives(core.due(2.2))
    assert retry.off == {Z[3]}
    core.drive_done(retry, {Z[3]: "still dead"}, 2.3)
    assert core.phase == "on" and core.next_deadline() == pytest.approx(3.3)
    (again,) = drives(core.due(3.3))
    assert again.off == {Z[3]}
    core.drive_done(again, {}, 3.4)
    assert core.phase == "on" and core.next_deadline() == pytest.approx(2.2 + 60.0)


def test_all_zones_failing_fails_the_broadcast():
    core = booted(layout(amp=False))
    (d,) = drives(core.start(req(zones=(1,)), 0.0))
    eff = core.drive_done(d, {Z[1]: "read-back differs"}, 0.1)
    assert kinds(eff) == ["broadcast.failed"]


def test_off_failure_is_retried_until_verified():
    core = booted(layout(amp=False))
    (d,) = drives(core.start(req(zones=(1,), dur=5), 0.0))
    core.drive_done(d, {}, 0.1)
    (off,) = drives(core.due(5.1))
    out = core.drive_done(off, {Z[1]: "timeout"}, 5.2)
    assert kinds(out) == ["broadcast.off_failed"]
    assert core.next_deadline() == pytest.approx(6.2)
    (retry,) = drives(core.due(6.2))
    assert retry.off == {Z[1]}
    out = core.drive_done(retry, {}, 6.3)
    assert kinds(out) == ["broadcast.off"] and core.next_deadline() is None


def test_stray_relay_seen_while_idle_is_switched_off():
    core = booted()
    eff = core.observed({Z[2]: True, Z[1]: False}, 5.0)
    assert kinds(eff) == ["broadcast.stray_on"]
    (d,) = drives(eff)
    assert d.off == {Z[2]}
    core.drive_done(d, {}, 5.1)
    assert core.phase == "idle"
    run_to_on(core, req())
    assert core.observed({Z[1]: True}, 20.0) == []  # playing: expected to be on


def test_drive_done_for_unknown_drive_is_a_bug():
    core = booted()
    with pytest.raises(ValueError):
        core.drive_done(Drive("zones-on"), {}, 1.0)


def test_interrupted_broadcast_found_from_journal_events():
    evs = [
        (1, "broadcast.off", {"cause": "startup"}),
        (2, "broadcast.accepted", {"request_id": "a"}),
        (3, "broadcast.on", {"request_id": "a"}),
        (4, "broadcast.off", {"request_id": "a"}),
        (5, "broadcast.accepted", {"request_id": "b"}),
        (6, "broadcast.amplifier_on", {"request_id": "b"}),
        (7, "broadcast.on", {"request_id": "b"}),
        (8, "tap", {}),
    ]
    got = interrupted_broadcast(evs)
    assert got == {"request_id": "b", "accepted_seq": 5, "last_stage": "on", "last_seq": 7}
    assert interrupted_broadcast([*evs, (9, "broadcast.failsafe_off", {})]) is None
    assert interrupted_broadcast(evs[:4]) is None


def test_pure_modules_import_no_io():
    here = Path(__file__).resolve().parents[2]
    banned = {"asyncio", "serial", "sqlite3", "time", "pymodbus", "gpiozero", "socket"}
    for rel in ("gateway/broadcast/plan.py", "drivers/relays.py"):
        tree = ast.parse((here / rel).read_text())
        names = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                names.add(node.module.split(".")[0])
        assert not names & banned, (rel, names & banned)


def test_relay_still_failing_off_is_not_retried_off_under_a_new_broadcast():
    core = booted(layout(amp=False))
    (d,) = drives(core.start(req("a", zones=(1, 2), dur=5), 0.0))
    core.drive_done(d, {}, 0.1)
    (off,) = drives(core.due(5.1))
    core.drive_done(off, {Z[1]: "timeout"}, 5.2)  # zone 1 did not verify off
    (d2,) = drives(core.start(req("b", zones=(1,), dur=30), 5.3))
    assert Z[1] in d2.on
    core.drive_done(d2, {}, 5.4)
    # Zone 1 now plays: the pending retry must not switch it off mid-broadcast.
    assert core.next_deadline() == pytest.approx(35.4)
    assert core.due(10.0) == []


def test_relay_failing_off_is_still_retried_when_a_new_broadcast_leaves_it_out():
    core = booted(layout(amp=False))
    (d,) = drives(core.start(req("a", zones=(1, 2), dur=5), 0.0))
    core.drive_done(d, {}, 0.1)
    (off,) = drives(core.due(5.1))
    core.drive_done(off, {Z[1]: "timeout"}, 5.2)
    (d2,) = drives(core.start(req("b", zones=(2,), dur=30), 5.3))
    core.drive_done(d2, {}, 5.4)
    assert core.next_deadline() == pytest.approx(6.2)
    (retry,) = drives(core.due(6.2))
    assert retry.off == {Z[1]}
