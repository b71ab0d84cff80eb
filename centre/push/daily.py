"""The daily patrol bulletin as a group-robot markdown message, in the reader's language.

The robot's markdown is a small dialect (headings, ``**bold**``, ``[text](url)``, ``> quote``,
``<font color="warning|info|comment">``); tables are not shown, so each compound is one line.
Every name, round id and explanation comes from a gateway or the registry and is hostile: it
is put on one line and its markdown and HTML characters are replaced by their full-width forms
(:func:`md_text`), so no text can forge a link, a colour or a heading. Words are English source
strings translated through gettext (``centre/push/locale``); Simplified Chinese by default.

    text = daily_markdown(bulletin)                          # zh-CN
    text = daily_markdown(bulletin, "en", link_for=link)     # link(compound, day) -> URL | None
    parts = split_markdown(text)                             # centre/push/plan.py
"""

from __future__ import annotations

import gettext
from collections.abc import Callable
from pathlib import Path
from typing import Final
from urllib.parse import quote, urlsplit

import i18n
from centre.bulletins.model import (
    STATUS_AWAITING,
    STATUS_EXPLAIN,
    STATUS_EXPLAINED,
    STATUS_NO_DATA,
    STATUS_OK,
    DailyBulletin,
    DailyRow,
)

SUPPORTED: Final = ("zh-CN", "en")
DEFAULT_LANGUAGE: Final = "zh-CN"
CATALOGUES: Final = i18n.Catalogues(Path(__file__).parent / "locale", SUPPORTED)
MAX_NAME: Final = 60  # characters of a name on one line
MAX_EXPLANATION: Final = 200  # characters of an explanation quoted in the group

# Characters the robot's markdown (or its HTML subset) would act on, as their full-width forms
# (U+FF01..U+FF5E are ASCII 0x21..0x7E moved up by 0xFEE0): they read the same and do nothing.
_MARKUP: Final = "<>[]()*_`#~|\\&"
_FULL_WIDTH: Final = str.maketrans({c: chr(ord(c) + 0xFEE0) for c in _MARKUP})


def N_(message: str) -> str:
    """Mark ``message`` for translation; it is translated where it is shown."""
    return message


STATUS_WORDS: Final = {
    STATUS_OK: N_("all rounds walked"),
    STATUS_EXPLAIN: N_("must explain"),
    STATUS_EXPLAINED: N_("explained"),
    STATUS_NO_DATA: N_("no data"),
    STATUS_AWAITING: N_("verdicts awaited"),
}
STATUS_COLOURS: Final = {STATUS_EXPLAIN: "warning", STATUS_NO_DATA: "comment"}


def md_text(value: object, limit: int = MAX_NAME) -> str:
    """Untrusted text as inert markdown on one line, at most ``limit`` characters."""
    text = " ".join(str(value).split())
    text = "".join(ch for ch in text if ch.isprintable())
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return text.translate(_FULL_WIDTH)


def md_link(url: str | None) -> str | None:
    """``url`` fit for ``[text](url)``: http(s) only, with nothing that could end the link."""
    if not url:
        return None
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.netloc:
        return None
    return quote(url, safe=":/?&=%#+,;@!$'*-._~")


def _row_line(row: DailyRow, t: gettext.NullTranslations) -> str:
    tl = row.tally
    counts = t.gettext(
        "planned %(planned)d, completed %(completed)d, late %(late)d, missed %(missed)d"
    ) % {"planned": tl.planned, "completed": tl.completed, "late": tl.late, "missed": tl.missed}
    word = t.gettext(STATUS_WORDS.get(row.status, N_("no data")))
    colour = STATUS_COLOURS.get(row.status)
    status = f'<font color="{colour}">{word}</font>' if colour else word
    return "- " + _said(_where(row.compound, row.township, t), f"{counts} · {status}", t)


def _said(who: str, what: str, t: gettext.NullTranslations) -> str:
    return t.gettext("%(who)s: %(what)s") % {"who": who, "what": what}


def _where(compound: str, township: str, t: gettext.NullTranslations, bold: bool = False) -> str:
    name = f"**{md_text(compound)}**" if bold else md_text(compound)
    if not township:
        return name
    return t.gettext("%(compound)s (%(township)s)") % {
        "compound": name,
        "township": md_text(township),
    }


def daily_markdown(
    b: DailyBulletin,
    lang: str = DEFAULT_LANGUAGE,
    *,
    link_for: Callable[[str, str], str | None] | None = None,
) -> str:
    """The bulletin as robot markdown; ``link_for(compound, day)`` gives each compound that
    must explain its explanation link (None: no link)."""
    t = CATALOGUES.translations(lang)
    tl = b.total
    lines = [
        "## " + t.gettext("Patrol bulletin for %(day)s") % {"day": b.day},
        '<font color="comment">'
        + t.gettext("Issued %(when)s")
        % {"when": i18n.format_datetime(b.generated_at, b.timezone, lang)}
        + "</font>",
        t.gettext(
            "Rounds planned **%(planned)d**, completed **%(completed)d**, late **%(late)d**,"
            " incomplete **%(incomplete)d**, missed **%(missed)d**,"
            " cannot be judged **%(unassessable)d**, verdicts awaited **%(awaiting)d**"
        )
        % {
            "planned": tl.planned,
            "completed": tl.completed,
            "late": tl.late,
            "incomplete": tl.incomplete,
            "missed": tl.missed,
            "unassessable": tl.unassessable,
            "awaiting": tl.awaiting,
        },
    ]
    must = b.must_explain
    lines.append("")
    lines.append("### " + t.gettext("Must explain (%(n)d)") % {"n": len(must)})
    if not must:
        lines.append(t.gettext("Every compound walked its rounds or explained why not."))
    for compound in must:
        missed = [m for m in b.missed if m.compound == compound and not m.explanations]
        township = missed[0].township if missed else ""
        what = t.ngettext("%(n)d missed round", "%(n)d missed rounds", len(missed)) % {
            "n": len(missed)
        }
        line = "- " + _said(_where(compound, township, t, bold=True), what, t)
        link = md_link(link_for(compound, b.day)) if link_for else None
        if link:
            line += f" [{t.gettext('write the explanation')}]({link})"
        lines.append(line)
    explained = [m for m in b.missed if m.explanations]
    if explained:
        lines.append("")
        lines.append("### " + t.gettext("Explained"))
        for m in explained:
            latest = m.explanations[-1]
            lines.append("- " + _said(f"**{md_text(m.compound)}**", md_text(m.round_id), t))
            lines.append(f"> {md_text(latest.text, MAX_EXPLANATION)}")
    lines.append("")
    lines.append("### " + t.gettext("Compounds"))
    lines.extend(_row_line(row, t) for row in b.rows)
    return "\n".join(lines)


__all__ = ["CATALOGUES", "DEFAULT_LANGUAGE", "daily_markdown", "md_link", "md_text"]
