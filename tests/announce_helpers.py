"""Shared set-up for announcement tests: a runtime with recording platforms and a settable
clock, so no test waits on real time."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from adapters.memory import MemoryAdapter
from bot.events import Author, Conversation, SlashCommand
from bot.runtime import Runtime
from tests.conftest import make_config

STAFF = Author("U-staff", "stella")
STAFF2 = Author("U-staff2", "sam")
MEMBER = Author("U-member", "mo")
DESK = Conversation("slack", "C-comms")
START = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


@dataclass
class Clock:
    """A clock tests move by hand."""

    now: datetime = START

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@dataclass
class Bot:
    runtime: Runtime
    slack: MemoryAdapter
    discord: MemoryAdapter
    x: MemoryAdapter
    clock: Clock
    replies: list[str] = field(default_factory=list)

    async def announce(self, text: str, author: Author = STAFF) -> str:
        """Type ``/announce TEXT`` in Slack and return the bot's (ephemeral) reply."""
        before = len(self.slack.sent)
        await self.slack.inject(SlashCommand(DESK, author, "announce", text))
        replies = [m for m in self.slack.sent[before:] if m.ephemeral_to == author.id]
        assert len(replies) == 1, self.slack.sent[before:]
        self.replies.append(replies[0].text)
        return replies[0].text

    def posts(self, platform: str) -> list[str]:
        adapter = {"slack": self.slack, "discord": self.discord, "x": self.x}[platform]
        return [m.text for m in adapter.sent if m.where.channel_id in adapter.announce_channels]


@asynccontextmanager
async def running_bot(
    db_url: str,
    *,
    clock: Clock | None = None,
    latency: float = 0.0,
    platforms: dict[str, MemoryAdapter] | None = None,
    **announcements: Any,
) -> AsyncIterator[Bot]:
    """A started runtime with slack/discord/x recording adapters; stopped on exit.

    ``platforms`` replaces some of them (e.g. ``{"x": ...}``) with the test's own.
    """
    clock = clock or Clock()
    given = platforms or {}
    slack = given.get("slack") or MemoryAdapter(
        "slack", latency=latency, announce_channels=("C-news",)
    )
    discord = given.get("discord") or MemoryAdapter(
        "discord", latency=latency, announce_channels=("D-news",)
    )
    x = given.get("x") or MemoryAdapter("x", latency=latency, announce_channels=("timeline",))
    config = make_config(
        database={"url": db_url},
        web={"enabled": False},
        staff={"slack_users": [STAFF.id, STAFF2.id], "timezones": {STAFF.id: "Europe/Berlin"}},
        announcements={"backoff_base_seconds": 1.0, **announcements},
    )
    runtime = Runtime(config, [slack, discord, x], clock=clock)
    await runtime.start()
    # Time is the test's: timers never fire on their own, tests run them (fire_due, job.func).
    runtime.scheduler.pause()
    try:
        yield Bot(runtime, slack, discord, x, clock)
    finally:
        await runtime.stop()
