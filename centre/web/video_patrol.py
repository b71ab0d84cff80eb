"""Video patrol rounds (issue 17): a clerk looks at each compound's duty room in turn and judges it.

Theory of operation
-------------------
A clerk or officer opens a *session*: every compound with an enrolled gateway in an order drawn
from the operating system's random source (``secrets.SystemRandom``), or a random sample of N of
them for a spot check. The order is stored with the session, so it cannot be predicted before the
session opens and cannot change once it has. For each compound in turn the console asks that
compound's gateway for a fresh duty-room picture (look now: a signed ``camera.snapshot``
command, :class:`CommandLooker`), shows it when it has arrived, and the clerk marks it with one
tap::

    on_post · not_on_post · not_in_uniform · camera_fault · unclear

with an optional note. Each verdict is stored with the picture's sha256 (none when the camera
failed or did not answer: only ``camera_fault`` may be given without a picture), who judged,
when, the session and the compound. A ``not_on_post`` verdict is an alert of that compound
(:meth:`VideoPatrol.alerts`, merged into the console's alerts and scoped like every other one),
and every *finding* (any verdict but ``on_post``) holds its picture past the centre's image
retention (:meth:`SqliteVideoPatrolStore.held_hashes`, used by ``MediaService.expire``).

The tables live in the console's database (``console.db``), created by numbered migrations
(:data:`MIGRATIONS`) recorded in ``video_patrol_schema``::

    patrol = VideoPatrol(await SqliteVideoPatrolStore.open(root / "console.db"), looker)
    session = await patrol.open_session("alice", compounds, sample=None, now=time.time())
"""

from __future__ import annotations

import datetime as dt
import random
import re
import secrets
import sqlite3
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol, TypeVar
from zoneinfo import ZoneInfo

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from centre.bulletins.model import VideoFindings
from centre.commands.looknow import FAILED, STORED, look_now_result, request_look_now
from centre.commands.store import CommandRepository
from centre.sqlite_worker import SqliteWorker, atomic, connect_durable
from centre.store import Repository
from centre.web import board
from centre.web.store import AckRecord

T = TypeVar("T")

ON_POST: Final = "on_post"
NOT_ON_POST: Final = "not_on_post"
NOT_IN_UNIFORM: Final = "not_in_uniform"
CAMERA_FAULT: Final = "camera_fault"
UNCLEAR: Final = "unclear"
VERDICTS: Final = (ON_POST, NOT_ON_POST, NOT_IN_UNIFORM, CAMERA_FAULT, UNCLEAR)
FINDINGS: Final = frozenset(VERDICTS) - {ON_POST}
ALERT_KIND: Final = NOT_ON_POST
"""The console alert a ``not_on_post`` verdict raises (``labels.html`` names it)."""
DUTY_CAMERA: Final = "duty-room"
LOOK_TTL_S: Final = 60.0
LOOK_TIMEOUT_S: Final = 30.0
"""After this long without a picture the page says the camera did not answer."""
MAX_NOTE: Final = 500
MAX_SAMPLE: Final = 1000
SESSION_ID_RE: Final = re.compile(r"vp-[0-9a-f]{32}")

MIGRATIONS: Final[tuple[tuple[int, str], ...]] = (
    (
        1,
        """
        CREATE TABLE video_patrol_sessions (
            session_id TEXT PRIMARY KEY,
            opened_by TEXT NOT NULL,
            opened_at REAL NOT NULL,
            sample INTEGER  -- NULL: every compound
        );
        CREATE TABLE video_patrol_steps (
            session_id TEXT NOT NULL REFERENCES video_patrol_sessions(session_id),
            position INTEGER NOT NULL,
            township TEXT NOT NULL,
            compound TEXT NOT NULL,
            gateway_id TEXT NOT NULL,
            command_id TEXT,
            requested_at REAL,
            PRIMARY KEY (session_id, position)
        );
        CREATE TABLE video_patrol_verdicts (
            session_id TEXT NOT NULL,
            position INTEGER NOT NULL,
            township TEXT NOT NULL,
            compound TEXT NOT NULL,
            gateway_id TEXT NOT NULL,
            verdict TEXT NOT NULL,
            sha256 TEXT,
            note TEXT NOT NULL,
            judged_by TEXT NOT NULL,
            judged_at REAL NOT NULL,
            PRIMARY KEY (session_id, position)
        );
        CREATE INDEX video_patrol_verdicts_at ON video_patrol_verdicts (judged_at);
        """,
    ),
)


