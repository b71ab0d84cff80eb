"""The line emulator's pure core: pacing, collisions and faults against a fake clock."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hil_tests.line.wire import NOISE, Faults, Wire, char_time

BT = char_time(9600)


def _collect(wire: Wire, now: float) -> bytes:
    return b"".join(d.data for d in wire.take_due(now))


def test_char_time_is_ten_bits() -> None:
    assert char_time(9600) == pytest.approx(1 / 960)
    assert char_time(115200) == pytest.approx(10 / 115200)
    with pytest.raises(ValueError):
        char_time(0)


def test_paced_characters_arrive_one_char_time_apart() -> None:
    wire = Wire(BT, random.Random(1))
    wire.send(0, b"abcd", now=10.0)
    assert wire.next_due() == pytest.approx(10.0 + BT)
    assert _collect(wire, 10.0 + 0.5 * BT) == b""
    assert _collect(wire, 10.0 + 1.0 * BT) == b"a"
    assert _collect(wire, 10.0 + 2.5 * BT) == b"b"
    assert _collect(wire, 10.0 + 4.0 * BT) == b"cd"
    assert wire.next_due() is None


def test_a_second_write_queues_behind_the_first_not_beside_it() -> None:
    wire = Wire(BT, random.Random(1))
    wire.send(0, b"ab", now=0.0)
    wire.send(0, b"cd", now=0.0001)  # written while "ab" is still on the wire
    dues = []
    t = 0.0
    while wire.next_due() is not None:
        t = wire.next_due() or t
        dues.append((t, _collect(wire, t)))
    assert [d for _, d in dues] == [b"a", b"b", b"c", b"d"]
    assert [round(t / BT, 6) for t, _ in dues] == [1, 2, 3, 4]


def test_after_idle_the_next_write_starts_when_it_is_written() -> None:
    wire = Wire(BT, random.Random(1))
    wire.send(0, b"a", now=0.0)
    assert _collect(wire, 1.0) == b"a"
    wire.send(0, b"b", now=5.0)
    assert wire.next_due() == pytest.approx(5.0 + BT)


def test_unpaced_wire_delivers_at_once() -> None:
    wire = Wire(0.0, random.Random(1))
    wire.send(0, b"xyz", now=3.0)
    assert _collect(wire, 3.0) == b"xyz"


def test_stall_holds_bytes_in_flight_and_new_ones() -> None:
    wire = Wire(BT, random.Random(1))
    wire.send(0, b"ab", now=0.0)
    wire.stall(now=0.0, seconds=1.0)
    assert _collect(wire, 0.9) == b""
    wire.send(0, b"c", now=0.5)
    assert _collect(wire, 1.0 + 3 * BT) == b"abc"
    assert wire.counters.stalls == 1


def test_overlapping_transmitters_collide_and_senders_do_not_hear_it() -> None:
    wire = Wire(BT, random.Random(7))
    wire.send(1, b"\x01\x03\x00\x00", now=0.0)
    wire.send(2, b"\x02\x03\x00\x00", now=0.3 * BT)  # starts while device 1 is mid-character
    deliveries = wire.take_due(1.0)
    assert wire.counters.collisions == 4  # one garbled character per character time
    assert all(set(d.origins) == {1, 2} for d in deliveries)
    assert sum(len(d.data) for d in deliveries) == 4


def test_back_to_back_transmitters_do_not_collide() -> None:
    wire = Wire(BT, random.Random(7))
    wire.send(1, b"\x01\x03", now=0.0)
    wire.send(2, b"\x02\x03", now=2 * BT)  # starts exactly when device 1 has finished
    deliveries = wire.take_due(1.0)
    assert wire.counters.collisions == 0
    assert [(d.origins, d.data) for d in deliveries] == [((1,), b"\x01\x03"), ((2,), b"\x02\x03")]


def test_noise_collides_with_a_frame_in_flight() -> None:
    wire = Wire(BT, random.Random(3))
    wire.send(0, b"frame!", now=0.0)
    wire.send(NOISE, b"\xff", now=2.5 * BT)
    data = _collect(wire, 1.0)
    assert wire.counters.collisions >= 1
    assert data != b"frame!"


def test_unpaced_transmitters_interleave_without_collisions() -> None:
    wire = Wire(0.0, random.Random(3))
    wire.send(1, b"aa", now=0.0)
    wire.send(2, b"bb", now=0.0)
    assert _collect(wire, 0.0) == b"aabb"
    assert wire.counters.collisions == 0


def test_bit_error_rate_flips_about_the_expected_number_of_bits() -> None:
    wire = Wire(0.0, random.Random(11), Faults(bit_error_rate=0.01))
    sent = bytes(50_000)
    wire.send(0, sent, now=0.0)
    got = _collect(wire, 0.0)
    flipped = sum(bin(b).count("1") for b in got)  # sent was all zeros
    assert flipped == wire.counters.flipped_bits
    assert 0.8 * 4000 < flipped < 1.2 * 4000  # 400_000 bits x 1 %
    assert wire.counters.corrupted == sum(1 for b in got if b)


def test_drop_and_garbage_rates_change_the_length_accordingly() -> None:
    wire = Wire(0.0, random.Random(5), Faults(drop_rate=0.1))
    wire.send(0, bytes(10_000), now=0.0)
    got = _collect(wire, 0.0)
    assert len(got) == 10_000 - wire.counters.dropped
    assert 800 < wire.counters.dropped < 1200

    wire = Wire(0.0, random.Random(5), Faults(garbage_rate=0.05))
    wire.send(0, b"A" * 10_000, now=0.0)
    got = _collect(wire, 0.0)
    assert len(got) == 10_000 + wire.counters.garbage
    assert 400 < wire.counters.garbage < 600


def test_fault_rates_are_validated() -> None:
    with pytest.raises(ValueError, match="bit_error_rate"):
        Faults(bit_error_rate=1.5)
    with pytest.raises(ValueError, match="drop_rate"):
        Faults(drop_rate=-0.1)


@settings(max_examples=60, deadline=None)
@given(
    data=st.binary(min_size=1, max_size=200),
    cuts=st.lists(st.integers(min_value=1, max_value=50), max_size=10),
    step=st.floats(min_value=0.0, max_value=5.0),
)
def test_a_clean_wire_delivers_every_chunking_intact_and_in_order(
    data: bytes, cuts: list[int], step: float
) -> None:
    wire = Wire(BT, random.Random(0))
    now = 0.0
    out = bytearray()
    rest = data
    for cut in cuts:
        wire.send(0, rest[:cut], now)
        rest = rest[cut:]
        now += step * BT
        out += _collect(wire, now)
    wire.send(0, rest, now)
    out += _collect(wire, now + (len(data) + 1) * BT)
    assert bytes(out) == data
    assert wire.counters.forwarded == len(data)
