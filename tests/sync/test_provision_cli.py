"""``compound-gw provision`` as the lead's CLI will run it: add_cli + handler, real centre."""

from __future__ import annotations

import argparse
import asyncio
import io
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.errors import SyncError
from gateway.sync.cli import add_cli, read_token
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


def token_file(tmp_path: Path, token: str, mode: int = 0o600) -> str:
    path = tmp_path / "token"
    path.write_text(token + "\n")
    path.chmod(mode)
    return str(path)


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
            "--token-file",
            token_file(tmp_path, token),
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
            "--token-file",
            token_file(tmp_path, token),
            "--ca-fingerprint",
            centre.fingerprint,
        ]
    )
    err = capsys.readouterr().err
    assert rc == 1
    assert "provision failed: centre refused: this token is for compound 'Lily Court'" in err
    assert "code=token_wrong_compound" in err


def test_the_token_comes_from_a_0600_file_stdin_or_the_warned_argv_form(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["provision", "--centre", "https://c:8443"]
    args = parser().parse_args([*base, "--token-file", token_file(tmp_path, "cgt-file")])
    assert read_token(args, io.StringIO("ignored\n")) == "cgt-file"
    args = parser().parse_args(base)
    assert read_token(args, io.StringIO("cgt-stdin\nmore\n")) == "cgt-stdin"
    assert capsys.readouterr().err == ""
    args = parser().parse_args([*base, "--token", "cgt-argv"])
    assert read_token(args, io.StringIO("")) == "cgt-argv"
    assert "--token puts the token in `ps`" in capsys.readouterr().err
    args = parser().parse_args(base)
    with pytest.raises(SyncError, match="no enrollment token"):
        read_token(args, io.StringIO(""))


def test_a_token_file_others_can_read_is_refused(tmp_path: Path) -> None:
    args = parser().parse_args(
        ["provision", "--centre", "https://c:8443", "--token-file",
         token_file(tmp_path, "cgt-x", mode=0o644)]
    )  # fmt: skip
    with pytest.raises(SyncError, match="mode 0644; make it 0600"):
        read_token(args, io.StringIO(""))


def test_provision_reads_the_token_from_stdin_not_argv(tmp_path: Path) -> None:
    # As an installer pipes it: nothing on the command line, the token on stdin. The centre is
    # unreachable, so provision fails, but only after it has the token (no "no token" error).
    cfg = write_config(tmp_path)
    out = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "provision", "--config", str(cfg),
         "--centre", "https://127.0.0.1:9"],
        input="cgt-piped\n", capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert out.returncode == 1
    assert "provision failed" in out.stderr and "no enrollment token" not in out.stderr
    assert "cgt-piped" not in out.stdout + out.stderr


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
