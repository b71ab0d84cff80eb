"""The daemon's entry to sync: build the uploader from the config.

services = build_services(cfg, journal, clock, board)   # [] when sync is disabled
"""

from __future__ import annotations

import logging
from typing import Any

from gateway.clock import Clock
from gateway.journal import Journal
from gateway.sync.config import SyncSection
from gateway.sync.uploader import Uploader

log = logging.getLogger("gateway.sync")


def build_services(cfg: Any, journal: Journal, clock: Clock, board: Any = None) -> list[Uploader]:
    """Factory for ``gateway.daemon.capability_factories``. ``cfg.sync`` is a SyncSection
    (the default one if the config has none); ``board.publish`` receives the link status."""
    section = getattr(cfg, "sync", None) or SyncSection()
    if not section.enabled:
        log.info("sync disabled in the config")
        return []
    publish = getattr(board, "publish", None)
    return [Uploader(journal, clock, section, data_dir=cfg.data_dir, publish=publish)]
