"""Shared fixtures: a fresh database per test on SQLite and, where configured, PostgreSQL.

PostgreSQL tests read ``FOUNDATION_BOT_TEST_POSTGRES_URL``. Under CI (``CI=true``) a missing
URL fails the test instead of skipping it, so the PostgreSQL half can never silently vanish;
elsewhere the run ends with one line saying how many were skipped and how to run them.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
import pytest
from hypothesis import HealthCheck, settings
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from bot.config import Config, Settings
from bot.store.db import Database

PG_ENV = "FOUNDATION_BOT_TEST_POSTGRES_URL"

# Hypothesis fails an example slower than 200 ms, and slow data generation, by default: on a
# busy CI machine both fail tests that are fine. Tests say how many examples, not how fast.
settings.register_profile(
    "foundation-bot", deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("foundation-bot")

# aiosqlite's worker thread logs every operation at DEBUG, sometimes after a test that raised
# the log level has ended and pytest has closed its capture stream ("--- Logging error ---").
logging.getLogger("aiosqlite").setLevel(logging.INFO)


PG_SKIP = f"{PG_ENV} not set"
#: Why tests skip when something is missing here, and how to run them: printed once at the end.
SKIP_HELP = {
    PG_SKIP: (
        f"they run against PostgreSQL and {PG_ENV} is not set. With a server at hand "
        "(each test creates and drops its own database):\n"
        f"  {PG_ENV}=postgresql+asyncpg://postgres@127.0.0.1:5432/test python -m pytest\n"
        "(.ci/run starts PostgreSQL and sets it)"
    ),
    "/usr/bin/chromium not installed": (
        "they drive the dashboard in headless Chromium, which is not installed: "
        "apt-get install chromium (Debian's package; never `playwright install`)"
    ),
}


def postgres_url_or_skip() -> str:
    """The PostgreSQL test URL; fails under CI and skips elsewhere when it is not set."""
    url = os.environ.get(PG_ENV)
    if not url:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{PG_ENV} must be set under CI")
        pytest.skip(PG_SKIP)
    return url


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Say once, at the end, why tests were skipped and how to run them."""
    counts = dict.fromkeys(SKIP_HELP, 0)
    for report in terminalreporter.stats.get("skipped", []):
        reason = str(report.longrepr[2] if isinstance(report.longrepr, tuple) else "")
        for cause in counts:
            if cause in reason:
                counts[cause] += 1
    if any(counts.values()):
        terminalreporter.write_sep("-", "skipped tests")
    for cause, count in counts.items():
        if count:
            tests = "1 test was" if count == 1 else f"{count} tests were"
            terminalreporter.write_line(f"{tests} skipped: {SKIP_HELP[cause]}")


def _admin_dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def create_pg_database(url: str) -> str:
    """Create an empty database next to ``url``'s and return its URL."""
    name = f"fbtest_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(_admin_dsn(url))
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return make_url(url).set(database=name).render_as_string(hide_password=False)


async def drop_pg_database(url: str) -> None:
    """Drop a database made by :func:`create_pg_database`."""
    name = make_url(url).database
    admin = make_url(url).set(database="postgres")
    conn = await asyncpg.connect(_admin_dsn(admin.render_as_string(hide_password=False)))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture(params=["sqlite", "postgres"])
async def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """An empty database URL, once per backend."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}"
        return
    url = await create_pg_database(postgres_url_or_skip())
    try:
        yield url
    finally:
        await drop_pg_database(url)


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    """An empty PostgreSQL database URL (for tests of several instances on one database)."""
    url = await create_pg_database(postgres_url_or_skip())
    try:
        yield url
    finally:
        await drop_pg_database(url)


@pytest.fixture
async def sqlite_url(tmp_path: Path) -> str:
    """An empty SQLite database URL (for tests whose subject is not the backend)."""
    return f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}"


@pytest.fixture
async def database(db_url: str) -> AsyncIterator[Database]:
    """A migrated database on each backend."""
    db = Database(db_url)
    await db.upgrade()
    try:
        yield db
    finally:
        await db.close()


def make_config(**sections: dict[str, object]) -> Config:
    """A Config from keyword sections, e.g. ``make_config(web={"enabled": False})``."""
    return Config(Settings.model_validate(sections), {}, "test")


@asynccontextmanager
async def database_away(db: Database) -> AsyncIterator[None]:
    """The database is unreachable inside the block: the engine (and the sessions made from
    it) point at a port where nothing listens; the real ones are back afterwards."""
    engine, sessions = db.engine, db.sessions
    db.engine = create_async_engine("postgresql+asyncpg://bot@127.0.0.1:9/gone")
    db.sessions = async_sessionmaker(db.engine, expire_on_commit=False)
    try:
        yield
    finally:
        await db.engine.dispose()
        db.engine, db.sessions = engine, sessions
