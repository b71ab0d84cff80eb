"""The service's ledger: what is already journaled decides what is appended (idempotency)."""

from __future__ import annotations

import json

from gateway.patrol.engine import RoundVerdict, replay
from gateway.patrol.service import Ledger
from tests.patrol.helpers import EventLog, after_midnight, at, section


def _buffered_night() -> list[object]:
    log = EventLog()
    log.add("daemon.started", at(12))
    for cp in "abc":
        log.reader(cp, at(21, 55), online=False)
    for i, cp in enumerate("abc"):
        log.reader(cp, after_midnight(0, 20, 2 * i), online=True)
        log.tap(cp, after_midnight(0, 20, 2 * i + 1), tapped_at=at(22, 5 + 5 * i))
    _, out = replay(section(), log.events, now=after_midnight(1), origin=at(12))
    return out


def _journal_roundtrip(kind_payloads: list[tuple[str, dict[str, object]]]) -> Ledger:
    ledger = Ledger()
    for kind, payload in kind_payloads:
        ledger.note(kind, json.loads(json.dumps(payload)))
    return ledger


def test_first_run_appends_only_the_last_revision_of_a_replay() -> None:
    out = _buffered_night()
    revisions = [o for o in out if isinstance(o, RoundVerdict)]
    assert [v.report.state for v in revisions] == ["unassessable"] * 3 + ["completed"]
    todo = Ledger().missing(out)
    rounds = [p for k, p in todo if k == "patrol.round"]
    assert [(p["verdict"], p["revision"]) for p in rounds] == [("completed", 1)]


def test_live_revisions_are_not_repeated_after_a_restart() -> None:
    out = _buffered_night()
    live = Ledger()
    journaled: list[tuple[str, dict[str, object]]] = []
    for o in out:  # live: each output appended as it comes
        journaled += live.missing([o])  # type: ignore[list-item]
    assert [p["revision"] for k, p in journaled if k == "patrol.round"] == [1, 2, 3, 4]
    restarted = _journal_roundtrip(journaled)
    assert restarted.missing(out) == []  # type: ignore[arg-type]


def test_changed_content_is_a_new_revision() -> None:
    out = _buffered_night()
    first = next(o for o in out if isinstance(o, RoundVerdict))
    ledger = _journal_roundtrip(Ledger().missing([first]))
    todo = ledger.missing(out)  # type: ignore[arg-type]
    assert [(p["verdict"], p["revision"]) for k, p in todo if k == "patrol.round"] == [
        ("completed", 2)
    ]
