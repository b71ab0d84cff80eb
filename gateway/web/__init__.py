"""The local status page: devices, link, last taps, today's rounds, recent alerts, on the LAN.

    from gateway.web import build_services          # daemon: services for cfg.web
    from gateway.web.cli import add_cli             # CLI: `compound-gw web set-password`

Read-only without login; acknowledging an alert needs a login whose password an installer
sets with ``compound-gw web set-password`` (there is no default password).
"""

from __future__ import annotations

from gateway.web.app import WebContext, WebService, build_services, make_app
from gateway.web.config import WebSection

__all__ = ["WebContext", "WebSection", "WebService", "build_services", "make_app"]
