"""Once-only claims and cursors in the ``bot_state`` table.

A claim is a ``bot_state`` row inserted with ``ON CONFLICT DO NOTHING``: of any number of
processes (or two ticks of one) trying the same key, exactly one inserts it, so work keyed by
it — replying to a mention, storing a metrics snapshot — happens once. Claims that no longer
guard anything are pruned by age.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import delete, insert, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from bot.events import utcnow
from bot.store.db import Database
from bot.store.engagement import Event
from bot.store.models import BotState, EngagementEvent

#: Prefix of the claims on inbound delivery ids (pruned after :data:`EVENT_CLAIM_HOURS`).
EVENT_PREFIX = "event."
#: Platforms stop retrying a delivery within minutes (Slack: 3 tries over about 5 minutes).
EVENT_CLAIM_HOURS = 1


class Claims:
    """Claims and small cursors shared by every bot process."""

    def __init__(self, db: Database) -> None:
        self._db = db

    @staticmethod
    async def _claim_in(session: AsyncSession, key: str, value: str) -> bool:
        dialect = session.get_bind().dialect.name
        upsert = pg_insert if dialect == "postgresql" else sqlite_insert
        result = await session.execute(
            upsert(BotState)
            .values(key=key, value=value, updated_at=utcnow())
            .on_conflict_do_nothing(index_elements=["key"])
            .returning(BotState.key)
        )
        return result.first() is not None

    async def claim(self, key: str, value: str = "") -> bool:
        """Insert ``key``; True for the one caller that did, False if it already existed."""
        async with self._db.session() as session:
            return await self._claim_in(session, key, value)

    async def first_delivery(self, platform: str, event_id: str) -> bool:
        """Claim a platform's delivery id (``event.<platform>.<id>``): True the first time.

        Asked for every inbound event when several instances share the database, so on
        PostgreSQL the commit does not wait for the disk: a claim lost in a crash can at
        worst let one retried event be answered twice.
        """
        async with self._db.session() as session:
            if session.get_bind().dialect.name == "postgresql":
                await session.execute(text("SET LOCAL synchronous_commit = off"))
            return await self._claim_in(session, f"{EVENT_PREFIX}{platform}.{event_id}", "")

    async def claim_with_event(self, key: str, value: str, event: Event) -> bool:
        """Claim ``key`` and, only if won, store ``event`` — one transaction."""
        async with self._db.session() as session:
            if not await self._claim_in(session, key, value):
                return False
            await session.execute(insert(EngagementEvent).values(**event.values(utcnow())))
            return True

    async def release(self, key: str) -> None:
        """Delete a claim whose work certainly did not happen, so it can be tried again."""
        async with self._db.session() as session:
            await session.execute(delete(BotState).where(BotState.key == key))

    async def existing(self, keys: Iterable[str]) -> set[str]:
        """Which of ``keys`` are claimed."""
        wanted = list(dict.fromkeys(keys))
        found: set[str] = set()
        async with self._db.session() as session:
            for start in range(0, len(wanted), 500):
                rows = await session.scalars(
                    select(BotState.key).where(BotState.key.in_(wanted[start : start + 500]))
                )
                found.update(rows.all())
        return found

    async def prune(self, prefix: str, older_than: datetime) -> int:
        """Delete claims under ``prefix`` written before ``older_than``; returns how many."""
        async with self._db.session() as session:
            result = await session.execute(
                delete(BotState).where(
                    BotState.key.startswith(prefix, autoescape=True),
                    BotState.updated_at < older_than,
                )
            )
            return int(getattr(result, "rowcount", 0) or 0)

    async def get(self, key: str) -> str | None:
        """The value stored under ``key``."""
        async with self._db.session() as session:
            row = await session.get(BotState, key)
            return row.value if row is not None else None

    async def advance(self, key: str, post_id: str) -> None:
        """Move a post-id cursor (``since_id``) forward; never backwards.

        Post ids are numbers that grow with time, so "forward" is numeric order; a process
        finishing late with an older id leaves the newer cursor alone.
        """
        async with self._db.session() as session:
            if await self._claim_in(session, key, post_id):
                return
            row = await session.get(BotState, key, with_for_update=True)
            if row is not None and _newer(post_id, row.value):
                row.value = post_id
                row.updated_at = utcnow()


def _newer(candidate: str, current: str) -> bool:
    if candidate.isdigit() and current.isdigit():
        return int(candidate) > int(current)
    return candidate != current
