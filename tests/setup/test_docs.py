"""docs/setup.md documents every answers key, every option, the machine lines and the event."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from gateway.config.schema import documented_keys
from gateway.setup import checks, selftest, wizard
from gateway.setup.answers import Answers
from gateway.setup.cli import add_cli

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "setup.md").read_text()


def test_every_answers_key_is_documented() -> None:
    # ``config`` is taken out before parsing (passed through), ``base_dir`` is not a key.
    keys = [k for k, _ in documented_keys(Answers) if k not in ("config", "base_dir")]
    assert len(keys) > 25
    names = {k.split(".")[-1].split("[")[0] for k in keys}
    missing = [n for n in names if f"`{n}`" not in DOC and f"[{n}]" not in DOC]
    assert not missing, missing


def test_every_option_is_documented() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")
    add_cli(sub)
    for name in ("setup", "selftest"):
        assert f"compound-gw {name}" in DOC
        options = [o for a in sub.choices[name]._actions for o in a.option_strings]
        missing = [o for o in options if o.startswith("--") and f"`{o}" not in DOC]
        assert missing in ([], ["--help"]), (name, missing)


def test_every_step_machine_line_and_event_is_documented() -> None:
    for step in wizard.STEPS:
        assert f"| `{step}` |" in DOC, step
    words: set[str] = set()
    for module in (wizard, selftest, checks):
        text = Path(module.__file__).read_text()  # type: ignore[arg-type]
        words |= set(re.findall(r'(?:signal|machine_line)\(\s*"([a-z-]+)"', text))
    assert {"tap-wanted", "step-done", "paired"} <= words
    missing = [w for w in words if f"`@@setup {w}" not in DOC]
    assert not missing, missing
    assert f"`{selftest.REPORT_KIND}`" in DOC
