"""The ``[sync]`` config section and where the provisioning files live.

    [sync]
    centre_url = ""              # empty: the URL recorded at provisioning
    batch_max_events = 500
    media_daily_budget_bytes = 104857600   # evidence images per day (docs/media.md)

Key, certificate and pins are files under the gateway's data directory (``sync/`` by default),
written by ``compound-gw provision``; relative paths are relative to ``gateway.data_dir``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from gateway.config.schema import setting


@dataclass(frozen=True, slots=True)
class SyncSection:
    enabled: bool = setting(True, doc="run the uploader (needs provisioning first)")
    centre_url: str = setting(
        "", doc="centre base URL, https://host:port (empty: the one recorded at provisioning)"
    )
    key_file: str = setting("sync/gateway-key.pem", doc="this gateway's private key (0600)")
    cert_file: str = setting("sync/gateway-cert.pem", doc="client certificate from enrollment")
    ca_file: str = setting("sync/centre-ca.pem", doc="the centre's pinned CA certificate")
    command_key_file: str = setting(
        "sync/command-pub.pem", doc="the centre's command-verification public key"
    )
    enrollment_file: str = setting("sync/enrollment.json", doc="what provisioning recorded")
    batch_max_events: int = setting(500, min=1, max=10_000, doc="most events in one batch")
    batch_max_bytes: int = setting(
        512 * 1024, min=4096, max=16 * 1024 * 1024, doc="approximate bytes of events per batch"
    )
    request_timeout_s: float = setting(60.0, min=1.0, max=3600.0, doc="one upload, end to end")
    connect_timeout_s: float = setting(15.0, min=0.5, max=600.0, doc="TCP + TLS connect")
    backoff_initial_s: float = setting(2.0, min=0.01, max=3600.0, doc="first retry ceiling")
    backoff_max_s: float = setting(300.0, min=0.01, max=86400.0, doc="largest retry ceiling")
    first_delay_max_s: float = setting(
        30.0, min=0.0, max=3600.0, doc="random delay before the first upload (no stampede)"
    )
    idle_poll_s: float = setting(30.0, min=0.1, max=3600.0, doc="wake-up when nothing is new")
    media_upload: bool = setting(
        True, doc="upload evidence images to the centre after their events (docs/media.md)"
    )
    media_daily_budget_bytes: int = setting(
        100 * 1024 * 1024,
        min=64 * 1024,
        max=1024**4,
        doc="image bytes sent per day at most (a 4G data plan); the rest waits, counted",
    )
    media_chunk_bytes: int = setting(
        64 * 1024, min=4096, max=1024 * 1024, doc="image bytes per request (resume unit)"
    )

    def check(self) -> Iterable[tuple[str, str]]:
        if self.backoff_max_s < self.backoff_initial_s:
            yield "backoff_max_s", "must not be below backoff_initial_s"
        if self.centre_url and not self.centre_url.startswith("https://"):
            yield "centre_url", "must start with https:// (the link is always TLS)"


@dataclass(frozen=True, slots=True)
class SyncPaths:
    """The provisioning files, resolved against the gateway's data directory."""

    key: Path
    cert: Path
    ca: Path
    command_key: Path
    enrollment: Path

    @classmethod
    def from_section(cls, section: SyncSection, data_dir: Path) -> SyncPaths:
        def p(value: str) -> Path:
            path = Path(value)
            return path if path.is_absolute() else data_dir / path

        return cls(
            key=p(section.key_file),
            cert=p(section.cert_file),
            ca=p(section.ca_file),
            command_key=p(section.command_key_file),
            enrollment=p(section.enrollment_file),
        )

    def provisioned(self) -> bool:
        return all(f.exists() for f in (self.key, self.cert, self.ca, self.enrollment))
