"""The centre's errors. Each maps to one HTTP status and a JSON body ``{"error", "reason"}``::

raise EnrollmentRefused("token_expired", "this token expired at 2026-11-28T16:40Z")
"""

from __future__ import annotations

from collections.abc import Set
from typing import Any

from wire import EncodingError, decode


class CentreError(Exception):
    """Root of the centre's deliberate errors; ``status`` is the HTTP status it becomes."""

    status = 500
    code = "centre_error"

    def __init__(self, reason: str, **fields: Any) -> None:
        super().__init__(reason)
        self.reason = reason
        self.fields = fields

    def as_dict(self) -> dict[str, Any]:
        return {"error": self.code, "reason": self.reason, **self.fields}


class BadRequest(CentreError):
    status = 400
    code = "bad_request"


def json_object(raw: bytes, *, max_bytes: int, fields: Set[str]) -> dict[str, Any]:
    """A request body as a strict JSON object of known ``fields``, or :class:`BadRequest`.

    The centre's JSON endpoints (enrollment, explanations) all take bodies this way::

        req = json_object(raw, max_bytes=MAX_ENROLL_BODY, fields={"token", "csr"})
    """
    try:
        req = decode(raw, max_bytes=max_bytes)
    except EncodingError as exc:
        raise BadRequest(f"body is not strict JSON: {exc.reason}") from exc
    if not isinstance(req, dict):
        raise BadRequest("body must be a JSON object")
    unknown = set(req) - fields
    if unknown:
        raise BadRequest(f"unknown field(s) {sorted(unknown)}")
    return req


class EnrollmentRefused(CentreError):
    """Token or CSR refused. ``code`` names the precise rule (token_used, token_expired, ...)."""

    status = 403

    def __init__(self, code: str, reason: str, **fields: Any) -> None:
        super().__init__(reason, **fields)
        self.code = code
        if code in ("bad_csr", "bad_request"):
            self.status = 400
        elif code == "gateway_exists":
            self.status = 409


class NotAuthenticated(CentreError):
    status = 401
    code = "client_certificate_required"


class Forbidden(CentreError):
    status = 403

    def __init__(self, code: str, reason: str, **fields: Any) -> None:
        super().__init__(reason, **fields)
        self.code = code


class Conflict(CentreError):
    """A resent seq whose content differs from what is stored: never overwritten."""

    status = 409
    code = "seq_conflict"
