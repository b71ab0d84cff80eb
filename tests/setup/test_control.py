"""The daemon's control socket: a pure parser with one error type, and a server that no hostile
client can crash (it answers with the documented error and goes on serving)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import stat
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.clock import ManualClock
from gateway.control import (
    MAX_LINE_BYTES,
    VERBS,
    ControlClient,
    ControlError,
    ControlRequestError,
    ControlServer,
    parse_click,
    parse_reader,
    parse_request,
)
from gateway.errors import RemoteProtocolError
from gateway.journal import Journal, read_events

# -------------------------------------------------------------------------- the parser

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_any_bytes_parse_or_raise_the_one_error(line: bytes) -> None:
    try:
        request = parse_request(line)
    except ControlRequestError as exc:
        assert isinstance(exc, RemoteProtocolError) and exc.code
        return
    assert request.verb in VERBS


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["verb", "args", "id", "x"]),
        json_values | st.sampled_from(VERBS),
        max_size=4,
    )
)
def test_any_json_request_parses_or_raises_the_one_error(data: dict[str, Any]) -> None:
    try:
        request = parse_request(json.dumps(data).encode())
    except ControlRequestError:
        return
    assert request.verb == data["verb"] and dict(request.args) == data.get("args", {})


@settings(max_examples=200, deadline=None)
@given(json_values)
def test_verb_arguments_are_checked_with_the_one_error(value: Any) -> None:
    for check in (
        lambda: parse_reader(value),
        lambda: parse_click({"zones": value, "seconds": 1}),
        lambda: parse_click({"zones": [1], "seconds": value}),
    ):
        try:
            check()
        except ControlRequestError:
            pass


def test_the_parser_names_what_is_wrong() -> None:
    cases = {
        b"not json": "bad_json",
        b"[1, 2]": "bad_request",
        b'{"verb": "format-disk"}': "unknown_verb",
        b'{"verb": "status", "args": []}': "bad_args",
        b'{"verb": "status", "sudo": true}': "bad_request",
        b"\xff\xfe": "bad_json",
        b"[" * 100_000: "too_long",
    }
    for line, code in cases.items():
        with pytest.raises(ControlRequestError) as info:
            parse_request(line)
        assert info.value.code == code, line[:40]
    assert parse_request(b'{"verb": "ping"}').verb == "ping"
    assert parse_reader("readers-a/12") == ("readers-a", 12)
    assert parse_click({"zones": [1, 2], "seconds": 0.5}) == ([1, 2], 0.5)
    with pytest.raises(ControlRequestError):
        parse_click({"zones": [True], "seconds": 0.5})  # a bool is no zone number


# -------------------------------------------------------------------------- the server


class FakeBus:
    """A reader bus as the checkpoint service holds it (only what the verbs use)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.feedback_sent: list[tuple[int, str]] = []

    async def feedback(self, address: int, feedback: Any) -> bool:
        self.feedback_sent.append((address, feedback.name))
        return True


class FakeCheckpoints:
    name = "checkpoints"

    def __init__(self) -> None:
        self.buses = [FakeBus("readers-a")]

    def snapshot(self) -> dict[str, Any]:
        row = {"checkpoint": "north-gate", "reader": "readers-a/1", "online": True}
        return {"readers": [row | {"sc_active": True, "reason": None}]}


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[ControlServer, Journal, FakeCheckpoints]]:
    journal = await Journal.open(tmp_path / "journal.db", gateway_id="gw-ctl", clock=ManualClock())
    checkpoints = FakeCheckpoints()
    # AF_UNIX paths are short (108 bytes): pytest's tmp_path can be too long.
    path = Path(f"/tmp/gwctl-{os.getpid()}-{time.monotonic_ns()}.sock")
    server = ControlServer(
        path, services=[checkpoints], journal=journal, clock=ManualClock(synced=False)
    )
    task = asyncio.create_task(server.run())
    try:
        deadline = time.monotonic() + 10
        while not path.exists():
            assert time.monotonic() < deadline, "the control socket never appeared"
            await asyncio.sleep(0.01)
        yield server, journal, checkpoints
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await journal.close()
    assert not path.exists(), "the socket file outlived the server"


async def _raw(path: Path, data: bytes) -> list[dict[str, Any]]:
    reader, writer = await asyncio.open_unix_connection(str(path), limit=4 * MAX_LINE_BYTES)
    try:
        writer.write(data)
        await writer.drain()
        writer.write_eof()
        out = []
        while line := await asyncio.wait_for(reader.readline(), 10):
            out.append(json.loads(line))
        return out
    finally:
        writer.close()
        await writer.wait_closed()


