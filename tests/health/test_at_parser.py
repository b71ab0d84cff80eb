"""The AT parser fed whole, byte by byte and in every random split."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.modem import (
    AtParser,
    AtReplyError,
    AtResponse,
    AtUsageError,
    Stray,
    Unsolicited,
    parse_cops,
    parse_creg,
    parse_csq,
)

# (command, bytes the modem sends, expected events)
GOLDEN = [
    (
        "AT+CSQ",
        b"AT+CSQ\r\r\n+CSQ: 21,99\r\n\r\nOK\r\n",
        [AtResponse("AT+CSQ", ("+CSQ: 21,99",), "OK")],
    ),
    (
        "AT+CREG?",
        b"\r\n+CREG: 0,5\r\n\r\nOK\r\n",
        [AtResponse("AT+CREG?", ("+CREG: 0,5",), "OK")],
    ),
    (
        "AT+COPS?",
        b'AT+COPS?\r\r\n+COPS: 0,0,"China Mobile",7\r\n\r\nOK\r\n',
        [AtResponse("AT+COPS?", ('+COPS: 0,0,"China Mobile",7',), "OK")],
    ),
    ("AT+CSQ", b"\r\nERROR\r\n", [AtResponse("AT+CSQ", (), "ERROR")]),
    ("AT+COPS?", b"\r\n+CME ERROR: 10\r\n", [AtResponse("AT+COPS?", (), "+CME ERROR: 10")]),
    (
        # A URC in the middle of a response is handed out on its own, and first.
        "AT+CSQ",
        b"\r\n+CSQ: 9,0\r\n\r\n+CREG: 2\r\n\r\nRING\r\n\r\nOK\r\n",
        [Unsolicited("+CREG: 2"), Unsolicited("RING"), AtResponse("AT+CSQ", ("+CSQ: 9,0",), "OK")],
    ),
    (
        "ATI",
        b"ATI\r\nQuectel\nEC25\r\nRevision: EC25EFAR06A09M4G\r\n\r\nOK\r\n",
        [AtResponse("ATI", ("Quectel", "EC25", "Revision: EC25EFAR06A09M4G"), "OK")],
    ),
]


def _run(command: str, chunks: list[bytes]) -> list[object]:
    p = AtParser()
    p.send(command)
    out: list[object] = []
    for chunk in chunks:
        p.receive_data(chunk)
        while (ev := p.next_event()) is not None:
            out.append(ev)
    return out


@pytest.mark.parametrize(("command", "wire", "expected"), GOLDEN)
def test_golden_whole_and_byte_by_byte(command: str, wire: bytes, expected: list[object]) -> None:
    assert _run(command, [wire]) == expected
    assert _run(command, [wire[i : i + 1] for i in range(len(wire))]) == expected


@given(data=st.data())
def test_golden_any_split(data: st.DataObject) -> None:
    command, wire, expected = data.draw(st.sampled_from(GOLDEN))
    cuts = sorted(data.draw(st.lists(st.integers(0, len(wire)), max_size=8)))
    chunks = [wire[a:b] for a, b in zip([0, *cuts], [*cuts, len(wire)], strict=True)]
    assert _run(command, chunks) == expected


def test_partial_response_waits_for_more() -> None:
    p = AtParser()
    p.send("AT+CSQ")
    p.receive_data(b"\r\n+CSQ: 21,99\r\n\r\nO")
    assert p.next_event() is None
    assert p.busy
    p.receive_data(b"K\r\n")
    assert p.next_event() == AtResponse("AT+CSQ", ("+CSQ: 21,99",), "OK")
    assert not p.busy


def test_unsolicited_while_idle_and_stray_after_abort() -> None:
    p = AtParser()
    p.receive_data(b"\r\n+CREG: 1\r\n")
    assert p.next_event() == Unsolicited("+CREG: 1")
    p.send("AT+CSQ")
    p.abort()  # the caller timed out
    p.receive_data(b"\r\n+CSQ: 5,5\r\n\r\nOK\r\n")
    assert p.next_event() == Unsolicited("+CSQ: 5,5")
    assert p.next_event() == Stray("OK")
    # And the next command is not confused by the late reply.
    p.send("AT")
    p.receive_data(b"AT\r\r\nOK\r\n")
    assert p.next_event() == AtResponse("AT", (), "OK")


def test_one_command_at_a_time_and_single_lines_only() -> None:
    p = AtParser()
    assert p.send("AT+CSQ") == b"AT+CSQ\r"
    with pytest.raises(AtUsageError):
        p.send("AT")
    p.abort()
    with pytest.raises(AtUsageError):
        p.send("AT\rATZ")
    with pytest.raises(AtUsageError):
        p.send("+++")


def test_overlong_line_is_refused_then_parser_recovers() -> None:
    p = AtParser()
    with pytest.raises(AtReplyError):
        p.receive_data(b"x" * 2000)
    p.send("AT")
    p.receive_data(b"\r\nOK\r\n")
    assert p.next_event() == AtResponse("AT", (), "OK")


@given(st.binary(max_size=300))
def test_garbage_never_crashes(blob: bytes) -> None:
    # Any bytes: either a typed AtReplyError or well-formed events, never another exception.
    p = AtParser()
    p.send("AT+CSQ")
    try:
        p.receive_data(blob)
    except AtReplyError as exc:
        assert str(exc)
        return
    events = []
    while (ev := p.next_event()) is not None:
        events.append(ev)
    assert len(events) <= len(blob)


def test_decoders() -> None:
    s = parse_csq(AtResponse("AT+CSQ", ("+CSQ: 21,99",), "OK"))
    assert (s.rssi, s.ber, s.dbm) == (21, 99, -71)
    assert parse_csq(AtResponse("AT+CSQ", ("+CSQ: 99,99",), "OK")).dbm is None
    r = parse_creg(AtResponse("AT+CREG?", ('+CREG: 2,5,"1A2B","01C3D4E5",7',), "OK"))
    assert r.registered and r.stat == 5 and "roaming" in r.text
    assert not parse_creg(AtResponse("AT+CREG?", ("+CREG: 0,3",), "OK")).registered
    op = parse_cops(AtResponse("AT+COPS?", ('+COPS: 0,0,"China Mobile",7',), "OK"))
    assert (op.name, op.act) == ("China Mobile", 7)
    assert parse_cops(AtResponse("AT+COPS?", ("+COPS: 0",), "OK")).name is None
    with pytest.raises(AtReplyError):
        parse_csq(AtResponse("AT+CSQ", (), "ERROR"))
    with pytest.raises(AtReplyError):
        parse_csq(AtResponse("AT+CSQ", ("+CSQ: x,y",), "OK"))
    with pytest.raises(AtReplyError):
        parse_cops(AtResponse("AT+COPS?", ("+COPS: what",), "OK"))
