"""The daemon's entry to sync: build the uploader from the config.

services = build_services(cfg, journal, clock, board)   # [] when sync is disabled
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from gateway.clock import Clock
from gateway.health.config import resolve
from gateway.journal import Journal
from gateway.sync.config import SyncSection
from gateway.sync.media import MediaUplink
from gateway.sync.uploader import Uploader

log = logging.getLogger("gateway.sync")


def build_services(cfg: Any, journal: Journal, clock: Clock, board: Any = None) -> list[Any]:
    """Factory for ``gateway.daemon.capability_factories``. ``cfg.sync`` is a SyncSection
    (the default one if the config has none); ``board.publish`` receives the link status.
    Beside the uploader runs the media uplink (evidence images, docs/media.md) unless
    ``media_upload`` is off."""
    section = getattr(cfg, "sync", None) or SyncSection()
    if not section.enabled:
        log.info("sync disabled in the config")
        return []
    publish = getattr(board, "publish", None)
    services: list[Any] = [
        Uploader(journal, clock, section, data_dir=cfg.data_dir, publish=publish)
    ]
    if section.media_upload:
        health = getattr(cfg, "health", None)
        media_dir = resolve(Path(cfg.data_dir), getattr(health, "media_dir", "media"))
        services.append(
            MediaUplink(
                journal, clock, section, data_dir=cfg.data_dir, media_dir=media_dir, publish=publish
            )
        )
    return services
