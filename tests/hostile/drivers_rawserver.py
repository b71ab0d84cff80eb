"""A raw TCP server on loopback that answers every request head with bytes the test chose.

It stands in for a hostile camera (HTTP snapshot endpoint or RTSP service): it reads the
request head (up to the blank line, bounded) and writes ``reply`` verbatim, then closes. It
runs on a thread so synchronous hypothesis tests can call ``asyncio.run`` per example::

    with RawServer() as srv:
        srv.reply = b"RTSP/1.0 \\xb2 OK\\r\\n\\r\\n"
        asyncio.run(rtsp_options(srv.url("rtsp", "/stream")))
"""

from __future__ import annotations

import socket
import socketserver
import threading
from types import TracebackType

MAX_HEAD = 16 * 1024


class _Handler(socketserver.BaseRequestHandler):
    server: _Server

    def handle(self) -> None:
        sock: socket.socket = self.request
        sock.settimeout(2.0)
        head = b""
        try:
            while b"\r\n\r\n" not in head and len(head) < MAX_HEAD:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                head += chunk
            self.server.requests += 1
            sock.sendall(self.server.owner.reply)
        except OSError:
            pass  # the client gave up first: nothing to answer


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    block_on_close = True
    owner: RawServer
    requests = 0


class RawServer:
    """Context manager: a loopback server answering every request with ``self.reply``."""

    def __init__(self, reply: bytes = b"") -> None:
        self.reply = reply
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.owner = self
        self._thread = threading.Thread(target=self._server.serve_forever, name="raw-server")

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def requests(self) -> int:
        return self._server.requests

    def url(self, scheme: str, path: str = "/") -> str:
        return f"{scheme}://127.0.0.1:{self.port}{path}"

    def __enter__(self) -> RawServer:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