@dataclass(frozen=True, slots=True)
class Place:
    """A compound to look at and the gateway that answers for its duty-room camera."""

    township: str
    compound: str
    gateway_id: str


@dataclass(frozen=True, slots=True)
class Step:
    session_id: str
    position: int
    place: Place
    command_id: str | None
    requested_at: float | None


@dataclass(frozen=True, slots=True)
class Verdict:
    session_id: str
    position: int
    place: Place
    verdict: str
    sha256: str | None
    note: str
    judged_by: str
    judged_at: float

    @property
    def finding(self) -> bool:
        return self.verdict in FINDINGS


@dataclass(frozen=True, slots=True)
class Session:
    session_id: str
    opened_by: str
    opened_at: float
    sample: int | None
    steps: tuple[Step, ...]
    verdicts: Mapping[int, Verdict]

    @property
    def current(self) -> Step | None:
        """The first compound not judged yet; None once the session is done."""
        return next((s for s in self.steps if s.position not in self.verdicts), None)


@dataclass(frozen=True, slots=True)
class Look:
    """Where a look-now stands: ``waiting``, ``ready`` (with the picture's hash) or ``failed``."""

    state: str
    sha256: str | None = None
    reason: str = ""
    captured_at: float | None = None  # the gateway's clock when it took the picture


class Looker(Protocol):
    def can_ask(self) -> bool:
        """Whether pictures can be asked for at all (the centre has its command key)."""

    async def request(self, gateway_id: str, *, now: float, issued_by: str) -> str:
        """Ask the gateway for a fresh duty-room picture; returns the request's id."""

    async def result(self, gateway_id: str, request_id: str, *, now: float) -> Look: ...


class CommandLooker:
    """Look now through the command channel (centre/commands/looknow.py): a signed
    ``camera.snapshot`` for the gateway; ready once the centre holds the picture it names."""

    def __init__(
        self,
        commands: CommandRepository,
        repo: Repository,
        key: Ed25519PrivateKey | None,
        *,
        camera: str = DUTY_CAMERA,
    ) -> None:
        self.commands = commands
        self.repo = repo
        self.key = key
        self.camera = camera

    def can_ask(self) -> bool:
        return self.key is not None

    async def request(self, gateway_id: str, *, now: float, issued_by: str) -> str:
        if self.key is None:
            raise LookRefused("the centre cannot sign commands (no command key)")
        rec = await request_look_now(
            self.commands, self.repo, self.key, gateway_id=gateway_id, camera=self.camera,
            now=now, issued_by=issued_by, ttl_s=LOOK_TTL_S,
        )  # fmt: skip
        return rec.command_id

    async def result(self, gateway_id: str, request_id: str, *, now: float) -> Look:
        found = await look_now_result(self.commands, self.repo, request_id, now=now)
        if found is None or found.gateway_id != gateway_id:
            return Look("failed", reason="request not found")
        if found.stage == STORED:
            return Look("ready", found.sha256, captured_at=found.captured_at)
        if found.stage == FAILED:
            return Look("failed", reason=f"{found.status}: {found.reason}".strip(": "))
        return Look("waiting", found.sha256)


class LookRefused(Exception):
    """A look-now that could not be asked for (no command key)."""


