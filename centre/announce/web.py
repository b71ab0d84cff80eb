"""HTTP API of the announcement library (for the console and scripts) and the gateways' fetch.

Routes (operator = ``Authorization: Bearer`` token of ``compound-centre operator add``)::

    GET  /api/v1/announcements                     operator  the library, JSON
    POST /api/v1/announcements?title=&format=mp3   operator  raw upload body (<= 20 MiB) -> 201
         [&language=zh-CN&id=...]
    POST /api/v1/announcements/text                operator  {"text", "title", "id"?} -> 201
    GET  /api/v1/announcements/{id}/audio          operator  the playable WAV (console preview)
    GET  /api/v1/announcements/by-hash/{sha256}    gateway   the playable WAV by hash (mTLS);
                                                             Range honoured (resume)

Every refusal is the centre's JSON error (``centre.faults.error_boundary``): a malformed
request gets a 4xx, never a 500; a file that is not usable audio is 422 ``bad_media``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Final, Protocol

from aiohttp import web

from centre.announce.library import (
    SHA256_RE,
    UPLOAD_SUFFIXES,
    AnnouncementError,
    AnnouncementLibrary,
)
from centre.announce.media import MAX_TEXT_CHARS, MAX_UPLOAD_BYTES, MediaError
from centre.bulletins.auth import OperatorTokens
from centre.errors import BadRequest, CentreError, json_object
from wire import encode

log = logging.getLogger("centre.announce")

API: Final = "/api/v1/announcements"
MAX_TEXT_BODY: Final = 16 * 1024
_STATUS: Final = {"not_found": 404, "exists": 409, "damaged": 500}


class Refused(CentreError):
    def __init__(self, code: str, reason: str, status: int) -> None:
        super().__init__(reason)
        self.code = code
        self.status = status


class OperatorRequired(CentreError):
    status = 401
    code = "operator_required"


class GatewayAuth(Protocol):
    async def _authenticated_gateway(self, request: web.Request) -> Any: ...


def _refusal(exc: AnnouncementError | MediaError) -> Refused:
    if isinstance(exc, MediaError):
        return Refused("bad_media", exc.reason, 422)
    return Refused(exc.code, exc.reason, _STATUS.get(exc.code, 400))


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=encode(data), status=status, content_type="application/json")


class AnnouncementHandlers:
    def __init__(
        self, library: AnnouncementLibrary, gateways: GatewayAuth, tokens: OperatorTokens
    ) -> None:
        self.library = library
        self.gateways = gateways
        self.tokens = tokens
        self._convert = asyncio.Semaphore(1)  # one ffmpeg/espeak-ng at a time

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get(API, self.list),
            web.post(API, self.upload),
            web.post(f"{API}/text", self.text),
            web.get(f"{API}/by-hash/{{sha256}}", self.by_hash),
            web.get(f"{API}/{{id}}/audio", self.audio),
        ]

    def _operator(self, request: web.Request) -> str:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        name = None
        if scheme.lower() == "bearer" and token.strip():
            self.tokens.refresh()
            name = self.tokens.operator_for(token.strip())
        if name is None:
            raise OperatorRequired("an operator token is required (Authorization: Bearer ...)")
        return name

    async def list(self, request: web.Request) -> web.Response:
        self._operator(request)
        anns = await asyncio.to_thread(self.library.list)
        return _json({"announcements": [a.to_dict() for a in anns]})

    async def upload(self, request: web.Request) -> web.Response:
        who = self._operator(request)
        q = request.query
        unknown = set(q) - {"title", "language", "id", "format"}
        if unknown:
            raise BadRequest(f"unknown parameter(s) {sorted(unknown)}")
        suffix = "." + q.get("format", "").lower()
        if suffix not in UPLOAD_SUFFIXES:
            raise BadRequest("format must be wav, mp3 or m4a")
        if request.content_length is not None and request.content_length > MAX_UPLOAD_BYTES:
            raise Refused("too_large", f"uploads are at most {MAX_UPLOAD_BYTES} bytes", 413)
        data = await request.content.read(MAX_UPLOAD_BYTES + 1)
        if len(data) > MAX_UPLOAD_BYTES:
            raise Refused("too_large", f"uploads are at most {MAX_UPLOAD_BYTES} bytes", 413)
        async with self._convert:
            try:
                ann = await asyncio.to_thread(
                    self.library.add_bytes,
                    data,
                    suffix,
                    title=q.get("title", ""),
                    language=q.get("language", "zh-CN"),
                    ann_id=q.get("id") or None,
                )
            except (AnnouncementError, MediaError) as exc:
                raise _refusal(exc) from None
        log.info("announcement %s uploaded by %s (sha256 %s)", ann.id, who, ann.sha256[:16])
        return _json(ann.to_dict(), 201)

    async def text(self, request: web.Request) -> web.Response:
        who = self._operator(request)
        raw = await request.content.read(MAX_TEXT_BODY + 1)
        if len(raw) > MAX_TEXT_BODY:
            raise BadRequest("request body is too large")
        req = json_object(raw, max_bytes=MAX_TEXT_BODY, fields={"text", "title", "id"})
        text, title, ann_id = req.get("text"), req.get("title"), req.get("id")
        if not isinstance(text, str) or not 0 < len(text) <= MAX_TEXT_CHARS:
            raise BadRequest(f"text must be a string of 1..{MAX_TEXT_CHARS} characters")
        if not isinstance(title, str) or not (ann_id is None or isinstance(ann_id, str)):
            raise BadRequest("title (and id, if given) must be strings")
        async with self._convert:
            try:
                ann = await asyncio.to_thread(
                    self.library.add_text, text, title=title, ann_id=ann_id
                )
            except (AnnouncementError, MediaError) as exc:
                raise _refusal(exc) from None
        log.info("announcement %s spoken for %s (sha256 %s)", ann.id, who, ann.sha256[:16])
        return _json(ann.to_dict(), 201)

    async def audio(self, request: web.Request) -> web.StreamResponse:
        self._operator(request)
        try:
            path = await asyncio.to_thread(self.library.playable, request.match_info["id"])
        except AnnouncementError as exc:
            raise _refusal(exc) from None
        return web.FileResponse(path, headers={"Content-Type": "audio/wav"})

    async def by_hash(self, request: web.Request) -> web.StreamResponse:
        """The gateways' fetch (mTLS): exactly the bytes with this hash, Range for resuming."""
        await self.gateways._authenticated_gateway(request)
        sha = request.match_info["sha256"]
        if not SHA256_RE.fullmatch(sha):
            raise BadRequest("sha256 must be 64 lowercase hex digits")
        path = await asyncio.to_thread(self.library.playable_by_hash, sha)
        if path is None:
            raise Refused("not_found", "no announcement has this sha256", 404)
        return web.FileResponse(path, headers={"Content-Type": "audio/wav"})
