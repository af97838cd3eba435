"""Restart after a crash: how soon posting resumes with 10,000 announcements pending.

The store is left as a process killed mid fan-out leaves it: 10,000 announcements due in the
last minute to 3 platforms (30,000 delivery rows) still ``pending``, and the dead process's
claims — ``max_parallel_posts`` rows per platform ``sending`` with an expired lease, half of
them with their platform call under way (the part marked in doubt), half not yet called. Then
one real bot process (tests/reliability/worker.py: the Slack HTTP-mode, X and Discord
adapters against fake platforms on loopback) is started, and the clock runs from spawning it:

- first post: the first announcement post the fake Slack receives (Slack needs no connection
  of its own in HTTP mode, so it is the first platform able to post);
- crash's rows settled: every row the dead process held is ``sent`` again (looked up first
  where its call was under way, posted otherwise) — nothing left for a person.

Run: ``python -m bench.bench_recovery [PENDING]`` (PostgreSQL too when
``FOUNDATION_BOT_TEST_POSTGRES_URL`` is set). Prints a table.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from sqlalchemy import func, insert, select

from announcements.progress import Doubt
from bench.machine import describe
from bot.events import utcnow
from bot.store.db import Database
from bot.store.models import Announcement, Delivery
from bot.store.states import AnnouncementStatus, DeliveryState
from tests.fakes.slack_api import Call
from tests.reliability.fleet import PLATFORMS, ROOT, Fleet, fleet
from tests.reliability.worker import DISCORD_CHANNEL, SLACK_CHANNEL, X_TIMELINE

#: The dead process's post slots per platform (``max_parallel_posts``), all claimed.
SLOTS = 8
CHANNELS = {"slack": SLACK_CHANNEL, "x": X_TIMELINE, "discord": DISCORD_CHANNEL}
CRASHED = "crashed-host:1:dead#beef"


async def seed(db: Database, count: int) -> list[int]:
    """The store as the crash left it; returns the ids of the rows the dead process held."""
    now = utcnow()
    announcements = [
        {
            "id": n + 1,
            "author": "bench",
            "text": f"Recovery benchmark announcement {n + 1}",
            "targets": list(PLATFORMS),
            "overrides": {},
            "status": AnnouncementStatus.SCHEDULED,
            "due_at": now - timedelta(seconds=60) + timedelta(seconds=60 * n / count),
            "timezone": "UTC",
            "content_hash": f"recovery-{n + 1}",
            "created_at": now,
            "updated_at": now,
        }
        for n in range(count)
    ]
    rows = []
    for platform in PLATFORMS:
        for n in range(count):
            held = n < SLOTS
            # Half the held rows had their call under way when the process died.
            marker = [Doubt(CHANNELS[platform], now, now).entry()] if held and n % 2 else []
            rows.append(
                {
                    "announcement_id": n + 1,
                    "platform": platform,
                    "occurrence": "",
                    "state": DeliveryState.SENDING if held else DeliveryState.PENDING,
                    "claimed_by": CRASHED if held else None,
                    "claimed_until": now - timedelta(seconds=1) if held else None,
                    "attempts": 1 if held else 0,
                    "progress": marker,
                    "updated_at": now,
                }
            )
    async with db.session() as session:
        await session.execute(insert(Announcement), announcements)
        await session.execute(insert(Delivery), rows)
    async with db.session() as session:
        held_ids = await session.scalars(select(Delivery.id).where(Delivery.claimed_by == CRASHED))
        return list(held_ids)


async def settled(db: Database, ids: list[int]) -> bool:
    async with db.session() as session:
        left = await session.scalar(
            select(func.count(Delivery.id)).where(
                Delivery.id.in_(ids), Delivery.state != DeliveryState.SENT
            )
        )
    return not left


async def restart(crew: Fleet, held: list[int]) -> tuple[float, float, float]:
    """Seconds from spawning the process to (its first post, the crash's rows all sent); and
    to its ``ready`` line, for scale."""
    first: list[float] = []
    posting = asyncio.Event()

    def observe(call: Call) -> None:
        if call.method == "chat.postMessage" and call.args.get("channel") == SLACK_CHANNEL:
            first.append(time.monotonic())
            posting.set()

    crew.slack.observer = observe
    began = time.monotonic()
    spawning = asyncio.create_task(crew.spawn(1))
    started: list[float] = []
    spawning.add_done_callback(lambda _: started.append(time.monotonic()))
    await asyncio.wait_for(posting.wait(), timeout=300)
    posted = first[0] - began
    await spawning
    ready = started[0] - began
    deadline = time.monotonic() + 300
    while not await settled(crew.db, held):
        assert time.monotonic() < deadline, "the crash's rows did not settle in 300 s"
        await asyncio.sleep(0.05)
    return posted, time.monotonic() - began, ready


async def run(url: str, count: int) -> tuple[float, float, float]:
    with tempfile.TemporaryDirectory() as logs:
        async with fleet(Path(logs), url) as crew:
            held = await seed(crew.db, count)
            return await restart(crew, held)


def python_start() -> float:
    """Seconds a bare ``import`` of the worker takes in a fresh interpreter (median of 3):
    the part of a restart spent before the bot's own start-up begins."""
    times = []
    for _ in range(3):
        began = time.monotonic()
        subprocess.run(
            [sys.executable, "-c", "import tests.reliability.worker"], check=True, cwd=ROOT
        )
        times.append(time.monotonic() - began)
    return statistics.median(times)


async def main(count: int) -> None:
    results: list[tuple[str, tuple[float, float, float]]] = []
    with tempfile.TemporaryDirectory() as tmp:
        sqlite = f"sqlite+aiosqlite:///{Path(tmp) / 'recovery.db'}"
        results.append(("SQLite", await run(sqlite, count)))
    postgres = os.environ.get("FOUNDATION_BOT_TEST_POSTGRES_URL")
    if postgres:
        results.append(("PostgreSQL", await run(postgres, count)))
    print(f"machine: {describe()}")
    print()
    print(
        f"Restart after a crash: {count:,} announcements pending to 3 platforms, the dead "
        f"process's {SLOTS} claims per platform left sending (half mid-call)"
    )
    print()
    imports = python_start()
    print(
        "| database | to first post | of which Python start + imports | to the crash's rows "
        "sent | to ready |"
    )
    print("|---|---|---|---|---|")
    for name, (posted, recovered, ready) in results:
        print(f"| {name} | {posted:.2f} s | {imports:.2f} s | {recovered:.2f} s | {ready:.2f} s |")
    print()
    print("Target: first post < 3 s.")


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 10_000))