def patrol_order(
    places: Sequence[Place], sample: int | None, rng: random.Random | None = None
) -> list[Place]:
    """Every place in a random order, or a random ``sample`` of them (all if fewer).

    ``rng`` defaults to :class:`secrets.SystemRandom`: the order comes from the operating
    system's random source, which nobody at a compound can predict or reproduce.
    """
    rng = rng or secrets.SystemRandom()
    chosen = list(places)
    rng.shuffle(chosen)
    return chosen if sample is None else chosen[:sample]


def places_of(gateways: Sequence[object]) -> list[Place]:
    """One place per (township, compound): its first enrolled, unrevoked gateway by id."""
    out: dict[tuple[str, str], Place] = {}
    for g in sorted(gateways, key=lambda g: getattr(g, "gateway_id", "")):
        if getattr(g, "revoked_at", None) is not None:
            continue
        key = (str(getattr(g, "township", "")), str(getattr(g, "compound", "")))
        out.setdefault(key, Place(key[0], key[1], str(getattr(g, "gateway_id", ""))))
    return [out[k] for k in sorted(out)]


def month_of(t: float, tz: str) -> str:
    return dt.datetime.fromtimestamp(t, ZoneInfo(tz)).strftime("%Y-%m")


@dataclass(frozen=True, slots=True)
class MonthlyFindings:
    """Findings of one compound in one month (a repeat finding: ``count`` above 1)."""

    month: str
    township: str
    compound: str
    count: int
    not_on_post: int


def monthly_findings(verdicts: Sequence[Verdict], tz: str) -> list[MonthlyFindings]:
    """Findings counted per compound per month (district time), most first within a month."""
    counts: dict[tuple[str, str, str], list[int]] = {}
    for v in verdicts:
        if not v.finding:
            continue
        key = (month_of(v.judged_at, tz), v.place.township, v.place.compound)
        c = counts.setdefault(key, [0, 0])
        c[0] += 1
        c[1] += v.verdict == NOT_ON_POST
    rows = [MonthlyFindings(m, t, c, n, nop) for (m, t, c), (n, nop) in counts.items()]
    rows.sort(key=lambda r: (r.township, r.compound))
    rows.sort(key=lambda r: r.count, reverse=True)
    rows.sort(key=lambda r: r.month, reverse=True)  # stable: newest month, then most findings
    return rows


def _verdict(row: Any) -> Verdict:
    return Verdict(
        row["session_id"],
        row["position"],
        Place(row["township"], row["compound"], row["gateway_id"]),
        row["verdict"],
        row["sha256"],
        row["note"],
        row["judged_by"],
        row["judged_at"],
    )


