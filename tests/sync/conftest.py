"""A real centre on loopback TLS, and a provisioned gateway data directory."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from centre.pki import CentrePaths, init_centre
from centre.server import RunningCentre, running_centre
from centre.tokens import hash_token, new_token
from gateway.sync.provision import ProvisionResult, provision


@dataclass
class Centre:
    paths: CentrePaths
    running: RunningCentre
    fingerprint: str

    @property
    def url(self) -> str:
        return self.running.url

    async def token(
        self, compound: str = "Rose Garden", ttl: float = 900.0, township: str = "North"
    ) -> str:
        token = new_token()
        now = time.time()
        await self.running.repo.create_token(hash_token(token), compound, township, now, now + ttl)
        return token


@pytest.fixture(scope="session")
def centre_dir(tmp_path_factory: pytest.TempPathFactory) -> tuple[CentrePaths, str]:
    """One CA per session (key generation is the slow part); each test gets a fresh DB copy."""
    root = tmp_path_factory.mktemp("centre-template")
    paths = CentrePaths(root / "data")
    fp = init_centre(
        paths, hostnames=["localhost"], ips=["127.0.0.1"], now=time.time(), name="Test"
    )
    return paths, fp


@pytest.fixture
async def centre(
    centre_dir: tuple[CentrePaths, str],
    tmp_path: Path,
    centre_backend: str,
    request: pytest.FixtureRequest,
) -> AsyncIterator[Centre]:
    template, fp = centre_dir
    import shutil

    root = tmp_path / "centre"
    shutil.copytree(template.root, root)
    paths = CentrePaths(root)
    if centre_backend == "postgres":
        dsn = request.getfixturevalue("pg_dsn")
        (root / "centre.toml").write_text(f'[database]\ndsn = "{dsn}"\n', encoding="utf-8")
    async with running_centre(paths, host="127.0.0.1", port=0) as running:
        expected = "PostgresRepository" if centre_backend == "postgres" else "SqliteRepository"
        assert type(running.repo).__name__ == expected
        yield Centre(paths, running, fp)


async def enroll(
    centre: Centre, data_dir: Path, gateway_id: str = "gw-rose-01", compound: str = "Rose Garden"
) -> ProvisionResult:
    token = await centre.token(compound)
    return await provision(
        centre.url,
        token,
        data_dir=data_dir,
        gateway_id=gateway_id,
        compound=compound,
        ca_fingerprint=centre.fingerprint,
    )
