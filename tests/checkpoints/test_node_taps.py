"""Our node's tap records (osdp_MFGREP): the parser, and the decision that journals each held tap
once, with its age. The layout is the firmware's (firmware_mpy/reports.py builds the golden
records here, run under CPython), not a copy of it."""

from __future__ import annotations

import importlib.util
import struct
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.checkpoints import Feedback, NodeTap
from drivers.node_reports import (
    NODE_VENDOR_CODE,
    NodeReportError,
    NumberedTap,
    encode_numbered_tap,
    parse_numbered_tap,
)
from gateway.checkpoints.core import (
    NODE_STORE_WINDOW,
    NODE_TAP_DROPPED,
    TAP,
    TAP_DELIVERED_LATE,
    TAP_REPEAT,
    UNKNOWN_WRISTBAND,
    Point,
    TapDecider,
    unknown_reply_payload,
)

ROOT = Path(__file__).resolve().parents[2]
KNOWN = "04a1b2c3d4e5f6"
WALL = 1_765_000_000.0


def firmware(name: str) -> ModuleType:
    """A firmware module that only needs struct/os, loaded under CPython."""
    path = ROOT / "firmware_mpy" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"fw_{name}", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


REPORTS = firmware("reports")


def split(payload: bytes) -> tuple[int, bytes]:
    """As libosdp hands an osdp_MFGREP over: vendor code (first 3 bytes, LE) and the rest."""
    return payload[0] | payload[1] << 8 | payload[2] << 16, payload[3:]


# --------------------------------------------------------------------------- the parser


@pytest.mark.parametrize("uid", [bytes.fromhex("04a1b2c3"), bytes.fromhex(KNOWN),
                                 bytes(range(1, 11))])  # fmt: skip
@pytest.mark.parametrize("flags", [0, 1, 2, 3, 4, 5, 6, 7])
def test_parses_what_the_firmware_sends(uid: bytes, flags: int) -> None:
    vendor, data = split(REPORTS.numbered_tap(NODE_VENDOR_CODE, 70000, 3725, flags, 300, uid))
    rec = parse_numbered_tap(vendor, data)
    assert rec == NumberedTap(70000, 3725, flags, 255, uid)
    assert rec.age_lower_bound == bool(flags & REPORTS.FLAG_AGE_LOWER_BOUND)
    assert rec.tapped_offline == bool(flags & REPORTS.FLAG_TAPPED_OFFLINE)
    assert rec.may_repeat_raw == bool(flags & REPORTS.FLAG_MAY_REPEAT_RAW)
    assert encode_numbered_tap(rec) == data


def test_the_store_window_is_the_firmwares() -> None:
    """The ledger's "a node re-offers only its last N taps" is the tap store's ring size."""
    src = (ROOT / "firmware_mpy" / "tapstore.py").read_text()
    assert f"\nSLOTS = {NODE_STORE_WINDOW}\n" in src


def test_refusals_name_what_is_wrong() -> None:
    good = REPORTS.numbered_tap(NODE_VENDOR_CODE, 1, 0, 0, 0, bytes.fromhex("04a1b2c3"))
    vendor, data = split(good)
    status = REPORTS.status(NODE_VENDOR_CODE, 1, 2, 3, 4, False, 5)

    def reason(v: int, d: bytes, ours: int = NODE_VENDOR_CODE) -> str:
        with pytest.raises(NodeReportError) as err:
            parse_numbered_tap(v, d, ours)
        assert err.value.vendor_code == v and err.value.raw == d
        return err.value.reason

    assert reason(0x123456, data) == "vendor"
    assert reason(vendor, data, ours=0x123456) == "vendor"
    assert reason(*split(status)) == "type"
    assert reason(vendor, b"") == "length"
    assert reason(vendor, data[:1] + b"\x02" + data[2:]) == "version"
    assert reason(vendor, data[:10]) == "length"
    assert reason(vendor, data[:-1]) == "length"
    assert reason(vendor, data + b"\x00") == "length"
    assert reason(vendor, data[:12] + b"\x00") == "uid_length"
    assert reason(vendor, data[:12] + b"\x0b" + bytes(11)) == "uid_length"


