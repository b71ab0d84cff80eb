"""Which health samples are worth a journal row: only meaningful changes, or a heartbeat.

A gateway polling 8 cameras every 10 s would write ~70k telemetry rows a day if it kept every
sample; an SD card does not thank us for that. :class:`SampleThinner` keeps a sample when

- it is the device's first, or
- ``heartbeat_s`` has passed since the last kept one (so the centre still sees a pulse), or
- a metric moved meaningfully: by at least its absolute threshold (``thresholds``), else by
  ``relative`` of the last kept value for numbers; any change at all for strings, booleans and
  ``None`` (a flag going on is news).

Pure: ``now`` is an argument; nothing here touches a clock or a file.

    thinner = SampleThinner(heartbeat_s=900, thresholds={"temp_c": 2.0})
    if thinner.keep("gateway", {"temp_c": 51.3, "load1": 0.2}, now):
        ...append a health.sample telemetry event...
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


class SampleThinner:
    """Decide, per device, whether a sample differs enough from the last kept one."""

    def __init__(
        self,
        heartbeat_s: float = 900.0,
        thresholds: Mapping[str, float] | None = None,
        relative: float = 0.25,
        ignore: frozenset[str] = frozenset(),
    ) -> None:
        self.heartbeat_s = heartbeat_s
        self.thresholds = dict(thresholds or {})
        self.relative = relative
        # Metrics that always drift (counters, timings) and must not trigger a write by themselves.
        self.ignore = ignore
        self._last: dict[str, tuple[float, dict[str, Any]]] = {}
        self.kept = 0
        self.skipped = 0

    def changed(self, key: str, old: Any, new: Any) -> bool:
        """Whether one metric moved enough to be worth a row."""
        if key in self.ignore:
            return False
        if _is_number(old) and _is_number(new):
            limit = self.thresholds.get(key)
            if limit is not None:
                return bool(abs(new - old) >= limit)
            if old == 0:
                return bool(new != 0)
            return bool(abs(new - old) >= self.relative * abs(old))
        return bool(old != new)

    def keep(self, device: str, metrics: Mapping[str, Any], now: float) -> bool:
        """True if this sample should be written; remembers it as the last kept one if so."""
        last = self._last.get(device)
        keep = last is None or now - last[0] >= self.heartbeat_s
        if not keep and last is not None:
            old = last[1]
            keep = set(old) != set(metrics) or any(
                self.changed(k, old[k], v) for k, v in metrics.items()
            )
        if keep:
            self._last[device] = (now, dict(metrics))
            self.kept += 1
        else:
            self.skipped += 1
        return keep

    def forget(self, device: str) -> None:
        """Drop a device's memory: its next sample is kept (after a state change, say)."""
        self._last.pop(device, None)
