"""The reliability suite's fleet: fake Slack, X and Discord on loopback behind chaos proxies, a
database, and real bot processes (tests/reliability/worker.py) started and stopped around a
test or a benchmark."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
from slack_sdk.signature import SignatureVerifier
from sqlalchemy import func, insert, select
from sqlalchemy import text as text_sql

from announcements.store import content_hash
from bot.events import utcnow
from bot.store.db import Database
from bot.store.models import Announcement, Delivery
from bot.store.states import NEEDS_PERSON, AnnouncementStatus, DeliveryState
from tests.conftest import create_pg_database, drop_pg_database
from tests.fakes.discord_api import FakeDiscord, fake_discord
from tests.fakes.slack_api import BOT_USER, FakeSlack, fake_slack
from tests.fakes.x_api import FakeX, fake_x
from tests.reliability.chaos import ChaosProxy, chaos_proxy
from tests.reliability.worker import DISCORD_CHANNEL, SIGNING_SECRET, SLACK_CHANNEL, STAFF_USER

PLATFORMS = ("slack", "x", "discord")
ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Worker:
    process: asyncio.subprocess.Process
    port: int
    log: Path
    #: Its Discord shard, and how many processes share the shards.
    shard: int = 0
    shards: int = 1
    spec: dict[str, Any] = field(default_factory=dict)


@dataclass
class Fleet:
    """The fakes, their proxies, the database and the bot processes of one test."""

    url: str
    db: Database
    slack: FakeSlack
    x: FakeX
    discord: FakeDiscord
    proxies: dict[str, ChaosProxy]
    logs: Path
    workers: list[Worker] = field(default_factory=list)
    #: Processes killed and replaced.
    retired: list[Worker] = field(default_factory=list)

    async def spawn(self, count: int, **spec: Any) -> None:
        """Start ``count`` processes; each takes one Discord shard of ``count``."""
        started = [self._spawn(i, count, spec) for i in range(count)]
        self.workers.extend(await asyncio.gather(*started))

    async def kill_and_restart(self, index: int) -> Worker:
        """SIGKILL worker ``index`` (no shutdown: its claims are left behind) and start a
        process in its place, with its shard and settings; returns the new one."""
        old = self.workers[index]
        old.process.kill()
        await old.process.wait()
        new = await self._spawn(
            old.shard, old.shards, old.spec, generation=len(self.workers) + len(self.retired)
        )
        self.workers[index] = new
        self.retired.append(old)
        return new

    async def claims_of(self, worker: Worker) -> int:
        """How many rows ``worker`` holds ``sending`` right now (its claims name its pid)."""
        pid = worker.process.pid
        async with self.db.session() as session:
            count = await session.scalar(
                select(func.count(Delivery.id)).where(
                    Delivery.state == DeliveryState.SENDING,
                    Delivery.claimed_by.like(f"%:{pid}:%"),
                )
            )
        return int(count or 0)

    async def _spawn(
        self, number: int, shards: int, extra: dict[str, Any], generation: int = 0
    ) -> Worker:
        spec = {
            "database": self.url,
            "slack_api": self.proxies["slack"].base,
            "x_api": self.proxies["x"].base,
            "discord_api": self.proxies["discord"].base + "/api/v10",
            "discord_gateway": self.discord.gateway_url,
            "shard": number,
            "shards": shards,
            **extra,
        }
        log = self.logs / f"worker{number}-{generation}.log"
        with log.open("wb") as stderr:  # the child keeps its own descriptor
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "tests.reliability.worker",
                json.dumps(spec),
                cwd=ROOT,
                stdout=asyncio.subprocess.PIPE,
                stderr=stderr,
            )
        assert process.stdout is not None
        try:
            line = await asyncio.wait_for(process.stdout.readline(), timeout=90)
        except TimeoutError:
            process.kill()
            raise AssertionError(f"worker {number} did not start: {log.read_text()}") from None
        if not line.startswith(b"ready "):
            raise AssertionError(f"worker {number} failed to start: {log.read_text()[-3000:]}")
        return Worker(process, int(line.split()[1]), log, number, shards, extra)

    async def queue(self, count: int, spread: float, lead: float = 3.0) -> list[str]:
        """``count`` announcements to every platform, due evenly over ``spread`` seconds.

        Written in one transaction, as ``AnnouncementStore.create`` would write each, so
        queueing a thousand takes a moment rather than most of the spread on a busy machine.
        """
        start = utcnow() + timedelta(seconds=lead)
        texts = [
            f"Reliability announcement {n}: the PyTorch Foundation welcomes you."
            for n in range(count)
        ]
        async with self.db.session() as session:
            base = int(await session.scalar(select(func.max(Announcement.id))) or 0)
            now = utcnow()
            await session.execute(
                insert(Announcement),
                [
                    {
                        "id": base + n + 1,
                        "author": "ops",
                        "text": text,
                        "targets": list(PLATFORMS),
                        "overrides": {},
                        "status": AnnouncementStatus.SCHEDULED,
                        "due_at": start + timedelta(seconds=spread * n / max(1, count - 1)),
                        "timezone": "UTC",
                        "content_hash": content_hash(text),
                        "created_at": now,
                        "updated_at": now,
                    }
                    for n, text in enumerate(texts)
                ],
            )
            await session.execute(
                insert(Delivery),
                [
                    {
                        "announcement_id": base + n + 1,
                        "platform": platform,
                        "occurrence": "",
                        "state": DeliveryState.PENDING,
                        "progress": [],
                        "attempts": 0,
                        "updated_at": now,
                    }
                    for n in range(count)
                    for platform in PLATFORMS
                ],
            )
        if self.db.dialect == "postgresql":
            # Explicit ids leave the sequence behind; later creates must not collide.
            async with self.db.session() as session:
                await session.execute(
                    text_sql(
                        "SELECT setval(pg_get_serial_sequence('announcements', 'id'), "
                        "(SELECT max(id) FROM announcements))"
                    )
                )
        return texts

    def posts(self) -> Counter[tuple[str, str]]:
        """(platform, text) -> how many posts of it the fakes hold (what users would see)."""
        counted: Counter[tuple[str, str]] = Counter()
        for call in self.slack.calls_to("chat.postMessage"):
            if call.args.get("channel") == SLACK_CHANNEL:
                counted["slack", str(call.args.get("text"))] += 1
        for post in self.x.created():
            counted["x", str(post["text"])] += 1
        # Discord: the messages it holds, not the requests — a request repeated with its
        # nonce (discord.py re-sends after a broken connection) gets the first message back.
        for message in list(self.discord.messages.values()):
            if message["channel_id"] == DISCORD_CHANNEL:
                counted["discord", str(message.get("content"))] += 1
        return counted

    async def states(self) -> Counter[str]:
        async with self.db.session() as session:
            rows = await session.execute(
                select(Delivery.state, func.count(Delivery.id)).group_by(Delivery.state)
            )
            return Counter({str(state): int(n) for state, n in rows.all()})

    async def settle(self, limit: float) -> Counter[str]:
        """Wait until no delivery is pending or sending; returns the states.

        ``limit`` bounds a stall, not the whole wait: the deadline moves on whenever a row
        changes state, so a slow machine that is still making progress is not failed.
        """
        deadline = time.monotonic() + limit
        last: Counter[str] | None = None
        while True:
            try:
                states = await self.states()
            except Exception:  # the database may be restarting
                states = Counter({DeliveryState.PENDING: 1})
            if not states[DeliveryState.PENDING] and not states[DeliveryState.SENDING]:
                return states
            if states != last:
                last, deadline = states, time.monotonic() + limit
            if time.monotonic() > deadline:
                raise AssertionError(f"deliveries stalled for {limit}s: {dict(states)}")
            await asyncio.sleep(0.5)

    async def wait_posted(self, count: int, limit: float = 120.0) -> None:
        """Wait until the fakes have received ``count`` announcement posts (``limit``: the
        longest stretch without a new one)."""
        deadline, seen = time.monotonic() + limit, -1
        while (posted := sum(self.posts().values())) < count:
            if posted != seen:
                seen, deadline = posted, time.monotonic() + limit
            assert time.monotonic() < deadline, f"posts stalled at {posted} (waiting for {count})"
            await asyncio.sleep(0.1)

    async def wait_for_claims(self, worker: Worker, limit: float = 120.0) -> None:
        """Wait until ``worker`` holds at least one claim (it is mid fan-out)."""
        deadline = time.monotonic() + limit
        while not await self.claims_of(worker):
            assert time.monotonic() < deadline, f"worker {worker.shard} claimed nothing"
            await asyncio.sleep(0.05)

    async def needing_a_person(self) -> list[tuple[int, str]]:
        """(announcement id, platform) of every row left failed or unknown."""
        async with self.db.session() as session:
            rows = await session.execute(
                select(Delivery.announcement_id, Delivery.platform).where(
                    Delivery.state.in_(NEEDS_PERSON)
                )
            )
            return [(int(a), str(p)) for a, p in rows.all()]

    async def command(self, worker: Worker, text: str, http: aiohttp.ClientSession) -> None:
        """Staff type ``/announce TEXT`` in Slack; the command goes to ``worker``."""
        await command(worker.port, text, self.slack.base, http)

    async def check_exactly_once(self, texts: Sequence[str]) -> Counter[str]:
        """The promise: sent = posted once; unknown = posted at most once; nothing else."""
        posts = self.posts()
        doubles = {k: v for k, v in posts.items() if v > 1}
        assert not doubles, f"posted more than once: {doubles}"
        by_text = {t: n for n, t in enumerate(texts)}
        async with self.db.session() as session:
            rows = (
                await session.execute(
                    select(Delivery.platform, Delivery.state, Delivery.announcement_id)
                )
            ).all()
        assert len(rows) == len(texts) * len(PLATFORMS)
        states: Counter[str] = Counter()
        ids = {aid for _, _, aid in rows}
        text_of = await self._texts(ids)
        for platform, state, announcement_id in rows:
            text = text_of[announcement_id]
            assert text in by_text
            states[state] += 1
            if state == DeliveryState.SENT:
                assert posts[platform, text] == 1, (platform, text)
            else:
                assert state == DeliveryState.UNKNOWN, (platform, text, state)
        return states

    async def _texts(self, ids: set[int]) -> dict[int, str]:
        async with self.db.session() as session:
            rows = await session.execute(
                select(Announcement.id, Announcement.text).where(Announcement.id.in_(ids))
            )
            return {int(i): str(t) for i, t in rows.all()}

    def alive(self) -> list[Worker]:
        return [w for w in self.workers if w.process.returncode is None]


@asynccontextmanager
async def fleet(
    logs: Path, database: str, discord_rate: float | None = None, **chaos: Any
) -> AsyncIterator[Fleet]:
    """Fakes, proxies and a fresh database: a PostgreSQL URL gets a new database next to it
    (dropped afterwards); a SQLite URL is used as it is. ``discord_rate``: Discord's fault
    rate, if not the others' (discord.py sleeps 1 s, 3 s, 5 s... after each 500 while it
    holds the channel, so at 20 % the Discord fan-out alone takes minutes)."""
    postgres = database.startswith("postgresql")
    url = await create_pg_database(database) if postgres else database
    db = Database(url)
    await db.upgrade()
    async with AsyncExitStack() as stack:
        slack = await stack.enter_async_context(fake_slack())
        x = await stack.enter_async_context(fake_x())
        discord = await stack.enter_async_context(fake_discord())
        proxies = {
            "slack": await stack.enter_async_context(chaos_proxy(slack.base, "slack", **chaos)),
            "x": await stack.enter_async_context(chaos_proxy(x.base, "x", **chaos)),
            # Discord makes a timed-out post safe to repeat (a nonce), but discord.py waits
            # 30 s and more before it calls a request lost: only 429s and 500s here.
            "discord": await stack.enter_async_context(
                chaos_proxy(
                    discord.base,
                    "discord",
                    **{
                        **chaos,
                        "faults": [f for f in chaos.get("faults", ()) if "timeout" not in f],
                        "rate": chaos.get("rate", 0.0) if discord_rate is None else discord_rate,
                    },
                )
            ),
        }
        crew = Fleet(url, db, slack, x, discord, proxies, logs)
        try:
            yield crew
        finally:
            for worker in crew.alive():
                worker.process.send_signal(signal.SIGTERM)
            for worker in crew.workers:
                try:
                    await asyncio.wait_for(worker.process.wait(), timeout=30)
                except TimeoutError:
                    worker.process.kill()
                    await worker.process.wait()
            await db.close()
            if postgres:
                await drop_pg_database(url)


async def ask(port: int, number: int, http: aiohttp.ClientSession) -> None:
    ts = f"1800000000.{number:06d}"
    body = json.dumps(
        {
            "type": "event_callback",
            "event_id": f"EvR{number}",
            "team_id": "T1",
            "api_app_id": "A1",
            "authorizations": [{"team_id": "T1", "user_id": BOT_USER, "is_bot": True}],
            "event": {
                "type": "app_mention",
                "user": f"U{number}",
                "channel": "C-questions",
                "ts": ts,
                "event_ts": ts,
                "text": f"<@{BOT_USER}> "
                + ("who is on the pytorch foundation board?", "what's for lunch?")[number % 2],
            },
        }
    )
    stamp = str(int(time.time()))
    signature = SignatureVerifier(SIGNING_SECRET).generate_signature(timestamp=stamp, body=body)
    headers = {
        "Content-Type": "application/json",
        "X-Slack-Request-Timestamp": stamp,
        "X-Slack-Signature": str(signature),
    }
    async with http.post(
        f"http://127.0.0.1:{port}/slack/events", data=body, headers=headers
    ) as resp:
        assert resp.status == 200, await resp.text()


async def command(port: int, text: str, slack_base: str, http: aiohttp.ClientSession) -> None:
    """A signed ``/announce`` slash command (HTTP mode), its reply going to a hook on the fake."""
    body = urlencode(
        {
            "command": "/announce",
            "text": text,
            "user_id": STAFF_USER,
            "user_name": "staff",
            "channel_id": "C-comms",
            "team_id": "T1",
            "api_app_id": "A1",
            "response_url": f"{slack_base}/hooks/{abs(hash(text))}",
            "trigger_id": "",
        }
    )
    stamp = str(int(time.time()))
    signature = SignatureVerifier(SIGNING_SECRET).generate_signature(timestamp=stamp, body=body)
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": stamp,
        "X-Slack-Signature": str(signature),
    }
    async with http.post(
        f"http://127.0.0.1:{port}/slack/events", data=body, headers=headers
    ) as resp:
        assert resp.status == 200, await resp.text()


def answered(slack: FakeSlack, start: int, count: int) -> set[str]:
    wanted = {f"1800000000.{n:06d}" for n in range(start, start + count)}
    return {
        str(c.args.get("thread_ts"))
        for c in slack.calls_to("chat.postMessage")
        if c.args.get("thread_ts") in wanted
    }
