"""Which database holds the centre's main repository: SQLite (the default) or PostgreSQL.

The choice is a DSN, from ``$COMPOUND_CENTRE_DATABASE`` if set, else from ``centre.toml`` in
the data directory::

    [database]
    dsn = "postgresql://centre@db.district.example/centre"

Without either, the main repository is ``centre.db`` in the data directory, as always. A DSN
may carry a password (better: ``~/.pgpass`` or ``PGPASSFILE``); it is never logged or printed,
only :func:`describe` (the DSN with its password masked). psycopg is imported only when a
PostgreSQL DSN is configured (the ``postgres`` extra: ``pip install 'compound-gateway[postgres]'``).

    repo = await open_repository(paths)      # SqliteRepository or PostgresRepository
    store = await open_command_store(paths)  # the command queue, on the same database
"""

from __future__ import annotations

import importlib
import logging
import os
import re
import tomllib
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from centre.errors import CentreError
from centre.pki import CentrePaths
from centre.store import SqliteRepository, SqlRepository, migrate_sqlite, sqlite_schema_version

if TYPE_CHECKING:
    from centre.bulletins.case_store import CaseSql
    from centre.bulletins.explanations import ExplanationStore
    from centre.bulletins.survey_store import SurveySql
    from centre.commands.store import CommandRepository
    from centre.rollout.store import RolloutSql
    from centre.web.store import ConsoleStore
    from centre.web.video_patrol import VideoPatrolSql

log = logging.getLogger("centre.database")

DATABASE_ENV: Final = "COMPOUND_CENTRE_DATABASE"
CONFIG_FILE: Final = "centre.toml"


_KV_PASSWORD: Final = re.compile(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)")


def is_postgres_dsn(database: str | None) -> bool:
    """True for a PostgreSQL URI (``postgresql://``, ``postgres://``) or key=value DSN."""
    if not database:
        return False
    return database.startswith(("postgresql://", "postgres://")) or "=" in database


def redact_dsn(dsn: str) -> str:
    """The DSN as it may be shown or logged: its password (in the URI's user info, a
    ``password=`` query parameter, or a key=value pair) replaced by ``***``."""
    if dsn.startswith(("postgresql://", "postgres://")):
        try:
            parts = urlsplit(dsn)
            netloc = parts.netloc
            if "@" in netloc:
                userinfo, host = netloc.rsplit("@", 1)
                if ":" in userinfo:
                    userinfo = userinfo.split(":", 1)[0] + ":***"
                netloc = f"{userinfo}@{host}"
            query = urlencode(
                [(k, "***" if k == "password" else v) for k, v in parse_qsl(parts.query)],
                safe="*",
            )
            return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
        except ValueError:
            return "<a PostgreSQL URI that does not parse>"
    return _KV_PASSWORD.sub(r"\1***", dsn)


