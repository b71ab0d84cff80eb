"""The console's one error type: every refusal of a person's input is a :class:`ConsoleError`.

``code`` names the rule (``bad_credentials``, ``locked_out``, ``session_expired``,
``csrf_mismatch``, ``forbidden``, ``weak_password``, ``bad_username``, ``no_such_user``,
``user_exists``, ``no_such_image``, ...); ``status`` is the HTTP status it becomes.
"""

from __future__ import annotations

from typing import Any

from centre.errors import CentreError

_STATUS = {
    "bad_credentials": 401,
    "locked_out": 429,
    "session_expired": 401,
    "no_session": 401,
    "csrf_mismatch": 403,
    "forbidden": 403,
    "user_exists": 409,
    "no_such_user": 404,
    "no_such_compound": 404,
    "no_such_image": 404,
    "no_such_look": 404,
    "bad_image": 400,
    "no_such_alert": 404,
    "no_such_command": 404,
    "no_such_rollout": 404,
    "no_release": 404,
    "already_acknowledged": 409,
    "too_large": 413,
    "bad_media": 422,
    "speech_failed": 422,
    "announcement_exists": 409,
    "no_draft": 404,
}


class ConsoleError(CentreError):
    """A refused console request; ``code`` is the precise rule, ``status`` the HTTP status."""

    status = 400
    code = "console_error"

    def __init__(self, code: str, reason: str, **fields: Any) -> None:
        super().__init__(reason, **fields)
        self.code = code
        self.status = _STATUS.get(code, 400)
