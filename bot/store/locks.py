"""Locks between bot processes sharing one database.

* :class:`InstanceLock` — SQLite is a single-instance deployment: a second bot process on the
  same database file is refused with a clear message (an OS file lock next to the database,
  released by the kernel when the process dies, even by SIGKILL).
* :func:`exclusive` — one-time work at start (migrations, loading the knowledge pack) done by
  one PostgreSQL instance at a time: a session advisory lock held for the block.
* :class:`Leadership` — singleton jobs (X polling, metrics snapshots, the retention purge) run
  on one instance at a time: whoever holds a PostgreSQL session advisory lock on a dedicated
  connection. When that process dies its connection closes, PostgreSQL releases the lock and
  the next instance to try takes over on its next tick.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import IO

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.errors import StoreError
from bot.store.db import Database, discard

log = logging.getLogger(__name__)

LEADER_LOCK = "foundation-bot:singleton-jobs"
START_LOCK = "foundation-bot:start"


def lock_key(name: str) -> int:
    """A stable signed 64-bit advisory lock key for ``name``."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


def sqlite_path(url: str) -> Path | None:
    """The database file of a SQLite URL (None for in-memory databases and other backends)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database:
        return None
    if parsed.database == ":memory:" or parsed.database.startswith("file::memory:"):
        return None
    return Path(parsed.database)


class InstanceLock:
    """Refuses a second bot process on the same SQLite file."""

    def __init__(self, url: str) -> None:
        self._path = sqlite_path(url)
        self._handle: IO[str] | None = None

    def acquire(self) -> None:
        """Take the lock or raise :class:`StoreError` naming the process that holds it."""
        if self._path is None or self._handle is not None:
            return
        lock_path = self._path.with_name(self._path.name + ".lock")
        try:
            lock_path.parent.mkdir(parents=True, exist_ok=True)
            handle = lock_path.open("a+", encoding="utf-8")
        except OSError as exc:
            raise StoreError(f"cannot create the lock file {lock_path}: {exc.strerror}") from exc
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            handle.close()
            raise StoreError(
                f"another foundation-bot (pid {holder}) is already running on {self._path}; "
                "SQLite supports one instance: stop that one, or use PostgreSQL to run several"
            ) from exc
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self._handle = handle

    def release(self) -> None:
        """Give the lock up (also happens when the process exits)."""
        if self._handle is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._handle.fileno(), fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None


@contextlib.asynccontextmanager
async def exclusive(db: Database, name: str) -> AsyncIterator[None]:
    """Run the block while holding a PostgreSQL advisory lock (no-op on SQLite)."""
    if db.dialect != "postgresql":
        yield
        return
    try:
        conn = await db.engine.connect()
    except (SQLAlchemyError, OSError) as exc:
        raise StoreError(f"cannot take the start lock: {exc}") from exc
    try:
        conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": lock_key(name)})
        try:
            yield
        finally:
            with contextlib.suppress(SQLAlchemyError, OSError):
                await conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": lock_key(name)})
    finally:
        with contextlib.suppress(SQLAlchemyError, OSError):
            await conn.close()


class Leadership:
    """Whether this instance runs the singleton jobs right now."""

    def __init__(self, db: Database, name: str = LEADER_LOCK) -> None:
        self._db = db
        self._key = lock_key(name)
        self._conn: AsyncConnection | None = None
        self._guard = asyncio.Lock()

    async def held(self) -> bool:
        """True if this instance is the leader; tries to become it if nobody is.

        Always True on SQLite (one instance by construction).
        """
        if self._db.dialect != "postgresql":
            return True
        async with self._guard:
            if self._conn is not None:
                try:
                    await self._conn.execute(text("SELECT 1"))
                    return True
                except (SQLAlchemyError, OSError):
                    log.warning("lost the singleton-jobs lock (database connection gone)")
                    await self._drop()
            try:
                conn = await self._db.engine.connect()
            except (SQLAlchemyError, OSError):
                return False
            try:
                conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
                got = await conn.scalar(text("SELECT pg_try_advisory_lock(:k)"), {"k": self._key})
            except (SQLAlchemyError, OSError):
                got = False
            if not got:
                with contextlib.suppress(SQLAlchemyError, OSError):
                    await conn.close()
                return False
            self._conn = conn
            log.info("this instance now runs the singleton jobs")
            return True

    async def release(self) -> None:
        """Step down (at shutdown), so another instance takes over at once."""
        async with self._guard:
            if self._conn is not None:
                with contextlib.suppress(SQLAlchemyError, OSError):
                    await self._conn.execute(
                        text("SELECT pg_advisory_unlock(:k)"), {"k": self._key}
                    )
                await self._drop()

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        await discard(conn)
