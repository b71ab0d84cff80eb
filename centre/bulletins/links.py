"""Explanation links: a signed, expiring URL a compound's manager opens without an account.

Theory of operation
-------------------
The daily bulletin names the compounds that must explain a missed round. Each gets a link to a
phone page for that compound and patrol day only::

    links = ExplanationLinks.load_or_create(data_dir)       # key: data_dir/explanation-link.key
    url = links.url("https://centre.example", "Rose Garden", "2026-11-02", now=time.time())
    claim = links.verify(query, now=time.time())             # LinkClaim or a LinkRefused

The link carries the compound, the day and the expiry (epoch seconds) in its query string, and
an HMAC-SHA256 over exactly those three, keyed with 32 random bytes made on the centre at first
use and kept in ``explanation-link.key`` (mode 0600) in its data directory. Nothing about the
link is stored until it is used: changing any of the three (another compound, another day, a
later expiry) breaks the MAC, so the link is refused as altered; past its expiry it is refused as
expired. Using it is recorded (one row per compound and day, in the same transaction as the
explanation), so a link works once; a second submission is refused as already used.

Every refusal is a :class:`LinkRefused` (a 4xx :class:`centre.errors.CentreError`); the pages
show a sentence in the reader's language for its ``code``. Deleting the key file invalidates
every link handed out so far (a new key is made at the next start).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import os
import secrets
import stat
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final
from urllib.parse import urlencode

from centre.bulletins.model import parse_day
from centre.errors import CentreError

KEY_FILE: Final = "explanation-link.key"
KEY_BYTES: Final = 32
# Long enough for a manager to answer over a weekend; the district may choose another.
DEFAULT_TTL_S: Final = 3 * 86400.0
PATH: Final = "/bulletins/explain"
LINK_RECORDER: Final = "explanation-link"  # recorded_by of explanations given through a link
_VERSION: Final = "v1"
_MAX_FIELD: Final = 400  # a compound name, a day, an expiry, a MAC: all far shorter
_PARAMS: Final = ("compound", "day", "expires", "sig")


class LinkRefused(CentreError):
    """A link that cannot be used; ``code`` says why (the pages translate it)."""

    status = 400
    code = "link_malformed"


class LinkMalformed(LinkRefused):
    status = 400
    code = "link_malformed"


class LinkAltered(LinkRefused):
    """The MAC does not hold: another compound, day or expiry than the centre signed."""

    status = 403
    code = "link_altered"


class LinkExpired(LinkRefused):
    status = 410
    code = "link_expired"


class LinkUsed(LinkRefused):
    status = 409
    code = "link_used"


class NothingToExplain(LinkRefused):
    """The compound has no missed round that day (any more: a late verdict may have come in)."""

    status = 409
    code = "nothing_to_explain"


@dataclass(frozen=True, slots=True)
class LinkClaim:
    """What a verified link allows: explaining ``compound``'s missed rounds of ``day``."""

    compound: str
    day: str
    expires: int


def _message(compound: str, day: str, expires: int) -> bytes:
    # JSON of a list: unambiguous whatever characters a compound's name holds.
    return json.dumps([_VERSION, compound, day, expires], ensure_ascii=False).encode("utf-8")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


class KeyFileError(CentreError):
    """The key file exists but cannot be used as a key (wrong size, readable by others)."""

    code = "link_key_unusable"


def _read_key(path: Path) -> bytes:
    st = path.stat()
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        mode = oct(st.st_mode & 0o777)
        raise KeyFileError(f"{path} is readable by others (mode {mode}); chmod 600")
    key = path.read_bytes()
    if len(key) != KEY_BYTES:
        raise KeyFileError(f"{path} holds {len(key)} bytes, not a {KEY_BYTES}-byte key")
    return key


@dataclass(frozen=True, slots=True)
class ExplanationLinks:
    """Signs and verifies explanation links with the centre's key."""

    key: bytes
    ttl_s: float = DEFAULT_TTL_S

    @classmethod
    def load_or_create(cls, data_dir: Path, *, ttl_s: float = DEFAULT_TTL_S) -> ExplanationLinks:
        """The key in ``data_dir/explanation-link.key``, made (0600, exclusively) if missing."""
        path = data_dir / KEY_FILE
        if not path.exists():
            # Written whole under a temporary name, then linked into place: two processes
            # starting at once agree on one key, and nobody ever reads a half-written one.
            fd, tmp = tempfile.mkstemp(dir=data_dir, prefix=f".{KEY_FILE}.")
            try:
                os.fchmod(fd, 0o600)
                os.write(fd, secrets.token_bytes(KEY_BYTES))
                os.fsync(fd)
                os.close(fd)
                with contextlib.suppress(FileExistsError):
                    os.link(tmp, path)
            finally:
                os.unlink(tmp)
        return cls(_read_key(path), ttl_s)

    def sign(self, compound: str, day: str, expires: int) -> str:
        return _b64(hmac.new(self.key, _message(compound, day, expires), hashlib.sha256).digest())

    def query(self, compound: str, day: str, *, now: float) -> dict[str, str]:
        """The query parameters of a link for ``compound`` and ``day``, valid until now + ttl."""
        day = parse_day(day)
        expires = int(now + self.ttl_s)
        return {
            "compound": compound,
            "day": day,
            "expires": str(expires),
            "sig": self.sign(compound, day, expires),
        }

    def url(self, base_url: str, compound: str, day: str, *, now: float) -> str:
        """The whole link, e.g. ``https://centre/bulletins/explain?compound=...&sig=...``."""
        return f"{base_url.rstrip('/')}{PATH}?{urlencode(self.query(compound, day, now=now))}"

    def verify(self, query: Mapping[str, str], *, now: float) -> LinkClaim:
        """The claim of a link's query parameters, or a :class:`LinkRefused` (never another
        error, whatever the parameters hold)."""
        values = {}
        for name in _PARAMS:
            value = query.get(name)
            if not isinstance(value, str) or not value or len(value) > _MAX_FIELD:
                raise LinkMalformed(f"the link has no usable '{name}'")
            values[name] = value
        exp = values["expires"]
        if not (exp.isascii() and exp.isdigit()) or len(exp) > 12:
            raise LinkMalformed("the link's expiry is not a time")
        expires = int(exp)
        try:
            day = parse_day(values["day"])
        except ValueError:
            raise LinkMalformed("the link's day is not a date") from None
        good = self.sign(values["compound"], day, expires)
        if day != values["day"] or not hmac.compare_digest(
            values["sig"].encode("utf-8", "surrogateescape"), good.encode("ascii")
        ):
            raise LinkAltered("the link was altered or was not made by this centre")
        if now >= expires:
            raise LinkExpired("the link has expired", expires=expires)
        return LinkClaim(values["compound"], day, expires)


__all__ = [
    "DEFAULT_TTL_S",
    "KEY_FILE",
    "LINK_RECORDER",
    "PATH",
    "ExplanationLinks",
    "KeyFileError",
    "LinkAltered",
    "LinkClaim",
    "LinkExpired",
    "LinkMalformed",
    "LinkRefused",
    "LinkUsed",
    "NothingToExplain",
]