def _near_records() -> st.SearchStrategy[bytes]:
    """Tap records cut, extended or with one byte changed: where a parser goes wrong."""
    rec = st.builds(lambda n, a, f, w, u: split(REPORTS.numbered_tap(NODE_VENDOR_CODE, n, a, f,
                                                                     w, u))[1],
                    st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1), st.integers(0, 255),
                    st.integers(0, 300), st.binary(min_size=1, max_size=10))  # fmt: skip

    def mutate(d: bytes, cut: int, extra: bytes, at: int, byte: int) -> bytes:
        b = bytearray(d[:cut] + extra)
        if b:
            b[at % len(b)] = byte
        return bytes(b)

    return st.builds(mutate, rec, st.integers(0, 30), st.binary(max_size=4),
                     st.integers(0, 30), st.integers(0, 255))  # fmt: skip


@given(st.one_of(st.just(NODE_VENDOR_CODE), st.integers(min_value=-1, max_value=0xFFFFFF)),
       st.one_of(st.binary(max_size=64), _near_records()))  # fmt: skip
def test_arbitrary_bytes_give_a_record_or_the_error_nothing_else(vendor: int, data: bytes) -> None:
    try:
        rec = parse_numbered_tap(vendor, data)
    except NodeReportError as exc:
        assert exc.reason in ("vendor", "type", "version", "length", "uid_length")
        assert exc.raw == data
        return
    # Whatever parses is exactly one well-formed record and says the same thing again.
    assert vendor == NODE_VENDOR_CODE and 1 <= len(rec.uid) <= 10
    assert encode_numbered_tap(rec) == data


@given(st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1), st.integers(0, 255),
       st.integers(0, 1000), st.binary(min_size=1, max_size=10))  # fmt: skip
def test_every_record_the_firmware_can_send_parses(
    number: int, age: int, flags: int, waiting: int, uid: bytes
) -> None:
    vendor, data = split(REPORTS.numbered_tap(NODE_VENDOR_CODE, number, age, flags, waiting, uid))
    assert parse_numbered_tap(vendor, data) == NumberedTap(number, age, flags, min(waiting, 255),
                                                           uid)  # fmt: skip


# --------------------------------------------------------------------------- the decision


def decider() -> TapDecider:
    return TapDecider.build([Point("cp-1", "a", 1)], {KNOWN: "g-017"}, window_s=10.0)


def node_tap(number: int, age_s: int, *, flags: int = 0b010, uid: str = KNOWN,
             mono: float = 500.0) -> NodeTap:  # fmt: skip
    return NodeTap("a", 1, number, bytes.fromhex(uid), age_s, bool(flags & 1), bool(flags & 2),
                   bool(flags & 4), 0, mono)  # fmt: skip


def test_a_held_tap_with_an_exact_age_is_a_credited_tap_at_its_own_time() -> None:
    d = decider().decide_node_tap(node_tap(7, 125), wall=WALL)
    assert d.kind == TAP and d.feedback is None  # the guard is long gone: no light
    p = d.payload
    assert p["tapped_at"] == WALL - 125 and p["buffered"] is True
    assert (p["node_tap"], p["age_s"], p["time_uncertain_s"]) == (7, 125, 1.0)
    assert p["guard"] == "g-017" and p["checkpoint"] == "cp-1" and p["tapped_offline"] is True
    assert "age_lower_bound" not in p


def test_a_tap_from_an_earlier_node_boot_is_never_credited() -> None:
    """Its age leaves out the node's downtime: crediting it at arrival - age could place a tap
    made before a power cut inside a later round."""
    d = decider().decide_node_tap(node_tap(7, 60, flags=0b011), wall=WALL)
    assert d.kind == TAP_DELIVERED_LATE and d.feedback is None
    assert d.payload["tapped_before"] == WALL - 60 and d.payload["age_lower_bound"] is True
    assert "tapped_at" not in d.payload