class VideoPatrolSql:
    """The video patrol store's logic in SQL both backends speak (``?`` placeholders). A
    backend gives :attr:`db`, :meth:`_run` and :meth:`_atomic` (a function inside one
    transaction): :class:`SqliteVideoPatrolStore` in ``console.db``, or
    :class:`centre.web.pg_store.PostgresVideoPatrolStore` on the centre's PostgreSQL."""

    db: Any  # a backend's plumbing comes first in the subclass's bases

    async def _run(self, fn: Callable[[], T]) -> T:
        raise NotImplementedError

    def _atomic(self, fn: Callable[[Any], T]) -> T:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError

    async def add_session(
        self, session_id: str, opened_by: str, opened_at: float, sample: int | None,
        order: Sequence[Place],
    ) -> None:  # fmt: skip
        def tx(db: Any) -> None:
            db.execute(
                "INSERT INTO video_patrol_sessions (session_id, opened_by, opened_at, sample)"
                " VALUES (?, ?, ?, ?)",
                (session_id, opened_by, opened_at, sample),
            )
            db.executemany(
                "INSERT INTO video_patrol_steps"
                " (session_id, position, township, compound, gateway_id)"
                " VALUES (?, ?, ?, ?, ?)",
                [
                    (session_id, i, p.township, p.compound, p.gateway_id)
                    for i, p in enumerate(order)
                ],
            )

        await self._run(lambda: self._atomic(tx))

    async def set_request(self, session_id: str, position: int, command_id: str, at: float) -> None:
        def run() -> None:
            self.db.execute(
                "UPDATE video_patrol_steps SET command_id = ?, requested_at = ?"
                " WHERE session_id = ? AND position = ?",
                (command_id, at, session_id, position),
            )

        await self._run(run)

    async def session(self, session_id: str) -> Session | None:
        def run() -> Session | None:
            row = self.db.execute(
                "SELECT * FROM video_patrol_sessions WHERE session_id = ?", (session_id,)
            ).fetchone()
            if row is None:
                return None
            steps = tuple(
                Step(
                    r["session_id"],
                    r["position"],
                    Place(r["township"], r["compound"], r["gateway_id"]),
                    r["command_id"],
                    r["requested_at"],
                )
                for r in self.db.execute(
                    "SELECT * FROM video_patrol_steps WHERE session_id = ? ORDER BY position",
                    (session_id,),
                )
            )
            verdicts = {
                r["position"]: _verdict(r)
                for r in self.db.execute(
                    "SELECT * FROM video_patrol_verdicts WHERE session_id = ?", (session_id,)
                )
            }
            return Session(
                row["session_id"], row["opened_by"], row["opened_at"], row["sample"], steps,
                verdicts,
            )  # fmt: skip

        return await self._run(run)

    async def sessions(self, limit: int = 20) -> list[tuple[str, str, float, int, int]]:
        """(id, opened_by, opened_at, compounds, judged) of the latest sessions, newest first."""

        def run() -> list[tuple[str, str, float, int, int]]:
            rows = self.db.execute(
                "SELECT s.session_id, s.opened_by, s.opened_at,"
                " (SELECT COUNT(*) FROM video_patrol_steps t WHERE t.session_id = s.session_id),"
                " (SELECT COUNT(*) FROM video_patrol_verdicts v WHERE v.session_id = s.session_id)"
                " FROM video_patrol_sessions s ORDER BY s.opened_at DESC LIMIT ?",
                (limit,),
            ).fetchall()
            return [(r[0], r[1], r[2], r[3], r[4]) for r in rows]

        return await self._run(run)

    async def judge(self, verdict: Verdict) -> bool:
        """Store ``verdict``; False if that compound of that session was judged already."""
        v = verdict

        def run() -> bool:
            cur = self.db.execute(
                "INSERT INTO video_patrol_verdicts (session_id, position, township,"
                " compound, gateway_id, verdict, sha256, note, judged_by, judged_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (session_id, position) DO NOTHING",
                (
                    v.session_id, v.position, v.place.township, v.place.compound,
                    v.place.gateway_id, v.verdict, v.sha256, v.note, v.judged_by, v.judged_at,
                ),
            )  # fmt: skip
            return cur.rowcount == 1

        return await self._run(run)

    async def verdicts(self, *, since: float | None = None) -> list[Verdict]:
        def run() -> list[Verdict]:
            rows = self.db.execute(
                "SELECT * FROM video_patrol_verdicts WHERE judged_at >= ? ORDER BY judged_at",
                (since if since is not None else float("-inf"),),
            ).fetchall()
            return [_verdict(r) for r in rows]

        return await self._run(run)

    async def findings_between(self, start: float, end: float) -> list[VideoFindings]:
        """Per compound, the pictures judged in [start, end) and the findings among them
        (the monthly bulletin's video patrol section), by township then compound."""

        def run() -> list[VideoFindings]:
            rows = self.db.execute(
                "SELECT township, compound, count(*),"
                " sum(CASE WHEN verdict != ? THEN 1 ELSE 0 END),"
                " sum(CASE WHEN verdict = ? THEN 1 ELSE 0 END)"
                " FROM video_patrol_verdicts WHERE judged_at >= ? AND judged_at < ?"
                " GROUP BY township, compound ORDER BY township, compound",
                (ON_POST, NOT_ON_POST, start, end),
            ).fetchall()
            return [VideoFindings(r[0], r[1], int(r[2]), int(r[3]), int(r[4])) for r in rows]

        return await self._run(run)

    async def held_hashes(self) -> set[str]:
        """Pictures attached to a finding: kept past the centre's image retention."""

        def run() -> set[str]:
            rows = self.db.execute(
                "SELECT DISTINCT sha256 FROM video_patrol_verdicts"
                " WHERE sha256 IS NOT NULL AND verdict != ?",
                (ON_POST,),
            ).fetchall()
            return {r[0] for r in rows}

        return await self._run(run)


