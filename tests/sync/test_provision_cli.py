"""``compound-gw provision`` as the lead's CLI will run it: add_cli + handler, real centre."""

from __future__ import annotations

import argparse
import asyncio
import stat
from pathlib import Path

import pytest

from gateway.sync.cli import add_cli
from gateway.sync.uploader import describe_link, read_link_state
from tests.sync.conftest import Centre


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="compound-gw")
    add_cli(p.add_subparsers(dest="command", required=True))
    return p


def write_config(tmp_path: Path, compound: str = "Rose Garden") -> Path:
    cfg = tmp_path / "gateway.toml"
    cfg.write_text(f'[gateway]\nid = "gw-cli-01"\ncompound = "{compound}"\ndata_dir = "data"\n')
    return cfg


async def run(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    return await asyncio.to_thread(args.handler, args)  # the handler runs its own event loop


async def test_provision_command(
    centre: Centre, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = write_config(tmp_path)
    token = await centre.token("Rose Garden")
    rc = await run(
        [
            "provision",
            "--config",
            str(cfg),
            "--centre",
            centre.url,
            "--token",
            token,
            "--ca-fingerprint",
            f"sha256:{centre.fingerprint}",
        ]
    )
    out = capsys.readouterr()
    assert rc == 0, out.err
    assert "provisioned gw-cli-01 for 'Rose Garden'" in out.out
    key = tmp_path / "data" / "sync" / "gateway-key.pem"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert key.read_text().splitlines()[1] not in out.out + out.err


async def test_provision_command_reports_refusal(
    centre: Centre, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = write_config(tmp_path)
    token = await centre.token("Lily Court")
    rc = await run(
        [
            "provision",
            "--config",
            str(cfg),
            "--centre",
            centre.url,
            "--token",
            token,
            "--ca-fingerprint",
            centre.fingerprint,
        ]
    )
    err = capsys.readouterr().err
    assert rc == 1
    assert "provision failed: centre refused: this token is for compound 'Lily Court'" in err
    assert "code=token_wrong_compound" in err


def test_link_state_for_status() -> None:
    status = {
        "gateway": "gw-01",
        "sync": {
            "link": "down",
            "centre": "https://c:8443",
            "backlog": 12,
            "last_error": "link error: refused",
            "retry_in_s": 3.5,
        },
    }
    link = read_link_state(status)
    assert link is not None
    assert describe_link(link) == (
        "link down to https://c:8443; backlog 12; last error: link error: refused; retry in 3.5 s"
    )
    assert read_link_state({"gateway": "gw-01"}) is None
