"""``compound-centre token create`` prints the token once, and no command line that holds it.

A ready-made ``compound-gw provision ... --token cgt-...`` line gets pasted into a shell, and
the token then sits in ``ps`` and the shell history of the gateway.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from centre.cli import main


def test_token_create_prints_no_command_line_with_the_token(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = str(tmp_path / "c")
    assert main(["--data", data, "init", "--hostname", "centre.test", "--ip", "127.0.0.1"]) == 0
    capsys.readouterr()
    assert main(["--data", data, "token", "create", "--compound", "Rose"]) == 0
    out = capsys.readouterr().out
    token_lines = [line for line in out.splitlines() if "cgt-" in line]
    assert len(token_lines) == 1 and token_lines[0].startswith("token:"), out
    provision = [line for line in out.splitlines() if "compound-gw provision" in line]
    assert provision and "--token" not in provision[0] and "cgt-" not in provision[0]