class SqliteVideoPatrolStore(SqliteWorker, VideoPatrolSql):
    """Sessions, their order and verdicts, in ``console.db`` beside the console's own tables."""

    THREAD_NAME_PREFIX = "centre-video-patrol"
    CLOSED_MESSAGE = "video patrol store is closed"

    def _connect(self) -> sqlite3.Connection:
        db = connect_durable(self._path)
        db.row_factory = sqlite3.Row
        with atomic(db):
            db.execute("CREATE TABLE IF NOT EXISTS video_patrol_schema (version INTEGER NOT NULL)")
            row = db.execute("SELECT MAX(version) FROM video_patrol_schema").fetchone()
            have = row[0] or 0
            for version, script in MIGRATIONS:
                if version > have:
                    for statement in script.split(";"):
                        if statement.strip():
                            db.execute(statement)
                    db.execute("INSERT INTO video_patrol_schema (version) VALUES (?)", (version,))
        return db

    async def schema_version(self) -> int:
        def run() -> int:
            row = self.db.execute("SELECT MAX(version) FROM video_patrol_schema").fetchone()
            return int(row[0] or 0)

        return await self._run(run)


class VideoPatrol:
    """The sessions' rules over a store and a looker (no HTTP here; see video_patrol_pages)."""

    def __init__(self, store: VideoPatrolSql, looker: Looker) -> None:
        self.store = store
        self.looker = looker

    async def open_session(
        self,
        opened_by: str,
        places: Sequence[Place],
        *,
        sample: int | None,
        now: float,
        rng: random.Random | None = None,
    ) -> str:
        session_id = f"vp-{uuid.UUID(bytes=secrets.token_bytes(16)).hex}"
        order = patrol_order(places, sample, rng)
        await self.store.add_session(session_id, opened_by, now, sample, order)
        return session_id

    async def ask(self, session: Session, step: Step, *, now: float, issued_by: str) -> str:
        """Ask for a fresh picture for ``step`` (again, if the last one failed)."""
        command_id = await self.looker.request(step.place.gateway_id, now=now, issued_by=issued_by)
        await self.store.set_request(session.session_id, step.position, command_id, now)
        return command_id

    async def look(self, step: Step, *, now: float) -> Look:
        if step.command_id is None:
            return Look("failed", reason="no picture asked for yet")
        look = await self.looker.result(step.place.gateway_id, step.command_id, now=now)
        if (
            look.state == "waiting"
            and step.requested_at is not None
            and now - step.requested_at > LOOK_TIMEOUT_S
        ):
            return Look("failed", look.sha256, "timeout")
        return look

    async def alerts(self, acks: Mapping[str, AckRecord], *, now: float) -> list[board.Alert]:
        """A console alert for each ``not_on_post`` verdict of the alert window."""
        out = []
        for v in await self.store.verdicts(since=now - board.ALERT_WINDOW_S):
            if v.verdict != NOT_ON_POST:
                continue
            alert_id = f"vp:{v.session_id}:{v.position}"
            out.append(
                board.Alert(
                    alert_id, ALERT_KIND, v.place.township, v.place.compound, v.place.gateway_id,
                    v.judged_at, v.note, acks.get(alert_id),
                )
            )  # fmt: skip
        return out

    async def monthly(self, tz: str, *, since: float | None = None) -> list[MonthlyFindings]:
        return monthly_findings(await self.store.verdicts(since=since), tz)
