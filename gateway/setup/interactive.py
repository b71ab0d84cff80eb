"""Questions at the terminal, turned into the same :class:`Answers` an answers file gives.

    answers = interactive_answers(Path("/etc/compound-gw/gateway.toml"))

Secrets are not asked here: the wizard asks for them (without echo) in the step that needs
them, and never stores them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gateway.setup.answers import Answers, parse_answers
from gateway.setup.scan import list_serial_ports


def _ask(question: str, default: str = "") -> str:
    shown = f" [{default}]" if default else ""
    value = input(f"{question}{shown}: ").strip()
    return value or default


def interactive_answers(config_path: Path) -> Answers:
    print("Compound Gateway setup. Press Enter to accept [defaults].")
    data: dict[str, Any] = {
        "gateway": {
            "id": _ask("gateway id (e.g. gw-rose-01)"),
            "compound": _ask("compound name"),
            "township": _ask("township", ""),
            "timezone": _ask("time zone", "Asia/Shanghai"),
        }
    }
    ports = list_serial_ports()
    print("serial ports found:")
    for i, p in enumerate(ports, 1):
        print(f"  {i}. {p.path}" + ("" if p.path == p.device else f" -> {p.device}"))
    chosen = _ask(
        "ports to scan (numbers or paths, comma-separated)",
        ",".join(str(i) for i in range(1, len(ports) + 1)),
    )
    data["ports"] = []
    for n, text in enumerate((t.strip() for t in chosen.split(",") if t.strip()), 1):
        if text.isdigit() and 1 <= int(text) <= len(ports):
            path = ports[int(text) - 1].path
        elif Path(text).exists():
            path = text  # a port the listing does not know (another udev name, a test line)
        else:
            print(f"  {text!r}: no such port, left out")
            continue
        name = _ask(f"bus name for {path}", f"bus{n}")
        kind = _ask("  wired to it: osdp (readers), modbus (relay boards) or auto", "auto")
        data["ports"].append({"path": path, "name": name, "kind": kind})
    ids = _ask("checkpoint ids, in the order you will tap them (comma-separated)")
    data["checkpoints"] = [{"id": i.strip()} for i in ids.split(",") if i.strip()]
    zones = _ask("zones as number=board/channel, comma-separated (empty: none)", "")
    data["relays"] = {"zones": [], "amplifier": _ask("amplifier relay as board/channel", "")}
    for z in zones.split(","):
        if "=" in z:
            number, _, at = z.partition("=")
            board, _, channel = at.partition("/")
            data["relays"]["zones"].append(
                {"number": int(number), "board": board.strip(), "channel": int(channel)}
            )
    data["cameras"] = []
    while True:
        name = _ask("camera name (empty: no more cameras)", "")
        if not name:
            break
        data["cameras"].append(
            {
                "name": name,
                "snapshot_url": _ask("  snapshot URL"),
                "rtsp_url": _ask("  RTSP URL", ""),
                "auth": _ask("  auth (digest/basic/none)", "digest"),
                "username": _ask("  user name", "admin"),
            }
        )
    centre = _ask("district centre URL (empty: enroll later)", "")
    data["enroll"] = {
        "centre_url": centre,
        "skip": not centre,
        "ca_fingerprint": _ask("centre CA fingerprint", "") if centre else "",
    }
    return parse_answers(data, config_path.resolve().parent)
