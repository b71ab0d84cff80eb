"""Hostile or broken requests never crash the centre, never answer 500, never spill tracebacks.

Three pieces, installed by :func:`centre.server.running_centre` (and by the standalone bulletins
app)::

    app = web.Application(middlewares=[error_boundary()])
    runner = web.AppRunner(app, logger=server_logger())

* :func:`error_boundary` (an aiohttp middleware, one per app): every deliberate refusal
  (:class:`~centre.errors.CentreError`, :class:`~wire.errors.WireError`, aiohttp's own 4xx, a
  body whose gzip/deflate/chunking is corrupt) becomes a 4xx with the JSON body
  ``{"error": code, "reason": one line, ...fields}`` and **one** warning line, no traceback. A
  client that goes away mid-request (a gateway losing 4G mid-upload: routine) is one warning
  line too. Only a genuine bug of ours is logged with its traceback (ERROR) and answered
  ``500 {"error": "internal_error"}`` - JSON as well. The database server out of reach (a
  PostgreSQL restart or failover: psycopg's ``OperationalError``, the pool's timeout among them)
  is no bug either: ``503 {"error": "unavailable"}`` with ``Retry-After:``
  :data:`DATABASE_RETRY_AFTER_S`, one rate-limited warning line; the gateway comes back then.
* :class:`RateLimitedLog`: the warning lines above are keyed (client address, path, code) and
  repeat at most once per :data:`LOG_WINDOW_S`; the next line says how many were held back.
* :func:`server_logger`: the logger aiohttp's connection handler reports to (one per runner, a
  child of ``centre.http``, so each centre has its own rate limit). Faults of the
  client that never reach the app (a malformed request line or header, a body still unread
  after the reply whose encoding turns out corrupt) become one rate-limited warning line
  without traceback; anything else passes through unchanged.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Final

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web import RequestPayloadError

from centre.errors import CentreError
from wire import SignatureError, WireError, encode

log = logging.getLogger("centre.http")

DATABASE_RETRY_AFTER_S: Final = 2  # the Retry-After sent while the database is out of reach


def database_down_errors() -> tuple[type[BaseException], ...]:
    """The exceptions that mean "the database server is out of reach, try again later":
    psycopg's OperationalError (a cut connection, a server shutting down or starting; the
    pool's PoolTimeout is one too). Empty when psycopg is not installed (SQLite only)."""
    try:
        import psycopg
    except ImportError:
        return ()
    return (psycopg.OperationalError,)


