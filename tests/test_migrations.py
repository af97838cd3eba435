"""Every migration runs up and down on SQLite and PostgreSQL, one step at a time."""

from __future__ import annotations

from alembic.script import ScriptDirectory
from sqlalchemy import inspect

from bot.store.db import Database, alembic_config
from bot.store.models import Base


async def _tables(db: Database) -> set[str]:
    async with db.engine.connect() as conn:
        names = await conn.run_sync(lambda sync: set(inspect(sync).get_table_names()))
    return names - {"alembic_version"}


async def test_every_migration_up_and_down(db_url: str) -> None:
    revisions = [
        r.revision
        for r in reversed(list(ScriptDirectory.from_config(alembic_config()).walk_revisions()))
    ]
    db = Database(db_url)
    try:
        for revision in revisions:
            await db.upgrade(revision)
            assert await db.current_revision() == revision
        assert await _tables(db) == set(Base.metadata.tables)
        for revision in reversed(revisions[:-1]):
            await db.downgrade(revision)
            assert await db.current_revision() == revision
        await db.downgrade("base")
        assert await db.current_revision() is None
        assert await _tables(db) == set()
        await db.upgrade()
        assert await db.current_revision() == Database.head_revision()
    finally:
        await db.close()


async def test_models_match_the_migrated_schema(db_url: str) -> None:
    """Autogenerate finds nothing to do: the ORM and the migrations agree."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    db = Database(db_url)
    try:
        await db.upgrade()
        async with db.engine.connect() as conn:
            diff = await conn.run_sync(
                lambda sync: compare_metadata(MigrationContext.configure(sync), Base.metadata)
            )
        assert diff == []
    finally:
        await db.close()
