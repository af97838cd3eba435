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
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from bot.errors import FoundationBotError
from bot.events import utcnow
from bot.store.db import Database
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


class LoginLimiter:
    """Counts failed logins per client address and per user name in a sliding window.

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

    async def retry_after(self, *keys: str) -> float:
        """Seconds until another attempt is allowed (0 if allowed now)."""
        now = self._clock()
        digests = {_digest(key) for key in keys}
        async with self._db.session() as session:
            rows = (
                await session.execute(
                    select(LoginFailure.key, LoginFailure.at)
                    .where(LoginFailure.key.in_(digests), LoginFailure.at > now - self._window)
                    .order_by(LoginFailure.at.desc())
                )
            ).all()
        recent: dict[str, list[datetime]] = {}
        for key, at in rows:
            recent.setdefault(key, []).append(at)
        wait = 0.0
        for stamps in recent.values():
            if len(stamps) >= self._max:
                # Allowed again once the max-th most recent failure leaves the window.
                wait = max(wait, (stamps[self._max - 1] + self._window - now).total_seconds())
        return wait

    async def failed(self, *keys: str) -> None:
        """Record a failed attempt under each key (and forget failures older than the window)."""
        now = self._clock()
        async with self._db.session() as session:
            await session.execute(delete(LoginFailure).where(LoginFailure.at <= now - self._window))
            session.add_all(LoginFailure(key=_digest(key), at=now) for key in keys)

    async def succeeded(self, name_key: str) -> None:
        """A right password clears that name's failures (not the address's)."""
        async with self._db.session() as session:
            await session.execute(delete(LoginFailure).where(LoginFailure.key == _digest(name_key)))
