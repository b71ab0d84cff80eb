"""A local WeChat Work group robot: the webhook API on 127.0.0.1, with its reply codes and limits.

It answers ``POST /cgi-bin/webhook/send?key=KEY`` as the platform documents: ``{"errcode": 0,
"errmsg": "ok"}`` for a good markdown message; 93000 for a key it does not know; 40008 for a
message type other than markdown/text; 40058 for content that is empty or longer than 4096
bytes (2048 for text); 45009 once a key has had 20 messages in the last 60 s (time from an
injected clock, so a test can run a paced minute in an instant). Every request is kept in
``requests``; accepted messages in ``accepted``.

Tests can script the next replies (``script``: raw status and bytes, for errcodes and hostile
replies) and hold a request before answering (``hold_at``: the robot waits on ``release`` once
it has received request number N, after recording it).
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import web

MARKDOWN_LIMIT = 4096
TEXT_LIMIT = 2048
PER_MINUTE = 20


@dataclass(frozen=True, slots=True)
class Request:
    at: float
    key: str
    msgtype: str
    content: str
    errcode: int | None  # None: a scripted raw reply


@dataclass
class MockRobot:
    keys: set[str]
    clock: Callable[[], float]
    requests: list[Request] = field(default_factory=list)
    accepted: list[Request] = field(default_factory=list)
    script: deque[tuple[int, bytes]] = field(default_factory=deque)
    hold_at: int | None = None
    held: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    received: asyncio.Condition = field(default_factory=asyncio.Condition)
    _runner: web.AppRunner | None = None
    port: int = 0

    def url(self, key: str) -> str:
        return f"http://127.0.0.1:{self.port}/cgi-bin/webhook/send?key={key}"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/cgi-bin/webhook/send", self._send)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def close(self) -> None:
        self.release.set()
        if self._runner is not None:
            await self._runner.cleanup()

    async def wait_requests(self, n: int, timeout: float = 30.0) -> None:
        async def enough() -> None:
            async with self.received:
                await self.received.wait_for(lambda: len(self.requests) >= n)

        try:
            await asyncio.wait_for(enough(), timeout)
        except TimeoutError:
            raise AssertionError(
                f"the robot got {len(self.requests)} requests, not {n}, in {timeout} s"
            ) from None

    def _reply(self, errcode: int, errmsg: str) -> web.Response:
        return web.json_response({"errcode": errcode, "errmsg": errmsg})

    def _judge(self, key: str, body: object) -> tuple[int, str, str, str]:
        """(errcode, errmsg, msgtype, content) for one request, as the platform would."""
        if key not in self.keys:
            return 93000, "invalid webhook url, hint: [mock]", "", ""
        if not isinstance(body, dict):
            return 40058, "invalid Request Parameter", "", ""
        msgtype = body.get("msgtype")
        if msgtype not in ("markdown", "text"):
            return 40008, "invalid message type", str(msgtype), ""
        inner = body.get(msgtype)
        content = inner.get("content") if isinstance(inner, dict) else None
        if not isinstance(content, str) or not content:
            return 40058, "content is empty", msgtype, ""
        limit = MARKDOWN_LIMIT if msgtype == "markdown" else TEXT_LIMIT
        if len(content.encode("utf-8")) > limit:
            return 40058, f"{msgtype}.content exceed max length {limit}", msgtype, content
        now = self.clock()
        recent = [r for r in self.accepted if r.key == key and now - r.at < 60.0]
        if len(recent) >= PER_MINUTE:
            return 45009, "api freq out of limit", msgtype, content
        return 0, "ok", msgtype, content

    async def _send(self, request: web.Request) -> web.StreamResponse:
        key = request.query.get("key", "")
        raw = await request.read()
        try:
            body: object = json.loads(raw)
        except ValueError:
            body = None
        if self.script:
            status, reply = self.script.popleft()
            msgtype = body.get("msgtype", "") if isinstance(body, dict) else ""
            inner = body.get(msgtype) if isinstance(body, dict) else None
            content = inner.get("content", "") if isinstance(inner, dict) else ""
            rec = Request(self.clock(), key, str(msgtype), str(content), None)
            response: web.StreamResponse = web.Response(status=status, body=reply)
        else:
            errcode, errmsg, msgtype, content = self._judge(key, body)
            rec = Request(self.clock(), key, msgtype, content, errcode)
            if errcode == 0:
                self.accepted.append(rec)
            response = self._reply(errcode, errmsg)
        async with self.received:
            self.requests.append(rec)
            self.received.notify_all()
        if self.hold_at is not None and len(self.requests) == self.hold_at:
            self.held.set()
            await self.release.wait()
        return response
