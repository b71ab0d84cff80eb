"""Bulletin pages with their charts: the Python cost of the daily and monthly pages of a large
district (no database: the verdicts are made in memory, as ``source.patrol_history`` returns).

    .venv/bin/python bench/bulletin_pages.py [--compounds 117] [--rounds 12] [--repeat 3]

A district of ``--compounds`` compounds in 8 townships, ``--rounds`` rounds a day each for 31
days (one in twenty missed), and two devices per compound. Timed: the daily page of the last day
with its 30-day charts, and the monthly page with its charts. Beside them, in the same run, the
baseline every page must pay anyway: the latest-verdict reduction over the same events.
"""

from __future__ import annotations

import argparse
import random
import time
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from centre.bulletins import pages
from centre.bulletins.charts import History
from centre.bulletins.model import (
    GatewayActivity,
    Unit,
    daily_bulletin,
    latest_verdicts,
    month_bounds,
    monthly_bulletin,
)

TZ = ZoneInfo("Asia/Shanghai")
MONTH = "2026-10"


def build(compounds: int, rounds: int, seed: int = 18) -> tuple[list[Unit], list[dict[str, Any]]]:
    rng = random.Random(seed)
    units = [Unit(f"compound-{i:03d}", f"township-{i % 8}", (f"gw-{i}",)) for i in range(compounds)]
    events: list[dict[str, Any]] = []
    first = date(2026, 10, 1)
    seq = 0
    for u in units:
        gw = u.gateways[0]
        for d in range(31):
            day = first + timedelta(days=d)
            for r in range(rounds):
                start = datetime(day.year, day.month, day.day, (r * 2) % 24, tzinfo=TZ)
                seq += 1
                state = "missed" if rng.random() < 0.05 else "completed"
                events.append({
                    "seq": seq, "kind": "patrol.round", "wall_time": start.timestamp() + 7200,
                    "gateway_id": gw, "compound": u.compound, "township": u.township,
                    "payload": {
                        "round": f"s{r}@{start.isoformat()}", "route": "r", "day": day.isoformat(),
                        "local_start": start.isoformat(),
                        "local_end": (start + timedelta(hours=2)).isoformat(),
                        "verdict": state, "revision": 1, "reasons": [],
                        "checkpoints": {"a": 1, "b": 1, "c": 1}, "responsible": ["g1"],
                    },
                })  # fmt: skip
    return units, events


def timed(fn: Any, repeat: int) -> tuple[float, Any]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--compounds", type=int, default=117)
    ap.add_argument("--rounds", type=int, default=12)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    units, events = build(args.compounds, args.rounds)
    base, verdicts = timed(lambda: latest_verdicts(events), args.repeat)
    _, end = month_bounds(MONTH)
    days = [(date(2026, 10, 2) + timedelta(days=i)).isoformat() for i in range(30)]
    now = end + 86400

    def daily() -> str:
        b = daily_bulletin(days[-1], units, verdicts, {}, [], now=now)
        return pages.daily_html(b, history=History(units, list(verdicts.values()), days))

    acts = {u.gateways[0]: GatewayActivity(u.gateways[0], horizon=now) for u in units}

    def monthly() -> str:
        b = monthly_bulletin(MONTH, units, verdicts, acts, now=now)
        month_days = pages.month_days(b)
        return pages.monthly_html(b, history=History(units, list(verdicts.values()), month_days))

    t_daily, page_d = timed(daily, args.repeat)
    t_monthly, page_m = timed(monthly, args.repeat)
    print(f"{args.compounds} compounds, {len(events)} verdict events (31 days), best of "
          f"{args.repeat}:")  # fmt: skip
    print(f"  baseline latest_verdicts      {base * 1000:8.1f} ms")
    print(f"  daily page + 30-day charts    {t_daily * 1000:8.1f} ms  ({len(page_d) // 1024} KiB)")
    print(
        f"  monthly page + charts         {t_monthly * 1000:8.1f} ms  ({len(page_m) // 1024} KiB)"
    )


if __name__ == "__main__":
    main()
