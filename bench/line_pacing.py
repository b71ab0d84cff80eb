"""Line emulator pacing: achieved bit rate and byte-gap percentiles beside the wire's own.

    .venv/bin/python bench/line_pacing.py [--seconds 3]

Writes random bytes through the paced RS-485 line emulator (hil_tests/line) at 9600 and
115200 baud and prints, for each, the achieved bit rate beside the nominal one, with the same
transfer through the unpaced line as the baseline measured in the same run, and at 9600 the
byte gap percentiles beside one character time. pymodbus drops an RTU frame when two of its
characters arrive more than 3.5 character times apart, so p99 against 3.5 characters is the
figure that matters. Figures, not pass/fail (the HIL tests assert bounds that hold on a
loaded machine).
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import serial  # noqa: E402

from bench._figures import pct  # noqa: E402
from hil_tests.line import SerialLine  # noqa: E402


def _transfer(baud: int, n: int, *, paced: bool, per_byte: bool) -> tuple[float, list[float]]:
    """Seconds from the write (after one priming byte) to the last byte, and arrival times."""
    payload = os.urandom(n)
    arrivals: list[float] = []
    with (
        tempfile.TemporaryDirectory() as tmp,
        SerialLine(host_link=Path(tmp) / "tty", baud=baud, paced=paced) as line,
        serial.Serial(line.host_path, timeout=2) as gw,
        serial.Serial(line.device_path, timeout=2) as dev,
    ):
        gw.write(payload[:1])  # the clock starts once the line is flowing
        dev.read(1)
        start = time.monotonic()
        gw.write(payload[1:])
        got = 0
        while got < n - 1:
            chunk = dev.read(1 if per_byte else max(1, dev.in_waiting))
            if not chunk:
                break
            got += len(chunk)
            arrivals.append(time.monotonic())
        return time.monotonic() - start, arrivals


def run(baud: int, seconds: float) -> None:
    n = int(baud / 10 * seconds)
    wire_s = (n - 1) * 10 / baud
    paced_s, _ = _transfer(baud, n, paced=True, per_byte=False)
    raw_s, _ = _transfer(baud, n, paced=False, per_byte=False)
    rate = (n - 1) * 10 / paced_s
    print(f"{baud} baud, {n} bytes")
    print(
        f"  paced: {paced_s:.3f} s, {rate:.0f} bit/s = {rate / baud * 100:.1f} % of nominal"
        f"   (wire time {wire_s:.3f} s)"
    )
    print(f"  baseline, the same bytes through the unpaced line: {raw_s * 1e3:.1f} ms")
    if baud <= 19200:  # a Python reader resolves single bytes only at low rates
        char_ms = 10 / baud * 1e3
        _, arrivals = _transfer(baud, n, paced=True, per_byte=True)
        gaps = [(b - a) * 1e3 for a, b in itertools.pairwise(arrivals)]
        print(
            f"  byte gap ms: p50 {pct(gaps, 50):.3f}  p90 {pct(gaps, 90):.3f}  "
            f"p99 {pct(gaps, 99):.3f}  max {max(gaps):.3f}   "
            f"(one char {char_ms:.3f}, 3.5 chars {3.5 * char_ms:.3f})"
        )
        print(f"  gaps over 3.5 chars: {sum(g > 3.5 * char_ms for g in gaps)} of {len(gaps)}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=3.0)
    args = ap.parse_args()
    for baud in (9600, 115200):
        run(baud, args.seconds)


if __name__ == "__main__":
    main()
