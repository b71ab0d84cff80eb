"""Hostile modems: whatever bytes come back on the AT port -- non-UTF-8, control bytes, huge or
odd Unicode numbers, truncated replies, lines past the length limit -- the parser, the decoders
and ``ModemLink.command`` raise :class:`drivers.modem.ModemError` (decoding problems as its
``AtReplyError``) and nothing else, within a second; the modem monitor keeps polling and
reports what it saw.

The modem is ``tests/hostile/drivers_raw_modem.py``: a pty whose far end writes the chosen bytes.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drivers.modem import (
    MAX_LINE,
    AtParser,
    AtReplyError,
    AtResponse,
    ModemError,
    ModemLink,
    parse_cops,
    parse_creg,
    parse_csq,
)
from gateway.clock import SystemClock
from gateway.health.config import ModemConfig
from gateway.health.hub import HealthHub
from gateway.health.services import ModemMonitor
from tests.health.helpers import events_of, open_journal, running, wait_until
from tests.hostile.drivers_loopthread import LoopThread
from tests.hostile.drivers_raw_modem import RawModem

LIMIT_S = 1.0
ODD_DIGITS = "\u00b2\u0663\u06f3\u0967\uff13\U0001d7d1"
numbers = st.one_of(
    st.integers(-(10**30), 10**30).map(str),
    st.text(st.sampled_from("0123456789" + ODD_DIGITS + ' ,-+"'), max_size=12),
)


@st.composite
def info_lines(draw: st.DrawFn) -> bytes:
    prefix = draw(st.sampled_from([b"+CSQ:", b"+CREG:", b"+COPS:", b"+CME ERROR:", b"RING", b""]))
    body = draw(st.one_of(numbers.map(lambda s: s.encode("utf-8")), st.binary(max_size=40)))
    return prefix + b" " + body


@st.composite
def modem_replies(draw: st.DrawFn) -> bytes:
    """What a modem might send back: plausible lines with bad contents, or raw noise."""
    if draw(st.booleans()):
        return draw(st.binary(max_size=400))
    lines = draw(st.lists(info_lines(), max_size=4))
    final = draw(st.sampled_from([b"OK", b"ERROR", b"+CME ERROR: \xff", b"", b"O\x00K"]))
    out = b"".join(b"\r\n" + line + b"\r\n" for line in lines) + b"\r\n" + final + b"\r\n"
    if draw(st.booleans()):
        out = b"\r\n" + b"9" * (MAX_LINE + draw(st.integers(1, 50))) + out  # past the limit
    return out[: draw(st.integers(0, len(out)))] if draw(st.booleans()) else out


def _decode_all(resp: AtResponse) -> None:
    for parse in (parse_csq, parse_creg, parse_cops):
        try:
            parse(resp)
        except AtReplyError:
            pass


@settings(max_examples=300, deadline=None)
@given(reply=modem_replies(), command=st.sampled_from(["AT+CSQ", "AT+CREG?", "AT+COPS?"]),
       data=st.data())  # fmt: skip
def test_parser_and_decoders_raise_only_modem_errors(
    reply: bytes, command: str, data: st.DataObject
) -> None:
    started = time.monotonic()
    parser = AtParser()
    parser.send(command)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(reply)), max_size=6)))
    pieces = [reply[a:b] for a, b in zip([0, *cuts], [*cuts, len(reply)], strict=True)]
    for piece in pieces:
        try:
            parser.receive_data(piece)
        except AtReplyError:
            pass  # an over-long line, dropped; the parser carries on
        while (ev := parser.next_event()) is not None:
            if isinstance(ev, AtResponse):
                _decode_all(ev)
    assert time.monotonic() - started < LIMIT_S


@settings(max_examples=300, deadline=None)
@given(
    lines=st.lists(st.text(max_size=60), max_size=4),
    prefix=st.sampled_from(["+CSQ: ", "+CREG: ", "+COPS: "]),
    body=numbers,
    final=st.sampled_from(["OK", "ERROR", "+CME ERROR: 10"]),
)
def test_decoders_on_any_text_raise_only_at_reply_error(
    lines: list[str], prefix: str, body: str, final: str
) -> None:
    started = time.monotonic()
    for cmd in ("AT+CSQ", "AT+CREG?", "AT+COPS?"):
        _decode_all(AtResponse(cmd, (*lines, prefix + body), final))
    assert time.monotonic() - started < LIMIT_S


@pytest.fixture
def modem_link() -> Iterator[tuple[RawModem, ModemLink, LoopThread]]:
    with RawModem() as modem:
        lt = LoopThread()
        try:
            link = lt.run(ModemLink.open(modem.path))
            yield modem, link, lt
            lt.run(link.close())
        finally:
            lt.close()


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(reply=modem_replies(), command=st.sampled_from(["AT+CSQ", "AT+CREG?", "AT+COPS?"]))
def test_link_command_raises_only_modem_error(
    modem_link: tuple[RawModem, ModemLink, LoopThread], reply: bytes, command: str
) -> None:
    modem, link, lt = modem_link
    modem.answer = lambda cmd: reply
    started = time.monotonic()
    try:
        resp = lt.run(link.command(command, timeout=0.3))
    except ModemError:
        pass
    else:
        _decode_all(resp)
    elapsed = time.monotonic() - started
    assert elapsed < LIMIT_S, f"{command} took {elapsed:.2f} s on {reply[:80]!r}"
    assert not link.closed, f"garbage closed the link: {link.close_reason}"


async def test_modem_monitor_keeps_polling_a_modem_that_answers_garbage(tmp_path: Path) -> None:
    garbage = [
        b"\r\n+CSQ: \xff\xfe,\x00\r\nOK\r\n",
        b"\r\n+CREG: 0,\xb2\r\nOK\r\n",
        b"\r\n" + b"\x9b" * (MAX_LINE + 10) + b"\r\nOK\r\n",
        b'\r\n+COPS: 0,0,"\xe4\xb8\r\nOK\r\n',
        b"\r\n+CSQ: " + b"9" * 500 + b",99\r\nOK\r\n",
    ]
    turn = iter(range(10**6))
    with RawModem() as modem:
        modem.answer = lambda cmd: b"\r\nOK\r\n" if cmd == "AT" else garbage[next(turn) % 5]
        async with open_journal(tmp_path) as journal:
            hub = HealthHub(journal, SystemClock())
            cfg = ModemConfig(port=modem.path, interval_s=0.05, command_timeout_s=0.5)
            mon = ModemMonitor(cfg, hub)
            async with running(hub, mon) as tasks:
                await wait_until(lambda: mon.polls >= 6, timeout=30.0, what="six modem polls")
                assert not any(t.done() for t in tasks), "a service stopped"
                assert mon.opens == 1, "garbage must not look like a vanished port"
                await hub.flush()
                changes = [e.payload for e in await events_of(journal, "health.state")]
            assert changes, "no health state recorded"
            assert all(c["device"] == "modem" for c in changes)
            assert changes[-1]["state"] in ("degraded", "down")
            assert changes[-1]["reason"]
        # Each poll sent at least its AT (a timed-out poll stops early); the modem heard them.
        assert modem.commands.count("AT") >= 6
