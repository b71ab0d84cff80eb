"""One pseudo-terminal pair as the end of a virtual serial cable.

The program under test opens the slave path with pyserial as it would open /dev/ttyUSB0; the
bridge reads and writes the master. We keep our own slave descriptor open for the pair's whole
life: it holds the raw termios settings and keeps the master from seeing a hang-up while the
program closes and reopens its port (a real adapter does not vanish when nobody has it open).
Closing the master is what makes the program's pyserial raise ``SerialException`` -- exactly
what a pulled USB adapter looks like (see FIELD-NOTES).

    end = PtyEnd.open(link=Path("/tmp/bench/ttyBUS0"))   # end.path is the symlink
    ...
    end.close()
"""

from __future__ import annotations

import contextlib
import os
import tty
from dataclasses import dataclass, field
from pathlib import Path

# A receiver that never reads may not make us buffer without end: past this, characters are
# lost as a UART overrun loses them.
MAX_OUTPUT_BACKLOG = 64 * 1024


@dataclass(slots=True)
class PtyEnd:
    """A raw pty pair; ``path`` is what a program opens (the symlink when there is one)."""

    master: int
    slave: int
    slave_path: str
    link: Path | None = None
    out: bytearray = field(default_factory=bytearray)  # waiting to be written to the master
    closed: bool = False

    @classmethod
    def open(cls, link: Path | None = None) -> PtyEnd:
        master, slave = os.openpty()
        try:
            # Raw at once: the default line discipline echoes input back to the master and
            # translates CR/LF, which would corrupt binary frames (FIELD-NOTES).
            tty.setraw(slave)
            os.set_blocking(master, False)
            end = cls(master=master, slave=slave, slave_path=os.ttyname(slave), link=link)
            if link is not None:
                _point_symlink(link, end.slave_path)
        except BaseException:
            os.close(master)
            os.close(slave)
            raise
        return end

    @property
    def path(self) -> str:
        return str(self.link) if self.link is not None else self.slave_path

    def close(self) -> None:
        """Close both descriptors and remove the symlink (if it still points at us)."""
        if self.closed:
            return
        self.closed = True
        if self.link is not None:
            with contextlib.suppress(OSError):
                if os.readlink(self.link) == self.slave_path:
                    os.unlink(self.link)
        os.close(self.master)
        os.close(self.slave)
        self.out.clear()


def _point_symlink(link: Path, target: str) -> None:
    # Create beside it and rename over: the path never points nowhere while it is replaced, as
    # udev's by-id links do not.
    link.parent.mkdir(parents=True, exist_ok=True)
    tmp = link.with_name(f".{link.name}.{os.getpid()}.tmp")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)
    os.symlink(target, tmp)
    os.replace(tmp, link)
