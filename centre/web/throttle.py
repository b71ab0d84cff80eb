"""Login throttling, sans-IO: failures per key (an account, a client address), exponential lockout.

The first :attr:`Throttle.free_failures` wrong passwords cost nothing; each one after locks the
key for ``base_lockout * 2**(extra - 1)`` seconds, capped at ``max_lockout``. A success clears
the key; failures older than ``forget_after`` are forgotten. The caller passes ``now`` (the
console's injected clock), so tests move time without sleeping. Keys are bounded in number:
beyond ``max_keys`` the oldest are dropped, so a flood of addresses cannot exhaust memory::

    t = Throttle()
    if (until := t.locked_until("user:alice", now)) is not None: refuse(until)
    t.failure("user:alice", now)
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class _Entry:
    failures: int
    last_failure: float
    locked_until: float


class Throttle:
    def __init__(
        self,
        *,
        free_failures: int = 5,
        base_lockout: float = 30.0,
        max_lockout: float = 3600.0,
        forget_after: float = 24 * 3600.0,
        max_keys: int = 100_000,
    ) -> None:
        self.free_failures = free_failures
        self.base_lockout = base_lockout
        self.max_lockout = max_lockout
        self.forget_after = forget_after
        self.max_keys = max_keys
        self._entries: dict[str, _Entry] = {}

    def _entry(self, key: str, now: float) -> _Entry | None:
        entry = self._entries.get(key)
        if entry is not None and now - entry.last_failure > self.forget_after:
            del self._entries[key]
            return None
        return entry

    def locked_until(self, key: str, now: float) -> float | None:
        """When ``key``'s lockout ends, or ``None`` if it may try now."""
        entry = self._entry(key, now)
        if entry is None or entry.locked_until <= now:
            return None
        return entry.locked_until

    def failures(self, key: str, now: float) -> int:
        entry = self._entry(key, now)
        return 0 if entry is None else entry.failures

    def failure(self, key: str, now: float) -> float | None:
        """Count a wrong password; returns when the lockout it starts ends (or ``None``)."""
        entry = self._entry(key, now)
        if entry is None:
            entry = _Entry(0, now, 0.0)
            while len(self._entries) >= self.max_keys:
                del self._entries[next(iter(self._entries))]
        else:
            del self._entries[key]  # re-insert: dict order is then oldest-failure-first
        self._entries[key] = entry
        entry.failures += 1
        entry.last_failure = now
        extra = entry.failures - self.free_failures
        if extra <= 0:
            return None
        lockout = min(self.max_lockout, self.base_lockout * 2.0 ** min(extra - 1, 32))
        entry.locked_until = now + lockout
        return entry.locked_until

    def success(self, key: str) -> None:
        self._entries.pop(key, None)
