"""Once-only claims and cursors in the ``bot_state`` table.

A claim is a ``bot_state`` row inserted with ``ON CONFLICT DO NOTHING``: of any number of
processes (or two ticks of one) trying the same key, exactly one inserts it, so work keyed by
it — replying to a mention, storing a metrics snapshot — happens once. Claims that no longer
guard anything are pruned by age.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import delete, insert, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from bot.errors import StoreError
from bot.events import utcnow
from bot.store.db import Database, discard
from bot.store.engagement import Event
from bot.store.models import BotState, EngagementEvent

#: Prefix of the claims on inbound delivery ids (pruned after :data:`EVENT_CLAIM_HOURS`).
EVENT_PREFIX = "event."
#: Platforms stop retrying a delivery within minutes (Slack: 3 tries over about 5 minutes).
EVENT_CLAIM_HOURS = 1


_CLAIM_KEYS = text(
    "INSERT INTO bot_state (key, value, updated_at) "
    "SELECT k, '', :now FROM unnest(CAST(:keys AS text[])) AS k "
    "ON CONFLICT (key) DO NOTHING RETURNING key"
)


def _settle(batch: dict[str, list[asyncio.Future[bool]]], *, error: BaseException) -> None:
    for waiters in batch.values():
        for waiter in waiters:
            if not waiter.done():
                waiter.set_exception(error)


class Claims:
    """Claims and small cursors shared by every bot process."""

    def __init__(self, db: Database) -> None:
        self._db = db
        #: Delivery-id claims waiting for the next batch, and the task writing batches.
        self._waiting: dict[str, list[asyncio.Future[bool]]] = {}
        self._writer: asyncio.Task[None] | None = None
        self._conn: AsyncConnection | None = None
        self._closed = False

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

        Asked for every inbound event when several instances share the database, so the
        claims are group-committed: whoever asks while a batch is being written joins the
        next one, and one INSERT serves them all. On PostgreSQL the commit does not wait for
        the disk either: a claim lost in a crash can at worst let one retried event be
        answered twice.
        """
        if self._closed:
            raise StoreError("the event-id claims are closed (shutting down)")
        key = f"{EVENT_PREFIX}{platform}.{event_id}"
        waiter: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(key, []).append(waiter)
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_batches(), name="event-claims")
        return await waiter

    async def _write_batches(self) -> None:
        batch: dict[str, list[asyncio.Future[bool]]] = {}
        try:
            while self._waiting:
                batch, self._waiting = self._waiting, {}
                try:
                    won = await self._insert_keys(list(batch))
                except Exception as exc:  # every waiter sees the error (StoreError: fail open)
                    _settle(batch, error=exc)
                    continue
                for key, waiters in batch.items():
                    for n, waiter in enumerate(waiters):
                        if not waiter.done():
                            waiter.set_result(n == 0 and key in won)  # the same id twice: once
        finally:  # cancelled at shutdown: nobody is left waiting for an answer
            closed = StoreError("the event-id claims are closed (shutting down)")
            _settle(batch, error=closed)
            _settle(self._waiting, error=closed)
            self._waiting = {}

    async def _insert_keys(self, keys: list[str]) -> set[str]:
        now = utcnow()
        if self._db.dialect == "postgresql":
            return await self._insert_keys_pg(keys, now)
        async with self._db.session() as session:
            result = await session.execute(
                sqlite_insert(BotState)
                .values([{"key": key, "value": "", "updated_at": now} for key in keys])
                .on_conflict_do_nothing(index_elements=["key"])
                .returning(BotState.key)
            )
            return set(result.scalars().all())

    async def _insert_keys_pg(self, keys: list[str], now: datetime) -> set[str]:
        """One statement on a connection of its own (autocommit, commits not waiting for the
        disk): a claim is in the answering path of every question, so it takes one round
        trip and never queues for a pooled connection behind the log's writes."""
        for attempt in (1, 2):  # a connection the database dropped is replaced once
            try:
                if self._conn is None:
                    if self._closed:
                        raise StoreError("the event-id claims are closed (shutting down)")
                    conn = await self._db.engine.connect()
                    conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
                    await conn.execute(text("SET synchronous_commit = off"))
                    self._conn = conn
                result = await self._conn.execute(_CLAIM_KEYS, {"keys": keys, "now": now})
                return set(result.scalars().all())
            except (SQLAlchemyError, OSError) as exc:
                await self._drop()
                if attempt == 2:
                    raise self._db.unreachable(exc) from exc
        raise AssertionError("unreachable")  # pragma: no cover

    async def close(self) -> None:
        """At shutdown: stop the batch writer (waiters get a StoreError, so their events go
        on unchecked) and drop the claims connection; nothing reconnects afterwards."""
        self._closed = True
        writer, self._writer = self._writer, None
        if writer is not None and not writer.done():
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer
        # A writer cancelled before it ever ran has settled nobody.
        _settle(self._waiting, error=StoreError("the event-id claims are closed (shutting down)"))
        self._waiting = {}
        await self._drop()

    async def _drop(self) -> None:
        """Drop the claims connection (never back to the pool: its settings are its own)."""
        conn, self._conn = self._conn, None
        await discard(conn)

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
