"""docs/checkpoints.md keeps up with the code: every config key, CLI command, event kind and
reader-state reason is documented."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from gateway.checkpoints.cli import add_cli
from gateway.checkpoints.config import CheckpointsSection
from gateway.config.schema import documented_keys

DOC = (Path(__file__).resolve().parents[2] / "docs" / "checkpoints.md").read_text()


def test_every_config_key_is_in_the_docs() -> None:
    keys = [key for key, _doc in documented_keys(CheckpointsSection)]
    leaves = {key.split(".")[-1].removesuffix("[]") for key in keys}
    missing = sorted(k for k in leaves if not re.search(rf"\b{k}\b", DOC))
    assert missing == []


def test_every_cli_command_and_option_is_in_the_docs() -> None:
    parser = argparse.ArgumentParser(prog="compound-gw")
    sub = parser.add_subparsers()
    add_cli(sub)
    assert "compound-gw readers" in DOC and "compound-gw reader pair" in DOC
    pair = sub.choices["reader"]._subparsers._group_actions[0].choices["pair"]  # type: ignore[union-attr]
    options = {o for a in pair._actions for o in a.option_strings if o.startswith("--")}
    options -= {"--help", "--config", "--checkpoints-file", "--timeout"}
    assert sorted(o for o in options if o not in DOC) == []


def test_event_kinds_and_reasons_are_in_the_docs() -> None:
    for word in ("tap", "tap.repeat", "unknown_wristband", "reader.state", "reader.status",
                 "secure_channel_active", "secure_channel_refused", "no_answer", "link_errors",
                 "bus_lost"):  # fmt: skip
        assert f"`{word}`" in DOC, word