async def test_hostile_clients_get_the_documented_error_and_the_server_serves_on(
    served: tuple[ControlServer, Journal, FakeCheckpoints],
) -> None:
    server, _journal, _cp = served
    assert stat.S_IMODE(server.path.stat().st_mode) == 0o660
    replies = await _raw(server.path, b'garbage\n{"verb": "nope"}\n\n{"verb": "ping"}\n')
    assert [r["ok"] for r in replies] == [False, False, True]
    assert [r["error"]["code"] for r in replies[:2]] == ["bad_json", "unknown_verb"]
    assert replies[2]["result"]["pid"] == os.getpid()
    # A line over the limit: answered, then the connection closes; the server lives on.
    (too_long,) = await _raw(server.path, b"x" * (MAX_LINE_BYTES * 2) + b"\n")
    assert too_long["error"]["code"] == "too_long"
    # A client that connects and vanishes, one that sends half a line and vanishes.
    _r, w = await asyncio.open_unix_connection(str(server.path))
    w.close()
    await w.wait_closed()
    _r, w = await asyncio.open_unix_connection(str(server.path))
    w.write(b'{"verb": "sta')
    await w.drain()
    w.close()
    await w.wait_closed()
    async with ControlClient(server.path) as ctl:
        status = await ctl.call("status")
        assert status["readers"] == [
            {
                "checkpoint": "north-gate",
                "reader": "readers-a/1",
                "online": True,
                "secure_channel": True,
                "reason": None,
            }
        ]
        assert status["clock"]["synchronised"] is False
        with pytest.raises(ControlError) as info:
            await ctl.call("zones.click", zones=[1], seconds=0.5)
        assert info.value.code == "not_found"  # this daemon has no relays
    assert server.refused == 5  # garbage, unknown verb, too long, half a line, no relays


async def test_verbs_blink_a_reader_and_journal_a_report(
    served: tuple[ControlServer, Journal, FakeCheckpoints],
) -> None:
    server, journal, checkpoints = served
    envelope = {"type": "commissioning.report", "body": {"passed": False}, "key_id": None,
                "sig": None}  # fmt: skip
    async with ControlClient(server.path) as ctl:
        assert await ctl.call("reader.blink", reader="readers-a/1", ok=False) == {"sent": True}
        with pytest.raises(ControlError, match="no such reader bus"):
            await ctl.call("reader.blink", reader="readers-b/1", ok=True)
        with pytest.raises(ControlError) as info:
            await ctl.call("report", envelope={"type": "tap", "body": {}})
        assert info.value.code == "bad_args"
        seq = (await ctl.call("report", envelope=envelope))["seq"]
    assert checkpoints.buses[0].feedback_sent == [(1, "REFUSED")]
    (event,) = [e for e in read_events(journal.path, limit=100) if e.kind == "commissioning.report"]
    assert event.seq == seq and event.payload == envelope


async def test_reload_sends_sighup_only_when_the_daemon_handles_it(
    served: tuple[ControlServer, Journal, FakeCheckpoints],
) -> None:
    server, _journal, _cp = served
    got = asyncio.Event()
    async with ControlClient(server.path) as ctl:
        with pytest.raises(ControlError) as info:
            await ctl.call("reload")  # no SIGHUP handler: the signal would kill the daemon
        assert info.value.code == "unsupported"
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGHUP, got.set)
        try:
            assert (await ctl.call("reload"))["reloaded"] is True
            await asyncio.wait_for(got.wait(), 10)
        finally:
            loop.remove_signal_handler(signal.SIGHUP)


async def test_no_daemon_is_a_control_error(tmp_path: Path) -> None:
    with pytest.raises(ControlError) as info:
        async with ControlClient(tmp_path / "none.sock"):
            pass
    assert info.value.code == "unavailable"


@settings(max_examples=200, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=200),
        st.builds(
            lambda verb, args: json.dumps({"verb": verb, "args": args}).encode(),
            st.sampled_from(VERBS),
            st.dictionaries(
                st.sampled_from(["reader", "ok", "zones", "seconds", "envelope"]),
                json_values,
                max_size=3,
            ),
        ),
    )
)
def test_the_server_answers_every_line_with_one_json_reply(line: bytes) -> None:
    # Verbs that would act (report, reload) meet a journal and a daemon that refuse politely.
    class NoJournal:
        last_seq = 0

        async def append(self, kind: str, payload: Any) -> Any:
            raise ControlRequestError("bad_args", "not in this test")

    server = ControlServer(
        Path("/nonexistent/control.sock"),
        services=[FakeCheckpoints()],
        journal=NoJournal(),
        clock=ManualClock(),
        reload=_refuse_reload,
    )
    reply = asyncio.run(server.answer(line))
    assert reply.endswith(b"\n") and reply.count(b"\n") == 1
    decoded = json.loads(reply)
    assert decoded["ok"] is True or decoded["error"]["code"] != "internal", decoded


async def _refuse_reload() -> Any:
    raise ControlRequestError("unsupported", "not in this test")
