"""The monthly case import: all rows or one clear error naming row and column."""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from centre.bulletins.cases import (
    CaseImportError,
    CaseRow,
    figures_by_compound,
    parse_cases_csv,
)

COMPOUNDS = {"rose-garden", "lotus-court"}


def parse(text: str | bytes) -> list[CaseRow]:
    raw = text.encode("utf-8") if isinstance(text, str) else text
    return parse_cases_csv(raw, month="2026-11", compounds=COMPOUNDS)


def test_rows_add_up_per_compound_day_and_category() -> None:
    rows = parse(
        "compound,date,category,count\n"
        "rose-garden,2026-11-03,burglary,1\n"
        "rose-garden,2026/11/3,入室盗窃,2\n"
        "lotus-court,2026-11-30,other,1\n"
        ",,,\n"
    )
    assert rows == [
        CaseRow("lotus-court", "2026-11-30", "other", 1),
        CaseRow("rose-garden", "2026-11-03", "burglary", 3),
    ]
    figures = figures_by_compound(rows)
    assert (figures["rose-garden"].preventable, figures["rose-garden"].total) == (3, 3)
    assert (figures["lotus-court"].preventable, figures["lotus-court"].total) == (0, 1)


def test_chinese_headers_and_a_gb18030_export_with_bom_free_text() -> None:
    text = "小区,日期,类别,数量\nrose-garden,2026年11月5日,盗窃电动车,1\n"
    assert parse(text.encode("gb18030")) == [CaseRow("rose-garden", "2026-11-05", "ebike_theft", 1)]
    assert parse(b"\xef\xbb\xbf" + text.encode("utf-8"))[0].category == "ebike_theft"


@pytest.mark.parametrize(
    ("line", "row", "column"),
    [
        ("nowhere,2026-11-03,burglary,1", 3, "compound"),
        ("rose-garden,2026-13-03,burglary,1", 3, "date"),
        ("rose-garden,2026-10-31,burglary,1", 3, "date"),
        ("rose-garden,2026-11-03,arson,1", 3, "category"),
        ("rose-garden,2026-11-03,burglary,-1", 3, "count"),
        ("rose-garden,2026-11-03,burglary,²", 3, "count"),
        ("rose-garden,2026-11-03,burglary,99999", 3, "count"),
        ("rose-garden,2026-11-03", 3, None),
    ],
)
def test_a_broken_row_names_row_and_column_and_nothing_is_returned(
    line: str, row: int, column: str | None
) -> None:
    good = "rose-garden,2026-11-02,burglary,1"
    with pytest.raises(CaseImportError) as err:
        parse(f"compound,date,category,count\n{good}\n{line}\n{good}\n")
    assert (err.value.row, err.value.column) == (row, column)
    assert f"row {row}" in err.value.reason
    assert err.value.as_dict()["error"] == "case_import_refused"


def test_header_problems() -> None:
    with pytest.raises(CaseImportError, match="no 'count' column"):
        parse("compound,date,category\n")
    with pytest.raises(CaseImportError, match="appears twice"):
        parse("compound,date,category,count,数量\n")
    with pytest.raises(CaseImportError, match="empty"):
        parse("")


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=600) | st.text(max_size=300).map(lambda t: t.encode("utf-8")))
def test_any_bytes_give_rows_or_a_case_import_error_within_a_second(raw: bytes) -> None:
    started = time.monotonic()
    try:
        rows = parse_cases_csv(
            b"compound,date,category,count\n" + raw, month="2026-11", compounds=COMPOUNDS
        )
    except CaseImportError:
        pass
    else:
        assert all(r.compound in COMPOUNDS and r.day.startswith("2026-11-") for r in rows)
    assert time.monotonic() - started < 1.0
