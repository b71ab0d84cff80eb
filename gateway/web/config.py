"""The ``[web]`` section: where the local status page listens and where its password hash is.

    [web]
    enabled = true
    host = "0.0.0.0"
    port = 8080
    password_file = "web-password"   # written by `compound-gw web set-password`

``parse_section(WebSection, data["web"], "web")`` builds it; the lead wires it into
``GatewayConfig`` as ``web``.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.config.schema import setting


@dataclass(frozen=True, slots=True)
class WebSection:
    enabled: bool = setting(True, doc="serve the local status page on the LAN")
    host: str = setting(
        "0.0.0.0",
        doc="address to listen on (0.0.0.0: every interface; 127.0.0.1: this box only)",
        pattern=r"[0-9A-Za-z.:\-]{1,64}",
    )
    port: int = setting(
        8080, min=0, max=65535, doc="TCP port of the status page (0: any free port, for tests)"
    )
    password_file: str = setting(
        "web-password",
        doc="scrypt hash of the page's password, a 0600 file written by "
        "`compound-gw web set-password` (relative: to this file's folder); "
        "no file, no login: the page stays read-only",
    )
    session_ttl_s: float = setting(
        8 * 3600.0, min=60.0, max=7 * 86400.0, doc="a login lasts this long"
    )
    refresh_s: int = setting(
        15, min=0, max=3600, doc="the page reloads itself this often (0: never)"
    )
    events_scanned: int = setting(
        50_000,
        min=100,
        max=1_000_000,
        doc="how far back (in journal events) the page looks for taps, rounds and alerts",
    )
