"""Long line-emulator loops (``--slow``): many unplugs, long paced runs, a collision storm."""

from __future__ import annotations

import itertools
import os
import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import serial

from hil_tests.line import Rs485Bus, SerialLine
from hil_tests.line.leakcheck import no_leaks

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def _no_leaks() -> Iterator[None]:
    with no_leaks():
        yield


def test_hundreds_of_unplug_replug_cycles_leak_nothing(tmp_path: Path) -> None:
    with SerialLine(host_link=tmp_path / "tty", paced=False) as line, serial.Serial(
        line.device_path, timeout=2
    ) as sim:
        for i in range(300):
            with serial.Serial(line.host_path, timeout=2) as gw:
                msg = f"cycle {i}".encode()
                sim.write(msg)
                assert gw.read(len(msg)) == msg
                line.unplug()
                with pytest.raises(serial.SerialException):
                    gw.read(1)
            line.replug()
        assert line.stats.unplugs == line.stats.replugs == 300


def test_ten_seconds_paced_at_9600_keeps_rate_and_spacing(tmp_path: Path) -> None:
    n = 9600
    arrivals: list[float] = []
    with SerialLine(host_link=tmp_path / "tty", baud=9600) as line, serial.Serial(
        line.host_path, timeout=2
    ) as gw, serial.Serial(line.device_path, timeout=2) as sim:
        gw.write(os.urandom(n))
        while len(arrivals) < n:
            chunk = sim.read(1)
            assert chunk, "the line stopped"
            arrivals.append(time.monotonic())
    rate = (n - 1) * 10 / (arrivals[-1] - arrivals[0])
    # Never faster than the wire over ten seconds; a loaded machine may slow it, not stop it.
    # Rate and gap percentiles under no load are figures: bench/line_pacing.py.
    assert rate < 9600 * 1.02, rate
    assert rate > 9600 * 0.25, rate
    gaps = sorted(b - a for a, b in itertools.pairwise(arrivals))
    assert gaps[len(gaps) // 2] < 4 * 10 / 9600, "the median byte gap is long: pacing is broken"


def test_collision_storm_on_a_bus(tmp_path: Path) -> None:
    stop = threading.Event()
    with Rs485Bus(host_link=tmp_path / "tty", baud=19200, devices=4, seed=9) as bus:
        ports = [serial.Serial(p, timeout=0.05) for p in [bus.host_path, *bus.device_paths]]
        try:

            def chatter(port: serial.Serial, seed: int) -> None:
                rng = random.Random(seed)
                while not stop.is_set():
                    port.write(os.urandom(rng.randint(1, 40)))
                    port.read(4096)
                    time.sleep(rng.random() * 0.02)

            threads = [
                threading.Thread(target=chatter, args=(p, i)) for i, p in enumerate(ports)
            ]
            for t in threads:
                t.start()
            time.sleep(8)
            stop.set()
            for t in threads:
                t.join()
        finally:
            for p in ports:
                p.close()
        stats = bus.stats
    assert bus.running is False
    assert stats.collisions > 0
    assert stats.forwarded > 1000
