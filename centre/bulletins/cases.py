"""Reported cases per compound: the district's categories and the monthly CSV import, pure.

Theory of operation
-------------------
Each month the district's case system exports the cases reported per compound as CSV
(``compound, date, category, count``; Chinese headers ``小区, 日期, 类别, 数量`` too). The import
is all or nothing: :func:`parse_cases_csv` reads the whole file and either returns every row, or
raises one :class:`CaseImportError` naming the first bad row (as a spreadsheet numbers it, the
header being row 1) and column. Nothing here stores anything: the store replaces a month's
figures in one transaction with what this returns, so a broken file imports nothing.

Categories are configurable per district (:class:`CaseCategory`); by default the seven
"preventable" case types the programme counts against a compound, plus ``other`` (counted, not
preventable). A category is accepted by its id or by its Chinese label.

    figures = parse_cases_csv(raw, month="2026-11", compounds={"rose-garden", ...})
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Final

from centre.errors import BadRequest

MAX_CSV_BYTES: Final = 4 * 1024 * 1024
MAX_ROWS: Final = 100_000
MAX_COUNT: Final = 10_000  # per row: more is a typo, not a month in one compound


@dataclass(frozen=True, slots=True)
class CaseCategory:
    """One kind of case the district counts; ``preventable`` ones decide "zero-incident"."""

    id: str
    label_zh: str
    label_en: str
    preventable: bool


# The programme's default list; a district replaces it in the centre's config.
DEFAULT_CATEGORIES: Final = (
    CaseCategory("burglary", "入室盗窃", "Burglary", True),
    CaseCategory("vehicle_theft", "盗窃机动车", "Motor vehicle theft", True),
    CaseCategory("ebike_theft", "盗窃电动车", "E-bike theft", True),
    CaseCategory("bicycle_theft", "盗窃自行车", "Bicycle theft", True),
    CaseCategory("theft_from_vehicle", "盗窃车内财物", "Theft from vehicles", True),
    CaseCategory("fraud", "电信网络诈骗", "Telecom and online fraud", True),
    CaseCategory("robbery", "抢劫抢夺", "Robbery and snatching", True),
    CaseCategory("other", "其他案件", "Other cases", False),
)


class CaseImportError(BadRequest):
    """A case file refused as a whole; ``row`` (1 = header) and ``column`` say where."""

    code = "case_import_refused"

    def __init__(self, reason: str, *, row: int | None = None, column: str | None = None) -> None:
        where = ""
        if row is not None:
            where = f"row {row}" + (f", column '{column}'" if column else "") + ": "
        super().__init__(where + reason, row=row, column=column)
        self.row = row
        self.column = column


@dataclass(frozen=True, slots=True)
class CaseRow:
    """Cases of one category reported in one compound on one day."""

    compound: str
    day: str  # ISO date
    category: str
    count: int


# Header names accepted for each column (lower-cased, stripped).
_HEADERS: Final = {
    "compound": ("compound", "小区", "小区编号", "小区代码"),
    "date": ("date", "日期", "发案日期"),
    "category": ("category", "类别", "案件类别"),
    "count": ("count", "数量", "起数", "案件数"),
}
_DATE: Final = re.compile(r"^(\d{4})[-/.年](\d{1,2})[-/.月](\d{1,2})日?$")


def category_index(categories: Iterable[CaseCategory]) -> dict[str, CaseCategory]:
    """Categories by id and by Chinese label, for reading a file."""
    index: dict[str, CaseCategory] = {}
    for c in categories:
        index[c.id] = c
        index[c.label_zh] = c
    return index


def _text(raw: bytes) -> str:
    if len(raw) > MAX_CSV_BYTES:
        raise CaseImportError(f"the file has {len(raw)} bytes; at most {MAX_CSV_BYTES} are read")
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        pass
    try:
        # Spreadsheets on Chinese desktops save CSV as GB18030 (a superset of GBK).
        return raw.decode("gb18030")
    except UnicodeDecodeError as exc:
        raise CaseImportError("the file is neither UTF-8 nor GB18030 text") from exc


def _columns(header: Sequence[str]) -> dict[str, int]:
    names = [h.strip().lower() for h in header]
    where: dict[str, int] = {}
    for key, accepted in _HEADERS.items():
        hits = [i for i, n in enumerate(names) if n in accepted]
        if not hits:
            raise CaseImportError(
                f"no '{key}' column (accepted names: {', '.join(accepted)})", row=1
            )
        if len(hits) > 1:
            raise CaseImportError(f"the '{key}' column appears twice", row=1)
        where[key] = hits[0]
    return where


def _day(value: str, month: str, row: int) -> str:
    m = _DATE.match(value.strip())
    if not m or not all(part.isascii() for part in m.groups()):
        raise CaseImportError(
            f"'{value[:40]}' is not a date like 2026-11-03", row=row, column="date"
        )
    try:
        d = date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
    except ValueError as exc:
        raise CaseImportError(f"'{value[:40]}' is not a real date", row=row, column="date") from exc
    if d.strftime("%Y-%m") != month:
        raise CaseImportError(
            f"{d.isoformat()} is outside the month being imported ({month})",
            row=row,
            column="date",
        )
    return d.isoformat()


def _count(value: str, row: int) -> int:
    v = value.strip()
    if not v or not v.isascii() or not v.isdigit() or len(v) > 6:
        raise CaseImportError(
            f"'{value[:40]}' is not a whole number of cases", row=row, column="count"
        )
    n = int(v)
    if n > MAX_COUNT:
        raise CaseImportError(
            f"{n} cases in one row is more than {MAX_COUNT}", row=row, column="count"
        )
    return n


def parse_cases_csv(
    raw: bytes,
    *,
    month: str,
    compounds: Collection[str],
    categories: Iterable[CaseCategory] = DEFAULT_CATEGORIES,
) -> list[CaseRow]:
    """Every row of a month's case export, or :class:`CaseImportError` for the first bad one.

    Rows of the same compound, day and category add up (one case per row is common).
    """
    text = _text(raw)
    index = category_index(categories)
    try:
        rows = list(csv.reader(io.StringIO(text, newline=""), strict=True))
    except csv.Error as exc:
        raise CaseImportError(f"the file is not valid CSV: {exc}") from exc
    if not rows:
        raise CaseImportError("the file is empty")
    if len(rows) > MAX_ROWS + 1:
        raise CaseImportError(f"more than {MAX_ROWS} rows")
    cols = _columns(rows[0])
    width = max(cols.values()) + 1
    totals: dict[tuple[str, str, str], int] = {}
    for n, cells in enumerate(rows[1:], start=2):
        if not any(c.strip() for c in cells):
            continue  # blank lines at the end of an export
        if len(cells) < width:
            raise CaseImportError(f"the row has {len(cells)} cells; {width} expected", row=n)
        compound = cells[cols["compound"]].strip()
        if compound not in compounds:
            raise CaseImportError(
                f"'{compound[:60]}' is not an enrolled compound", row=n, column="compound"
            )
        day = _day(cells[cols["date"]], month, n)
        label = cells[cols["category"]].strip()
        cat = index.get(label)
        if cat is None:
            raise CaseImportError(
                f"'{label[:40]}' is not one of the district's case categories",
                row=n,
                column="category",
            )
        count = _count(cells[cols["count"]], n)
        key = (compound, day, cat.id)
        totals[key] = totals.get(key, 0) + count
    return [CaseRow(c, d, k, v) for (c, d, k), v in sorted(totals.items())]


@dataclass(frozen=True, slots=True)
class CaseFigures:
    """One compound's cases in one month, by category id (absent: none reported)."""

    by_category: Mapping[str, int]
    preventable: int
    total: int


def figures_by_compound(
    rows: Iterable[CaseRow], categories: Iterable[CaseCategory] = DEFAULT_CATEGORIES
) -> dict[str, CaseFigures]:
    """Sum a month's rows per compound."""
    preventable = {c.id for c in categories if c.preventable}
    acc: dict[str, dict[str, int]] = {}
    for r in rows:
        per = acc.setdefault(r.compound, {})
        per[r.category] = per.get(r.category, 0) + r.count
    return {
        compound: CaseFigures(
            by_category=dict(sorted(per.items())),
            preventable=sum(v for k, v in per.items() if k in preventable),
            total=sum(per.values()),
        )
        for compound, per in acc.items()
    }
