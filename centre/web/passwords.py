"""Login names, password rules and password hashing (scrypt from the standard library).

Why scrypt and not argon2id: both are memory-hard, which is what makes stolen hashes costly to
guess on GPUs; scrypt is in ``hashlib`` (OpenSSL), so the centre needs no extra compiled
dependency to install, audit and keep patched. Cost: N=2**17, r=8, p=1 (OWASP's scrypt
minimum), i.e. 128 MiB and a fraction of a second per login on a server core; logins are rare
(a shift starts with one). The parameters are stored with each hash, so a hash made with other
parameters (tests use a cheaper N) still verifies, and raising them later takes effect at each
account's next password reset.

Password rules, in words: at least 12 and at most 128 characters; printable (no control
characters); not one character repeated; not containing the login name. There is no default
password anywhere: every account's password is typed by a person.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets

from centre.web.errors import ConsoleError

SCRYPT_N = 2**17
SCRYPT_R = 8
SCRYPT_P = 1
_MAXMEM = 256 * 1024 * 1024  # twice the 128 MiB N=2**17, r=8 needs; OpenSSL's default is 32 MiB
_SALT_BYTES = 16
_KEY_BYTES = 32

MIN_PASSWORD = 12
MAX_PASSWORD = 128
USERNAME_RE = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
_PREFIX = "scrypt"


def check_username(name: object) -> str:
    """``name`` if it is a valid login name (lower-case ASCII, 1-64 chars), else ConsoleError."""
    if not isinstance(name, str) or USERNAME_RE.fullmatch(name) is None:
        raise ConsoleError(
            "bad_username",
            "a login name is 1 to 64 lower-case letters, digits, '.', '_' or '-', "
            "starting with a letter or digit",
        )
    return name


def _password_bytes(password: object) -> bytes:
    if not isinstance(password, str) or len(password) > MAX_PASSWORD:
        raise ConsoleError("bad_credentials", "wrong login name or password")
    try:
        return password.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates: no person types these
        raise ConsoleError("bad_credentials", "wrong login name or password") from None


def check_password_rules(password: str, username: str) -> None:
    """Refuse a new password that breaks the rules (see the module docstring), in words."""
    if not isinstance(password, str) or not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise ConsoleError(
            "weak_password",
            f"a password has at least {MIN_PASSWORD} and at most {MAX_PASSWORD} characters",
        )
    if not password.isprintable():
        raise ConsoleError("weak_password", "a password may not contain control characters")
    try:
        password.encode("utf-8")
    except UnicodeEncodeError:
        raise ConsoleError("weak_password", "a password must be valid text") from None
    if len(set(password)) == 1:
        raise ConsoleError("weak_password", "a password may not be one character repeated")
    if username and username.lower() in password.lower():
        raise ConsoleError("weak_password", "a password may not contain the login name")


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _scrypt(secret: bytes, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(secret, salt=salt, n=n, r=r, p=p, maxmem=_MAXMEM, dklen=_KEY_BYTES)


def hash_password(password: str, *, n: int = SCRYPT_N) -> str:
    """``scrypt$N$r$p$salt$key`` (base64) for a password that passed the rules."""
    salt = secrets.token_bytes(_SALT_BYTES)
    key = _scrypt(_password_bytes(password), salt, n, SCRYPT_R, SCRYPT_P)
    return f"{_PREFIX}${n}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(key)}"


def verify_password(password: object, stored: str) -> bool:
    """Whether ``password`` matches ``stored``; hostile input raises only ConsoleError.

    A stored value this code did not write (a damaged row) verifies as False, never crashes.
    """
    secret = _password_bytes(password)
    try:
        prefix, n, r, p, salt, key = stored.split("$")
        if prefix != _PREFIX:
            return False
        # Bound what a damaged row can make us compute.
        n_i, r_i, p_i = int(n), int(r), int(p)
        if not (2 <= n_i <= SCRYPT_N and 1 <= r_i <= 32 and 1 <= p_i <= 16):
            return False
        expected = base64.b64decode(key, validate=True)
        computed = _scrypt(secret, base64.b64decode(salt, validate=True), n_i, r_i, p_i)
    except ValueError:
        return False
    return hmac.compare_digest(computed, expected)


# Hashed once per cost so that a login for an unknown name costs as much as for a known one.
_DUMMY_HASHES: dict[int, str] = {}


def burn_time(password: object, *, n: int = SCRYPT_N) -> None:
    """Spend one verification's time on nothing (unknown login names)."""
    if n not in _DUMMY_HASHES:
        _DUMMY_HASHES[n] = hash_password(secrets.token_urlsafe(16), n=n)
    verify_password(password, _DUMMY_HASHES[n])
