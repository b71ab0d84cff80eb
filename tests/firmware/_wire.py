"""A simulated RS-485 line at a fixed baud rate (8N1) between libosdp's panel and a live node.

Bytes the panel writes take their wire time before write() returns (libosdp starts its 200 ms
reply timer after the write, as the spec counts from the end of the command); bytes from the node
are handed to the panel no sooner than the line could have carried them. Both directions share
one half-duplex line, so the counters give the bytes that crossed the wire.
"""

from __future__ import annotations

import time

from osdp import Channel

BITS_PER_BYTE = 10  # start + 8 data + stop


class PacedChannel(Channel):
    def __init__(self, inner: Channel, baud: int = 9600) -> None:
        super().__init__()
        self.inner = inner
        self.byte_s = BITS_PER_BYTE / baud
        self._line_free_at = 0.0
        self._rx: list[tuple[float, bytes]] = []
        self.tx_bytes = 0  # panel -> node
        self.rx_bytes = 0  # node -> panel

    def write(self, buf: bytes) -> int:
        begin = max(time.monotonic(), self._line_free_at)
        n = self.inner.write(buf)
        end = begin + n * self.byte_s
        self._line_free_at = end
        self.tx_bytes += n
        left = end - time.monotonic()
        if left > 0:
            time.sleep(left)
        return n

    def read(self, max_bytes: int) -> bytes:
        now = time.monotonic()
        chunk = self.inner.read(4096)
        if chunk:
            begin = max(now, self._line_free_at)
            self._line_free_at = begin + len(chunk) * self.byte_s
            self._rx.append((self._line_free_at, chunk))
        out = b""
        while self._rx and self._rx[0][0] <= now and len(out) < max_bytes:
            ready, data = self._rx.pop(0)
            take = data[: max_bytes - len(out)]
            if len(take) < len(data):
                self._rx.insert(0, (ready, data[len(take) :]))
            out += take
        self.rx_bytes += len(out)
        return out

    def flush(self) -> None:
        return None
