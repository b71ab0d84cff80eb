"""Who may read bulletins and record explanations: district operators with a bearer token.

Gateways' client certificates never open these pages (a gateway sits in a compound and must not
read its neighbours' bulletins). Each operator gets a random token, shown once; the centre keeps
only its SHA-256 hash and the operator's name in ``operators`` (mode 0600) in its data
directory. A browser on a phone cannot send a header, so ``POST /bulletins/login`` trades the
token for a short session cookie (HMAC-signed name and expiry, HttpOnly, Secure,
SameSite=Strict). Writes (recording an explanation) take the bearer header only, so a forged
cross-site form can never write.

    token = add_operator(paths.root / OPERATORS_FILE, "duty-officer")   # print it once
    tokens = OperatorTokens.load(paths.root / OPERATORS_FILE)
    tokens.operator_for("cop-...")  # -> "duty-officer" or None
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

OPERATORS_FILE: Final = "operators"
TOKEN_PREFIX: Final = "cop-"  # noqa: S105 - a prefix, not a secret
TOKEN_BYTES: Final = 24
SESSION_TTL_S: Final = 12 * 3600.0
NAME_RE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
# What add_operator hands out (token_urlsafe), with room to spare; nothing else is looked up.
TOKEN_RE: Final = re.compile(r"cop-[A-Za-z0-9_-]{1,200}", re.ASCII)


def hash_operator_token(token: str) -> str:
    return hashlib.sha256(token.strip().encode("utf-8")).hexdigest()


def add_operator(path: Path, name: str) -> str:
    """Append an operator to the token file; returns the token (shown once, never stored)."""
    if not NAME_RE.fullmatch(name):
        raise ValueError(f"operator name {name!r} must match {NAME_RE.pattern}")
    token = TOKEN_PREFIX + secrets.token_urlsafe(TOKEN_BYTES)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "a", encoding="utf-8") as f:
        f.write(f"{hash_operator_token(token)} {name}\n")
        f.flush()
        os.fsync(f.fileno())
    return token


@dataclass(slots=True)
class OperatorTokens:
    """Token hashes → operator names, and the session cookie signer."""

    by_hash: dict[str, str] = field(default_factory=dict)
    # A fresh key per process: a restart logs every browser out, which is acceptable.
    session_key: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    path: Path | None = None
    _stamp: tuple[int, int] | None = None

    @classmethod
    def load(cls, path: Path) -> OperatorTokens:
        """Read ``<sha256> <name>`` lines; a missing file means nobody may read bulletins."""
        tokens = cls(path=path)
        tokens.refresh()
        return tokens

    def refresh(self) -> None:
        """Re-read the file if it changed (an operator added or removed takes effect at once)."""
        if self.path is None:
            return
        try:
            st = self.path.stat()
        except FileNotFoundError:
            self.by_hash, self._stamp = {}, None
            return
        stamp = (st.st_mtime_ns, st.st_size)
        if stamp == self._stamp:
            return
        by_hash = {}
        for raw in self.path.read_text(encoding="utf-8").splitlines():
            parts = raw.split()
            if len(parts) == 2 and re.fullmatch(r"[0-9a-f]{64}", parts[0]):
                by_hash[parts[0]] = parts[1]
        self.by_hash, self._stamp = by_hash, stamp

    def operator_for(self, token: str) -> str | None:
        """The operator holding ``token`` (lookup by hash: nothing secret is compared).

        ``token`` comes straight from a request: anything that is not a well-formed token
        (non-ASCII, a byte aiohttp kept as a surrogate, absurd length) is simply nobody - this
        never raises."""
        if not TOKEN_RE.fullmatch(token):
            return None
        return self.by_hash.get(hash_operator_token(token))

    def session(self, name: str, now: float, ttl_s: float = SESSION_TTL_S) -> str:
        """A cookie value naming ``name`` until ``now + ttl_s``."""
        body = f"{name}|{int(now + ttl_s)}"
        mac = hmac.new(self.session_key, body.encode(), hashlib.sha256).digest()
        return (
            base64.urlsafe_b64encode(body.encode()).decode().rstrip("=")
            + "."
            + (base64.urlsafe_b64encode(mac).decode().rstrip("="))
        )

    def session_operator(self, value: str, now: float) -> str | None:
        """The operator a cookie value names, if its MAC holds and it has not expired (None
        for any malformed value: this never raises)."""
        if len(value) > 1024 or not value.isascii():
            return None
        try:
            b64_body, b64_mac = value.split(".", 1)
            body = base64.urlsafe_b64decode(b64_body + "=" * (-len(b64_body) % 4))
            mac = base64.urlsafe_b64decode(b64_mac + "=" * (-len(b64_mac) % 4))
            name, expires = body.decode().rsplit("|", 1)
            until = int(expires)
        except (ValueError, UnicodeDecodeError):
            return None
        good = hmac.new(self.session_key, body, hashlib.sha256).digest()
        if not hmac.compare_digest(mac, good) or now >= until:
            return None
        # The operator must still hold a token: removing their line ends their sessions.
        return name if name in self.by_hash.values() else None


__all__ = ["OPERATORS_FILE", "OperatorTokens", "add_operator", "hash_operator_token"]
