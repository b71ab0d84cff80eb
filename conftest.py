"""Options shared by every test folder."""

from __future__ import annotations

import os

import pytest

# Tests read the gateway's English source strings unless they ask for another language
# (monkeypatch COMPOUND_GW_LANG); tests/i18n checks that people get zh-CN by default.
os.environ["COMPOUND_GW_LANG"] = "en"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--slow",
        action="store_true",
        default=False,
        help="also run slow soak and fault loops (tests marked 'slow')",
    )
    parser.addoption(
        "--bench",
        action="store",
        default=None,
        help="bench file for hil_tests (default: hil_tests/benches/sim.toml, all simulated)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.slow = config.getoption("--slow")  # type: ignore[attr-defined]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--slow"):
        return
    skip = pytest.mark.skip(reason="slow: run with --slow (make test-slow)")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
