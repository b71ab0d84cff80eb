"""The pure parts of the status page: password hashes, the login throttle, sessions, the view."""

from __future__ import annotations

import ast
import datetime as dt
import zoneinfo
from pathlib import Path

import pytest

from gateway.errors import ConfigError
from gateway.events import Event
from gateway.web.auth import (
    CLIENT_BACKOFF_MAX_S,
    GLOBAL_FREE_FAILURES,
    LoginThrottle,
    SessionStore,
    csrf_matches,
    hash_password,
    verify_password,
)
from gateway.web.render import LoginInfo, render_dashboard, render_message
from gateway.web.view import REDACTED, build_view, is_secret_name, redact

TZ = "Asia/Shanghai"


# --------------------------------------------------------------------------- passwords


def test_hash_roundtrip_and_salt() -> None:
    a, b = hash_password("a long passphrase"), hash_password("a long passphrase")
    assert a != b, "fresh salt each time"
    assert verify_password("a long passphrase", a) and verify_password("a long passphrase", b)
    assert not verify_password("a long passphrasE", a)
    assert not verify_password("", a)


@pytest.mark.parametrize(
    "line",
    [
        "",
        "plaintext-password",
        "scrypt$16384$8$1$!!notbase64$AAAA",
        "pbkdf2$1$2$3$4$5",
        # A planted file asking for a huge cost must not become a denial of service.
        "scrypt$1073741824$8$1$c2FsdHNhbHRzYWx0c2FsdA==$" + "A" * 44,
    ],
)
def test_malformed_or_costly_hash_lines_never_verify(line: str) -> None:
    assert not verify_password("a long passphrase", line)


def test_short_passwords_are_refused() -> None:
    with pytest.raises(ConfigError, match="at least 10"):
        hash_password("short")


# --------------------------------------------------------------------------- throttle


def test_client_backoff_doubles_and_is_capped() -> None:
    t = LoginThrottle()
    now = 0.0
    waits = []
    for _ in range(15):
        assert t.wait_s("10.0.0.5", now) == 0.0
        waits.append(t.record("10.0.0.5", ok=False, now=now))
        now += waits[-1]
    # Global backoff starts after GLOBAL_FREE_FAILURES and is capped lower than the client's.
    assert waits[:5] == [0.0, 1.0, 2.0, 4.0, 8.0]
    assert max(waits) == CLIENT_BACKOFF_MAX_S
    assert t.wait_s("10.0.0.5", now - 1) > 0, "refused while waiting"
    assert t.record("10.0.0.5", ok=True, now=now) == 0.0
    assert t.failures("10.0.0.5") == 0


def test_global_backoff_slows_a_guesser_spread_over_many_addresses() -> None:
    t = LoginThrottle()
    now = 0.0
    for i in range(GLOBAL_FREE_FAILURES):
        t.record(f"10.0.1.{i}", ok=False, now=now)
    assert t.wait_s("10.0.2.1", now) == 0.0, "the first failures are free for everyone"
    t.record("10.0.1.200", ok=False, now=now)
    t.record("10.0.1.201", ok=False, now=now)
    assert t.wait_s("10.0.2.1", now) == pytest.approx(2.0), "a newcomer waits too"
    # Quiet for long enough: forgotten.
    assert t.wait_s("10.0.2.1", now + 3601) == 0.0


def test_refused_attempts_do_not_extend_the_wait() -> None:
    t = LoginThrottle()
    t.record("a", ok=False, now=0)
    t.record("a", ok=False, now=0)
    before = t.wait_s("a", 0.1)
    for _ in range(50):
        t.wait_s("a", 0.2)  # what a hammering client gets: a refusal, nothing recorded
    assert t.wait_s("a", 0.2) == pytest.approx(before - 0.1)


# --------------------------------------------------------------------------- sessions


def test_sessions_expire_and_end_with_a_new_password() -> None:
    store = SessionStore(ttl_s=100)
    s = store.create("10.0.0.5", now=0, password_line="h1")
    assert s.token != s.csrf and len(s.token) >= 40
    assert store.get(s.token, 50, "h1") == s
    assert store.get(s.token, 50, "h2") is None, "new password: old sessions end"
    s2 = store.create("10.0.0.5", now=0, password_line="h1")
    assert store.get(s2.token, 100, "h1") is None, "expired"
    assert store.get("guess", 1, "h1") is None and store.get(None, 1) is None
    s3 = store.create("x", now=0)
    store.drop(s3.token)
    assert store.get(s3.token, 1) is None


def test_session_store_is_bounded() -> None:
    store = SessionStore(ttl_s=100, max_sessions=3)
    first = store.create("a", 0)
    for _ in range(3):
        store.create("b", 0)
    assert len(store) == 3 and store.get(first.token, 1) is None


