"""The polling jobs the runtime schedules, built from the config and the running adapters.

Each job is one coroutine per tick, re-entrant and idempotent (the database decides what is
due and claims it), so running the same tick twice — or in two processes — does nothing twice.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

from adapters.base import Adapter, MentionSource, MetricsSource
from bot.chain import Next
from bot.dispatch import Outbox
from bot.events import Conversation, OutgoingMessage, utcnow
from bot.mentions import MentionResponder
from bot.metrics import MetricsPoller
from bot.store.db import Database
from bot.timeline import PollingPlan

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PollingJob:
    """One periodic job: its scheduler id, interval and the coroutine run per tick."""

    name: str
    seconds: float
    run: Callable[[], Awaitable[int]]


class Polling:
    """The polling jobs, each tick run in its own shielded task so a shutdown lets a tick
    that is half-way (a reply posted, its log row not yet written) finish."""

    def __init__(self) -> None:
        self.jobs: list[PollingJob] = []
        self._tasks: set[asyncio.Task[int]] = set()
        self._closed = False

    def add(self, name: str, seconds: float, tick: Callable[[], Awaitable[int]]) -> None:
        """Register ``tick`` as job ``name``, run every ``seconds``."""

        async def run() -> int:
            if self._closed:
                return 0
            task = asyncio.ensure_future(tick())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            return await asyncio.shield(task)

        self.jobs.append(PollingJob(name, seconds, run))

    async def stop(self, grace: float) -> int:
        """Start no more ticks and wait for running ones; returns how many did not finish."""
        self._closed = True
        if not self._tasks:
            return 0
        _, pending = await asyncio.wait(set(self._tasks), timeout=grace)
        if pending:
            log.warning("shutdown: %d polling ticks did not finish in %ss", len(pending), grace)
        return len(pending)


def comms_alert(outbox: Outbox, comms_channel: str | None) -> Callable[[str], Awaitable[None]]:
    """Sends a message for staff to ``announcements.comms_channel`` ("platform:channel")."""

    async def alert(text: str) -> None:
        if comms_channel and ":" in comms_channel:
            platform, channel = comms_channel.split(":", 1)
            await outbox.send(OutgoingMessage(where=Conversation(platform, channel), text=text))

    return alert


def polling_jobs(
    plans: Mapping[str, PollingPlan],
    adapters: Mapping[str, Adapter],
    *,
    comms_channel: str | None,
    db: Database,
    deliver: Next,
    outbox: Outbox,
    clock: Callable[[], datetime] = utcnow,
) -> Polling:
    """The metrics and mentions jobs of the running adapters whose plan enables them.

    Jobs are named ``PLATFORM-metrics`` and ``PLATFORM-mentions``; a plan whose adapter lacks
    the capability (``MetricsSource`` / ``MentionSource``) adds nothing. Mentions go to
    ``deliver``, the chain pushed events go through; ``outbox`` carries alerts to staff.
    """
    jobs = Polling()
    alert = comms_alert(outbox, comms_channel)
    for platform, adapter in adapters.items():
        plan = plans.get(platform)
        if plan is None:
            continue
        if plan.metrics and isinstance(adapter, MetricsSource):
            snapshots = MetricsPoller(
                db=db,
                source=adapter,
                schedule=list(plan.metrics_schedule),
                alert=alert,
                clock=clock,
            )
            jobs.add(f"{platform}-metrics", plan.metrics_poll_seconds, snapshots.poll)
        if plan.mentions and isinstance(adapter, MentionSource):
            mentions = MentionResponder(
                db=db,
                source=adapter,
                deliver=deliver,
                backlog=plan.mentions_backlog,
                alert=alert,
                clock=clock,
            )
            jobs.add(f"{platform}-mentions", plan.mentions_poll_seconds, mentions.poll)
    return jobs
