"""Load: questions per second and answer latency, and announcements delivered per second, for
1 bot process on SQLite and 1 and 3 processes on PostgreSQL.

Real bot processes (tests/reliability/worker.py: the Runtime with the Slack HTTP-mode, X and
Discord adapters) against fake platforms on loopback, all on this machine. Questions are
signed Slack ``app_mention`` events sent round-robin to the processes (a load balancer's
job); latency is from sending the event to the answer reaching the fake Slack Web API, and
every question is checked in the engagement log. Announcements: a batch all due at the same
moment to 3 platforms; rate = posts / (last ``sent_at`` - due time).

Run: ``python -m bench.bench_load [QUESTIONS] [ANNOUNCEMENTS]`` (needs
``FOUNDATION_BOT_TEST_POSTGRES_URL`` for the PostgreSQL rows).
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import aiohttp
from sqlalchemy import func, select

from announcements.store import AnnouncementStore, NewAnnouncement
from bench.machine import describe
from bot.events import utcnow
from bot.store.models import Announcement, Delivery, EngagementEvent
from bot.store.states import DeliveryState
from tests.fakes.slack_api import Call
from tests.reliability.fleet import PLATFORMS, Fleet, ask, fleet

CONCURRENCY = 32


async def questions(crew: Fleet, count: int, first: int = 0) -> tuple[float, float, float]:
    """(questions/s, p50 ms, p99 ms) for questions numbered ``first`` .. ``first+count-1``."""
    async with crew.db.session() as session:
        before = await session.scalar(
            select(func.count(EngagementEvent.id)).where(EngagementEvent.kind == "question")
        )
    sent: dict[str, float] = {}
    latencies: list[float] = []
    done = asyncio.Event()

    def observe(call: Call) -> None:
        started = sent.pop(str(call.args.get("thread_ts")), None)
        if call.method == "chat.postMessage" and started is not None:
            latencies.append(time.perf_counter() - started)
            if len(latencies) == count:
                done.set()

    crew.slack.observer = observe
    ports = [w.port for w in crew.workers]
    queue: asyncio.Queue[int] = asyncio.Queue()
    for n in range(first, first + count):
        queue.put_nowait(n)

    async def sender(http: aiohttp.ClientSession) -> None:
        while not queue.empty():
            n = queue.get_nowait()
            sent[f"1800000000.{n:06d}"] = time.perf_counter()
            await ask(ports[n % len(ports)], n, http)

    began = time.perf_counter()
    async with aiohttp.ClientSession() as http:
        await asyncio.gather(*(sender(http) for _ in range(CONCURRENCY)))
    await asyncio.wait_for(done.wait(), timeout=600)
    elapsed = time.perf_counter() - began
    crew.slack.observer = None
    for _ in range(600):
        async with crew.db.session() as session:
            logged = await session.scalar(
                select(func.count(EngagementEvent.id)).where(EngagementEvent.kind == "question")
            )
        logged = (logged or 0) - (before or 0)
        if logged == count:
            break
        await asyncio.sleep(0.1)
    assert logged == count, f"{logged} of {count} questions logged"
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return count / elapsed, statistics.median(ordered) * 1000, p99 * 1000


async def announcements(crew: Fleet, count: int) -> float:
    """Posts delivered per second for ``count`` announcements due at once to 3 platforms."""
    store = AnnouncementStore(crew.db)
    due = utcnow() + timedelta(seconds=4)
    for n in range(count):
        text = f"Load announcement {n}: the PyTorch Foundation welcomes you."
        await store.create(NewAnnouncement("ops", text, PLATFORMS, due, "UTC", {}))
    total = count * len(PLATFORMS)
    for _ in range(1200):
        states = await crew.states()
        if states[DeliveryState.SENT] == total:
            break
        await asyncio.sleep(0.25)
    assert states[DeliveryState.SENT] == total, dict(states)
    async with crew.db.session() as session:
        last = await session.scalar(select(func.max(Delivery.sent_at)))
        first_due = await session.scalar(select(func.min(Announcement.due_at)))
    assert last is not None and first_due is not None
    seconds: float = max(0.001, (last - first_due).total_seconds())
    return total / seconds


async def run(label: str, url: str, instances: int, nq: int, na: int) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        async with fleet(Path(tmp), url) as crew:
            await crew.spawn(instances)
            await questions(crew, 200, first=nq)  # warm-up (other event ids)
            qps, p50, p99 = await questions(crew, nq)
            posts = await announcements(crew, na)
    return f"| {label} | {instances} | {qps:.0f} | {p50:.0f} | {p99:.0f} | {posts:.0f} |"


async def main(nq: int, na: int) -> None:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        sqlite = f"sqlite+aiosqlite:///{Path(tmp) / 'load.db'}"
        rows.append(await run("SQLite", sqlite, 1, nq, na))
    pg = os.environ.get("FOUNDATION_BOT_TEST_POSTGRES_URL")
    if pg:
        rows.append(await run("PostgreSQL", pg, 1, nq, na))
        rows.append(await run("PostgreSQL", pg, 3, nq, na))
    print(f"machine: {describe()}\n")
    print(
        f"{nq} questions ({CONCURRENCY} concurrent senders, half answered, half declined); "
        f"{na} announcements due at once to {len(PLATFORMS)} platforms\n"
    )
    print("| database | processes | questions/s | p50 answer ms | p99 answer ms | posts/s |")
    print("|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    q = int(sys.argv[1]) if len(sys.argv) > 1 else 3000
    a = int(sys.argv[2]) if len(sys.argv) > 2 else 300
    asyncio.run(main(q, a))
