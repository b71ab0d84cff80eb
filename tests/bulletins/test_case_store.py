"""Storing the month's case figures: each import whole or not at all (one transaction), a
corrected import a new audited version, and hostile files refused with CaseImportError only."""

from __future__ import annotations

import asyncio
import hashlib
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from centre.bulletins.case_store import CaseSql, SqliteCaseStore
from centre.bulletins.cases import CaseImportError, CaseRow, parse_cases_csv
from centre.bulletins.pg_store import PostgresCaseStore
from tests.pg_cluster import BACKENDS

MONTH = "2026-11"
COMPOUNDS = {"rose-garden", "lotus-court", "玫瑰园"}
FIRST = (
    "compound,date,category,count\n"
    "rose-garden,2026-11-03,burglary,1\n"
    "lotus-court,2026-11-04,other,2\n"
    "玫瑰园,2026-11-05,电信网络诈骗,1\n"
).encode()
CORRECTED = (
    "小区,日期,类别,数量\nrose-garden,2026-11-03,burglary,1\nrose-garden,2026-11-09,robbery,2\n"
).encode("gb18030")


Counted = Callable[[], tuple[int, int]]


@pytest.fixture(params=BACKENDS)
async def backend(
    tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[tuple[CaseSql, Counted]]:
    """The case store on each backend, and (imports, rows) as another reader sees them."""
    if request.param == "postgres":
        dsn = request.getfixturevalue("pg_dsn")
        s: CaseSql = await PostgresCaseStore.open(dsn)

        def counted() -> tuple[int, int]:
            with psycopg.connect(dsn) as db:
                return _counts(db)
    else:
        path = tmp_path / "bulletins.db"
        s = await SqliteCaseStore.open(path)

        def counted() -> tuple[int, int]:
            return file_counts(path)

    try:
        yield s, counted
    finally:
        await s.close()


@pytest.fixture
def store(backend: tuple[CaseSql, Counted]) -> CaseSql:
    return backend[0]


@pytest.fixture
def counts(backend: tuple[CaseSql, Counted]) -> Counted:
    return backend[1]


def file_counts(path: Path) -> tuple[int, int]:
    db = sqlite3.connect(path)
    try:
        return _counts(db)
    finally:
        db.close()


def _counts(db: Any) -> tuple[int, int]:
    imports = db.execute("SELECT count(*) FROM case_imports").fetchone()[0]
    rows = db.execute("SELECT count(*) FROM case_rows").fetchone()[0]
    return int(imports), int(rows)


async def imp(store: CaseSql, raw: bytes, who: str = "duty-1", now: float = 1000.0):  # type: ignore[no-untyped-def]
    return await store.import_csv(raw, month=MONTH, compounds=COMPOUNDS, imported_by=who, now=now)


async def test_a_corrected_import_is_a_new_audited_version(
    store: CaseSql, counts: Counted
) -> None:
    first = await imp(store, FIRST)
    assert (first.version, first.rows, first.preventable, first.total) == (1, 3, 2, 4)
    assert first.replaced_version is None
    assert first.sha256 == hashlib.sha256(FIRST).hexdigest()
    second = await imp(store, CORRECTED, who="duty-2", now=2000.0)
    assert (second.version, second.preventable, second.total) == (2, 3, 3)
    assert (second.replaced_version, second.replaced_preventable, second.replaced_total) == (
        1,
        2,
        4,
    )
    assert await store.rows(MONTH) == [
        CaseRow("rose-garden", "2026-11-03", "burglary", 1),
        CaseRow("rose-garden", "2026-11-09", "robbery", 2),
    ]
    history = await store.imports(MONTH)
    assert [(i.version, i.imported_by, i.imported_at) for i in history] == [
        (1, "duty-1", 1000.0),
        (2, "duty-2", 2000.0),
    ]
    assert counts() == (2, 5)  # the old version's rows are kept
    assert await store.rows("2026-10") == [] and not await store.imported("2026-10")


async def test_a_broken_row_names_row_and_column_and_imports_nothing(
    store: CaseSql, counts: Counted
) -> None:
    await imp(store, FIRST)
    before = await store.rows(MONTH)
    broken = FIRST.replace(b"lotus-court,2026-11-04", b"lotus-court,2026-11-31")
    with pytest.raises(CaseImportError) as err:
        await imp(store, broken, who="duty-2")
    assert (err.value.row, err.value.column) == (3, "date")
    assert err.value.reason.startswith("row 3, column 'date': ")
    assert err.value.status == 400 and err.value.as_dict()["error"] == "case_import_refused"
    assert await store.rows(MONTH) == before
    assert [i.imported_by for i in await store.imports(MONTH)] == ["duty-1"]
    assert counts() == (1, 3)


async def test_a_failure_while_storing_rolls_the_whole_import_back(
    store: CaseSql, counts: Counted
) -> None:
    await imp(store, FIRST)
    before = await store.rows(MONTH)
    # Rows the parser would never return (a negative count, a duplicate key): storing fails at
    # the third row, after two were written inside the transaction.
    good = [
        CaseRow("rose-garden", "2026-11-01", "burglary", 5),
        CaseRow("lotus-court", "2026-11-02", "fraud", 1),
    ]
    for bad in (CaseRow("玫瑰园", "2026-11-03", "robbery", -1), good[0]):
        with pytest.raises(CaseImportError, match="row 3 could not be stored"):
            await store.replace_month(MONTH, [*good, bad], imported_by="duty-2", now=2.0)
        assert counts() == (1, 3)
    assert await store.rows(MONTH) == before
    assert [(r.compound, r.count) for r in before] == [
        ("lotus-court", 2), ("rose-garden", 1), ("玫瑰园", 1)
    ]  # fmt: skip
    # The store still works after a rollback.
    assert (await imp(store, CORRECTED)).version == 2


async def test_a_bad_month_is_a_case_import_error(store: CaseSql) -> None:
    for month in ("2026-13", "2026-1", "٢٠٢٦-11", ""):
        with pytest.raises(CaseImportError):
            await store.import_csv(FIRST, month=month, compounds=COMPOUNDS, imported_by="x", now=1)


# -- hostile files ---------------------------------------------------------------------------


@pytest.fixture
def loop_and_store(tmp_path: Path) -> Iterator[tuple[asyncio.Runner, SqliteCaseStore, Path]]:
    """One store for every example of the property below (opening one per example is slow)."""
    with asyncio.Runner() as runner:
        path = tmp_path / "hostile.db"
        s = runner.run(SqliteCaseStore.open(path))
        try:
            runner.run(
                s.import_csv(FIRST, month=MONTH, compounds=COMPOUNDS, imported_by="a", now=1)
            )
            yield runner, s, path
        finally:
            runner.run(s.close())


HEADER = b"compound,date,category,count\n"
cells = st.sampled_from(
    ["rose-garden", "玫瑰园", "nowhere", "2026-11-03", "2026-11-31", "2026年11月5日", "burglary",
     "入室盗窃", "arson", "1", "-1", "99999", "", '"', '"a""b"', "=cmd|' /c calc'!A1", "\x00",
     "\r", "\uff11", "²"]
)  # fmt: skip
csv_like = st.lists(st.lists(cells, max_size=6).map(",".join), max_size=8).map(
    lambda lines: HEADER + "\n".join(lines).encode("utf-8")
)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(raw=csv_like | st.binary(max_size=400) | st.binary(max_size=200).map(HEADER.__add__))
def test_a_hostile_file_is_refused_with_case_import_error_only_and_changes_nothing(
    loop_and_store: tuple[asyncio.Runner, SqliteCaseStore, Path], raw: bytes
) -> None:
    runner, store, path = loop_and_store
    before = runner.run(store.rows(MONTH))
    imports_before, rows_before = file_counts(path)
    try:
        got = runner.run(
            store.import_csv(raw, month=MONTH, compounds=COMPOUNDS, imported_by="h", now=2)
        )
    except CaseImportError as exc:
        assert exc.status == 400 and exc.reason
        assert runner.run(store.rows(MONTH)) == before
        assert file_counts(path) == (imports_before, rows_before)
    else:
        expected = parse_cases_csv(raw, month=MONTH, compounds=COMPOUNDS)
        assert runner.run(store.rows(MONTH)) == expected
        assert file_counts(path) == (imports_before + 1, rows_before + len(expected))
        assert got.rows == len(expected)


async def test_two_centre_processes_importing_one_month_take_successive_versions(
    pg_dsn: str,
) -> None:
    """Two stores on one PostgreSQL (two hosts' CLIs at once): one version each, in turn."""
    a = await PostgresCaseStore.open(pg_dsn)
    b = await PostgresCaseStore.open(pg_dsn)
    try:
        got = await asyncio.gather(imp(a, FIRST, who="duty-1"), imp(b, CORRECTED, who="duty-2"))
        assert sorted(i.version for i in got) == [1, 2]
        second = max(got, key=lambda i: i.version)
        first = min(got, key=lambda i: i.version)
        assert (second.replaced_version, second.replaced_total) == (1, first.total)
        assert [i.imported_by for i in await b.imports(MONTH)] == [
            first.imported_by,
            second.imported_by,
        ]
    finally:
        await a.close()
        await b.close()
