"""One error tree for the gateway.

Every error carries fields (``reason`` and whatever identifies the culprit) so a log line or
an event can say exactly what was wrong::

    raise ConfigError("checkpoints[3].address", "300 is outside 0..126")
"""

from __future__ import annotations

from typing import Any


class GatewayError(Exception):
    """Root of every error the gateway raises on purpose."""

    def __init__(self, reason: str, **fields: Any) -> None:
        super().__init__(reason)
        self.reason = reason
        self.fields = fields

    def as_dict(self) -> dict[str, Any]:
        """The error as JSON-ready data, for events and ``--json`` output."""
        return {"error": type(self).__name__, "reason": self.reason, **self.fields}


class ConfigError(GatewayError):
    """A configuration value is wrong; ``key`` is its dotted path."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"{key}: {reason}" if key else reason, key=key)
        self.key = key
        self.detail = reason


class JournalError(GatewayError):
    """The journal could not do what was asked."""


class JournalFullError(JournalError):
    """The disk is full: the append was not made durable (nothing already acked is lost)."""


class JournalClosedError(JournalError):
    """The journal is closed or closing."""


class DeviceError(GatewayError):
    """A device did not answer, answered wrongly, or vanished."""


class ProtocolError(GatewayError):
    """A protocol rule was broken."""


class LocalProtocolError(ProtocolError):
    """We were about to break the protocol: a bug on our side."""


class RemoteProtocolError(ProtocolError):
    """The peer broke the protocol: hostile until checked."""


class SyncError(GatewayError):
    """The link to the centre failed or the centre's reply could not be trusted."""


class CommandRefused(GatewayError):
    """A remote command was refused; ``reason`` says why, and the refusal is itself recorded."""
