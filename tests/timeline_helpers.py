"""Shared by the tests of the public-timeline adapters (X, Mastodon, Bluesky): the real adapter
on its fake platform, alone or in a started Runtime with a Slack desk (memory) where staff type
commands, the polling jobs' ticks, and a clock the test moves."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Generic, TypeVar

from pydantic import SecretStr
from sqlalchemy import select

from adapters.base import Adapter
from adapters.memory import MemoryAdapter
from bot.config import Config
from bot.events import Author, Conversation, OutgoingMessage, SentMessage, SlashCommand
from bot.runtime import Runtime
from bot.store.models import Delivery
from tests.conftest import make_config

STAFF = Author("U-staff", "stella")
DESK = Conversation("slack", "C-desk")
#: Where staff are told about failures (``announcements.comms_channel``).
COMMS = "C-comms"

AdapterT = TypeVar("AdapterT", bound=Adapter)
FakeT = TypeVar("FakeT")


@dataclass
class Clock:
    """Time the test moves by hand (starts at the real time: sent_at is wall-clock)."""

    now: datetime = field(default_factory=lambda: datetime.now(UTC))

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


async def pushes_nothing(event: object) -> None:
    """The sink of an adapter started on its own: these platforms push no events."""
    raise AssertionError(f"a timeline platform pushed an event: {event!r}")


@asynccontextmanager
async def started(adapter: AdapterT) -> AsyncIterator[AdapterT]:
    """``adapter`` connected on its own (no runtime), stopped afterwards."""
    await adapter.start(pushes_nothing)
    try:
        yield adapter
    finally:
        await adapter.stop()


async def post_thread(
    adapter: Adapter, where: Conversation, parts: Sequence[str]
) -> list[SentMessage]:
    """Post ``parts`` as the delivery engine posts a thread: each replies to the one before,
    with its own idempotency key (``d1:CHANNEL:INDEX``)."""
    sent: list[SentMessage] = []
    for index, part in enumerate(parts):
        message = OutgoingMessage(
            where,
            part,
            reply_to=sent[-1].message_id if sent else None,
            idempotency_key=f"d1:{where.channel_id}:{index}",
        )
        sent.append(await adapter.send(message))
    return sent


@dataclass
class TimelineBot(Generic[AdapterT, FakeT]):
    """A running bot with one timeline platform and the desk its staff use."""

    runtime: Runtime
    slack: MemoryAdapter
    adapter: AdapterT
    fake: FakeT

    async def announce(self, text: str) -> str:
        """Type ``/announce TEXT`` at the desk; the reply staff see."""
        before = len(self.slack.sent)
        await self.slack.inject(SlashCommand(DESK, STAFF, "announce", text))
        [reply] = [m for m in self.slack.sent[before:] if m.ephemeral_to == STAFF.id]
        return reply.text

    def job(self, name: str) -> Callable[[], Awaitable[int]]:
        """The scheduler's job ``name`` (it runs only on the leader)."""
        job = self.runtime.scheduler.get_job(name)
        assert job is not None, name
        func: Callable[[], Awaitable[int]] = job.func
        return func

    def tick(self, name: str) -> Callable[[], Awaitable[int]]:
        """The job's tick without the leadership check (as if two instances both ran it)."""
        [job] = [j for j in self.runtime.polling.jobs if j.name == name]
        return job.run

    async def deliveries(self) -> list[Delivery]:
        async with self.runtime.db.session() as session:
            return list((await session.scalars(select(Delivery).order_by(Delivery.id))).all())

    def staff_notices(self, channel: str = COMMS) -> list[str]:
        return [m.text for m in self.slack.sent if m.where.channel_id == channel]


@asynccontextmanager
async def running_timeline(
    adapter: AdapterT,
    fake: FakeT,
    db_url: str,
    *,
    section: dict[str, Any] | None = None,
    clock: Callable[[], datetime] | None = None,
    live: bool = False,
    secrets: Mapping[tuple[str, str], str] | None = None,
    **sections: dict[str, Any],
) -> AsyncIterator[TimelineBot[AdapterT, FakeT]]:
    """A started Runtime with a Slack desk (memory) and ``adapter`` on ``fake``.

    Args:
        section: The platform's config section (it is enabled, and its jobs tick only when
            the test runs them).
        clock: The runtime's clock (default: the real time).
        live: Leave the scheduler running; otherwise it is paused and the test runs the
            polling jobs' ticks itself.
        secrets: Secrets beyond the adapter's own (which it is given directly).
        sections: Further config sections; ``announcements`` is merged into fast retries
            and the comms channel.
    """
    slack = MemoryAdapter("slack", announce_channels=())
    announcements = {
        "backoff_base_seconds": 0.01,
        "backoff_max_seconds": 0.05,
        "comms_channel": f"slack:{COMMS}",
        **sections.pop("announcements", {}),
    }
    settings = make_config(
        database={"url": db_url},
        web={"enabled": False},
        staff={"slack_users": [STAFF.id]},
        announcements=announcements,
        **{
            adapter.platform: {
                "enabled": True,
                # Long intervals: the jobs never tick on their own during a test.
                "mentions_poll_seconds": 3600,
                "metrics_poll_seconds": 3600,
                **(section or {}),
            }
        },
        **sections,
    ).settings
    config = Config(settings, {k: SecretStr(v) for k, v in (secrets or {}).items()}, "test")
    if clock is None:
        runtime = Runtime(config, [slack, adapter])
    else:
        runtime = Runtime(config, [slack, adapter], clock=clock)
    await runtime.start()
    if not live:
        runtime.scheduler.pause()
    try:
        yield TimelineBot(runtime, slack, adapter, fake)
    finally:
        await runtime.stop()
