"""Several bot instances on one database: claims, singleton jobs, start-up, and SQLite's
one-instance rule. Instances here are Runtimes in one process with their own engines and
connections, which is what the database sees of separate processes; the reliability suite
(tests/reliability/) repeats the key cases with real processes."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import create_async_engine

from adapters.memory import MemoryAdapter
from announcements.store import AnnouncementStore, NewAnnouncement
from bot.errors import StoreError
from bot.events import Author, Conversation, SlashCommand, utcnow
from bot.runtime import Runtime
from bot.store.db import Database
from bot.store.locks import LEADER_LOCK, Leadership, lock_key
from bot.store.models import Delivery
from tests.conftest import make_config
from tests.waiting import PATIENCE, eventually

PLATFORMS = {"slack": "C-news", "discord": "D-news", "x": "timeline"}
OPS = Author("ops")


def instance(url: str, **announcements: object) -> tuple[Runtime, list[MemoryAdapter]]:
    adapters = [MemoryAdapter(p, announce_channels=(c,)) for p, c in PLATFORMS.items()]
    config = make_config(
        database={"url": url},
        web={"enabled": False},
        staff={"slack_users": [OPS.id]},
        announcements={"sync_seconds": 0.2, "claim_lease_seconds": 5.0, **announcements},
    )
    return Runtime(config, adapters), adapters


def announcement_posts(adapters: list[MemoryAdapter]) -> Counter[tuple[str, str]]:
    """(platform, text) -> how many times it was posted to an announcement channel."""
    return Counter(
        (a.platform, m.text)
        for a in adapters
        for m in a.sent
        if m.where.channel_id in a.announce_channels
    )


async def test_second_instance_on_one_sqlite_file_is_refused(sqlite_url: str) -> None:
    first, _ = instance(sqlite_url)
    await first.start()
    try:
        second, _ = instance(sqlite_url)
        with pytest.raises(StoreError, match="already running") as caught:
            await second.start()
        message = str(caught.value)
        assert "\n" not in message and "PostgreSQL" in message
        await second.stop()
    finally:
        await first.stop()
    # Once the first has stopped, the file is free again.
    third, _ = instance(sqlite_url)
    await third.start()
    await third.stop()


async def test_claims_skip_rows_another_instance_is_claiming(pg_url: str) -> None:
    runtime, _ = instance(pg_url)
    await runtime.start()
    try:
        store = AnnouncementStore(runtime.db)
        created = await store.create(
            NewAnnouncement("ops", "Hello", ("slack", "discord"), utcnow(), "UTC", {})
        )
        ids = sorted(d.id for d in created.deliveries)
        other = Database(pg_url)
        try:
            async with other.session() as session:
                # Another instance is in the middle of claiming the first row.
                await session.execute(
                    select(Delivery).where(Delivery.id == ids[0]).with_for_update()
                )
                # A claim waiting behind the lock would wait until the session ends: forever.
                won = await asyncio.wait_for(
                    store.claim_many(ids, "me", timedelta(seconds=30)), timeout=PATIENCE
                )
            assert set(won) == {ids[1]}  # no waiting behind the lock, no double claim
        finally:
            await other.close()
    finally:
        await runtime.stop()


async def test_singleton_jobs_run_on_one_instance_and_move_when_it_dies(pg_url: str) -> None:
    runs: Counter[str] = Counter()
    runtimes = [instance(pg_url)[0] for _ in range(3)]
    for number, runtime in enumerate(runtimes):
        await runtime.start()

        async def job(name: str = f"i{number}") -> None:
            runs[name] += 1

        runtime.add_singleton_job(job, 0.1)
    leader_engine = None
    try:
        await eventually(lambda: sum(runs.values()) >= 5, f"five singleton runs: {runs}")
        assert len(runs) == 1, runs
        [leader_name] = runs
        leader = runtimes[int(leader_name[1:])]
        # The leader loses its database session (PostgreSQL restarted it, an idle-session
        # kill, a partition) and cannot open a new one: it is cut off from the database.
        leader_engine = leader.db.engine
        leader.db.engine = create_async_engine("postgresql+asyncpg://bot@127.0.0.1:9/gone")
        hi, lo = divmod(lock_key(LEADER_LOCK) % 2**64, 2**32)
        observer = Database(pg_url)
        try:
            async with observer.session() as session:
                [pid] = (
                    await session.scalars(
                        text(
                            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted "
                            "AND classid::bigint = :hi AND objid::bigint = :lo AND database = "
                            "(SELECT oid FROM pg_database WHERE datname = current_database())"
                        ),
                        {"hi": hi, "lo": lo},
                    )
                ).all()
                assert await session.scalar(text("SELECT pg_terminate_backend(:p)"), {"p": pid})

            async def backend_gone() -> bool:
                async with observer.session() as session:
                    alive = await session.scalar(
                        text("SELECT count(*) FROM pg_stat_activity WHERE pid = :p"), {"p": pid}
                    )
                return not alive

            await eventually(backend_gone, "the leader's backend gone")
        finally:
            await observer.close()
        runs.clear()
        # Nothing stopped: the old leader noticed on its own and another instance took over.
        await eventually(lambda: sum(runs.values()) >= 5, f"five runs after the move: {runs}")
        assert leader_name not in runs, runs
        assert len(runs) == 1, runs
    finally:
        if leader_engine is not None:
            await leader.db.engine.dispose()
            leader.db.engine = leader_engine
        for runtime in runtimes:
            await runtime.stop()


async def test_announcements_go_out_once_when_the_instance_that_queued_them_dies(
    pg_url: str,
) -> None:
    instances = [instance(pg_url) for _ in range(3)]
    for runtime, _ in instances:
        await runtime.start()
    (queuer, queuer_adapters), survivors = instances[0], instances[1:]
    texts = [f"Announcement number {n} is here." for n in range(20)]
    try:
        for body in texts:
            await queuer.handle(
                SlashCommand(
                    Conversation("slack", "C-comms"),
                    OPS,
                    "announce",
                    f'schedule --at "in 3 seconds" {body}',
                )
            )
        queued = await queuer.announcements.active()
        assert len(queued) == 20, [m.text for m in queuer_adapters[0].sent]
        await queuer.stop()  # before anything is due: only the others can post them
        everything = {(p, t) for p in PLATFORMS for t in texts}
        survivor_adapters = [a for _, adapters in survivors for a in adapters]
        await eventually(
            lambda: set(announcement_posts(survivor_adapters)) >= everything,
            "every announcement posted on every platform",
            within=2 * PATIENCE,
        )

        async def all_sent() -> bool:
            store = survivors[0][0].announcements
            rows = [d for a in queued for d in await store.deliveries(a.id)]
            return len(rows) == len(everything) and all(d.state == "sent" for d in rows)

        # Every row settled: nothing is still being posted, so a double post would show now.
        await eventually(all_sent, "every delivery recorded as sent", every=0.2)
        posted = announcement_posts([a for _, adapters in instances for a in adapters])
        assert set(posted) == everything
        assert max(posted.values()) == 1, [k for k, v in posted.items() if v > 1]
    finally:
        for runtime, _ in survivors:
            await runtime.stop()


async def test_instances_firing_one_recurring_occurrence_together_post_it_once(
    pg_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    instances = [instance(pg_url) for _ in range(3)]
    for runtime, _ in instances:
        await runtime.start()
    try:
        store = instances[0][0].announcements
        due = utcnow()
        weekly = await store.create(
            NewAnnouncement(
                "ops",
                "Office hours start now.",
                tuple(PLATFORMS),
                due,
                "UTC",
                {},
                recurrence="every day 09:00",
            )
        )
        occurrence = due.isoformat(timespec="seconds")
        # Every instance's timer for the occurrence fires in the same instant.
        for _ in range(3):
            outcomes = await asyncio.gather(
                *(r.delivery.fire_ids([(weekly.id, occurrence)]) for r, _ in instances),
                return_exceptions=True,
            )
            assert outcomes == [None, None, None]
        rows = await store.deliveries(weekly.id, occurrence)
        assert sorted(d.platform for d in rows) == sorted(PLATFORMS)
        assert {d.state for d in rows} == {"sent"}
        posted = announcement_posts([a for _, adapters in instances for a in adapters])
        assert posted == Counter((p, "Office hours start now.") for p in PLATFORMS)
        assert not [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL")]
    finally:
        for runtime, _ in instances:
            await runtime.stop()


async def test_instances_starting_together_migrate_and_load_the_pack_once(pg_url: str) -> None:
    runtimes = [instance(pg_url)[0] for _ in range(3)]
    try:
        await asyncio.gather(*(r.start() for r in runtimes))
        counts = {len(await r.faq.all()) for r in runtimes}
        assert counts == {33}
    finally:
        for runtime in runtimes:
            await runtime.stop()


async def test_leadership_is_always_held_on_sqlite(sqlite_url: str) -> None:
    db = Database(sqlite_url)
    try:
        assert await Leadership(db).held()
    finally:
        await db.close()
