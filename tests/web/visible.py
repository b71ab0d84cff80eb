"""What a person sees on a page, and what must never be there: epoch numbers, Python reprs,
internal field names (snake_case identifiers)."""

from __future__ import annotations

import re
from html.parser import HTMLParser

# A 9-10 digit number (with or without decimals) that reads as a Unix time in 2001..2039.
_NUMBER = re.compile(r"(?<![\d.])(\d{9,10})(?:\.\d+)?(?![\d])")
_REPR_WORD = re.compile(r"\b(True|False|None)\b")
_REPR_MARK = ("=[", "{'", "['", '{"', "=True", "=False", "=None")
_SNAKE = re.compile(r"\b[a-z][a-z0-9]*(?:_[a-z0-9]+)+\b")
_INVISIBLE = {"script", "style", "head"}


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.hidden = 0
        self.title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _INVISIBLE:
            self.hidden += 1
        if tag == "title":
            self.title = True
        if tag == "input":  # a button's or field's visible value
            d = dict(attrs)
            if d.get("type") in ("submit", "button") and d.get("value"):
                self.parts.append(str(d["value"]))

    def handle_endtag(self, tag: str) -> None:
        if tag in _INVISIBLE:
            self.hidden = max(0, self.hidden - 1)
        if tag == "title":
            self.title = False

    def handle_data(self, data: str) -> None:
        if not self.hidden or self.title:  # the title shows in the tab
            self.parts.append(data)


def visible_text(html: str) -> str:
    parser = _Text()
    parser.feed(html)
    parser.close()
    return " ".join(" ".join(parser.parts).split())


def what_should_not_be_seen(html: str) -> list[str]:
    """Every epoch number, Python repr and internal field name in the page's visible text."""
    text = visible_text(html)
    found = [
        f"epoch number {m.group(1)}"
        for m in _NUMBER.finditer(text)
        if 978_307_200 <= int(m.group(1)) <= 2_200_000_000
    ]
    found += [f"Python repr {m.group(0)}" for m in _REPR_WORD.finditer(text)]
    found += [f"Python repr {mark}" for mark in _REPR_MARK if mark in text]
    found += [f"field name {m.group(0)}" for m in _SNAKE.finditer(text)]
    return found
