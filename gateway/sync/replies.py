"""The centre's replies, read as hostile until checked: every parser here raises ``SyncError``
and nothing else.

The centre is reached through networks the gateway does not control (a captive portal, a
proxy, a broken middlebox, or a centre with a bug), so a reply may be anything: HTML, a JSON
integer of 5000 digits, nesting a thousand deep, bytes that are not UTF-8. ``wire`` refuses
what it knows with ``WireError``; these wrappers add a second line (defence in depth): any
other exception raised while reading a reply becomes a ``SyncError`` too, so one malformed
reply can never crash the uploader or the enrollment::

    ack = parse_ack(body)                      # Ack, or SyncError
    error = reply_error(503, "text/html", body)  # a SyncError describing a refusal (never raises)
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any, Final

from gateway.errors import SyncError
from wire import Ack, WireError, decode

MAX_JSON_REPLY_BYTES: Final = 1024 * 1024
START_CHARS: Final = 60  # how much of a strange reply a log line or an event repeats


def reply_start(body: bytes, chars: int = START_CHARS) -> str:
    """The first characters of a reply, printable, for a log line (never raises)."""
    text = bytes(body[: chars * 4]).decode("utf-8", "replace")[:chars]
    return "".join(c if c.isprintable() else "?" for c in text)


@contextlib.contextmanager
def hostile(what: str, **fields: Any) -> Iterator[None]:
    """Turn whatever reading a reply raises into one ``SyncError`` naming ``what``.

    ``WireError`` keeps its reason; anything else (ValueError from a huge integer,
    RecursionError, UnicodeError, OverflowError, a library's own error) is named by type:
    the point is that the caller sees one error type, whatever the bytes were.
    """
    try:
        yield
    except SyncError:
        raise
    except WireError as exc:
        raise SyncError(f"{what}: {exc.reason}", **fields) from exc
    except Exception as exc:  # the trust boundary: any failure here is the reply's
        raise SyncError(f"{what}: {type(exc).__name__}: {str(exc)[:200]}", **fields) from exc


def reply_json(body: bytes, what: str, max_bytes: int = MAX_JSON_REPLY_BYTES) -> Any:
    """Strict JSON of a reply body, or SyncError."""
    with hostile(what):
        return decode(bytes(body), max_bytes=max_bytes)


def parse_ack(body: bytes) -> Ack:
    """The centre's ack of a batch (or its ingest state), or SyncError."""
    with hostile("centre reply is not a valid ack"):
        return Ack.from_dict(decode(bytes(body), max_bytes=MAX_JSON_REPLY_BYTES))


def reply_error(status: int, ctype: str | None, body: bytes) -> SyncError:
    """A ``SyncError`` describing a refusal: the centre's ``reason`` when its JSON error body
    is readable (``ctype`` None: whatever the content type), else the status and the start of
    the body. Never raises."""
    data: Any = None
    if ctype is None or ctype == "application/json":
        with contextlib.suppress(SyncError):
            data = reply_json(body, "error body", max_bytes=64 * 1024)
    if isinstance(data, dict) and isinstance(data.get("reason"), str):
        fields: dict[str, Any] = {
            "status": status,
            "code": reply_start(str(data.get("error", "")).encode("utf-8", "replace")),
        }
        seq = data.get("seq")
        if type(seq) is int and 0 < seq < 2**63:  # the seq a refusal names (409 seq_conflict)
            fields["seq"] = seq
        return SyncError(
            f"centre refused: {reply_start(data['reason'].encode('utf-8', 'replace'), 300)}",
            **fields,
        )
    return SyncError(
        f"centre answered HTTP {status}",
        status=status,
        content_type=(ctype or "")[:80],
        start=reply_start(body),
    )


def reply_object(
    body: bytes, what: str, required: tuple[str, ...], max_bytes: int
) -> dict[str, str]:
    """A JSON object reply whose ``required`` fields are all strings (others dropped unless
    they are strings too), or SyncError."""
    data = reply_json(body, what, max_bytes)
    if not isinstance(data, dict):
        raise SyncError(f"{what} is not a JSON object")
    for name in required:
        if not isinstance(data.get(name), str):
            raise SyncError(f"{what} lacks {name}")
    return {k: v for k, v in data.items() if isinstance(v, str)}
