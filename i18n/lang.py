"""Language tags: normalising what people and browsers write, and choosing among what we have.

    normalise("zh_cn")                                # -> "zh-CN"
    match("zh", ("zh-CN", "en"))                      # -> "zh-CN" (same primary language)
    negotiate("fr;q=1, en;q=0.5", ("zh-CN", "en"), default="zh-CN")   # -> "en"

Tags are BCP 47 (``zh-CN``) on the outside and gettext locale names (``zh_CN``) on disk.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Final

# Chinese written without a region or with the Simplified script means mainland usage here.
_ALIASES: Final = {
    "zh": "zh-CN",
    "zh-hans": "zh-CN",
    "zh-hans-cn": "zh-CN",
    "zh-chs": "zh-CN",
    "zh-sg": "zh-CN",
}
_TAG = re.compile(r"^[A-Za-z]{1,8}(?:[-_][A-Za-z0-9]{1,8})*$")
# Accept-Language is untrusted input: bound how much of it we look at.
_MAX_HEADER: Final = 512
_MAX_ITEMS: Final = 32


def normalise(tag: str) -> str:
    """``tag`` in canonical BCP 47 case (``zh-CN``, ``en``); ``""`` for something that is no tag.

    Underscores become hyphens, a trailing ``.UTF-8`` or ``@modifier`` (POSIX locale names such
    as ``zh_CN.UTF-8``) is dropped, and a few aliases of Simplified Chinese become ``zh-CN``.
    """
    tag = tag.strip().split(".")[0].split("@")[0]
    if not _TAG.match(tag):
        return ""
    parts = tag.replace("_", "-").split("-")
    alias = _ALIASES.get("-".join(parts).lower())
    if alias:
        return alias
    out = [parts[0].lower()]
    for p in parts[1:]:
        if len(p) == 2 and p.isalpha():
            out.append(p.upper())  # region
        elif len(p) == 4 and p.isalpha():
            out.append(p.title())  # script
        else:
            out.append(p.lower())
    return "-".join(out)


def match(tag: str, supported: Sequence[str]) -> str | None:
    """The supported language ``tag`` asks for: exact first, then the same primary language."""
    want = normalise(tag)
    if not want:
        return None
    by_lower = {normalise(s).lower(): s for s in supported}
    if want.lower() in by_lower:
        return by_lower[want.lower()]
    primary = want.split("-")[0].lower()
    for s in supported:
        if normalise(s).split("-")[0].lower() == primary:
            return s
    return None


def negotiate(accept_language: str | None, supported: Sequence[str], default: str) -> str:
    """The best of ``supported`` for an HTTP ``Accept-Language`` header, else ``default``.

    Never raises: a malformed header (or one naming nothing we have) gives ``default``.
    """
    if not accept_language:
        return default
    weighted: list[tuple[float, int, str]] = []
    for index, item in enumerate(accept_language[:_MAX_HEADER].split(",")[:_MAX_ITEMS]):
        tag, _, params = item.strip().partition(";")
        q = 1.0
        params = params.strip()
        if params.startswith("q="):
            try:
                q = float(params[2:])
            except ValueError:
                continue
        if not 0 < q <= 1:
            continue
        weighted.append((-q, index, tag.strip()))
    for _, _, tag in sorted(weighted):
        if tag == "*":
            return default
        found = match(tag, supported)
        if found:
            return found
    return default


def to_locale(tag: str) -> str:
    """The gettext folder name for ``tag``: ``zh-CN`` -> ``zh_CN``."""
    return normalise(tag).replace("-", "_")