LOG_WINDOW_S: Final = 60.0
MAX_LOG_KEYS: Final = 1024  # bounded memory whatever a flood of addresses does
SERVER_LOGGER: Final = "centre.http.server"
_LOGGED: Final = "_centre_logged"  # marks an exception already reported once

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class RateLimitedLog:
    """At most one line per key per ``window_s``; the next one counts those held back::

    DROPS = RateLimitedLog(log)
    DROPS.warning(("10.0.0.7", "/api/v1/ingest"), "client went away mid-request")
    """

    def __init__(
        self,
        logger: logging.Logger,
        window_s: float = LOG_WINDOW_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger
        self.window_s = window_s
        self.clock = clock
        self._last: dict[tuple[Any, ...], tuple[float, int]] = {}

    def allow(self, key: tuple[Any, ...]) -> int | None:
        """None to hold this line back; else how many like it were held back since the last."""
        now = self.clock()
        last = self._last.get(key)
        if last is not None and now - last[0] < self.window_s:
            self._last[key] = (last[0], last[1] + 1)
            return None
        if len(self._last) >= MAX_LOG_KEYS:
            self._last = {k: v for k, v in self._last.items() if now - v[0] < self.window_s}
            if len(self._last) >= MAX_LOG_KEYS:
                self._last.clear()
        self._last[key] = (now, 0)
        return 0 if last is None else last[1]

    def warning(self, key: tuple[Any, ...], msg: str, *args: Any) -> bool:
        held = self.allow(key)
        if held is None:
            return False
        if held:
            msg += f" ({held} more like this in the last {self.window_s:g} s)"
        self.logger.warning(msg, *args)
        return True


def _json(data: dict[str, Any], status: int, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        body=encode(data), status=status, content_type="application/json", headers=headers
    )


def _short(text: object, limit: int = 160) -> str:
    """One printable line: a client's words never bring newlines or control bytes to the log."""
    line = " ".join(str(text).split())
    return "".join(c if c.isprintable() else "?" for c in line)[:limit]


def fault_text(exc: BaseException) -> str:
    """What went wrong with a request body or message, in one line (aiohttp's messages carry
    the status and newlines; the cause, when there is one, is the readable part)."""
    for e in (exc.__cause__, exc):
        if isinstance(e, HttpProcessingError) and e.message:
            return _short(e.message)
    return _short(f"{type(exc).__name__}: {exc}") if str(exc) else type(exc).__name__


def error_boundary(limiter: RateLimitedLog | None = None) -> Any:
    """The centre-wide error middleware (see the module doc); one per application, so each
    has its own rate limit."""
    refusals = limiter or RateLimitedLog(log)
    database_down = database_down_errors()

    def refusal(request: web.Request, status: int, body: dict[str, Any], **kw: Any) -> web.Response:
        """The JSON 4xx for a refused request, logged once (rate-limited) at warning level."""
        refusals.warning(
            (request.remote, request.path, body.get("error")),
            "%s %s from %s -> %d %s: %s",
            request.method,
            _short(request.path, 100),
            request.remote,
            status,
            body.get("error"),
            _short(body.get("reason", "")),
        )
        return _json(body, status, **kw)

    @web.middleware
    async def refuse_malformed(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except CentreError as exc:
            return refusal(request, exc.status, exc.as_dict())
        except SignatureError as exc:
            return refusal(request, 422, exc.as_dict())
        except WireError as exc:
            return refusal(request, 400, exc.as_dict())
        except web.HTTPRequestEntityTooLarge:
            body = {"error": "too_large", "reason": "request body is above the limit"}
            return refusal(request, 413, body)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            allow = {k: v for k, v in exc.headers.items() if k.lower() == "allow"}
            body = {"error": exc.reason.lower().replace(" ", "_"), "reason": exc.reason}
            return refusal(request, exc.status, body, headers=allow)
        except (RequestPayloadError, HttpProcessingError) as exc:
            # The body cannot be read (corrupt gzip/deflate, broken chunking, cut short): the
            # client's fault. aiohttp raises the same object again while draining the
            # connection after our reply; the mark keeps that from becoming a second line.
            setattr(exc, _LOGGED, True)
            body = {"error": "bad_body", "reason": f"request body unreadable: {fault_text(exc)}"}
            resp = refusal(request, 400, body)
            resp.force_close()
            return resp
        except database_down as exc:
            # Logged with libpq's words (one line, rate-limited); the client only learns to
            # come back (the words may name the server's host or socket).
            refusals.warning(
                (None, "database", "unavailable"),
                "%s %s from %s -> 503: the database is out of reach: %s",
                request.method,
                _short(request.path, 100),
                request.remote,
                fault_text(exc),
            )
            down: dict[str, Any] = {
                "error": "unavailable",
                "reason": "the centre's database is out of reach; try again later",
                "retry_after": DATABASE_RETRY_AFTER_S,
            }
            return _json(down, 503, headers={"Retry-After": str(DATABASE_RETRY_AFTER_S)})
        except ConnectionError as exc:
            # The client went away mid-request (a gateway losing its 4G link mid-upload is
            # routine): one line, no traceback. Nobody is left to read the reply.
            refusals.warning(
                (request.remote, request.path, "gone"),
                "%s %s from %s: client went away mid-request (%s)",
                request.method,
                _short(request.path, 100),
                request.remote,
                fault_text(exc),
            )
            resp = _json({"error": "client_gone", "reason": "connection lost"}, 400)
            resp.force_close()
            return resp
        except Exception:
            # A bug of ours, never a malformed request (tests/hostile walks every route to
            # prove it): the traceback is wanted here, and the client still gets JSON.
            log.exception("%s %s: internal error", request.method, _short(request.path, 100))
            body = {"error": "internal_error", "reason": "the centre failed to handle this request"}
            return _json(body, 500)

    return refuse_malformed


class ClientFaultFilter(logging.Filter):
    """On aiohttp's connection logger: a client's fault becomes one warning line without
    traceback (rate-limited); one the middleware already reported is dropped."""

    def __init__(self, limiter: RateLimitedLog) -> None:
        super().__init__()
        self.limiter = limiter

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if exc is None:
            return True
        if getattr(exc, _LOGGED, False):
            return False
        if not isinstance(exc, HttpProcessingError | RequestPayloadError | ConnectionError):
            return True
        if self.limiter.allow((type(exc).__name__, record.msg)) is None:
            return False
        record.msg = f"{record.getMessage()}: {fault_text(exc)}"
        record.args = ()
        record.exc_info = None
        record.exc_text = None
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


def server_logger() -> logging.Logger:
    """A fresh logger to hand aiohttp (``web.AppRunner(app, logger=server_logger())``).

    Not registered with ``logging.getLogger`` (it goes away with its runner) but a child of
    ``centre.http``: its records propagate to whatever handles that, and its filter's rate
    limit belongs to this server alone."""
    logger = logging.Logger(SERVER_LOGGER)
    logger.parent = log
    logger.addFilter(ClientFaultFilter(RateLimitedLog(logger)))
    return logger


__all__ = [
    "LOG_WINDOW_S",
    "SERVER_LOGGER",
    "ClientFaultFilter",
    "RateLimitedLog",
    "error_boundary",
    "fault_text",
    "server_logger",
]
