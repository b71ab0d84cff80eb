"""The ``[commands]`` config section (the command channel; keys and URL come from ``[sync]``).

[commands]
enabled = true
max_skew_s = 30
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from gateway.config.schema import setting


@dataclass(frozen=True, slots=True)
class CommandsSection:
    enabled: bool = setting(True, doc="run the command channel (needs provisioning and broadcast)")
    state_file: str = setting(
        "commands/state.json", doc="last accepted sequence and trusted-time floor (fsynced)"
    )
    heartbeat_s: float = setting(20.0, min=1.0, max=600.0, doc="WebSocket ping interval")
    connect_timeout_s: float = setting(15.0, min=0.5, max=600.0, doc="TCP + TLS + upgrade")
    backoff_initial_s: float = setting(1.0, min=0.01, max=3600.0, doc="first reconnect ceiling")
    backoff_max_s: float = setting(60.0, min=0.01, max=3600.0, doc="largest reconnect ceiling")
    stable_after_s: float = setting(
        30.0, min=0.0, max=3600.0, doc="a connection up this long resets the backoff"
    )
    max_skew_s: float = setting(
        30.0, min=0.0, max=600.0, doc="accept a command this long before its issued_at"
    )
    max_seq_jump: int = setting(10_000, min=1, max=10**9, doc="largest step above last seq")
    max_ttl_s: float = setting(3600.0, min=1.0, max=86400.0, doc="refuse longer-lived commands")

    def check(self) -> Iterable[tuple[str, str]]:
        if self.backoff_max_s < self.backoff_initial_s:
            yield "backoff_max_s", "must not be below backoff_initial_s"
