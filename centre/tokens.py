"""One-time enrollment tokens: random, shown once, stored only as a SHA-256 hash.

token = new_token()                 # 'cgt-...' printed for the installer, never stored
await repo.create_token(hash_token(token), "Rose Garden", "", now, now + parse_ttl("15m"))
"""

from __future__ import annotations

import hashlib
import re
import secrets
from typing import Final

from centre.errors import BadRequest

TOKEN_PREFIX: Final = "cgt-"  # noqa: S105 - a prefix, not a secret
TOKEN_BYTES: Final = 20
MAX_TTL_S: Final = 7 * 86400.0
_TTL_RE: Final = re.compile(r"(\d+(?:\.\d+)?)\s*([smhd]?)")
_UNITS: Final = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(TOKEN_BYTES)


def hash_token(token: str) -> str:
    """What the database keeps (lookup by hash: no token comparison to time)."""
    return hashlib.sha256(token.strip().encode("utf-8")).hexdigest()


def parse_ttl(text: str) -> float:
    """``"15m"`` → 900.0; units s, m, h, d; at most a week (tokens are for installers on site)."""
    m = _TTL_RE.fullmatch(text.strip().lower())
    if not m:
        raise BadRequest(f"{text!r} is not a duration like 90s, 15m, 2h, 1d")
    seconds = float(m.group(1)) * _UNITS[m.group(2)]
    if not 0 < seconds <= MAX_TTL_S:
        raise BadRequest(f"ttl {text!r} must be above 0 and at most 7 days")
    return seconds
