"""docs/patrol.md documents every patrol data command and option, and the reload events."""

from __future__ import annotations

import argparse
from pathlib import Path

from gateway.patrol.cli import add_cli

DOC = (Path(__file__).resolve().parents[2] / "docs" / "patrol.md").read_text()


def _leaves(
    parser: argparse.ArgumentParser, path: str
) -> list[tuple[str, argparse.ArgumentParser]]:
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        return [(path, parser)]
    out = []
    for name, child in subs[0].choices.items():
        out += _leaves(child, f"{path} {name}")
    return out


def test_every_data_command_and_option_is_documented() -> None:
    parser = argparse.ArgumentParser(prog="compound-gw")
    add_cli(parser.add_subparsers())
    leaves = [(p, c) for p, c in _leaves(parser, "compound-gw") if " guards" in p or "es " in p]
    assert len(leaves) >= 11, [p for p, _ in leaves]
    for path, child in leaves:
        group, _, verb = path.rpartition(" ")
        assert group in DOC, group
        assert verb in DOC, path
        options = {o for a in child._actions for o in a.option_strings if o.startswith("--")}
        missing = sorted(o for o in options - {"--help", "--config"} if o not in DOC)
        assert not missing, (path, missing)


def test_reload_events_are_documented() -> None:
    for kind in ("config.reloaded", "config.reload_refused", "unknown_wristband"):
        assert f"`{kind}`" in DOC, kind
