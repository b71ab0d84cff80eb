"""argparse in the reader's language: ``compound-gw --help`` and its errors in Chinese by default.

    parser = Parser(prog="compound-gw", description=_("..."))

argparse's own words ("usage:", "options", "show this help message and exit", its error
messages) come from the standard library in English; this parser puts ours in their place,
through the same catalogue as everything else (domain ``cli``). Subcommand parsers inherit the
class. The language must be chosen before the parser is built (``gateway.cli.main`` reads
``--lang`` and the environment first), because help texts are translated when they are added.
"""

from __future__ import annotations

import argparse
import re
import sys
from typing import Any, NoReturn

from gateway.i18n import N_, _

# argparse's error messages (Python 3.11) and our words for them; the captured parts (argument
# names, values) are kept as they are.
_ERRORS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"the following arguments are required: (?P<a>.+)"),
     N_("these arguments are required: %(a)s")),
    (re.compile(r"argument (?P<a>.+?): invalid choice: (?P<v>.+?) \(choose from (?P<c>.+)\)"),
     N_("argument %(a)s: %(v)s is not one of %(c)s")),
    (re.compile(r"argument (?P<a>.+?): invalid (?P<t>\w+) value: (?P<v>.+)"),
     N_("argument %(a)s: %(v)s is not a valid %(t)s")),
    (re.compile(r"argument (?P<a>.+?): expected one argument"),
     N_("argument %(a)s needs a value")),
    (re.compile(r"unrecognized arguments: (?P<a>.+)"),
     N_("unknown arguments: %(a)s")),
    (re.compile(r"argument (?P<a>.+?): not allowed with argument (?P<b>.+)"),
     N_("argument %(a)s cannot be used with %(b)s")),
)  # fmt: skip


def translate_error(message: str) -> str:
    """argparse's English error ``message`` in the current language (unknown ones unchanged)."""
    for pattern, words in _ERRORS:
        m = pattern.fullmatch(message)
        if m:
            return _(words) % m.groupdict()
    return message


class _Formatter(argparse.HelpFormatter):
    def add_usage(self, usage: Any, actions: Any, groups: Any, prefix: str | None = None) -> None:
        super().add_usage(usage, actions, groups, _("usage: ") if prefix is None else prefix)


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose own words are translated (see the module's docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        add_help = kwargs.pop("add_help", True)
        kwargs.setdefault("formatter_class", _Formatter)
        kwargs["add_help"] = False  # ours, in words from the catalogue, is added below
        super().__init__(*args, **kwargs)
        self._positionals.title = _("positional arguments")
        self._optionals.title = _("options")
        if add_help:
            self.add_argument(
                "-h", "--help", action="help", default=argparse.SUPPRESS,
                help=_("show this help and exit"),
            )  # fmt: skip

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(
            2,
            _("%(prog)s: error: %(message)s") % {"prog": self.prog,
                                                 "message": translate_error(message)} + "\n",
        )  # fmt: skip
