"""The async database: engine, sessions and migrations.

Two drivers are supported and tested: ``sqlite+aiosqlite`` (the embedded default) and
``postgresql+asyncpg``; any other URL is refused with one line naming them. Connection
failures surface as :class:`~bot.errors.StoreError` with the URL's password hidden.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from typing import Any

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import (
    ArgumentError,
    DBAPIError,
    InterfaceError,
    NoSuchModuleError,
    OperationalError,
    SQLAlchemyError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from bot.errors import StoreError

log = logging.getLogger(__name__)


def safe_url(url: str) -> str:
    """The URL with any password replaced by ``***``, fit for logs and messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparseable database URL>"


#: SQLSTATE classes of a database that is away rather than of a bad statement:
#: 08 connection exception, 57 operator intervention (shutdown, cannot connect now), 53
#: insufficient resources (too many connections: a busy server turns clients away for now).
OUTAGE_SQLSTATE_CLASSES = ("08", "53", "57")
#: asyncpg errors raised without a SQLSTATE when the connection broke mid-operation.
OUTAGE_CAUSES = ("ConnectionDoesNotExistError", "InternalClientError")


def is_outage(exc: DBAPIError) -> bool:
    """Whether a driver error means the database is unreachable (a restart, a failover)
    rather than something wrong with the statement or the data."""
    if exc.connection_invalidated:
        return True
    orig = exc.orig
    code = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    if isinstance(code, str) and code[:2] in OUTAGE_SQLSTATE_CLASSES:
        return True
    cause = getattr(orig, "__cause__", None)
    return type(cause).__name__ in OUTAGE_CAUSES


async def discard(conn: AsyncConnection | None) -> None:
    """Close a dedicated connection for good: invalidated, so it never goes back to the pool
    with its own settings (autocommit, a held advisory lock, synchronous_commit) or a broken
    socket. Errors of a database that is already gone are ignored."""
    if conn is None:
        return
    with contextlib.suppress(SQLAlchemyError, OSError):
        await conn.invalidate()
        await conn.close()


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets the dashboard read while the bot writes; busy_timeout waits instead of failing.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    # In WAL mode NORMAL is durable across application crashes (not power loss) and avoids
    # an fsync per commit, which dominates small writes.
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


def alembic_config(url: str | None = None) -> AlembicConfig:
    """An Alembic config pointing at the bundled ``migrations`` package."""
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(resources.files("migrations")))
    if url is not None:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


#: The SQLAlchemy drivers the bot is built and tested for (URL scheme -> what it is).
SUPPORTED_DRIVERS = {
    "sqlite+aiosqlite": "sqlite+aiosqlite:///PATH",
    "postgresql+asyncpg": "postgresql+asyncpg://USER:PASSWORD@HOST/DATABASE",
}


class Database:
    """Owns the engine and hands out sessions."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = url
        try:
            parsed = make_url(url)
        except ArgumentError as exc:
            raise StoreError(f"invalid database URL {safe_url(url)}: {exc}") from exc
        if parsed.drivername not in SUPPORTED_DRIVERS:
            raise StoreError(
                f"unsupported database URL {safe_url(url)}: use "
                + " or ".join(SUPPORTED_DRIVERS.values())
            )
        try:
            kwargs: dict[str, Any] = {"echo": echo, "pool_pre_ping": True}
            if parsed.get_backend_name() == "sqlite":
                # One connection: SQLite serializes writers anyway, and queueing in the pool is
                # far cheaper than writers colliding on the file lock and sleeping in
                # busy_timeout (measured: 1 s -> see bench/bench_announcements.py).
                kwargs |= {"pool_size": 1, "max_overflow": 0}
            else:
                kwargs["pool_size"] = 10
            self.engine: AsyncEngine = create_async_engine(url, **kwargs)
        except (ArgumentError, NoSuchModuleError, ValueError) as exc:
            raise StoreError(f"invalid database URL {safe_url(url)}: {exc}") from exc
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)

    @property
    def dialect(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self.engine.dialect.name

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A session in a transaction: committed on success, rolled back on error.

        Raises:
            StoreError: the database cannot be reached (constraint violations and other
                errors about the data itself propagate unchanged).
        """
        try:
            async with self.sessions() as session, session.begin():
                yield session
        except (OperationalError, InterfaceError, OSError, TimeoutError, PoolTimeout) as exc:
            # PoolTimeout: no connection freed or opened in time (a server turning clients
            # away): as good as away, and retried the same way.
            raise StoreError(self._unreachable(exc)) from exc
        except DBAPIError as exc:
            if not is_outage(exc):
                raise
            raise StoreError(self._unreachable(exc)) from exc

    async def check(self) -> None:
        """Raise StoreError unless the database answers a trivial query."""
        try:
            async with self.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        except (SQLAlchemyError, OSError) as exc:
            raise StoreError(self._unreachable(exc)) from exc

    def unreachable(self, exc: BaseException) -> StoreError:
        """The one-line StoreError for a driver error of a database that is away."""
        return StoreError(self._unreachable(exc))

    def _unreachable(self, exc: BaseException) -> str:
        reason = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
        first = (
            str(reason).strip().splitlines()[0] if str(reason).strip() else type(reason).__name__
        )
        return f"cannot reach the database at {safe_url(self.url)}: {first}"

    async def upgrade(self, revision: str = "head") -> None:
        """Apply migrations up to ``revision``."""
        await self._alembic(lambda cfg: command.upgrade(cfg, revision))

    async def downgrade(self, revision: str) -> None:
        """Revert migrations down to ``revision`` (``base`` for an empty database)."""
        await self._alembic(lambda cfg: command.downgrade(cfg, revision))

    async def current_revision(self) -> str | None:
        """The applied revision, or None for an empty database."""

        def read(conn: Connection) -> str | None:
            return MigrationContext.configure(conn).get_current_revision()

        try:
            async with self.engine.connect() as conn:
                return await conn.run_sync(read)
        except (SQLAlchemyError, OSError) as exc:
            raise StoreError(self._unreachable(exc)) from exc

    @staticmethod
    def head_revision() -> str | None:
        """The newest revision the code ships."""
        return ScriptDirectory.from_config(alembic_config()).get_current_head()

    async def _alembic(self, run: Any) -> None:
        cfg = alembic_config()

        def apply(conn: Connection) -> None:
            cfg.attributes["connection"] = conn
            run(cfg)

        try:
            async with self.engine.begin() as conn:
                await conn.run_sync(apply)
        except (SQLAlchemyError, OSError) as exc:
            raise StoreError(self._unreachable(exc)) from exc

    async def close(self) -> None:
        """Dispose of the connection pool."""
        await self.engine.dispose()
