"""The monthly bulletin as PDF (headless Chromium) with Chinese text, and its first page as a PNG
(pdftoppm) under artifacts/; the PNG is checked for ink, not just for existing."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from centre.bulletins import render
from centre.bulletins.explanations import SqliteExplanationStore
from centre.bulletins.pdf import PdfError, first_page_png, html_to_pdf
from centre.bulletins.source import build_monthly
from centre.store import SqliteRepository
from tests.bulletins.helpers import NOV_1, registry, upload
from tests.bulletins.test_monthly import gateway_events
from tests.chromium import ARTIFACTS, needs_chromium, png_facts

needs_poppler = pytest.mark.skipif(
    shutil.which("pdftoppm") is None or shutil.which("pdftotext") is None,
    reason="poppler-utils missing: make bootstrap installs it",
)
pytestmark = [needs_chromium, needs_poppler]


def poppler(*argv: str) -> str:
    done = subprocess.run(argv, capture_output=True, timeout=120, check=True)
    return done.stdout.decode("utf-8", "replace")


def ink(pdf: Path, tmp: Path) -> tuple[int, int]:
    """(dark pixels, all pixels) of the first page rendered grey at 50 dpi (a raw PGM)."""
    poppler("pdftoppm", "-gray", "-r", "50", "-f", "1", "-l", "1", "-singlefile", str(pdf),
            str(tmp / "ink"))  # fmt: skip
    data = (tmp / "ink.pgm").read_bytes()
    # P5 header: magic, width, height, maxval, each followed by one whitespace byte.
    magic, width, height, maxval, pixels = data.split(maxsplit=4)
    assert (magic, maxval) == (b"P5", b"255")
    n = int(width) * int(height)
    return sum(1 for b in pixels[:n] if b < 128), n


@pytest.fixture
async def chinese_month(
    tmp_path: Path,
) -> AsyncIterator[tuple[SqliteRepository, SqliteExplanationStore]]:
    repo = await registry(
        tmp_path,
        [("gw-rose", "玫瑰园小区", "城关镇"), ("gw-lotus", "荷花苑", "城关镇"),
         ("gw-bamboo", "竹林小区", "南山镇")],
    )  # fmt: skip
    store = await SqliteExplanationStore.open(tmp_path / "bulletins.db")
    try:
        await upload(repo, "gw-rose", gateway_events(), now=NOV_1 + 86400, batch="oct")
        yield repo, store
    finally:
        await store.close()
        await repo.close()


async def test_monthly_bulletin_pdf_with_chinese_and_its_first_page_png(
    chinese_month: tuple[SqliteRepository, SqliteExplanationStore], tmp_path: Path
) -> None:
    repo, store = chinese_month
    bulletin = await build_monthly(repo, store, "2026-10", now=NOV_1 + 3 * 86400)
    pdf = ARTIFACTS / "bulletin-monthly-2026-10.pdf"
    png = ARTIFACTS / "bulletin-monthly-2026-10-page1.png"
    for old in (pdf, png):
        old.unlink(missing_ok=True)

    assert await html_to_pdf(render.monthly_html(bulletin), pdf) == pdf
    assert await first_page_png(pdf, png) == png

    data = pdf.read_bytes()
    assert data.startswith(b"%PDF-") and b"%%EOF" in data[-64:]
    info = dict(
        line.split(":", 1) for line in poppler("pdfinfo", str(pdf)).splitlines() if ":" in line
    )
    pages = int(info["Pages"])
    assert pages >= 1
    assert "A4" in info["Page size"] or "595" in info["Page size"], info["Page size"]
    # Chinese is text in the PDF (extractable), drawn with a CJK font that was embedded.
    text = poppler("pdftotext", "-layout", str(pdf), "-")
    for words in (
        "玫瑰园小区",
        "荷花苑",
        "竹林小区",
        "城关镇",
        "南山镇",
        "月通报 2026-10",
    ):
        assert words in text, (words, text[:500])
    fonts = poppler("pdffonts", str(pdf))
    assert any(
        name in fonts for name in ("WenQuanYi", "WenQuan", "NotoSansCJK", "Noto Sans CJK")
    ), fonts

    width, height, distinct = png_facts(png.read_bytes())
    # A4 at 100 dpi is 827 x 1169 pixels.
    assert (abs(width - 827) <= 2, abs(height - 1169) <= 2) == (True, True), (width, height)
    assert distinct > 64, distinct
    dark, total = ink(pdf, tmp_path)
    # Tables and text: well over 0.5 % of the page is ink; a blank page has none.
    assert dark > total // 200, (dark, total)


async def test_failures_are_pdf_errors(tmp_path: Path) -> None:
    with pytest.raises(PdfError, match=r"failed with status|wrote no PDF"):
        await html_to_pdf("<p>x</p>", tmp_path / "x.pdf", chromium="/bin/false")
    hangs = tmp_path / "hangs"
    hangs.write_text("#!/bin/sh\nsleep 60\n")
    hangs.chmod(0o700)
    with pytest.raises(PdfError, match="did not finish"):
        await html_to_pdf("<p>x</p>", tmp_path / "x.pdf", chromium=str(hangs), timeout_s=0.5)
    not_pdf = tmp_path / "not.pdf"
    not_pdf.write_bytes(b"%PDF-1.7 but nothing else")
    with pytest.raises(PdfError):
        await first_page_png(not_pdf, tmp_path / "x.png")
    with pytest.raises(PdfError, match=r"must end in \.png"):
        await first_page_png(not_pdf, tmp_path / "x.jpg")
    assert not (tmp_path / "x.pdf").exists() and not (tmp_path / "x.png").exists()
