"""Rs485Bus: a half-duplex multi-drop bus seen from plain pyserial on every port."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
import serial

from hil_tests.line import Rs485Bus
from hil_tests.line.leakcheck import no_leaks


@pytest.fixture(autouse=True)
def _no_leaks() -> Iterator[None]:
    with no_leaks():
        yield


def _read_exactly(port: serial.Serial, n: int, deadline_s: float = 5.0) -> bytes:
    out = bytearray()
    end = time.monotonic() + deadline_s
    while len(out) < n and time.monotonic() < end:
        out += port.read(n - len(out))
    return bytes(out)


def _drain(port: serial.Serial, quiet_s: float = 0.25) -> bytes:
    port.timeout = quiet_s
    out = bytearray()
    while chunk := port.read(4096):
        out += chunk
    return bytes(out)


@pytest.fixture
def bus_ports(tmp_path: Path) -> Iterator[tuple[Rs485Bus, serial.Serial, list[serial.Serial]]]:
    with ExitStack() as stack:
        bus = stack.enter_context(
            Rs485Bus(host_link=tmp_path / "ttyRS485", baud=19200, devices=3, seed=4)
        )
        host = stack.enter_context(serial.Serial(bus.host_path, timeout=1.0))
        devs = [stack.enter_context(serial.Serial(p, timeout=1.0)) for p in bus.device_paths]
        yield bus, host, devs


def test_every_device_hears_the_host(
    bus_ports: tuple[Rs485Bus, serial.Serial, list[serial.Serial]],
) -> None:
    bus, host, devs = bus_ports
    frame = b"\x02\x05\x00\x01\xff\x00\xdd\xc9"
    host.write(frame)
    for dev in devs:
        assert _read_exactly(dev, len(frame)) == frame
    assert _drain(host) == b"", "the sender does not hear its own echo"
    assert bus.stats.forwarded == len(frame)  # one character on the wire, heard by three


def test_a_reply_reaches_the_host_and_the_other_devices(
    bus_ports: tuple[Rs485Bus, serial.Serial, list[serial.Serial]],
) -> None:
    _bus, host, devs = bus_ports
    devs[1].write(b"reply from 2")
    assert _read_exactly(host, 12) == b"reply from 2"
    assert _read_exactly(devs[0], 12) == b"reply from 2"
    assert _read_exactly(devs[2], 12) == b"reply from 2"
    assert _drain(devs[1]) == b""


def test_turns_taken_in_order_do_not_collide(
    bus_ports: tuple[Rs485Bus, serial.Serial, list[serial.Serial]],
) -> None:
    bus, host, devs = bus_ports
    for i, dev in enumerate(devs):
        host.write(bytes([i + 1, 0x03]))
        for d in devs:
            assert _read_exactly(d, 2) == bytes([i + 1, 0x03])
        dev.write(bytes([i + 1, 0x83, 0x42]))
        assert _read_exactly(host, 3) == bytes([i + 1, 0x83, 0x42])
        for other in devs:
            if other is not dev:
                assert _read_exactly(other, 3) == bytes([i + 1, 0x83, 0x42])
    assert bus.stats.collisions == 0


def test_two_devices_talking_at_once_garble_each_other(
    bus_ports: tuple[Rs485Bus, serial.Serial, list[serial.Serial]],
) -> None:
    bus, host, devs = bus_ports
    a, b = b"\x01" + b"A" * 39, b"\x02" + b"B" * 39
    go = threading.Barrier(2)

    def talk(port: serial.Serial, frame: bytes) -> None:
        go.wait()
        port.write(frame)

    talkers = [
        threading.Thread(target=talk, args=(devs[0], a)),
        threading.Thread(target=talk, args=(devs[1], b)),
    ]
    for t in talkers:
        t.start()
    for t in talkers:
        t.join()
    heard = _drain(host)
    assert bus.stats.collisions > 0
    assert a not in heard and b not in heard, "neither frame survives the collision intact"
    assert _drain(devs[2]) == heard, "every listener hears the same garbled wire"
    # The overlap is replaced by one garbage character per character time, not two.
    assert len(heard) < len(a) + len(b)


def test_noise_on_the_bus_reaches_everyone(
    bus_ports: tuple[Rs485Bus, serial.Serial, list[serial.Serial]],
) -> None:
    bus, host, devs = bus_ports
    bus.inject_garbage(0, data=b"\xaa\x55\xaa")
    for port in [host, *devs]:
        assert _read_exactly(port, 3) == b"\xaa\x55\xaa"
    assert bus.stats.garbage == 3


def test_bus_faults_hit_every_listener_alike(
    bus_ports: tuple[Rs485Bus, serial.Serial, list[serial.Serial]],
) -> None:
    bus, host, devs = bus_ports
    bus.set_pacing(paced=False)
    bus.set_faults(bit_error_rate=0.02)
    host.write(bytes(2000))
    heard = [_read_exactly(d, 2000) for d in devs]
    assert heard[0] == heard[1] == heard[2]
    assert sum(bin(x).count("1") for x in heard[0]) == bus.stats.flipped_bits > 0
    bus.clear_faults()
    host.write(bytes(100))
    assert _read_exactly(devs[0], 100) == bytes(100)


def test_host_adapter_unplug_and_replug_on_a_bus(tmp_path: Path) -> None:
    with Rs485Bus(host_link=tmp_path / "ttyRS485", devices=2, paced=False) as bus:
        link = bus.host_path
        with serial.Serial(link, timeout=1.0) as host, serial.Serial(
            bus.device_paths[0], timeout=1.0
        ) as dev:
            bus.unplug()
            assert not os.path.lexists(link)
            with pytest.raises(serial.SerialException):
                host.read(1)
            bus.replug()
            with serial.Serial(link, timeout=1.0) as host2:
                host2.write(b"poll")
                assert _read_exactly(dev, 4) == b"poll"
                dev.write(b"ack")
                assert _read_exactly(host2, 3) == b"ack"


def test_a_bus_needs_a_device() -> None:
    with pytest.raises(ValueError):
        Rs485Bus(devices=0)
