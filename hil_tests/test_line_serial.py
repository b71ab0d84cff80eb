"""SerialLine seen from plain pyserial on both ends: pacing, each fault, unplug/replug."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import serial

from hil_tests.line import SerialLine
from hil_tests.line.leakcheck import no_leaks


@pytest.fixture(autouse=True)
def _no_leaks() -> Iterator[None]:
    with no_leaks():
        yield


@pytest.fixture
def line(tmp_path: Path) -> Iterator[SerialLine]:
    with SerialLine(host_link=tmp_path / "by-id" / "usb-FTDI_RS485-if00", baud=9600, seed=1) as ln:
        yield ln


def _open(path: str, timeout: float = 2.0) -> serial.Serial:
    return serial.Serial(path, baudrate=9600, timeout=timeout)


def _read_exactly(port: serial.Serial, n: int, deadline_s: float = 10.0) -> bytes:
    out = bytearray()
    end = time.monotonic() + deadline_s
    while len(out) < n and time.monotonic() < end:
        out += port.read(n - len(out))
    return bytes(out)


def _read_until_quiet(port: serial.Serial, quiet_s: float = 0.3) -> bytes:
    port.timeout = quiet_s
    out = bytearray()
    while chunk := port.read(65536):
        out += chunk
    return bytes(out)


def test_binary_bytes_cross_both_ways_untouched(line: SerialLine) -> None:
    line.set_pacing(paced=False)
    every_byte = bytes(range(256)) + b"\r\n\n\r\x03\x04\x11\x13"  # no CR/LF or XON/XOFF magic
    with _open(line.host_path) as gw, _open(line.device_path) as sim:
        gw.write(every_byte)
        assert _read_exactly(sim, len(every_byte)) == every_byte
        sim.write(every_byte[::-1])
        assert _read_exactly(gw, len(every_byte)) == every_byte[::-1]
    assert line.stats.forwarded == 2 * len(every_byte)


def test_host_path_is_a_stable_symlink_to_a_pty(line: SerialLine, tmp_path: Path) -> None:
    link = tmp_path / "by-id" / "usb-FTDI_RS485-if00"
    assert line.host_path == str(link)
    assert link.is_symlink()
    assert os.readlink(link).startswith("/dev/pts/")
    assert line.device_path.startswith("/dev/pts/")


@pytest.mark.parametrize(("baud", "seconds"), [(9600, 1.5), (115200, 1.0)])
def test_paced_throughput_matches_the_baud_rate(tmp_path: Path, baud: int, seconds: float) -> None:
    n = int(baud / 10 * seconds)
    payload = os.urandom(n)
    with SerialLine(host_link=tmp_path / "tty", baud=baud) as line, _open(
        line.host_path
    ) as gw, _open(line.device_path) as sim:
        gw.write(payload[:1])  # let the first byte through to start the clock on arrival
        assert _read_exactly(sim, 1) == payload[:1]
        start = time.monotonic()
        gw.write(payload[1:])
        got = _read_exactly(sim, n - 1, deadline_s=seconds * 3)
        elapsed = time.monotonic() - start
    assert got == payload[1:]
    bits_per_s = (n - 1) * 10 / elapsed
    # Bounds that hold on a loaded machine: pacing may be starved (slower), never faster than
    # the wire. The rate itself is a figure: bench/line_pacing.py.
    assert bits_per_s <= baud * 1.1, f"{bits_per_s:.0f} bit/s at {baud} baud: faster than the wire"
    assert bits_per_s >= baud * 0.25, f"{bits_per_s:.0f} bit/s at {baud} baud: not flowing"


def test_paced_bytes_are_evenly_spaced_not_bursty(tmp_path: Path) -> None:
    # pymodbus drops an RTU frame when characters arrive more than 3.5 char times apart, and a
    # line that hands a whole write over at once is no wire at all.
    baud, n = 9600, 200
    char_s = 10 / baud
    arrivals: list[float] = []
    with SerialLine(host_link=tmp_path / "tty", baud=baud) as line, _open(
        line.host_path
    ) as gw, _open(line.device_path, timeout=1.0) as sim:
        start = time.monotonic()
        gw.write(bytes(n))
        while len(arrivals) < n:
            chunk = sim.read(1)
            if not chunk:
                break
            arrivals.append(time.monotonic())
    assert len(arrivals) == n
    # Never ahead of the wire: byte i cannot arrive before i character times have passed
    # (less a few characters of scheduling slack). A busy machine can only make bytes late,
    # and a late reader takes them back to back, so gaps between arrivals say nothing under
    # load; this bound holds however loaded the machine is. A bursty line (the whole write at
    # once) breaks it at once. Gap percentiles are figures: bench/line_pacing.py.
    slack = 8
    early = [
        (i, (t - start) / char_s)
        for i, t in enumerate(arrivals)
        if t - start < (i + 1 - slack) * char_s
    ]
    assert not early, f"bytes ahead of the wire (index, char times after the write): {early[:5]}"
    # Flowing: the last byte within a generous multiple of the wire time.
    assert arrivals[-1] - start < 20 * n * char_s, "the line crawls"


def test_unpaced_mode_is_much_faster_than_the_wire(tmp_path: Path) -> None:
    payload = os.urandom(200_000)
    with SerialLine(host_link=tmp_path / "tty", baud=9600, paced=False) as line, _open(
        line.host_path
    ) as gw, _open(line.device_path) as sim:
        start = time.monotonic()
        writer = threading.Thread(target=gw.write, args=(payload,))
        writer.start()
        got = _read_exactly(sim, len(payload))
        writer.join()
        elapsed = time.monotonic() - start
    assert got == payload
    assert elapsed < len(payload) * 10 / 9600 / 5  # well beyond 9600 baud, even when loaded


def test_bit_errors_corrupt_what_the_reader_gets(line: SerialLine) -> None:
    line.set_pacing(paced=False)
    line.set_faults(bit_error_rate=1e-2, direction="to_host")
    sent = bytes(20_000)
    with _open(line.host_path) as gw, _open(line.device_path) as sim:
        sim.write(sent)
        got = _read_exactly(gw, len(sent))
    flipped = sum(bin(b).count("1") for b in got)
    stats = line.stats_toward("host")
    assert len(got) == len(sent)
    assert flipped == stats.flipped_bits > 0
    assert 0.7 * 1600 < flipped < 1.3 * 1600  # 160_000 bits at 1 %
    assert line.stats_toward("device").flipped_bits == 0


def test_dropped_bytes_are_missing_from_the_stream(line: SerialLine) -> None:
    line.set_pacing(paced=False)
    line.set_faults(drop_rate=0.05, direction="to_host")
    sent = bytes(range(256)) * 20
    with _open(line.host_path) as gw, _open(line.device_path) as sim:
        sim.write(sent)
        got = _read_until_quiet(gw)
    dropped = line.stats.dropped
    assert len(got) == len(sent) - dropped
    assert 0.5 * 256 < dropped < 1.5 * 256
    it = iter(sent)
    assert all(b in it for b in got), "what arrives is the sent stream with holes, in order"


def test_garbage_rate_inserts_extra_bytes(line: SerialLine) -> None:
    line.set_pacing(paced=False)
    line.set_faults(garbage_rate=0.05, direction="to_host")
    sent = b"U" * 4000
    with _open(line.host_path) as gw, _open(line.device_path) as sim:
        sim.write(sent)
        got = _read_until_quiet(gw)
    garbage = line.stats.garbage
    assert len(got) == len(sent) + garbage
    assert 100 < garbage < 300
    assert got.count(b"U") >= len(sent)


def test_injected_garbage_reaches_a_reader_on_a_silent_line(line: SerialLine) -> None:
    with _open(line.host_path) as gw, _open(line.device_path, timeout=0.3) as sim:
        line.inject_garbage(32)
        got = _read_exactly(gw, 32)
        assert len(got) == 32
        assert sim.read(1) == b"", "garbage toward the host only"
        line.inject_garbage(0, direction="to_device", data=b"\x00\xff")
        assert _read_exactly(sim, 2) == b"\x00\xff"
    assert line.stats.garbage == 34


def test_a_stall_holds_bytes_then_lets_them_through(line: SerialLine) -> None:
    with _open(line.host_path, timeout=0.4) as gw, _open(line.device_path) as sim:
        line.stall(0.8)
        sim.write(b"held")
        assert gw.read(4) == b"", "nothing passes while stalled"
        gw.timeout = 2.0
        start = time.monotonic()
        assert _read_exactly(gw, 4) == b"held"
        assert time.monotonic() - start < 1.0
    assert line.stats.stalls == 2  # both directions


def test_unplug_looks_like_a_pulled_usb_adapter(line: SerialLine) -> None:
    link = line.host_path
    gw = _open(link, timeout=5.0)
    sim = _open(line.device_path)
    try:
        failure: list[BaseException] = []

        def blocked_reader() -> None:
            try:
                gw.read(1)
            except serial.SerialException as exc:
                failure.append(exc)

        reader = threading.Thread(target=blocked_reader)
        reader.start()
        time.sleep(0.2)  # the gateway is blocked in read() when the cable goes
        line.unplug()
        reader.join(5.0)
        assert failure, "a read blocked on the port fails with SerialException"
        assert not os.path.lexists(link), "the by-id symlink disappears"
        with pytest.raises(serial.SerialException):
            gw.write(b"x")
        with pytest.raises(serial.SerialException):
            serial.Serial(link)
        sim.write(b"into the void")
        time.sleep(0.1)
        assert not line.plugged
    finally:
        gw.close()

    line.replug()
    assert os.path.islink(link)
    with _open(link) as gw2:
        sim.write(b"back")
        assert _read_exactly(gw2, 4) == b"back"
        gw2.write(b"ok")
        assert _read_exactly(sim, 2) == b"ok"
    sim.close()
    stats = line.stats
    assert (stats.unplugs, stats.replugs) == (1, 1)
    assert stats.lost_unplugged == len(b"into the void")


def test_reopening_the_port_discards_stale_input_like_a_real_tty(line: SerialLine) -> None:
    line.set_pacing(paced=False)
    with _open(line.device_path) as sim:
        sim.write(b"stale")  # nobody has the host side open
        time.sleep(0.1)
        with _open(line.host_path, timeout=0.2) as gw:
            assert gw.read(5) == b"", "pyserial flushes input on open"
            sim.write(b"fresh")
            assert _read_exactly(gw, 5) == b"fresh"


def test_stop_closes_everything_and_removes_the_link(tmp_path: Path) -> None:
    line = SerialLine(host_link=tmp_path / "tty", baud=9600)
    with pytest.raises(RuntimeError, match="not started"):
        _ = line.device_path
    line.start()
    device = line.device_path
    assert os.path.islink(tmp_path / "tty")
    line.stop()
    line.stop()  # idempotent
    assert not os.path.lexists(tmp_path / "tty")
    assert not line.running
    with pytest.raises(RuntimeError, match="stopped"):
        line.start()
    assert device  # a stale pty path; the leak check proves its descriptors are closed


def test_a_stale_symlink_from_a_crashed_run_is_replaced(tmp_path: Path) -> None:
    link = tmp_path / "tty"
    os.symlink("/dev/pts/nonexistent", link)
    with SerialLine(host_link=link) as line:
        assert os.readlink(link).startswith("/dev/pts/")
        assert os.path.exists(line.host_path)
