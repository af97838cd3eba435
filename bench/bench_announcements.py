"""Announcement scheduling benchmark (the announcements issue's targets).

1. Start-up with 10,000 pending announcements (3 platforms each) in the store: time from
   ``Runtime.start()`` until every timer is armed. Target < 3 s.
2. Lateness when 100 announcements fall due in the same second, with fake platforms that take
   50 ms per post: per delivery, ``sent_at - due_at`` p50 / p99 / max. Target p99 < 250 ms.

Run: ``python -m bench.bench_announcements [--database-url URL]`` (default: a temporary SQLite
file). Prints a table.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import insert, select

from adapters.memory import MemoryAdapter
from bench.machine import describe, percentile
from bot.config import Config, Settings
from bot.events import OutgoingMessage, SentMessage
from bot.runtime import Runtime
from bot.store.db import Database
from bot.store.models import Announcement, Delivery
from bot.store.states import AnnouncementStatus, DeliveryState

PLATFORMS = ("slack", "discord", "x")


def _config(url: str) -> Config:
    settings = Settings.model_validate({"database": {"url": url}, "web": {"enabled": False}})
    return Config(settings, {}, "bench")


async def _seed(url: str, count: int, first_due: datetime, spread: timedelta) -> None:
    db = Database(url)
    await db.upgrade()
    now = datetime.now(UTC)
    step = spread / max(count, 1)
    async with db.session() as session:
        start_id = int(
            await session.scalar(select(Announcement.id).order_by(Announcement.id.desc()).limit(1))
            or 0
        )
        rows = [
            {
                "id": start_id + i + 1,
                "author": "bench",
                "text": f"Benchmark announcement {start_id + i + 1}",
                "targets": list(PLATFORMS),
                "overrides": {},
                "status": AnnouncementStatus.SCHEDULED,
                "due_at": first_due + step * i,
                "timezone": "UTC",
                "content_hash": f"bench-{start_id + i + 1}",
                "created_at": now,
                "updated_at": now,
            }
            for i in range(count)
        ]
        await session.execute(insert(Announcement), rows)
        await session.execute(
            insert(Delivery),
            [
                {
                    "announcement_id": r["id"],
                    "platform": p,
                    "occurrence": "",
                    "state": DeliveryState.PENDING,
                    "progress": [],
                    "attempts": 0,
                    "updated_at": now,
                }
                for r in rows
                for p in PLATFORMS
            ],
        )
    await db.close()


class TimedAdapter(MemoryAdapter):
    """A fake platform taking ``latency`` per post that notes when each post went out."""

    def __init__(self, platform: str, latency: float) -> None:
        super().__init__(platform, latency=latency, announce_channels=("news",))
        self.started: list[datetime] = []

    async def send(self, message: OutgoingMessage) -> SentMessage:
        self.started.append(datetime.now(UTC))
        return await super().send(message)


def _adapters(latency: float) -> list[TimedAdapter]:
    return [TimedAdapter(p, latency) for p in PLATFORMS]


async def startup(url: str) -> tuple[float, int]:
    """Seconds from start() to all timers armed, and how many were armed."""
    await _seed(url, 10_000, datetime.now(UTC) + timedelta(days=1), timedelta(days=30))
    runtime = Runtime(_config(url), _adapters(0.0))
    began = time.perf_counter()
    await runtime.start()
    elapsed = time.perf_counter() - began
    armed = len([j for j in runtime.scheduler.get_jobs() if j.id.startswith("announcement-")])
    await runtime.stop()
    return elapsed, armed


async def lateness(url: str) -> list[float]:
    """Per-post lateness in ms (post start minus due time) for 100 announcements due in the
    same second."""
    due = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=6)
    adapters = _adapters(0.05)
    runtime = Runtime(_config(url), adapters)
    await _seed(url, 100, due, timedelta(0))
    await runtime.start()  # arms them
    await asyncio.sleep(max(0.0, (due - datetime.now(UTC)).total_seconds()) + 1)
    for _ in range(100):
        if sum(len(a.started) for a in adapters) >= 300:
            break
        await asyncio.sleep(0.1)
    await runtime.stop()
    return [(t - due).total_seconds() * 1000 for a in adapters for t in a.started]


async def main(url: str | None) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        start_url = url or f"sqlite+aiosqlite:///{Path(tmp) / 'start.db'}"
        late_url = url or f"sqlite+aiosqlite:///{Path(tmp) / 'late.db'}"
        if url:
            db = Database(url)
            await db.downgrade("base")
            await db.close()
        elapsed, armed = await startup(start_url)
        if url:
            db = Database(url)
            await db.downgrade("base")
            await db.close()
        late = await lateness(late_url)
    backend = "PostgreSQL" if url and url.startswith("postgresql") else "SQLite"
    print(f"machine: {describe()}")
    print(f"backend: {backend}")
    print()
    print("| measure | value | target |")
    print("|---|---|---|")
    print(f"| start-up, 10,000 pending announcements ({armed} timers) | {elapsed:.2f} s | < 3 s |")
    print(
        f"| lateness p50 (100 due in one second, 3 platforms, 50 ms/post, {len(late)} "
        f"posts) | {percentile(late, 50):.0f} ms | |"
    )
    print(f"| lateness p99 | {percentile(late, 99):.0f} ms | < 250 ms |")
    print(f"| lateness max | {max(late) if late else float('nan'):.0f} ms | |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", help="a scratch database: it is wiped first")
    asyncio.run(main(parser.parse_args().database_url))