def test_an_unknown_band_held_is_unknown_wristband_evidence() -> None:
    d = decider().decide_node_tap(node_tap(3, 40, uid="04deadbeef"), wall=WALL)
    assert d.kind == UNKNOWN_WRISTBAND and d.feedback is None
    assert d.payload["node_tap"] == 3 and d.payload["tapped_at"] == WALL - 40


def test_a_fresh_numbered_tap_is_live_green_and_deduplicated() -> None:
    dec = decider()
    d = dec.decide_node_tap(node_tap(1, 0, flags=0, mono=100.0), wall=WALL)
    assert d.kind == TAP and d.feedback is Feedback.ACCEPTED and d.payload["node_tap"] == 1
    d = dec.decide_node_tap(node_tap(2, 0, flags=0, mono=103.0), wall=WALL + 3)
    assert d.kind == TAP_REPEAT and d.payload["repeat"] == 1


def test_the_same_number_again_is_dropped_once_journaled() -> None:
    dec = decider()
    assert dec.decide_node_tap(node_tap(9, 30), wall=WALL).kind == TAP
    again = dec.decide_node_tap(node_tap(9, 95), wall=WALL + 65)  # offered again a minute on
    assert again.kind == NODE_TAP_DROPPED and again.payload["reason"] == "number"
    # ... and after a node restart (its age is then a lower bound)
    assert dec.decide_node_tap(node_tap(9, 20, flags=0b011), wall=WALL + 99).kind == (
        NODE_TAP_DROPPED)
    # A record the journal could not take is taken when it comes again.
    dec.node_taps.forget("a/1", 9)
    assert dec.decide_node_tap(node_tap(9, 95), wall=WALL + 65).kind == TAP


def test_a_reused_number_is_a_new_tap() -> None:
    """A node whose flash was wiped numbers from 1 again: a record made after we first had
    that number is new; one far below the highest seen is new whatever its time."""
    dec = decider()
    assert dec.decide_node_tap(node_tap(5, 10), wall=WALL).kind == TAP
    # exact age, made an hour after we had number 5: a new tap with the same number
    assert dec.decide_node_tap(node_tap(5, 10), wall=WALL + 3600).kind == TAP
    for n in range(6, 6 + NODE_STORE_WINDOW + 1):
        dec.node_taps.remember("a/1", n, KNOWN, WALL + n)
    # number 5 again, age a lower bound: far below the node's window, a renumbered node
    assert dec.decide_node_tap(node_tap(5, 10, flags=0b011), wall=WALL + 7200).kind == (
        TAP_DELIVERED_LATE)


def test_bit2_is_dropped_only_when_its_raw_card_read_is_journaled() -> None:
    dec = decider()
    first = dec.decide(bus="a", address=1, data=bytes.fromhex(KNOWN), bits=56,
                       card_format="raw", now=100.0, wall=WALL)  # fmt: skip
    assert first.kind == TAP
    # the node never saw the RAW confirmed: it comes again 300 s later as a record with bit2
    d = dec.decide_node_tap(node_tap(4, 300, flags=0b100), wall=WALL + 300.5)
    assert d.kind == NODE_TAP_DROPPED and d.payload["reason"] == "raw"
    # the same number once more: dropped by number
    assert dec.decide_node_tap(node_tap(4, 400, flags=0b100), wall=WALL + 400.5).kind == (
        NODE_TAP_DROPPED)
    # bit2 with no matching read (another band, or a read at another time) is journaled
    other = dec.decide_node_tap(node_tap(5, 10, flags=0b100), wall=WALL + 600)
    assert other.kind == TAP and other.payload["may_repeat_raw"] is True


