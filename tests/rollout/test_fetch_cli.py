"""The whole path of a rollout, with the real command a gateway runs: an officer's release is
offered, ``compound-gw update fetch --install`` fetches it by hash over the gateway's mTLS
link, verifies and installs it (fake versions at the process boundary, tests/update/fakes.py),
the update events go through the daemon's update-events service into the journal and up to
the centre, and the console shows "installed"; a release that crashes at start is rolled
back and shown "rolled back", and the rollout stops itself (limit 0)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from centre.rollout import machine
from gateway.update.bundle import public_key_hex
from gateway.update.outbox import OUTBOX_NAME, UpdateEventsService
from tests.console.district import District, running_district, wait_until
from tests.rollout.rig import gateway_dir, place_release
from tests.update.fakes import version_files

pytestmark = pytest.mark.timeout(600)
ROSE = ("gw-rose-01", "North", "Rose Garden")


@pytest.fixture
async def district(tmp_path: Path) -> AsyncIterator[District]:
    async with running_district(tmp_path, [ROSE]) as d:
        yield d


async def gw_cli(*args: str, cwd: Path) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway.cli", *args, cwd=cwd,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "FAKE_GW_LIFETIME": "30"},
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 180)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_fetch_install_and_rollback_reach_the_console(
    district: District, tmp_path: Path
) -> None:
    key = Ed25519PrivateKey.generate()
    pub = tmp_path / "update-key.pub"
    pub.write_text(public_key_hex(key) + "\n")
    gw_id, _township, compound = ROSE
    data = gateway_dir(tmp_path, gw_id)
    cfg = tmp_path / "gateway.toml"
    cfg.write_text(f'[gateway]\nid = "{gw_id}"\ncompound = "{compound}"\ndata_dir = "{data}"\n')
    common = ["--config", str(cfg), "--root", str(tmp_path / "opt"), "--trusted-key", str(pub)]
    common += ["--hardware", "rpi4", "--ready-timeout", "20", "--settle", "0.3", "--rate", "0"]
    service = district.running.rollouts
    assert service is not None
    events = UpdateEventsService(district.gateways[gw_id].journal, data / OUTBOX_NAME)

    async def stage(rollout_id: str) -> str:
        (t,) = await service.store.targets(rollout_id=rollout_id)
        return t.stage

    try:
        code, out, _ = await gw_cli("update", "fetch", "--json", *common, cwd=tmp_path)
        assert code == 0 and json.loads(out) == {"result": "no_offer"}

        good = place_release(district, tmp_path, key, 1, version_files("1.1.0", "good"))
        ro = await service.publish(
            service.releases.get(good), [gw_id], scope="one", max_rollbacks=0, created_by="t"
        )
        code, out, err = await gw_cli(
            "--lang", "zh-CN", "update", "fetch", "--install", *common, cwd=tmp_path
        )
        assert code == 0, err
        assert "已安装并正在运行" in out
        assert await events.drain_once() == 3  # downloaded, started, installed

        async def installed() -> bool:
            return await stage(ro.rollout_id) == machine.INSTALLED

        await wait_until(installed, "the centre shows installed")

        crash = place_release(district, tmp_path, key, 2, version_files("1.2.0", "crash"))
        ro2 = await service.publish(
            service.releases.get(crash), [gw_id], scope="one", max_rollbacks=0, created_by="t"
        )
        code, _, err = await gw_cli(
            "--lang", "zh-CN", "update", "fetch", "--install", *common, cwd=tmp_path
        )
        assert code == 1 and "已回退" in err
        assert await events.drain_once() == 3  # downloaded, started, rolled_back

        async def halted() -> bool:
            r = await service.store.rollout(ro2.rollout_id)
            return await stage(ro2.rollout_id) == machine.ROLLED_BACK and (
                r is not None and r.state == machine.HALTED
            )

        await wait_until(halted, "rolled back and the rollout stopped (limit 0)")
        # nothing is offered any more: the first rollout is final here, the second stopped
        code, out, _ = await gw_cli("update", "fetch", "--json", *common, cwd=tmp_path)
        assert code == 0 and json.loads(out) == {"result": "no_offer"}
    finally:
        pid_file = tmp_path / "opt" / "run.pid"
        if pid_file.exists():
            try:
                os.killpg(int(pid_file.read_text()), 9)
            except (ProcessLookupError, ValueError):
                pass
