"""Timers for delivery retries: one APScheduler date job per delivery (``delivery-<id>``).

The engine arms them (a transient error, a part in doubt, a row taken over after a crash)
and the scheduler re-arms the ones other instances set; both get this one object at
construction. The job runs whatever ``deliver`` coroutine it was armed with, so the timers
know nothing of the engine and nobody patches a hook into anybody after construction.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.date import DateTrigger

#: Delivers one row if it is still pending (``DeliveryEngine.deliver``).
Deliver = Callable[[int], Awaitable[None]]


def job_id(delivery_id: int) -> str:
    """The APScheduler job id of a delivery's retry."""
    return f"delivery-{delivery_id}"


class RetryTimers:
    """Arms retries and knows which are armed or running."""

    def __init__(self, scheduler: AsyncIOScheduler) -> None:
        self._scheduler = scheduler
        #: Deliveries whose retry is running right now.
        self._running: set[int] = set()

    def arm(self, delivery_id: int, when: datetime, deliver: Deliver) -> None:
        """(Re)arm the retry of one delivery at ``when``."""
        self._scheduler.add_job(
            self._run,
            trigger=DateTrigger(run_date=when),
            args=[delivery_id, deliver],
            id=job_id(delivery_id),
            replace_existing=True,
            misfire_grace_time=None,
            # A retry that fails again re-arms this job from inside its own run; with a short
            # backoff the new run is due before that run has returned, and APScheduler would
            # skip it (one instance per job) and leave the row pending. The claim keeps two
            # runs from both posting.
            max_instances=2,
        )

    def idle(self, delivery_id: int) -> bool:
        """No retry of this delivery is armed or running here."""
        return (
            self._scheduler.get_job(job_id(delivery_id)) is None
            and delivery_id not in self._running
        )

    async def _run(self, delivery_id: int, deliver: Deliver) -> None:
        self._running.add(delivery_id)
        try:
            await deliver(delivery_id)
        finally:
            self._running.discard(delivery_id)
