"""Login for the status page: password hashes, attempt throttling, sessions. No I/O, no clock.

    line = hash_password("correct horse battery")        # what set-password writes (0600)
    verify_password("correct horse battery", line)       # True

    throttle = LoginThrottle()
    wait = throttle.wait_s(client, now)                  # > 0: refuse without checking
    throttle.record(client, ok=False, now=now)           # each failure doubles the wait

    sessions = SessionStore(ttl_s=8 * 3600)
    s = sessions.create(client, now)                     # s.token goes in the cookie
    sessions.get(s.token, now)                           # the session, or None

Times are arguments (a monotonic clock's seconds), so tests step time instead of sleeping.
Passwords are hashed with scrypt (RFC 7914, in Python's hashlib); there is no default password:
with no hash file, nobody can log in.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Final

from gateway.errors import ConfigError

# scrypt cost: 16 MiB and ~0.1 s on a Pi 4 per check, which is what slows an offline guesser
# holding a stolen hash file; online guessing is slowed by the throttle below.
SCRYPT_N: Final = 2**14
SCRYPT_R: Final = 8
SCRYPT_P: Final = 1
SCRYPT_MAXMEM: Final = 64 * 1024 * 1024
SALT_BYTES: Final = 16
HASH_BYTES: Final = 32
MIN_PASSWORD_CHARS: Final = 10
MAX_PASSWORD_CHARS: Final = 1024

# Per client: no wait for the first failure, then 1 s, 2 s, 4 s ... up to 5 minutes.
CLIENT_BACKOFF_BASE_S: Final = 1.0
CLIENT_BACKOFF_MAX_S: Final = 300.0
# Everyone together: a spread-out guesser (many addresses) is slowed down too. The first few
# failures in a quiet spell are free, so one person mistyping is not held up by the global rule.
GLOBAL_FREE_FAILURES: Final = 10
GLOBAL_BACKOFF_BASE_S: Final = 1.0
GLOBAL_BACKOFF_MAX_S: Final = 60.0
# A client (or everyone) quiet this long after its last failure starts afresh.
FORGET_AFTER_S: Final = 3600.0
MAX_TRACKED_CLIENTS: Final = 1024
MAX_SESSIONS: Final = 16
# What secrets.token_urlsafe makes (session and CSRF tokens); anything else is refused unread.
TOKEN_RE: Final = re.compile(r"[A-Za-z0-9_-]{1,128}")


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int, length: int) -> bytes:
    return hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=SCRYPT_MAXMEM, dklen=length
    )


def check_new_password(password: str) -> None:
    """Refuse passwords too short (or absurdly long) to set; ConfigError says why."""
    if len(password) < MIN_PASSWORD_CHARS:
        raise ConfigError("web.password", f"use at least {MIN_PASSWORD_CHARS} characters")
    if len(password) > MAX_PASSWORD_CHARS:
        raise ConfigError("web.password", f"use at most {MAX_PASSWORD_CHARS} characters")


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    """``scrypt$N$r$p$salt$hash`` (base64), the one line of the password file."""
    check_new_password(password)
    salt = salt if salt is not None else secrets.token_bytes(SALT_BYTES)
    digest = _scrypt(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P, HASH_BYTES)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, line: str) -> bool:
    """Whether ``password`` matches the stored line (constant-time compare; False if malformed)."""
    parts = line.strip().split("$")
    if len(parts) != 6 or parts[0] != "scrypt" or len(password) > MAX_PASSWORD_CHARS:
        return False
    try:
        n, r, p = int(parts[1]), int(parts[2]), int(parts[3])
        salt = base64.b64decode(parts[4], validate=True)
        want = base64.b64decode(parts[5], validate=True)
    except ValueError:
        return False
    # Refuse parameters that would make a check cost more than ours (a planted file as a DoS).
    if not (2 <= n <= SCRYPT_N * 4 and 1 <= r <= 16 and 1 <= p <= 4 and 16 <= len(want) <= 64):
        return False
    try:
        got = _scrypt(password, salt, n, r, p, len(want))
    except ValueError:
        return False
    return hmac.compare_digest(got, want)


# --------------------------------------------------------------------------- throttling


@dataclass(slots=True)
class _Failures:
    count: int = 0
    last_at: float = 0.0
    locked_until: float = 0.0


def _backoff(base: float, ceiling: float, n: int) -> float:
    return 0.0 if n <= 0 else min(ceiling, base * 2 ** (n - 1))


@dataclass(slots=True)
class LoginThrottle:
    """Exponential backoff on failed logins, per client address and for everyone together.

    While a wait is pending the attempt is refused *without* checking the password, so a
    guesser gains nothing by hammering; refused attempts do not lengthen the wait (a
    neighbour cannot lock the owner out for longer than the backoff of their own failures).
    """

    client_base_s: float = CLIENT_BACKOFF_BASE_S
    client_max_s: float = CLIENT_BACKOFF_MAX_S
    global_free: int = GLOBAL_FREE_FAILURES
    global_base_s: float = GLOBAL_BACKOFF_BASE_S
    global_max_s: float = GLOBAL_BACKOFF_MAX_S
    forget_after_s: float = FORGET_AFTER_S
    _clients: OrderedDict[str, _Failures] = field(default_factory=OrderedDict)
    _global: _Failures = field(default_factory=_Failures)

    def wait_s(self, client: str, now: float) -> float:
        """Seconds until ``client`` may try again (0: now)."""
        self._forget(now)
        mine = self._clients.get(client)
        own = mine.locked_until - now if mine else 0.0
        return max(0.0, own, self._global.locked_until - now)

    def record(self, client: str, *, ok: bool, now: float) -> float:
        """Count an attempt that was checked; returns the wait it imposes on the client."""
        self._forget(now)
        if ok:
            self._clients.pop(client, None)
            return 0.0
        mine = self._clients.pop(client, None) or _Failures()
        mine.count += 1
        mine.last_at = now
        mine.locked_until = now + _backoff(self.client_base_s, self.client_max_s, mine.count - 1)
        self._clients[client] = mine  # most recent last: eviction takes the stalest
        while len(self._clients) > MAX_TRACKED_CLIENTS:
            self._clients.popitem(last=False)
        g = self._global
        g.count += 1
        g.last_at = now
        over = g.count - self.global_free
        g.locked_until = now + _backoff(self.global_base_s, self.global_max_s, over)
        return max(mine.locked_until, g.locked_until) - now

    def failures(self, client: str) -> int:
        """Consecutive failures counted for ``client``."""
        mine = self._clients.get(client)
        return mine.count if mine else 0

    def _forget(self, now: float) -> None:
        for key in [k for k, f in self._clients.items() if now - f.last_at > self.forget_after_s]:
            del self._clients[key]
        if self._global.count and now - self._global.last_at > self.forget_after_s:
            self._global = _Failures()


# --------------------------------------------------------------------------- sessions


@dataclass(frozen=True, slots=True)
class Session:
    """A logged-in browser. ``token`` is the cookie; ``csrf`` goes in every form."""

    token: str
    csrf: str
    client: str
    created_at: float
    expires_at: float
    password_line: str  # the hash it was opened with: a new password ends old sessions


def _key(token: str) -> str:
    # Sessions are found by a hash of the token, so a lookup leaks nothing about stored tokens.
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()


@dataclass(slots=True)
class SessionStore:
    """In-memory sessions (a daemon restart logs everyone out, which is acceptable)."""

    ttl_s: float
    max_sessions: int = MAX_SESSIONS
    _by_key: OrderedDict[str, Session] = field(default_factory=OrderedDict)

    def create(self, client: str, now: float, password_line: str = "") -> Session:
        """A new session with fresh random token and CSRF token (the oldest goes if full)."""
        session = Session(
            token=secrets.token_urlsafe(32),
            csrf=secrets.token_urlsafe(32),
            client=client,
            created_at=now,
            expires_at=now + self.ttl_s,
            password_line=password_line,
        )
        self._by_key[_key(session.token)] = session
        while len(self._by_key) > self.max_sessions:
            self._by_key.popitem(last=False)
        return session

    def get(
        self, token: str | None, now: float, password_line: str | None = None
    ) -> Session | None:
        """The live session for ``token``; None if unknown, expired or from an older password."""
        if not token:
            return None
        key = _key(token)
        session = self._by_key.get(key)
        if session is None:
            return None
        stale = password_line is not None and session.password_line != password_line
        if now >= session.expires_at or stale:
            del self._by_key[key]
            return None
        return session

    def drop(self, token: str | None) -> None:
        """End a session (logout)."""
        if token:
            self._by_key.pop(_key(token), None)

    def __len__(self) -> int:
        return len(self._by_key)


def csrf_matches(expected: str, given: str | None) -> bool:
    """Constant-time comparison of a form's CSRF token with the session's (or the login
    cookie's). Both may come from the network: anything that is not a token we could have
    made (``\xff\xfe`` in a cookie, a lone surrogate, 10 kB of text) is simply False."""
    if not given or not expected:
        return False
    if not (TOKEN_RE.fullmatch(expected) and TOKEN_RE.fullmatch(given)):
        return False
    return hmac.compare_digest(expected.encode("ascii"), given.encode("ascii"))
