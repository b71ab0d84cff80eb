"""The monthly bulletin as a print-ready PDF, and its first page as a PNG for a quick look.

    pdf = await html_to_pdf(render.monthly_html(bulletin), out_dir / "monthly-2026-10.pdf")
    png = await first_page_png(pdf, out_dir / "monthly-2026-10-page1.png")

The PDF is the bulletin's own HTML page printed by Debian's headless Chromium (``chromium``,
already what the project uses to check its pages), so the paper and the screen come from one
page and its ``@media print`` rules, and no second layout engine is installed on the centre.
Chinese needs a CJK font on the machine (``make bootstrap`` installs fonts-wqy-zenhei; a centre
install needs fonts-noto-cjk or fonts-wqy-zenhei). The first page becomes a PNG with poppler's
``pdftoppm``.

Chromium runs once per document with a throwaway profile, in its own process
group that is killed afterwards, with a time limit. The page is our own escaped HTML without
script; Chromium's sandbox is turned off (``--no-sandbox``) because a service account in a
container usually cannot create it, which is acceptable for a page with nothing to execute.
Every failure is a :class:`PdfError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import tempfile
from pathlib import Path
from typing import Final

from centre.errors import CentreError

DEFAULT_TIMEOUT_S: Final = 120.0
PNG_DPI: Final = 100


class PdfError(CentreError):
    """Making the PDF or its PNG failed (tool missing, crashed, timed out, empty output)."""

    status = 503
    code = "pdf_failed"


def find_tool(*names: str) -> str | None:
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    return None


async def _run(argv: list[str], timeout_s: float) -> None:
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,  # Chromium's helpers share the group: one kill ends them all
    )
    try:
        _, err = await asyncio.wait_for(proc.communicate(), timeout_s)
    except TimeoutError:
        raise PdfError(f"{Path(argv[0]).name} did not finish within {timeout_s:.0f} s") from None
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        if proc.returncode is None:
            await proc.wait()
    if proc.returncode != 0:
        tail = err.decode("utf-8", "replace").strip().splitlines()[-3:]
        raise PdfError(
            f"{Path(argv[0]).name} failed with status {proc.returncode}: {' | '.join(tail)}"
        )


def _replace_atomically(tmp: Path, out: Path) -> None:
    os.chmod(tmp, 0o640)
    os.replace(tmp, out)


async def html_to_pdf(
    html: str,
    out: Path,
    *,
    chromium: str | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> Path:
    """Print ``html`` (a self-contained page) to ``out`` as PDF (A4, no header or footer)."""
    exe = chromium or find_tool("chromium", "chromium-browser")
    if exe is None:
        raise PdfError("chromium is not installed (Debian package: chromium)")
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bulletin-pdf-") as tmp:
        page = Path(tmp) / "page.html"
        page.write_text(html, encoding="utf-8")
        printed = Path(tmp) / "page.pdf"
        await _run(
            [
                exe,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                f"--user-data-dir={Path(tmp) / 'profile'}",
                "--no-pdf-header-footer",
                f"--print-to-pdf={printed}",
                page.as_uri(),
            ],
            timeout_s,
        )
        if not printed.is_file() or not printed.read_bytes()[:5] == b"%PDF-":
            raise PdfError("chromium wrote no PDF")
        tmp_out = out.with_name(f".{out.name}.tmp")
        shutil.move(printed, tmp_out)
    _replace_atomically(tmp_out, out)
    return out


async def first_page_png(
    pdf: Path, out: Path, *, dpi: int = PNG_DPI, timeout_s: float = DEFAULT_TIMEOUT_S
) -> Path:
    """The first page of ``pdf`` as a PNG at ``out`` (poppler's pdftoppm)."""
    exe = find_tool("pdftoppm")
    if exe is None:
        raise PdfError("pdftoppm is not installed (Debian package: poppler-utils)")
    if out.suffix != ".png":
        raise PdfError(f"{out} must end in .png")
    out.parent.mkdir(parents=True, exist_ok=True)
    root = out.with_name(f".{out.stem}.tmp")  # pdftoppm adds ".png"
    await _run(
        [exe, "-png", "-r", str(dpi), "-f", "1", "-l", "1", "-singlefile", str(pdf), str(root)],
        timeout_s,
    )
    made = root.with_name(root.name + ".png")
    if not made.is_file():
        raise PdfError("pdftoppm wrote no PNG")
    _replace_atomically(made, out)
    return out


__all__ = ["PdfError", "first_page_png", "html_to_pdf"]
