"""Every wizard prompt's parser, fed anything a person (or a cat on the keyboard) can type:
never a traceback; each answer is accepted or refused with advice in words, and the asker
re-asks until a good answer or stops cleanly at the end of input."""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.setup import interactive as ia
from gateway.setup.interactive import AnswerError, Asker, InputEnded

BOARDS = {"relays-1": 8, "amp": 4}
PORTS = ["/dev/compound-gw/bus0", "/dev/ttyUSB1"]

PARSERS: dict[str, Callable[[str], Any]] = {
    "gateway_id": ia.parse_gateway_id,
    "required_text": ia.parse_required_text,
    "optional_text": ia.parse_optional_text,
    "timezone": ia.parse_timezone,
    "name": ia.parse_name,
    "kind": ia.parse_kind,
    "ports": lambda t: ia.parse_ports(t, PORTS),
    "ports_none_found": lambda t: ia.parse_ports(t, []),
    "id_list": ia.parse_id_list,
    "zones": lambda t: ia.parse_zones(t, BOARDS),
    "zones_no_board": lambda t: ia.parse_zones(t, {}),
    "board_channel": lambda t: ia.parse_board_channel(t, BOARDS),
    "yes_no": ia.parse_yes_no,
    "centre_url": ia.parse_centre_url,
    "fingerprint": ia.parse_fingerprint,
    "snapshot_url": ia.parse_snapshot_url,
    "camera_source": ia.parse_camera_source,
    "rtsp_url": ia.parse_rtsp_url,
    "auth": ia.parse_auth,
    "guard_id": ia.parse_guard_id,
    "count": lambda t: ia.parse_count(t, 1, 12),
    "time_of_day": ia.parse_time_of_day,
    "times": ia.parse_times,
    "every_hours": ia.parse_every_hours,
    "choice": lambda t: ia.parse_choice(t, 3),
}

# Text people and terminals produce: digits of other scripts, full-width forms, control
# characters (Esc sequences, NUL, DEL), huge numbers, separators, and plain printable ASCII.
ODD = st.sampled_from(
    [
        "\u0663", "\uff13", "\u00b2", "\u3007", "\u4e00", "\u216b", "\x00", "\x1b[A",
        "\x7f", "\u200b", "\ufeff", "\ud800", "\uff0c", "\uff1a", "\uff0f", "\uff1d",
        "=", "/", ",", ":", "CH", "ch", "-", " ", "\t", "\n", "9" * 40, "1e309", "nan", "-1",
        "0", "https://", "http://[", "sha256:", "../", "Asia/Shanghai",
    ]
)  # fmt: skip
TEXT = st.lists(st.one_of(st.text(max_size=12), ODD), max_size=8).map("".join)


@pytest.mark.parametrize("name", sorted(PARSERS))
@settings(max_examples=150, deadline=None)
@given(text=TEXT)
def test_parser_accepts_or_advises(name: str, text: str) -> None:
    parse = PARSERS[name]
    try:
        parse(text)
    except AnswerError as exc:
        advice = exc.advice
        assert advice and len(advice) < 300
        assert not re.search(r"\[[^\]]*\]\{|\\d|\(\?|\.\*", advice), f"a regex as advice: {advice}"


@settings(max_examples=150, deadline=None)
@given(lines=st.lists(TEXT, max_size=6))
def test_asker_reasks_until_good_or_input_ends(lines: list[str]) -> None:
    """Any sequence of lines then EOF: the asker returns a parsed value or raises InputEnded."""
    for name, parse in PARSERS.items():
        feed = iter(lines)

        def read_line(_prompt: str, feed: Any = feed) -> str:
            try:
                return str(next(feed))
            except StopIteration:
                raise EOFError from None

        out = io.StringIO()
        asker = Asker({}, read_line=read_line, out=out)
        try:
            asker.value(name, "question", parse)
        except InputEnded:
            pass
        refused = out.getvalue().count("  ! ")
        assert refused <= len(lines)


def test_gateway_id_advice_in_words() -> None:
    with pytest.raises(AnswerError) as exc:
        ia.parse_gateway_id("Rose Garden 01")
    assert "use lowercase letters, digits and '-'" in exc.value.advice
    assert "e.g. rose-garden-01" in exc.value.advice
    assert ia.parse_gateway_id(" rose-garden-01 ") == "rose-garden-01"


