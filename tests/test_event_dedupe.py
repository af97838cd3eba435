"""A platform's retried delivery is answered once, even when a load balancer sends the retry to
another instance than the first delivery (several instances on PostgreSQL)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import select, text, update

from adapters.memory import MemoryAdapter
from bot.errors import StoreError
from bot.events import Author, Conversation, IncomingMessage, utcnow
from bot.runtime import Runtime
from bot.store.claims import EVENT_PREFIX
from bot.store.models import BotState
from tests.conftest import make_config

GENERAL = Conversation("slack", "C-general")


def instance(url: str) -> tuple[Runtime, MemoryAdapter]:
    adapter = MemoryAdapter("slack", announce_channels=("C-news",))
    config = make_config(database={"url": url}, web={"enabled": False})
    return Runtime(config, [adapter]), adapter


def mention(event_id: str, ts: str) -> IncomingMessage:
    return IncomingMessage(
        GENERAL,
        Author("U-alice"),
        "is pytorch still open source?",
        ts,
        mentions_bot=True,
        event_id=event_id,
    )


async def test_a_retry_that_reaches_another_instance_is_not_answered_twice(pg_url: str) -> None:
    first, here = instance(pg_url)
    second, there = instance(pg_url)
    await first.start()
    await second.start()
    try:
        await here.inject(mention("Ev-1", "1700000000.000100"))
        await there.inject(mention("Ev-1", "1700000000.000100"))  # Slack's retry, elsewhere
        await there.inject(mention("Ev-2", "1700000000.000200"))  # a new question
        answers = [m for m in here.sent + there.sent if m.where.channel_id == "C-general"]
        assert len(here.sent) == 1 and len(there.sent) == 1
        assert [m.feedback_token is not None for m in answers] == [True, True]  # both answers
        # Old claims are pruned by the leader's job; fresh ones are kept.
        async with first.db.session() as session:
            await session.execute(
                update(BotState)
                .where(BotState.key == f"{EVENT_PREFIX}slack.Ev-1")
                .values(updated_at=utcnow() - timedelta(hours=2))
            )
        assert await first._prune_event_claims() == 1
        async with first.db.session() as session:
            keys = (await session.scalars(select(BotState.key))).all()
        assert f"{EVENT_PREFIX}slack.Ev-2" in keys and f"{EVENT_PREFIX}slack.Ev-1" not in keys
    finally:
        await second.stop()
        await first.stop()


async def test_one_sqlite_instance_keeps_delivery_ids_in_memory_only(sqlite_url: str) -> None:
    runtime, adapter = instance(sqlite_url)
    await runtime.start()
    try:
        await adapter.inject(mention("Ev-1", "1700000000.000100"))
        await adapter.inject(mention("Ev-1", "1700000000.000100"))
        assert len(adapter.sent) == 1
        async with runtime.db.session() as session:
            keys = (await session.scalars(select(BotState.key))).all()
        assert not [k for k in keys if k.startswith(EVENT_PREFIX)]
    finally:
        await runtime.stop()


async def test_claims_survive_a_dropped_database_connection(pg_url: str) -> None:
    """After a failover or restart drops the claims connection, the next question opens a
    new one: still answered once, its retry still dropped."""
    first, here = instance(pg_url)
    await first.start()
    try:
        await here.inject(mention("Ev-1", "1700000000.000100"))
        async with first.db.engine.connect() as conn:
            killed = await conn.scalar(
                text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            )
        assert killed and killed >= 1
        await here.inject(mention("Ev-2", "1700000000.000200"))
        await here.inject(mention("Ev-2", "1700000000.000200"))
        assert len(here.sent) == 2
    finally:
        await first.stop()


async def test_at_shutdown_claims_stop_waiting_and_never_reconnect(pg_url: str) -> None:
    runtime, _ = instance(pg_url)
    await runtime.start()
    claims = runtime._claims
    try:
        assert await claims.first_delivery("slack", "Ev-1") is True
        queued = asyncio.create_task(claims.first_delivery("slack", "Ev-2"))
        await asyncio.sleep(0)  # queued for the next batch, the writer not yet run
        await claims.close()
        with pytest.raises(StoreError, match="shutting down"):
            await queued
        with pytest.raises(StoreError, match="shutting down"):
            await claims.first_delivery("slack", "Ev-3")
        assert claims._conn is None  # nothing reopened a connection
    finally:
        await runtime.stop()