def test_the_ledger_is_rebuilt_from_journaled_payloads() -> None:
    dec = decider()
    t = dec.decide_node_tap(node_tap(11, 30), wall=WALL)
    raw = dec.decide(bus="a", address=1, data=bytes.fromhex(KNOWN), bits=56, card_format="raw",
                     now=100.0, wall=WALL + 50)  # fmt: skip
    fresh = decider()  # a restart: only the journal is left
    fresh.node_taps.learn(dict(t.payload), WALL)
    fresh.node_taps.learn(dict(raw.payload), WALL + 50)
    assert fresh.decide_node_tap(node_tap(11, 90), wall=WALL + 60).kind == NODE_TAP_DROPPED
    assert fresh.decide_node_tap(node_tap(12, 10, flags=0b100), wall=WALL + 60).kind == (
        NODE_TAP_DROPPED)


def test_unknown_reply_payload_is_compact() -> None:
    p = unknown_reply_payload(bus="a", address=1, checkpoint="cp-1", vendor_code=0x123456,
                              data=bytes(range(100)), reason="vendor")  # fmt: skip
    assert p["vendor_code"] == "123456" and p["length"] == 100 and p["truncated"] is True
    assert p["data"] == bytes(range(32)).hex()
    assert struct.calcsize("<BBIIBBB") == 13  # the record head the docs table describes
    assert "fw_reports" not in sys.modules  # loaded from its file, not importable by name


def test_the_patrol_engine_credits_an_exact_held_tap_at_its_own_time_and_no_other() -> None:
    """The contract with gateway/patrol/engine.py (read, not changed here): ``tapped_at`` and
    ``buffered`` on a ``tap``; a ``tap.delivered_late`` is never a credited tap."""
    from gateway.patrol.engine import Tap, engine_inputs_from_event

    def event(seq: int, kind: str, payload: Any, wall: float) -> dict[str, Any]:
        return {"seq": seq, "kind": kind, "cls": "evidence", "payload": dict(payload),
                "wall_time": wall, "mono_time": 0.0, "boot_id": "b", "clock_synced": True}

    dec = decider()
    exact = dec.decide_node_tap(node_tap(1, 600), wall=WALL)
    _, credited = engine_inputs_from_event(event(1, exact.kind, exact.payload, WALL + 0.01))
    assert isinstance(credited, Tap)
    assert (credited.at, credited.buffered, credited.guard) == (WALL - 600, True, "g-017")
    bound = dec.decide_node_tap(node_tap(2, 600, flags=0b011), wall=WALL)
    inputs = engine_inputs_from_event(event(2, bound.kind, bound.payload, WALL + 0.01))
    assert not any(isinstance(i, Tap) for i in inputs)


def test_an_earlier_boot_record_after_its_raw_is_kept_but_marked() -> None:
    """A node reset between a RAW and its confirmation re-offers the tap with bit0, not bit2:
    the gateway cannot tell it from a new tap (the time is only bounded), so it keeps it as
    ``tap.delivered_late`` (never credited) marked ``possible_raw_repeat``."""
    dec = decider()
    dec.decide(bus="a", address=1, data=bytes.fromhex(KNOWN), bits=56, card_format="raw",
               now=100.0, wall=WALL)  # fmt: skip
    d = dec.decide_node_tap(node_tap(8, 30, flags=0b001), wall=WALL + 40)
    assert d.kind == TAP_DELIVERED_LATE and d.payload["possible_raw_repeat"] is True
    # the next record is not: the reader delivered something after that read
    d = dec.decide_node_tap(node_tap(9, 30, flags=0b001), wall=WALL + 40)
    assert "possible_raw_repeat" not in d.payload
    # nor a tap made while not polled (never sent as a RAW)
    fresh = decider()
    fresh.decide(bus="a", address=1, data=bytes.fromhex(KNOWN), bits=56, card_format="raw",
                 now=100.0, wall=WALL)  # fmt: skip
    d = fresh.decide_node_tap(node_tap(8, 30, flags=0b011), wall=WALL + 40)
    assert "possible_raw_repeat" not in d.payload