def test_csrf_compare() -> None:
    assert csrf_matches("abc", "abc")
    assert not csrf_matches("abc", "abd") and not csrf_matches("abc", None)
    assert not csrf_matches("abc", "")


def test_auth_core_is_sans_io() -> None:
    tree = ast.parse(Path(__file__).parents[2].joinpath("gateway/web/auth.py").read_text())
    imported = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in (
            node.names if isinstance(node, ast.Import) else [ast.alias(node.module or "")]
        )
    }
    assert not imported & {"asyncio", "time", "socket", "sqlite3", "aiohttp", "os"}


# --------------------------------------------------------------------------- view


def ev(seq: int, kind: str, payload: dict[str, object], wall: float) -> Event:
    return Event(seq, kind, "evidence", payload, wall, float(seq), "boot", True)


def noon(days_ago: int = 0) -> float:
    day = dt.datetime.now(zoneinfo.ZoneInfo(TZ)).date() - dt.timedelta(days=days_ago)
    return dt.datetime.combine(day, dt.time(12), zoneinfo.ZoneInfo(TZ)).timestamp()


def test_redaction_by_name_keeps_paths() -> None:
    data = {
        "scbk": "00" * 16,
        "nested": {"api_token": "t", "enrollment-token": "t2", "client_key_file": "/k/c.key"},
        "rows": [{"password": "p", "name": "ok"}],
        "keys": ["k1"],
        "monkey": "fine",
        "checkpoint": "north",
    }
    out = redact(data)
    assert out["scbk"] == REDACTED and out["keys"] == REDACTED
    assert out["nested"] == {
        "api_token": REDACTED,
        "enrollment-token": REDACTED,
        "client_key_file": "/k/c.key",
    }
    assert out["rows"] == [{"password": REDACTED, "name": "ok"}]
    assert out["monkey"] == "fine" and out["checkpoint"] == "north"
    assert is_secret_name("wristband") and not is_secret_name("key_path")


def test_view_picks_today_newest_revisions_and_hides_wristbands() -> None:
    t = noon()
    events = [
        ev(1, "tap", {"checkpoint": "a", "guard": "G", "wristband": "04AABB"}, t),
        ev(2, "tap", {"checkpoint": "b", "guard": "G", "wristband": "04AABB"}, t + 60),
        ev(3, "patrol.round", {"round": "old", "day": "2000-01-01", "verdict": "missed"}, t),
        ev(4, "patrol.round", {"round": "r1", "verdict": "late"}, t),
        ev(5, "patrol.round", {"round": "r1", "verdict": "ok"}, t + 1),
        ev(6, "patrol.alert", {"alert": "x", "alert_kind": "missed", "message": "m"}, t),
        ev(7, "web.alert_ack", {"alert": "x"}, t + 5),
        ev(8, "broadcast.requested", {"request_id": "b", "secret": "s"}, t),
    ]
    view = build_view(
        events, {"custom": {"psk": "p", "rssi": -70}}, {"events": 8}, now=t + 100, tz=TZ,
        gateway_id="gw", compound="C",
    )  # fmt: skip
    assert [r["checkpoint"] for r in view["taps"]] == ["b", "a"]
    assert all("wristband" not in r and "04AABB" not in str(r) for r in view["taps"])
    assert [(r["round"], r["verdict"]) for r in view["rounds"]] == [("r1", "ok")]
    assert view["alerts"][0]["acknowledged"]
    assert "secret=(hidden)" in view["broadcasts"][0]["detail"]
    assert view["sections"]["custom"] == {"psk": REDACTED, "rssi": -70}
    page = render_dashboard(view, login=LoginInfo(logged_in=False), refresh_s=0)
    assert "04AABB" not in page and ">p<" not in page


@pytest.mark.parametrize("lang", ["zh-CN", "en"])
def test_rendering_escapes_everything(lang: str) -> None:
    evil = '<script>alert(1)</script>"onmouseover='
    t = noon()
    events = [
        ev(1, "tap", {"checkpoint": evil, "guard": evil, "reader": evil}, t),
        ev(
            2,
            "reader.state",
            {"reader": evil, "checkpoint": evil, "state": evil, "reason": evil},
            t,
        ),
        ev(3, "patrol.alert", {"alert": evil, "alert_kind": evil, "message": evil}, t),
        ev(4, "health.state", {"device": evil, "kind": evil, "state": "down", "reason": evil}, t),
    ]
    view = build_view(
        events, {"sync": {"link": "down", "centre": evil, "last_error": evil}}, {"events": 4},
        now=t + 100, tz=TZ, gateway_id=evil, compound=evil,
    )  # fmt: skip
    pages = [
        render_dashboard(view, login=LoginInfo(logged_in=True, csrf=evil), refresh_s=0, lang=lang),
        render_message(evil, evil, back=evil, lang=lang),
    ]
    for html in pages:
        assert "<script>" not in html and "&lt;script&gt;" in html
        assert '"onmouseover' not in html
