"""``compound-gw`` help and argparse's own words are Chinese by default (gateway/cliparser.py)."""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from collections.abc import Iterator

import pytest

from gateway import i18n as gateway_i18n
from gateway.cli import build_parser
from gateway.cliparser import translate_error
from gateway.i18n import set_language

CJK = re.compile(r"[\u4e00-\u9fff]")


@pytest.fixture(autouse=True)
def _language_restored() -> Iterator[None]:
    """These tests switch the language of this thread's context: later tests read English."""
    token = gateway_i18n._language.set(None)
    yield
    gateway_i18n._language.reset(token)


def _helps(parser: argparse.ArgumentParser, path: str = "compound-gw") -> Iterator[tuple[str, str]]:
    """(where, help text) of every option, argument and subcommand, all the way down."""
    if parser.description:
        yield path, parser.description
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for choice in action._choices_actions:
                yield f"{path} {choice.dest}", str(choice.help)
            for name, sub in action.choices.items():
                yield from _helps(sub, f"{path} {name}")
        elif action.help not in (None, argparse.SUPPRESS):
            yield f"{path} {'/'.join(action.option_strings) or action.dest}", str(action.help)


def test_every_help_text_is_chinese_by_default() -> None:
    set_language("zh-CN")
    helps = list(_helps(build_parser()))
    assert len(helps) > 100  # the whole tree was walked
    english = [(where, text) for where, text in helps if not CJK.search(text)]
    assert english == [], "help texts without a translation (mark them with _() in a catalogue)"


def test_english_is_available() -> None:
    set_language("en")
    helps = dict(_helps(build_parser()))
    assert helps["compound-gw run"] == "run the daemon (systemd runs this)"
    assert not any(CJK.search(text) for text in helps.values())


@pytest.mark.parametrize(
    ("english", "chinese"),
    [
        ("the following arguments are required: id, -c", "缺少必需的参数：id, -c"),
        ("unrecognized arguments: --bogus", "无法识别的参数：--bogus"),
        ("argument -n: invalid int value: 'x'", "参数 -n：'x' 不是有效的 int"),
        ("something argparse says that we never saw", "something argparse says that we never saw"),
    ],
)
def test_argparse_errors_are_worded_in_the_current_language(english: str, chinese: str) -> None:
    set_language("zh-CN")
    assert translate_error(english) == chinese


def test_help_and_errors_at_the_terminal_follow_lang() -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "gateway.cli", *args], capture_output=True, text=True,
            timeout=60, env={"PATH": "/usr/bin:/bin"}, check=False,
        )  # fmt: skip

    zh = run("--help")
    assert zh.returncode == 0 and zh.stdout.startswith("用法：") and "选项" in zh.stdout
    en = run("--lang", "en", "--help")
    assert en.returncode == 0 and en.stdout.startswith("usage: ")
    bad = run("events", "tail", "--bogus")
    assert bad.returncode == 2 and "错误：无法识别的参数：--bogus" in bad.stderr