def database_dsn(paths: CentrePaths) -> str | None:
    """The configured PostgreSQL DSN, or None for the SQLite default."""
    dsn = os.environ.get(DATABASE_ENV, "").strip()
    if not dsn:
        config = paths.root / CONFIG_FILE
        if not config.exists():
            return None
        try:
            data = tomllib.loads(config.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise CentreError(f"{config}: cannot read it: {exc}") from None
        section = data.get("database", {})
        if not isinstance(section, dict) or not isinstance(section.get("dsn", ""), str):
            raise CentreError(f"{config}: [database] dsn must be a string")
        dsn = str(section.get("dsn", "")).strip()
    if not dsn or dsn.startswith("sqlite"):
        return None
    if not is_postgres_dsn(dsn):
        raise CentreError(
            "the database setting must be a PostgreSQL DSN (postgresql://... or key=value ...);"
            " leave it unset for SQLite"
        )
    return dsn


def describe(paths: CentrePaths) -> str:
    """Where the main repository is, fit to log or print (no password)."""
    dsn = database_dsn(paths)
    if dsn is None:
        return f"SQLite {paths.database}"
    return f"PostgreSQL {redact_dsn(dsn)}"


def _pg() -> object:
    try:
        import centre.pg_store as pg
    except ImportError as exc:
        raise CentreError(
            f"the centre's database is PostgreSQL but psycopg is missing ({exc}): "
            "pip install 'compound-gateway[postgres]'"
        ) from None
    return pg


async def open_repository(paths: CentrePaths) -> SqlRepository:
    """The main repository the centre is configured for, schema brought up to date."""
    dsn = database_dsn(paths)
    if dsn is None:
        return await SqliteRepository.open(paths.database)
    _pg()
    from centre.pg_store import PostgresRepository

    log.info("main repository: %s", describe(paths))
    return await PostgresRepository.open(dsn)


def schema_versions(paths: CentrePaths) -> dict[str, tuple[int, int]]:
    """Each versioned store's (schema version now, version this code brings it to)."""
    from centre.store import SCHEMA_VERSION

    dsn = database_dsn(paths)
    if dsn is None:
        return {"main": (sqlite_schema_version(paths.database), SCHEMA_VERSION)}
    _pg()
    from centre.bulletins import pg_store as bulletins
    from centre.pg_store import PG_SCHEMA_VERSION, pg_schema_version
    from centre.rollout import pg_store as rollouts
    from centre.web import pg_store as console

    return {
        "main": (pg_schema_version(dsn), PG_SCHEMA_VERSION),
        console.STORE: (pg_schema_version(dsn, console.STORE), console.CONSOLE_PG_SCHEMA_VERSION),
        bulletins.STORE: (
            pg_schema_version(dsn, bulletins.STORE),
            bulletins.BULLETINS_PG_SCHEMA_VERSION,
        ),
        rollouts.STORE: (
            pg_schema_version(dsn, rollouts.STORE),
            rollouts.ROLLOUTS_PG_SCHEMA_VERSION,
        ),
    }


def migrate(paths: CentrePaths) -> dict[str, tuple[int, int]]:
    """Apply every pending migration; each store's (version before, version after)."""
    dsn = database_dsn(paths)
    if dsn is None:
        from centre.sqlite_worker import connect_durable

        db = connect_durable(paths.database)
        try:
            return {"main": migrate_sqlite(db)}
        finally:
            db.close()
    _pg()
    from centre.bulletins import pg_store as bulletins
    from centre.pg_store import pg_migrate
    from centre.rollout import pg_store as rollouts
    from centre.web import pg_store as console

    return {
        "main": pg_migrate(dsn),
        console.STORE: pg_migrate(
            dsn, store=console.STORE, migrations=console.CONSOLE_PG_MIGRATIONS
        ),
        bulletins.STORE: pg_migrate(
            dsn, store=bulletins.STORE, migrations=bulletins.BULLETINS_PG_MIGRATIONS
        ),
        rollouts.STORE: pg_migrate(
            dsn, store=rollouts.STORE, migrations=rollouts.ROLLOUTS_PG_MIGRATIONS
        ),
    }


async def open_command_store(paths: CentrePaths) -> CommandRepository:
    """The command queue on the same database as the main repository: the SQLite store in
    ``centre.db``, or the PostgreSQL store (NOTIFY on queue) when a DSN is configured."""
    from centre.commands.store import SqliteCommandStore

    dsn = database_dsn(paths)
    if dsn is None:
        return await SqliteCommandStore.open(paths.database)
    _pg()
    from centre.commands.pg_store import PostgresCommandStore

    return await PostgresCommandStore.open(dsn)


async def _open_store(
    paths: CentrePaths, sqlite: tuple[str, str, str], postgres: tuple[str, str]
) -> Any:
    """A store on whichever database the centre is configured for: ``sqlite`` is (module,
    class, file in the data directory), ``postgres`` (module, class). Both are imported only
    when chosen (psycopg only with a DSN)."""
    dsn = database_dsn(paths)
    if dsn is None:
        module, name, filename = sqlite
        return await getattr(importlib.import_module(module), name).open(paths.root / filename)
    _pg()
    module, name = postgres
    return await getattr(importlib.import_module(module), name).open(dsn)


async def open_console_store(paths: CentrePaths) -> ConsoleStore:
    """The console's accounts, sessions, audit log, acks and assignments: ``console.db`` in
    the data directory, or the centre's PostgreSQL when a DSN is configured (then every centre
    process and host shares them: a login on one is good on the others)."""
    store: ConsoleStore = await _open_store(
        paths,
        ("centre.web.store", "SqliteConsoleStore", "console.db"),
        ("centre.web.pg_store", "PostgresConsoleStore"),
    )
    return store


async def open_explanation_store(paths: CentrePaths) -> ExplanationStore:
    """Explanations of missed rounds: ``bulletins.db`` in the data directory, or the centre's
    PostgreSQL when a DSN is configured (then shared by every centre process and host)."""
    store: ExplanationStore = await _open_store(
        paths,
        ("centre.bulletins.explanations", "SqliteExplanationStore", "bulletins.db"),
        ("centre.bulletins.pg_store", "PostgresExplanationStore"),
    )
    return store


async def open_video_patrol_store(paths: CentrePaths) -> VideoPatrolSql:
    """Video patrol sessions and verdicts: ``console.db`` in the data directory, or the
    centre's PostgreSQL when a DSN is configured (shared by every centre process)."""
    store: VideoPatrolSql = await _open_store(
        paths,
        ("centre.web.video_patrol", "SqliteVideoPatrolStore", "console.db"),
        ("centre.web.pg_store", "PostgresVideoPatrolStore"),
    )
    return store


async def open_case_store(paths: CentrePaths) -> CaseSql:
    """The month's case imports: ``bulletins.db`` in the data directory, or the centre's
    PostgreSQL when a DSN is configured (one versioned history for every host)."""
    store: CaseSql = await _open_store(
        paths,
        ("centre.bulletins.case_store", "SqliteCaseStore", "bulletins.db"),
        ("centre.bulletins.pg_store", "PostgresCaseStore"),
    )
    return store


async def open_survey_store(paths: CentrePaths) -> SurveySql:
    """The resident survey (contact list, draws, call sheet): ``bulletins.db`` in the data
    directory, or the centre's PostgreSQL when a DSN is configured."""
    store: SurveySql = await _open_store(
        paths,
        ("centre.bulletins.survey_store", "SqliteSurveyStore", "bulletins.db"),
        ("centre.bulletins.pg_store", "PostgresSurveyStore"),
    )
    return store


async def open_rollout_store(paths: CentrePaths) -> RolloutSql:
    """Rollouts and each target's stage: ``rollouts.db`` in the data directory, or the centre's
    PostgreSQL when a DSN is configured (every centre process offers and follows them)."""
    store: RolloutSql = await _open_store(
        paths,
        ("centre.rollout.store", "SqliteRolloutStore", "rollouts.db"),
        ("centre.rollout.pg_store", "PostgresRolloutStore"),
    )
    return store
