"""A progress bar for a plain terminal (no dependency): redraws in place on a TTY, and prints
a line at each quarter otherwise (logs and pipes stay readable).

    bar = ProgressBar("scan readers-a", total=127)
    bar.update(42); bar.close()
"""

from __future__ import annotations

import sys
import threading
from typing import TextIO

WIDTH = 30


class ProgressBar:
    def __init__(self, label: str, total: int, stream: TextIO | None = None) -> None:
        self.label = label
        self.total = max(1, total)
        self.stream = stream or sys.stdout
        self.tty = self.stream.isatty()
        self._lock = threading.Lock()
        self._shown_quarter = -1
        self._done = 0

    def update(self, done: int) -> None:
        with self._lock:
            self._done = min(done, self.total)
            if self.tty:
                filled = WIDTH * self._done // self.total
                bar = "#" * filled + "." * (WIDTH - filled)
                self.stream.write(f"\r  {self.label:<24} [{bar}] {self._done}/{self.total}")
                self.stream.flush()
                return
            quarter = 4 * self._done // self.total
            if quarter > self._shown_quarter:
                self._shown_quarter = quarter
                self.stream.write(f"  {self.label}: {self._done}/{self.total}\n")
                self.stream.flush()

    def close(self) -> None:
        with self._lock:
            if self.tty:
                self.stream.write("\n")
                self.stream.flush()
