"""The health state machine: hysteresis both ways, reasons, staleness, mildest-in-streak."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.health.model import HealthModel, Hysteresis, State, StateChange
from gateway.health.thinning import SampleThinner

OK, DEG, DOWN, UNK = State.OK, State.DEGRADED, State.DOWN, State.UNKNOWN


def test_first_observation_leaves_unknown_at_once() -> None:
    m = HealthModel()
    m.register("cam-1", "camera", now=0.0)
    assert m.get("cam-1").state is UNK  # type: ignore[union-attr]
    ch = m.report("cam-1", "camera", "ok", "snapshot 20 kB in 40 ms", now=1.0)
    assert ch == StateChange("cam-1", "camera", OK, UNK, "snapshot 20 kB in 40 ms", 1.0)
    assert ch.payload() == {
        "device": "cam-1",
        "kind": "camera",
        "state": "ok",
        "previous": "unknown",
        "reason": "snapshot 20 kB in 40 ms",
    }


def test_goes_down_only_after_worsen_after_and_back_after_recover_after() -> None:
    m = HealthModel({"camera": Hysteresis(worsen_after=3, recover_after=2)})
    m.report("c", "camera", OK, "fine", 0)
    assert m.report("c", "camera", DOWN, "refused", 1) is None
    assert m.report("c", "camera", DOWN, "refused", 2) is None
    ch = m.report("c", "camera", DOWN, "connection refused", 3)
    assert ch is not None and (ch.state, ch.previous, ch.reason) == (DOWN, OK, "connection refused")
    assert m.report("c", "camera", OK, "back", 4) is None
    ch = m.report("c", "camera", OK, "snapshot ok", 5)
    assert ch is not None and (ch.state, ch.previous) == (OK, DOWN)


def test_a_good_observation_restarts_the_bad_streak() -> None:
    m = HealthModel(default=Hysteresis(worsen_after=3, recover_after=1))
    m.report("c", "camera", OK, "fine", 0)
    m.report("c", "camera", DOWN, "x", 1)
    m.report("c", "camera", DOWN, "x", 2)
    assert m.report("c", "camera", OK, "fine", 3) is None  # flap absorbed
    assert m.report("c", "camera", DOWN, "x", 4) is None
    assert m.report("c", "camera", DOWN, "x", 5) is None
    assert m.get("c").state is OK  # type: ignore[union-attr]


def test_mildest_state_in_the_streak_wins() -> None:
    m = HealthModel(default=Hysteresis(worsen_after=3))
    m.report("c", "camera", OK, "fine", 0)
    m.report("c", "camera", DOWN, "refused", 1)
    m.report("c", "camera", DEGRADED := DEG, "401 wrong credentials", 2)
    ch = m.report("c", "camera", DOWN, "refused", 3)
    assert ch is not None and ch.state is DEGRADED and ch.reason == "401 wrong credentials"


def test_same_state_refreshes_reason_without_event() -> None:
    m = HealthModel()
    m.report("m", "modem", DEG, "weak signal -105 dBm", 0)
    assert m.report("m", "modem", DEG, "not registered", 1) is None
    assert m.get("m").reason == "not registered"  # type: ignore[union-attr]


def test_stale_devices_become_unknown() -> None:
    m = HealthModel({"reader": Hysteresis(stale_after_s=30)})
    m.report("r1", "reader", OK, "polling", 0)
    m.report("cam", "camera", OK, "fine", 0)  # default policy: never stale
    assert m.tick(29) == []
    [ch] = m.tick(30)
    assert (ch.device, ch.state, ch.previous) == ("r1", UNK, OK)
    assert m.tick(100) == []
    assert m.report("r1", "reader", OK, "polling", 101).previous is UNK  # type: ignore[union-attr]


def test_worst_and_unknown_report_refused() -> None:
    m = HealthModel(default=Hysteresis(worsen_after=1))
    assert m.worst() is UNK
    m.report("a", "camera", OK, "", 0)
    m.report("b", "modem", DEG, "weak", 0)
    assert m.worst() is DEG
    assert m.worst(["camera"]) is OK
    with pytest.raises(ValueError):
        m.report("a", "camera", "unknown", "", 1)
    with pytest.raises(ValueError):
        m.report("a", "camera", "broken", "", 1)


@given(
    st.lists(st.sampled_from([OK, DEG, DOWN]), max_size=60), st.integers(1, 4), st.integers(1, 4)
)
def test_changes_need_a_full_agreeing_streak(obs: list[State], worsen: int, recover: int) -> None:
    from gateway.health.model import severity

    m = HealthModel(default=Hysteresis(worsen_after=worsen, recover_after=recover))
    state = UNK
    since: list[State] = []
    for t, o in enumerate(obs):
        ch = m.report("d", "x", o, o.value, float(t))
        since.append(o)
        if ch is not None:
            assert ch.previous is state and ch.state is not state
            if state is not UNK:
                worse = severity(ch.state) > severity(state)
                need = worsen if worse else recover
                tail = since[-need:]
                assert len(tail) == need
                if worse:
                    assert all(severity(s) > severity(state) for s in tail)
                    assert ch.state is min(tail, key=severity)
                else:
                    assert all(severity(s) < severity(state) for s in tail)
                    assert ch.state is max(tail, key=severity)
            state, since = ch.state, []
        assert m.get("d").state is state  # type: ignore[union-attr]


def test_thinner_keeps_first_changes_and_heartbeat() -> None:
    t = SampleThinner(heartbeat_s=600, thresholds={"temp_c": 2.0}, ignore=frozenset({"ms"}))
    assert t.keep("gw", {"temp_c": 50.0, "load": 1.0, "ms": 3, "sync": True}, 0)
    assert not t.keep("gw", {"temp_c": 51.5, "load": 1.1, "ms": 90, "sync": True}, 10)
    assert t.keep("gw", {"temp_c": 52.0, "load": 1.0, "ms": 3, "sync": True}, 20)  # +2.0 C
    assert t.keep("gw", {"temp_c": 52.0, "load": 1.0, "ms": 3, "sync": False}, 30)  # flag
    assert t.keep("gw", {"temp_c": 52.0, "load": 1.5, "ms": 3, "sync": False}, 40)  # +50 %
    assert not t.keep("gw", {"temp_c": 52.0, "load": 1.5, "ms": 3, "sync": False}, 639)
    assert t.keep("gw", {"temp_c": 52.0, "load": 1.5, "ms": 3, "sync": False}, 640)  # heartbeat
    assert t.keep("gw", {"temp_c": 52.0}, 641)  # a different set of metrics is news
    assert t.keep("cam", {"x": 0}, 641)  # per device
    assert not t.keep("cam", {"x": 0}, 642)
    assert t.keep("cam", {"x": 1}, 643)  # from zero, any move counts
    assert (t.kept, t.skipped) == (8, 3)


def test_pure_modules_import_no_io() -> None:
    forbidden = {"asyncio", "time", "sqlite3", "serial", "aiohttp", "socket", "os", "gpiozero"}
    root = Path(__file__).resolve().parents[2]
    for rel in ("gateway/health/model.py", "gateway/health/thinning.py"):
        tree = ast.parse((root / rel).read_text())
        names = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                names.add(node.module.split(".")[0])
        assert not names & forbidden, (rel, names & forbidden)


def test_confirmed_reports_skip_the_hysteresis() -> None:
    m = HealthModel(default=Hysteresis(worsen_after=5, recover_after=5))
    m.report("r", "reader", OK, "online", 0)
    ch = m.report("r", "reader", DOWN, "offline (bus state machine)", 1, confirmed=True)
    assert ch is not None and (ch.previous, ch.state) == (OK, DOWN)
    assert m.report("r", "reader", DOWN, "still offline", 2, confirmed=True) is None
    ch = m.report("r", "reader", OK, "online", 3, confirmed=True)
    assert ch is not None and ch.previous is DOWN