def test_zone_mapping_typed_as_printed_on_the_board() -> None:
    assert ia.parse_zones("1=relays-1/CH1, 2=relays-1/ch8", BOARDS) == [
        (1, "relays-1", 0),
        (2, "relays-1", 7),
    ]
    assert ia.parse_zones("3\uff1damp\uff0fCH4", BOARDS) == [
        (3, "amp", 3)
    ]  # a Chinese input method
    for bad, advice in (
        ("4=relays-2/ch1", "boards: relays-1 (CH1..CH8), amp (CH1..CH4)"),
        ("4=relays-1/CH9", "board relays-1 has channels CH1 to CH8"),
        ("4=relays-1", "write board/channel as printed on the board, e.g. relays-1/CH1"),
        ("four=relays-1/CH1", "a zone number must be a whole number from 1 to 64"),
        ("1=relays-1/CH1,1=amp/CH1", "zone 1 is given twice"),
        ("1=relays-1/CH1,2=relays-1/CH1", "zone 1 and zone 2 are on the same relay"),
        ("relays-1/CH1", "write each zone as number=board/channel"),
    ):
        with pytest.raises(AnswerError) as exc:
            ia.parse_zones(bad, BOARDS)
        assert advice in exc.value.advice, (bad, exc.value.advice)


def test_other_digits_are_not_numbers() -> None:
    for text in ("\u0663", "\uff13", "\u00b2", "99999999999999999999"):
        with pytest.raises(AnswerError):
            ia.parse_count(text, 1, 12)
    assert ia.parse_count("\uff13".translate({0xFF13: "3"}), 1, 12) == 3


def test_saved_answers_are_not_asked_again() -> None:
    saved: dict[str, str] = {}
    saves: list[int] = []
    lines = iter(["Bad Id", "gw-01"])
    out = io.StringIO()
    asker = Asker(saved, lambda: saves.append(1), read_line=lambda _p: next(lines), out=out)
    assert asker.value("gateway.id", "gateway id", ia.parse_gateway_id) == "gw-01"
    assert "use lowercase letters" in out.getvalue()
    assert saved == {"gateway.id": "gw-01"} and saves

    def never(_prompt: str) -> str:
        raise AssertionError("asked again")

    again = Asker(saved, read_line=never, out=io.StringIO())
    assert again.value("gateway.id", "gateway id", ia.parse_gateway_id) == "gw-01"
    again.forget("gateway")
    assert saved == {}


def test_times_and_schedules() -> None:
    assert ia.parse_times("20:00\uff0c8\uff1a00, 1400") == ["08:00", "14:00", "20:00"]
    assert ia.parse_every_hours("2") == 2.0
    with pytest.raises(AnswerError):
        ia.parse_every_hours("0.1")
    with pytest.raises(AnswerError):
        ia.parse_time_of_day("24:00")


def test_secret_reasks_empty_and_ends_cleanly() -> None:
    answers = iter(["", "  ", "s3cret"])
    asker = Asker({}, read_secret=lambda _p: next(answers), out=io.StringIO())
    assert asker.secret("password: ") == "s3cret"

    def eof(_p: str) -> str:
        raise EOFError

    with pytest.raises(InputEnded):
        Asker({}, read_secret=eof, out=io.StringIO()).secret("password: ")


def test_camera_source_takes_a_url_a_vendor_with_address_and_channel_or_rtsp() -> None:
    assert ia.parse_camera_source(" http://10.0.0.20/snap.jpg ") == (
        "http", "http://10.0.0.20/snap.jpg", 1
    )  # fmt: skip
    assert ia.parse_camera_source("hikvision 10.0.0.64") == ("hikvision", "10.0.0.64", 1)
    assert ia.parse_camera_source("海康 10.0.0.64:8080 2") == ("hikvision", "10.0.0.64:8080", 2)
    assert ia.parse_camera_source("Dahua 10.0.0.108 16") == ("dahua", "10.0.0.108", 16)
    assert ia.parse_camera_source("大华\u300010.0.0.108") == ("dahua", "10.0.0.108", 1)
    assert ia.parse_camera_source("rtsp") == ("rtsp", "", 1)
    for bad in ("hikvision", "dahua 10.0.0.1/cgi-bin", "dahua 10.0.0.1 0", "hik a b c",
                "dahua 10.0.0.1 \uff13"):  # fmt: skip
        with pytest.raises(AnswerError) as exc:
            ia.parse_camera_source(bad)
        assert "hikvision" in exc.value.advice or "channel" in exc.value.advice
