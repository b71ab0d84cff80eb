"""Latency figures the relay benches print: percentiles beside the bus minimum of the job.

Shared by bench/relay_latency.py and bench/command_latency.py (same job, same figures)::

    lat = [...]  # seconds, one a run
    r = figures(lat, bus_minimum([(8, 8), (8, 6)], baud=9600))
    print_figures("relay latency, ...", r)
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from typing import Any

from tests.broadcast.benchkit import transaction_minimum


def pct(values: list[float], p: float) -> float:
    """The ``p``-th percentile by nearest rank (no interpolation)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))]


def bus_minimum(frames: Iterable[tuple[int, int]], baud: int) -> float:
    """Seconds the job's (request bytes, reply bytes) transactions need on the wire at best."""
    return sum(transaction_minimum(a, b, baud) for a, b in frames)


def figures(lat: list[float], bus_min: float) -> dict[str, Any]:
    """runs, p50, p99, min, max (of ``lat``) and the bus minimum, as one record."""
    return {
        "runs": len(lat),
        "p50": statistics.median(lat),
        "p99": pct(lat, 99),
        "min": min(lat),
        "max": max(lat),
        "bus_min": bus_min,
    }


def print_figures(title: str, r: dict[str, Any]) -> None:
    """The title line, then the percentiles in ms and the p50 to bus-minimum ratio."""
    ms = 1000.0
    print(title)
    print(
        f"  p50 {r['p50'] * ms:7.2f} ms   p99 {r['p99'] * ms:7.2f} ms   "
        f"min {r['min'] * ms:7.2f} ms   max {r['max'] * ms:7.2f} ms"
    )
    print(
        f"  bus minimum (write + read-back, wire time + 2 x t3.5 each): "
        f"{r['bus_min'] * ms:7.2f} ms   p50/bus minimum {r['p50'] / r['bus_min']:.2f}"
    )
