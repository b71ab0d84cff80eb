"""Running the centre: the HTTPS listener around :class:`CentreService`, in-process or from the CLI.

async with running_centre(CentrePaths(data), host="127.0.0.1", port=0) as centre:
    centre.url   # https://127.0.0.1:41234
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from centre.announce.library import AnnouncementLibrary
from centre.announce.web import AnnouncementHandlers
from centre.antifraud.monitor import AntifraudMonitor
from centre.antifraud.tables import WalkTables
from centre.app import (
    DEFAULT_INGEST_QUEUE_WAIT_S,
    DEFAULT_MAX_CONCURRENT_INGEST,
    DEFAULT_RETRY_AFTER_S,
    CentreService,
    server_ssl_context,
)
from centre.bulletins.auth import OPERATORS_FILE, OperatorTokens
from centre.bulletins.links import ExplanationLinks
from centre.bulletins.web import BulletinHandlers
from centre.commands.channel import CommandChannel
from centre.commands.issue import load_command_key
from centre.database import (
    open_command_store,
    open_console_store,
    open_explanation_store,
    open_repository,
    open_rollout_store,
    open_survey_store,
    open_video_patrol_store,
)
from centre.errors import CentreError
from centre.faults import server_logger
from centre.media import MediaService, retention_from_env
from centre.pki import CentrePaths
from centre.rollout.pages import RolloutPages
from centre.rollout.service import RolloutService
from centre.store import SqlRepository
from centre.web.console import Console
from centre.web.pages import ConsolePages
from centre.web.video_patrol import CommandLooker, VideoPatrol
from centre.web.video_patrol_pages import VideoPatrolPages

WALKS_DIR = "walks"  # walking-time tables, one <gateway id>.toml each (docs/antifraud.md)


@dataclass(slots=True)
class RunningCentre:
    service: CentreService
    repo: SqlRepository  # SQLite by default, PostgreSQL when configured (centre/database.py)
    commands: CommandChannel
    host: str
    port: int
    app: web.Application | None = None  # every route it serves (tests walk them)
    console: ConsolePages | None = None  # the operators' web console under /console
    rollouts: RolloutService | None = None  # software rollouts to the gateways
    media: MediaService | None = None  # evidence images uploaded by the gateways

    @property
    def url(self) -> str:
        return f"https://{self.host}:{self.port}"


@contextlib.asynccontextmanager
async def running_centre(
    paths: CentrePaths,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    max_concurrent_ingest: int = DEFAULT_MAX_CONCURRENT_INGEST,
    retry_after_s: int = DEFAULT_RETRY_AFTER_S,
    media_retention_s: float | None = None,
    reuse_port: bool = False,
    ingest_queue_wait_s: float = DEFAULT_INGEST_QUEUE_WAIT_S,
) -> AsyncIterator[RunningCentre]:
    """Serve until the block exits; port 0 picks a free one (see ``.port``). Images are kept
    ``media_retention_s`` (default: ``COMPOUND_CENTRE_MEDIA_RETENTION_DAYS``, else 30 days).
    ``reuse_port`` sets SO_REUSEPORT: several centre processes on one PostgreSQL may then
    listen on one port of one host, the kernel spreading connections among them
    (docs/scale.md)."""
    repo = await open_repository(paths)
    store = await open_explanation_store(paths)
    command_store = await open_command_store(paths)
    console_store = await open_console_store(paths)
    survey = await open_survey_store(paths)
    rollout_store = await open_rollout_store(paths)
    patrol_store = await open_video_patrol_store(paths)
    try:
        service = CentreService(
            repo,
            paths,
            max_concurrent_ingest=max_concurrent_ingest,
            retry_after_s=retry_after_s,
            antifraud=AntifraudMonitor(repo, walks=WalkTables(paths.root / WALKS_DIR)),
            ingest_queue_wait_s=ingest_queue_wait_s,
        )
        app = service.make_app()
        bulletins = BulletinHandlers(
            repo,
            store,
            OperatorTokens.load(paths.root / OPERATORS_FILE),
            tz=os.environ.get("COMPOUND_CENTRE_TZ", "Asia/Shanghai"),
            links=ExplanationLinks.load_or_create(paths.root),
            survey=survey,
            findings=patrol_store,
        )
        app.add_routes(bulletins.routes())
        media = MediaService(
            repo,
            paths.root / "media",
            authenticate=service._authenticated_gateway,
            retention_s=retention_from_env() if media_retention_s is None else media_retention_s,
        )
        app.add_routes(media.routes())
        app.add_routes(
            AnnouncementHandlers(
                AnnouncementLibrary(paths.root),
                service,
                OperatorTokens.load(paths.root / OPERATORS_FILE),
            ).routes()
        )
        commands = CommandChannel(service, command_store)
        commands.install(app)
        tz = os.environ.get("COMPOUND_CENTRE_TZ", "Asia/Shanghai")
        console = ConsolePages(
            Console(console_store), service, command_store, commands, paths, tz=tz
        )
        console.install(app)
        rollouts = RolloutService(rollout_store, repo, service, paths.root, wall=time.time)
        app.add_routes(rollouts.routes())
        service.ingest_listeners.append(rollouts.on_ingest)
        RolloutPages(console, rollouts).install(app)
        try:
            command_key: Ed25519PrivateKey | None = load_command_key(paths)
        except CentreError:
            command_key = None  # look-now is refused in words; the rest of the console works
        patrol = VideoPatrol(patrol_store, CommandLooker(command_store, repo, command_key))
        VideoPatrolPages(console, patrol).install(app)
        media.holds.append(patrol_store.held_hashes)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0, logger=server_logger())
        await runner.setup()
        sweeper = asyncio.create_task(media.run_retention(), name="centre-media-retention")
        try:
            site = web.TCPSite(
                runner,
                host,
                port,
                ssl_context=server_ssl_context(paths),
                reuse_port=reuse_port or None,
            )
            await site.start()
            bound = runner.addresses[0][1]
            yield RunningCentre(
                service, repo, commands, host, int(bound), app, console, rollouts, media
            )
        finally:
            sweeper.cancel()
            await asyncio.gather(sweeper, return_exceptions=True)
            await runner.cleanup()
            await rollouts.close()
    finally:
        await patrol_store.close()
        await rollout_store.close()
        await survey.close()
        await console_store.close()
        await command_store.close()
        await store.close()
        await repo.close()
