"""Logins, sessions and CSRF tokens: the console's front door, over a store and a clock.

A login checks the throttle (per account and per client address), then the password; every
attempt, refused or not, becomes one audit record. A session id is 256 random bits, handed to
the browser once and stored only as its sha256. A session ends after ``idle`` seconds without a
request or ``absolute`` seconds after login, whichever comes first, or at logout, or when the
account is disabled or its password reset. The CSRF token is an HMAC of a fixed label keyed
by the session id: it belongs to that one session and needs no storage::

    console = Console(store)                       # clock defaults to time.time
    login = await console.login("alice", password, client="10.0.0.7")
    user = await console.session(login.session_id, client="10.0.0.7")
    console.check_csrf(login.session_id, form["csrf"])

Hostile usernames, passwords, session ids and CSRF tokens raise only :class:`ConsoleError`.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from centre.web.audit import AuditEntry, AuditRecord
from centre.web.errors import ConsoleError
from centre.web.passwords import (
    SCRYPT_N,
    burn_time,
    check_password_rules,
    check_username,
    hash_password,
    verify_password,
)
from centre.web.permissions import Role, User, check_scope_fields
from centre.web.store import Account, ConsoleStore, SessionRecord
from centre.web.throttle import Throttle

IDLE_TIMEOUT = 30 * 60.0
"""A session unused this long ends (a console left open at an empty desk)."""
ABSOLUTE_TIMEOUT = 12 * 3600.0
"""No session outlives a long shift, however busy."""

_SESSION_ID_RE = re.compile(r"[A-Za-z0-9_-]{43}")  # token_urlsafe(32): 256 bits
_CSRF_RE = re.compile(r"[0-9a-f]{64}")
_CSRF_LABEL = b"compound-centre console csrf v1"
_BAD_LOGIN = "wrong login name or password"


@dataclass(frozen=True, slots=True)
class Login:
    session_id: str
    csrf_token: str
    user: User


def _id_hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode("ascii")).hexdigest()


def _check_session_id(session_id: object) -> str:
    if not isinstance(session_id, str) or _SESSION_ID_RE.fullmatch(session_id) is None:
        raise ConsoleError("no_session", "not signed in")
    return session_id


def csrf_token(session_id: str) -> str:
    """The CSRF token that goes with ``session_id`` (in every form the session's pages send)."""
    sid = _check_session_id(session_id)
    return hmac.new(sid.encode("ascii"), _CSRF_LABEL, hashlib.sha256).hexdigest()


def _text(value: object, limit: int = 200) -> str:
    """An audit field from possibly hostile text: bounded, surrogate-free."""
    text = value if isinstance(value, str) else repr(value)
    return text[:limit].encode("utf-8", "backslashreplace").decode("utf-8")


class Console:
    def __init__(
        self,
        store: ConsoleStore,
        *,
        clock: Callable[[], float] = time.time,
        throttle: Throttle | None = None,
        idle: float = IDLE_TIMEOUT,
        absolute: float = ABSOLUTE_TIMEOUT,
        scrypt_n: int = SCRYPT_N,
    ) -> None:
        self.store = store
        self.clock = clock
        self.throttle = throttle if throttle is not None else Throttle()
        self.idle = idle
        self.absolute = absolute
        self.scrypt_n = scrypt_n

    async def record(
        self, user: str, action: str, target: str, outcome: str, client: str
    ) -> AuditRecord:
        """Append one audit record stamped with the console's clock."""
        return await self.store.append_audit(
            AuditEntry(self.clock(), _text(user), action, _text(target), outcome, _text(client))
        )

    # -- logins and sessions ---------------------------------------------------------------

    async def login(self, name: object, password: object, *, client: str) -> Login:
        now = self.clock()
        shown = _text(name, 64)
        keys = (f"user:{shown}", f"addr:{client}")
        locked = [u for k in keys if (u := self.throttle.locked_until(k, now)) is not None]
        if locked:
            await self.record(shown, "login", f"user:{shown}", "refused:locked_out", client)
            raise ConsoleError(
                "locked_out",
                "too many wrong passwords; try again later",
                retry_after=max(1, int(max(locked) - now + 0.999)),
            )
        account: Account | None = None
        ok = False
        try:
            account = await self.store.get_user(check_username(name))
            if account is None or account.user.disabled:
                burn_time(password, n=self.scrypt_n)
            else:
                ok = verify_password(password, account.password_hash)
        except ConsoleError:
            ok = False
        if not ok or account is None:
            for k in keys:
                self.throttle.failure(k, now)
            await self.record(shown, "login", f"user:{shown}", "refused:bad_credentials", client)
            raise ConsoleError("bad_credentials", _BAD_LOGIN)
        for k in keys:
            self.throttle.success(k)
        session_id = secrets.token_urlsafe(32)
        user = account.user
        record = SessionRecord(_id_hash(session_id), user.name, now, now, client)
        await self.store.put_session(record)
        await self.record(user.name, "login", f"user:{user.name}", "ok", client)
        return Login(session_id, csrf_token(session_id), user)

    async def session(self, session_id: object, *, client: str) -> User:
        """The signed-in user for ``session_id``; refreshes its idle timer."""
        sid = _check_session_id(session_id)
        now = self.clock()
        rec = await self.store.get_session(_id_hash(sid))
        if rec is None:
            raise ConsoleError("no_session", "not signed in")
        if now - rec.last_seen > self.idle or now - rec.created > self.absolute:
            await self.store.drop_session(rec.id_hash)
            await self.record(rec.user, "session_expired", f"user:{rec.user}", "ok", client)
            raise ConsoleError("session_expired", "signed out after a pause; sign in again")
        account = await self.store.get_user(rec.user)
        if account is None or account.user.disabled:
            await self.store.drop_session(rec.id_hash)
            raise ConsoleError("no_session", "not signed in")
        await self.store.touch_session(rec.id_hash, now)
        return account.user

    def check_csrf(self, session_id: object, token: object) -> None:
        """Refuse a state-changing request whose token does not belong to its session."""
        if not isinstance(token, str) or _CSRF_RE.fullmatch(token) is None:
            raise ConsoleError("csrf_mismatch", "this form is stale; reload the page")
        if not hmac.compare_digest(csrf_token(_check_session_id(session_id)), token):
            raise ConsoleError("csrf_mismatch", "this form is stale; reload the page")

    async def logout(self, session_id: object, *, client: str) -> None:
        sid = _check_session_id(session_id)
        rec = await self.store.get_session(_id_hash(sid))
        if rec is None:
            return
        await self.store.drop_session(rec.id_hash)
        await self.record(rec.user, "logout", f"user:{rec.user}", "ok", client)

    # -- accounts (the CLI today; a manage_users page later) ------------------------------

    async def add_user(
        self,
        actor: str,
        name: str,
        password: str,
        role: Role,
        *,
        township: str | None = None,
        compound: str | None = None,
        client: str = "local",
    ) -> User:
        target = f"user:{_text(name, 64)}"
        try:
            check_username(name)
            problem = check_scope_fields(role, township, compound)
            if problem is not None:
                raise ConsoleError("bad_scope", problem)
            check_password_rules(password, name)
            user = User(name, role, township or None, compound or None)
            account = Account(user, hash_password(password, n=self.scrypt_n), self.clock())
            await self.store.add_user(account)
        except ConsoleError as exc:
            await self.record(actor, "users.add", target, f"refused:{exc.code}", client)
            raise
        await self.record(actor, "users.add", target, f"ok:role={role.value}", client)
        return user

    async def _need_user(self, actor: str, action: str, name: str, client: str) -> Account:
        account = await self.store.get_user(name)
        if account is None:
            await self.record(
                actor, action, f"user:{_text(name, 64)}", "refused:no_such_user", client
            )
            raise ConsoleError("no_such_user", f"there is no account {_text(name, 64)!r}")
        return account

    async def disable_user(self, actor: str, name: str, *, client: str = "local") -> int:
        """Disable ``name`` and end its sessions; returns how many sessions ended."""
        await self._need_user(actor, "users.disable", name, client)
        await self.store.set_disabled(name, True)
        ended = await self.store.drop_user_sessions(name)
        await self.record(actor, "users.disable", f"user:{name}", "ok", client)
        return ended

    async def reset_password(
        self, actor: str, name: str, password: str, *, client: str = "local"
    ) -> None:
        """Set a new password and end the account's sessions (a reset follows a leak)."""
        await self._need_user(actor, "users.reset", name, client)
        try:
            check_password_rules(password, name)
        except ConsoleError as exc:
            await self.record(actor, "users.reset", f"user:{name}", f"refused:{exc.code}", client)
            raise
        await self.store.set_password(name, hash_password(password, n=self.scrypt_n))
        await self.store.drop_user_sessions(name)
        await self.record(actor, "users.reset", f"user:{name}", "ok", client)

    async def list_users(self, actor: str, *, client: str = "local") -> list[User]:
        accounts = await self.store.list_users()
        await self.record(actor, "users.list", "users", f"ok:{len(accounts)}", client)
        return [a.user for a in accounts]
