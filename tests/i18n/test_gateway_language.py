"""The gateway's language: zh-CN by default, from config, environment or --lang, validated."""

from __future__ import annotations

import contextvars

import pytest

from gateway import i18n as gi18n
from gateway.config import GatewaySection, parse_section
from gateway.errors import ConfigError


def test_default_is_simplified_chinese(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(gi18n.ENV_VAR, raising=False)
    assert gi18n.choose_language() == "zh-CN"
    assert contextvars.Context().run(gi18n.get_language) == "zh-CN"


def test_precedence_flag_then_environment_then_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(gi18n.ENV_VAR, raising=False)
    assert gi18n.choose_language(configured="en") == "en"
    monkeypatch.setenv(gi18n.ENV_VAR, "zh_CN")
    assert gi18n.choose_language(configured="en") == "zh-CN"
    assert gi18n.choose_language(configured="en", requested="en-GB") == "en"
    # A typo is skipped, never a page without words.
    assert gi18n.choose_language(configured="en", requested="klingon") == "zh-CN"


def test_set_language_switches_underscore_and_refuses_unknown() -> None:
    def run() -> tuple[str, str]:
        gi18n.set_language("en")
        first = gi18n.get_language()
        gi18n.set_language("zh")
        return first, gi18n.get_language()

    assert contextvars.Context().run(run) == ("en", "zh-CN")
    with pytest.raises(ValueError, match="not a supported language"):
        gi18n.set_language("fr")


def test_config_key_defaults_to_zh_cn_and_is_validated() -> None:
    base = {"id": "gw-1", "compound": "Lotus Garden"}
    assert parse_section(GatewaySection, base, "gateway").language == "zh-CN"
    assert parse_section(GatewaySection, {**base, "language": "en"}, "gateway").language == "en"
    with pytest.raises(ConfigError) as err:
        parse_section(GatewaySection, {**base, "language": "fr"}, "gateway")
    assert err.value.key == "gateway.language"
