"""The resident contact list for the phone survey: CSV import, all or nothing, pure.

Theory of operation
-------------------
The district's resident register is exported as CSV with columns ``compound, phone`` and an
optional ``id`` (Chinese headers ``小区, 电话, 编号`` too; other columns such as a name are
ignored and never stored). :func:`parse_residents_csv` reads the whole file and returns every
resident, or raises one :class:`ResidentImportError` (the documented error type) naming the first
bad row as a spreadsheet numbers it (the header is row 1) and its column. The store writes the
list in one transaction with what this returns, so a broken file imports nothing.

A phone number is kept as its digits (spaces, dashes, brackets and a leading ``+86`` dropped):
7 to 15 ASCII digits. A resident without an ``id`` gets one from the compound and the number
(the same person on the same number keeps the same id from one import to the next). The same
id twice, or the same compound and number twice, is an error: one call per household.

    residents = parse_residents_csv(raw, compounds={"Rose Garden", ...})
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Collection, Sequence
from typing import Final

from centre.bulletins.survey import Resident
from centre.errors import BadRequest

MAX_CSV_BYTES: Final = 8 * 1024 * 1024
MAX_ROWS: Final = 200_000
MAX_ID: Final = 64
_HEADERS: Final = {
    "compound": ("compound", "小区", "小区名称"),
    "phone": ("phone", "电话", "手机", "联系电话", "手机号"),
    "id": ("id", "编号", "住户编号"),
}
_REQUIRED: Final = ("compound", "phone")
_PHONE_NOISE: Final = " -()（）\t"


class ResidentImportError(BadRequest):
    """A contact list refused as a whole; ``row`` (1 = header) and ``column`` say where."""

    code = "resident_import_refused"

    def __init__(self, reason: str, *, row: int | None = None, column: str | None = None) -> None:
        where = ""
        if row is not None:
            where = f"row {row}" + (f", column '{column}'" if column else "") + ": "
        super().__init__(where + reason, row=row, column=column)
        self.row = row
        self.column = column


def _text(raw: bytes) -> str:
    if len(raw) > MAX_CSV_BYTES:
        raise ResidentImportError(f"the file has {len(raw)} bytes; at most {MAX_CSV_BYTES}")
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    for encoding in ("utf-8", "gb18030"):  # spreadsheets on Chinese desktops save GB18030
        try:
            text = raw.decode(encoding)
        except UnicodeDecodeError:
            continue
        if "\x00" in text:
            raise ResidentImportError("the file holds NUL characters: not a text export")
        return text
    raise ResidentImportError("the file is neither UTF-8 nor GB18030 text")


def _columns(header: Sequence[str]) -> dict[str, int]:
    names = [h.strip().lower() for h in header]
    where: dict[str, int] = {}
    for key, accepted in _HEADERS.items():
        hits = [i for i, n in enumerate(names) if n in accepted]
        if len(hits) > 1:
            raise ResidentImportError(f"the '{key}' column appears twice", row=1)
        if hits:
            where[key] = hits[0]
        elif key in _REQUIRED:
            raise ResidentImportError(
                f"no '{key}' column (accepted names: {', '.join(accepted)})", row=1
            )
    return where


def phone_digits(value: str) -> str | None:
    """``+86 138-0013-8000`` -> ``13800138000``; None if it is not 7 to 15 ASCII digits."""
    v = value.strip()
    for ch in _PHONE_NOISE:
        v = v.replace(ch, "")
    if v.startswith("+86"):
        v = v[3:]
    if not (7 <= len(v) <= 15) or not v.isascii() or not v.isdigit():
        return None
    return v


def _default_id(compound: str, phone: str) -> str:
    return "r-" + hashlib.sha256(f"{compound}\x00{phone}".encode()).hexdigest()[:16]


def parse_residents_csv(raw: bytes, *, compounds: Collection[str]) -> list[Resident]:
    """Every resident of the list, or :class:`ResidentImportError` for the first bad row."""
    text = _text(raw)
    try:
        rows = list(csv.reader(io.StringIO(text, newline=""), strict=True))
    except csv.Error as exc:
        raise ResidentImportError(f"the file is not valid CSV: {exc}") from None
    if not rows:
        raise ResidentImportError("the file is empty")
    if len(rows) > MAX_ROWS + 1:
        raise ResidentImportError(f"more than {MAX_ROWS} rows")
    cols = _columns(rows[0])
    width = max(cols.values()) + 1
    out: list[Resident] = []
    ids: dict[str, int] = {}
    numbers: dict[tuple[str, str], int] = {}
    for n, cells in enumerate(rows[1:], start=2):
        if not any(c.strip() for c in cells):
            continue
        if len(cells) < width:
            raise ResidentImportError(f"the row has {len(cells)} cells; {width} expected", row=n)
        compound = cells[cols["compound"]].strip()
        if compound not in compounds:
            raise ResidentImportError(
                f"'{compound[:60]}' is not an enrolled compound", row=n, column="compound"
            )
        phone = phone_digits(cells[cols["phone"]])
        if phone is None:
            raise ResidentImportError(
                "not a phone number (7 to 15 digits)", row=n, column="phone"
            )  # the value itself is personal data: not echoed
        if (compound, phone) in numbers:
            raise ResidentImportError(
                f"the same number is already listed for this compound on row "
                f"{numbers[(compound, phone)]}",
                row=n,
                column="phone",
            )
        numbers[(compound, phone)] = n
        rid = cells[cols["id"]].strip() if "id" in cols else ""
        if rid:
            if len(rid) > MAX_ID or not rid.isprintable():
                raise ResidentImportError(
                    f"an id is at most {MAX_ID} printable characters", row=n, column="id"
                )
        else:
            rid = _default_id(compound, phone)
        if rid in ids:
            raise ResidentImportError(
                f"the id is already used on row {ids[rid]}", row=n, column="id"
            )
        ids[rid] = n
        out.append(Resident(rid, compound, phone))
    if not out:
        raise ResidentImportError("the file lists no resident")
    return out


__all__ = ["MAX_CSV_BYTES", "ResidentImportError", "parse_residents_csv", "phone_digits"]
