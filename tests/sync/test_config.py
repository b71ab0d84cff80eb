"""The [sync] config section: defaults, limits, errors naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config.schema import dump_section, parse_section
from gateway.errors import ConfigError
from gateway.sync.config import SyncPaths, SyncSection


def test_defaults_round_trip() -> None:
    s = SyncSection()
    assert parse_section(SyncSection, dump_section(s), "sync") == s
    p = SyncPaths.from_section(s, Path("/var/lib/gw"))
    assert p.key == Path("/var/lib/gw/sync/gateway-key.pem") and not p.provisioned()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"centre_url": "http://centre:8080"}, "sync.centre_url: must start with https://"),
        ({"batch_max_events": 0}, "sync.batch_max_events: 0 is outside 1..10000"),
        (
            {"backoff_initial_s": 10.0, "backoff_max_s": 5.0},
            "sync.backoff_max_s: must not be below",
        ),
        ({"batch_size": 5}, "sync.batch_size: unknown key"),
        ({"media_daily_budget_bytes": -1}, "sync.media_daily_budget_bytes: -1 is outside"),
        ({"media_daily_budget_bytes": "4G"}, "sync.media_daily_budget_bytes:"),
        ({"media_chunk_bytes": 10}, "sync.media_chunk_bytes: 10 is outside"),
    ],
)
def test_errors_name_the_key(data: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_section(SyncSection, data, "sync")
    assert str(info.value).startswith(message)
