"""Dashboard accounts and their login sessions.

Passwords are hashed with argon2id (argon2-cffi: the maintained binding of the Password
Hashing Competition winner, with parameters stored in each hash so they can be raised later).
Hashing is deliberately slow CPU work, so it runs in a thread and never stalls the event loop.
Sessions live in the database: logging out or removing a user ends their sessions at once,
and only a SHA-256 of the cookie value is stored, so a leaked table opens no session.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError

from bot.errors import FoundationBotError
from bot.events import utcnow
from bot.store.db import Database
from bot.store.locks import lock_key
from bot.store.models import DashboardSession, DashboardUser, LoginFailure

ROLES = ("moderator", "comms", "admin")
MIN_PASSWORD_CHARS = 10
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789._-@")

_hasher = PasswordHasher()


@functools.cache
def _dummy_hash() -> str:
    """Verified against when the user does not exist, so a wrong name costs as long as a
    wrong password and response times do not reveal which names exist."""
    return _hasher.hash(secrets.token_hex(16))


class UserError(FoundationBotError):
    """A user name, role or password is not acceptable; the message says why in one line."""


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """A valid session: who is logged in and the CSRF token of their forms."""

    user_id: int
    name: str
    role: str
    csrf_token: str


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def check_name(name: str) -> str:
    """A normalized user name (lower case) or UserError."""
    name = name.strip().lower()
    if not name or len(name) > 100 or not set(name) <= _NAME_CHARS:
        raise UserError("a user name is 1-100 characters of letters, digits, '.', '_', '-' or '@'")
    return name


def check_role(role: str) -> str:
    """The role, or UserError naming the valid ones."""
    if role not in ROLES:
        raise UserError(f"unknown role {role!r}; use one of {', '.join(ROLES)}")
    return role


def check_password(password: str) -> str:
    """The password, or UserError if it is too short."""
    if len(password) < MIN_PASSWORD_CHARS:
        raise UserError(f"the password must have at least {MIN_PASSWORD_CHARS} characters")
    return password


class UserStore:
    """Dashboard users and sessions."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def add(self, name: str, role: str, password: str) -> DashboardUser:
        """Create a user; UserError if the name is taken or anything is invalid."""
        name, role = check_name(name), check_role(role)
        hashed = await asyncio.to_thread(_hasher.hash, check_password(password))
        user = DashboardUser(name=name, role=role, password_hash=hashed)
        try:
            async with self._db.session() as session:
                session.add(user)
        except IntegrityError:
            raise UserError(f"a user named {name!r} exists already") from None
        return user

    async def all(self) -> Sequence[DashboardUser]:
        """Every user, by name."""
        async with self._db.session() as session:
            return (await session.scalars(select(DashboardUser).order_by(DashboardUser.name))).all()

    async def exists(self, name: str) -> bool:
        """Whether a user of that name exists (the audit log names only real users)."""
        async with self._db.session() as session:
            found = await session.scalar(
                select(DashboardUser.id).where(DashboardUser.name == name.strip().lower())
            )
        return found is not None

    async def remove(self, name: str) -> bool:
        """Delete a user and end their sessions; False if there is no such user."""
        async with self._db.session() as session:
            user = (
                await session.scalars(
                    select(DashboardUser).where(DashboardUser.name == name.strip().lower())
                )
            ).first()
            if user is None:
                return False
            await session.execute(
                delete(DashboardSession).where(DashboardSession.user_id == user.id)
            )
            await session.delete(user)
            return True

    async def authenticate(self, name: str, password: str) -> DashboardUser | None:
        """The user if the password is right, else None (same cost either way)."""
        async with self._db.session() as session:
            user = (
                await session.scalars(
                    select(DashboardUser).where(DashboardUser.name == name.strip().lower())
                )
            ).first()
        stored = user.password_hash if user is not None else _dummy_hash()
        try:
            await asyncio.to_thread(_hasher.verify, stored, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return None
        if user is None:
            return None
        async with self._db.session() as session:
            row = await session.get(DashboardUser, user.id)
            if row is not None:
                row.last_login_at = utcnow()
                if _hasher.check_needs_rehash(row.password_hash):
                    row.password_hash = await asyncio.to_thread(_hasher.hash, password)
        return user

    async def open_session(self, user_id: int, lifetime: timedelta) -> tuple[str, str]:
        """Start a session; returns (cookie value, CSRF token)."""
        token = secrets.token_urlsafe(32)
        csrf = secrets.token_urlsafe(32)
        now = utcnow()
        async with self._db.session() as session:
            await session.execute(delete(DashboardSession).where(DashboardSession.expires_at < now))
            session.add(
                DashboardSession(
                    id=_digest(token), user_id=user_id, csrf_token=csrf, expires_at=now + lifetime
                )
            )
        return token, csrf

    async def session_for(
        self, token: str, lifetime: timedelta, now: datetime | None = None
    ) -> SessionInfo | None:
        """The live session behind a cookie value (sliding expiry), or None."""
        now = now or utcnow()
        async with self._db.session() as session:
            row = await session.get(DashboardSession, _digest(token))
            if row is None or row.expires_at <= now:
                return None
            user = await session.get(DashboardUser, row.user_id)
            if user is None:
                return None
            # Extend at most once a minute: a page view should not always mean a write.
            if row.expires_at - now < lifetime - timedelta(minutes=1):
                row.expires_at = now + lifetime
            return SessionInfo(user.id, user.name, user.role, row.csrf_token)

    async def close_session(self, token: str) -> None:
        """Log out: the cookie value stops working."""
        async with self._db.session() as session:
            await session.execute(
                delete(DashboardSession).where(DashboardSession.id == _digest(token))
            )


@dataclass(frozen=True, slots=True)
class LoginAttempt:
    """A login attempt, already counted as a failure before its password is checked.

    Counting first is what makes the limit hold under parallel guesses: each request takes
    its slot in the same transaction that checks the count, so N requests at once get at most
    ``max_failures`` password checks. A right password hands the slot back
    (:meth:`LoginLimiter.succeeded`); a wrong one simply keeps it.
    """

    #: Seconds until another attempt is allowed; 0 means this one may check its password.
    wait: float
    #: The failure rows reserved for this attempt (empty when refused).
    row_ids: tuple[int, ...] = ()
    #: ``name:<name>`` when the name is a real user's, else None.
    name_key: str | None = None

    @property
    def allowed(self) -> bool:
        """Whether the password may be checked."""
        return self.wait <= 0


def _limit_keys(address: str, name: str | None) -> dict[str, str]:
    """The limiter's keys for an attempt: per address, and for a real user's name per name
    and per (name, address) pair."""
    keys = {"ip": f"ip:{address}"}
    if name is not None:
        keys |= {"name": f"name:{name}", "pair": f"pair:{name}|{address}"}
    return keys


class LoginLimiter:
    """Counts failed logins per client address and per user name in a sliding window.

    The policy (as login limiters that resist lock-out attacks do):

    * **per address**: after ``max_failures`` failures from an address, every login from it
      waits for the window to pass;
    * **per account**: after ``max_failures`` failures for a user name (from anywhere), that
      name is refused only from addresses that have themselves failed for it in the window.
      An address with no failures for the name still gets its password checked, so nobody can
      lock the real user out by failing on purpose from other addresses; a guesser spread over
      many addresses gets one guess per address instead of ``max_failures``.

    The counts live in the database, so every instance behind a load balancer enforces one
    shared limit and a restart forgets nothing. Keys are stored hashed.
    """

    def __init__(
        self,
        db: Database,
        max_failures: int,
        window: timedelta = timedelta(minutes=15),
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._db = db
        self._max = max_failures
        self._window = window
        self._clock = clock

    async def begin(self, address: str, name: str | None) -> LoginAttempt:
        """Count an attempt from ``address`` for the real user ``name`` (None for a name that
        is no user's) before its password is checked, or refuse it.

        On PostgreSQL the check and the count run under transaction advisory locks on the
        keys, so instances racing on one key take turns; SQLite runs one transaction at a
        time anyway (one connection, one process).
        """
        now = self._clock()
        keys = _limit_keys(address, name)
        digests = {kind: _digest(key) for kind, key in keys.items()}
        async with self._db.session() as session:
            if self._db.dialect == "postgresql":
                for digest in sorted(digests.values()):  # one order everywhere: no deadlock
                    await session.execute(
                        select(func.pg_advisory_xact_lock(lock_key("login:" + digest)))
                    )
            await session.execute(delete(LoginFailure).where(LoginFailure.at <= now - self._window))
            rows = (
                await session.execute(
                    select(LoginFailure.key, LoginFailure.at)
                    .where(LoginFailure.key.in_(digests.values()))
                    .order_by(LoginFailure.at.desc())
                )
            ).all()
            recent: dict[str, list[datetime]] = {}
            for key, at in rows:
                recent.setdefault(key, []).append(at)
            wait = self._wait(recent.get(digests["ip"], []), now)
            if name is not None and recent.get(digests["pair"]):
                wait = max(wait, self._wait(recent.get(digests["name"], []), now))
            if wait > 0:
                return LoginAttempt(wait)
            reserved = [LoginFailure(key=digest, at=now) for digest in digests.values()]
            session.add_all(reserved)
            await session.flush()
            return LoginAttempt(0.0, tuple(row.id for row in reserved), keys.get("name"))

    def _wait(self, stamps: list[datetime], now: datetime) -> float:
        """Seconds until fewer than the maximum of ``stamps`` (newest first) are in the
        window: the max-th most recent one leaves it."""
        if len(stamps) < self._max:
            return 0.0
        return max(0.0, (stamps[self._max - 1] + self._window - now).total_seconds())

    async def succeeded(self, attempt: LoginAttempt) -> None:
        """A right password: the attempt was no failure, and the name's failures are cleared
        (the address's stay: it may have guessed at other names)."""
        async with self._db.session() as session:
            if attempt.row_ids:
                await session.execute(
                    delete(LoginFailure).where(LoginFailure.id.in_(attempt.row_ids))
                )
            if attempt.name_key is not None:
                await session.execute(
                    delete(LoginFailure).where(LoginFailure.key == _digest(attempt.name_key))
                )
