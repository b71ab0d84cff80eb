"""Fake gateway versions: a slot with one launcher script instead of a venv.

The launcher plays the real process contract (``bin/compound-gw run`` sends READY=1 on
$NOTIFY_SOCKET, ``bin/compound-gw update selfcheck`` exits 0 when healthy), so the updater is
tested at its process boundary. ``behaviour`` picks how the version behaves at start.
"""

from __future__ import annotations

import sys

BEHAVIOURS = ("good", "crash", "ready_then_crash", "bad_selfcheck", "silent")

LAUNCHER = """#!{python}
import os, signal, socket, sys, time
BEHAVIOUR = {behaviour!r}
VERSION = {version!r}
if sys.argv[1:] == ["update", "selfcheck"]:
    sys.exit(1 if BEHAVIOUR == "bad_selfcheck" else 0)
if sys.argv[1:] != ["run"]:
    sys.exit(2)
log = os.environ.get("FAKE_GW_LOG")
if log:
    with open(log, "a") as f:
        f.write(VERSION + "\\n")
if BEHAVIOUR == "crash":
    sys.exit(3)
signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
if BEHAVIOUR != "silent":
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.sendto(b"READY=1", os.environ["NOTIFY_SOCKET"])
if BEHAVIOUR == "ready_then_crash":
    time.sleep(0.1)
    sys.exit(4)
deadline = time.monotonic() + float(os.environ.get("FAKE_GW_LIFETIME", "120"))
while time.monotonic() < deadline:
    time.sleep(0.2)
"""


def version_files(
    version: str, behaviour: str = "good", payload_bytes: int = 0
) -> dict[str, bytes]:
    assert behaviour in BEHAVIOURS
    text = LAUNCHER.format(python=sys.executable, behaviour=behaviour, version=version)
    files = {"bin/compound-gw": text.encode(), "VERSION": version.encode() + b"\n"}
    if payload_bytes:
        files["lib/payload.bin"] = (version.encode() * (payload_bytes // len(version) + 1))[
            :payload_bytes
        ]
    return files
