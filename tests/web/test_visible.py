"""Pages show words, not data structures: no epoch numbers, Python reprs or field names, in
either language; the checker itself catches each of them."""

from __future__ import annotations

import pytest

from tests.web.conftest import Site, rich_board
from tests.web.visible import visible_text, what_should_not_be_seen


@pytest.mark.parametrize(
    ("html", "problem"),
    [
        ("<p>since 1790000123</p>", "epoch number 1790000123"),
        ("<td>1790000123.25</td>", "epoch number 1790000123"),
        ("<td>verified=True</td>", "Python repr True"),
        ("<td>relays=['relays-1:0']</td>", "Python repr =["),
        ("<dd>{'a': 1}</dd>", "Python repr {'"),
        ("<dt>synced_floor</dt>", "field name synced_floor"),
        ("<th>sc_active</th>", "field name sc_active"),
    ],
)
def test_the_checker_catches_each_kind(html: str, problem: str) -> None:
    assert problem in what_should_not_be_seen(html)


def test_the_checker_reads_only_visible_text() -> None:
    html = (
        '<html><head><style>a_b {}</style></head><body><a href="/x_y?lang=en" '
        'class="snake_case">Readers 12:30</a><p>bus 1,234 17900</p></body></html>'
    )
    assert visible_text(html) == "Readers 12:30 bus 1,234 17900"
    assert what_should_not_be_seen(html) == []


PAGES = ("/", "/login", "/?lang=en", "/?lang=zh-CN", "/login?lang=zh-CN")


@pytest.mark.parametrize("path", PAGES)
async def test_no_page_shows_data_structures(site: Site, path: str) -> None:
    await rich_board(site)
    async with site.session() as http, http.get(path) as resp:
        assert resp.status == 200
        page = await resp.text()
    assert what_should_not_be_seen(page) == []
    # Refusal pages too.
    async with site.session() as http, http.post("/alerts/ack", data={}) as resp:
        assert resp.status == 403
        assert what_should_not_be_seen(await resp.text()) == []
