"""Timers for announcements. The database is the source of truth; APScheduler only holds
in-memory timers, rebuilt from the database at every start.

Missed-while-down policy: a one-off announcement that fell due while the bot was not running
is sent at start if it is at most ``announcements.grace_minutes`` late, otherwise it is marked
``missed`` and staff are told — unless its fan-out had begun (a row attempted or posted):
then it is finished, never left out on some platforms only. A recurring one fires its latest
missed occurrence only if that is within the grace period, then continues at the next future
occurrence: never a burst.
A delivery found ``sending`` at start (or, with several instances, whose lease ran out) was
interrupted mid-post and is taken over by the engine (``DeliveryEngine.recover``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.date import DateTrigger

from announcements.engine import DeliveryEngine
from announcements.outcomes import Notify
from announcements.store import AnnouncementStore
from announcements.when import format_local, next_occurrence, parse_recurrence, zone
from bot.config import AnnouncementsSection
from bot.events import utcnow
from bot.store.models import Announcement
from bot.store.states import AnnouncementStatus, DeliveryState

log = logging.getLogger(__name__)

#: Timers firing within this many seconds of each other are delivered as one batch.
BATCH_WINDOW = 0.005
#: Announcements read (and handed to the engine) at a time within a batch: the first slice,
#: and the most (slices double in between).
FIRST_READ = 25
BATCH_READ = 500
#: The APScheduler job delivering, as one batch, what fell due while the bot was down.
OVERDUE_JOB = "due-at-start"


def occurrence_key(announcement: Announcement) -> str:
    """Delivery rows of a recurring announcement are keyed by the occurrence's due time."""
    if not announcement.recurrence or announcement.due_at is None:
        return ""
    return announcement.due_at.isoformat(timespec="seconds")


class AnnouncementScheduler:
    """Arms, re-arms and disarms announcement timers."""

    def __init__(
        self,
        *,
        scheduler: AsyncIOScheduler,
        store: AnnouncementStore,
        engine: DeliveryEngine,
        settings: AnnouncementsSection,
        notify: Notify,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._scheduler = scheduler
        self._store = store
        self._engine = engine
        self._settings = settings
        self._notify = notify
        self._clock = clock
        self._batch: list[int] = []
        self._batch_done: asyncio.Future[None] | None = None
        self._batch_tasks: set[asyncio.Task[None]] = set()
        #: Announcements whose timer callback is running (id -> how many callbacks).
        self._firing: dict[int, int] = {}

    async def recover_interrupted(self, *, include_live_claims: bool = False) -> int:
        """Take over deliveries whose claim ran out mid-post (see ``DeliveryEngine.recover``)."""
        return await self._engine.recover(include_live_claims=include_live_claims)

    async def sync(self, horizon_seconds: float) -> int:
        """Arm timers another instance queued (several processes, one database).

        Each instance arms timers for what it creates; the others learn of it here, on an
        interval, so an announcement still goes out if the instance that queued it dies
        before it is due. Claims decide who posts; an extra timer only finds nothing to do.
        """
        if await self._store.held():
            return 0
        now = self._clock()
        horizon = now + timedelta(seconds=horizon_seconds)
        armed = 0
        for announcement_id, due in await self._store.due_by(horizon):
            if announcement_id in self._firing:
                continue  # being delivered here right now
            if self._scheduler.get_job(f"announcement-{announcement_id}") is None:
                self.arm(announcement_id, max(due, now))
                armed += 1
        for delivery in await self._store.retry_pending():
            when = delivery.next_attempt_at
            if when is not None and when <= horizon and self._engine.retry_idle(delivery.id):
                self._engine.retry_at(delivery.id, max(when, now))
                armed += 1
        return armed

    async def start(self, *, single_process: bool = False) -> int:
        """Recover interrupted deliveries and arm every timer; returns timers armed.

        Args:
            single_process: no other bot process shares the database (SQLite), so every row
                left ``sending`` is from a process that died.
        """
        await self.recover_interrupted(include_live_claims=single_process)
        self._scheduler.add_job(
            self.recover_interrupted,
            trigger="interval",
            seconds=max(1.0, self._settings.claim_lease_seconds / 2),
            id="recover-interrupted-deliveries",
            replace_existing=True,
            coalesce=True,
            max_instances=1,
        )
        # Timers for announcements queued by another process (other instances on PostgreSQL;
        # on SQLite, anything written to the database outside this process).
        interval = self._settings.sync_seconds
        self._scheduler.add_job(
            self.sync,
            trigger="interval",
            seconds=interval,
            args=[interval * 2],
            id="sync-announcement-timers",
            replace_existing=True,
            coalesce=True,
            max_instances=1,
        )
        armed = 0
        held = await self._store.held()
        now = self._clock()
        grace = timedelta(minutes=self._settings.grace_minutes)
        overdue: list[int] = []
        # The timers alone (ids and times, no rows): thousands pending must not hold up the
        # restart; the rows are read when they fall due, a slice at a time.
        for ident, due, recurring in await self._store.scheduled_times():
            if due >= now or (held and not recurring):
                self.arm(ident, due)
                armed += 1
            elif due >= now - grace:
                overdue.append(ident)
            else:
                late = await self._store.get(ident)
                if late is not None and late.due_at is not None:
                    armed += await self._arm_late(late, now)
        if overdue:
            # Due while the bot was down (or mid fan-out when it died): one batch, not one
            # timer each, so posting resumes as soon as the first slice is read.
            self._scheduler.add_job(
                self._fire_overdue,
                trigger=DateTrigger(run_date=now),
                args=[overdue],
                id=OVERDUE_JOB,
                replace_existing=True,
                misfire_grace_time=None,
            )
            armed += len(overdue)
        for delivery in await self._store.retry_pending():
            if delivery.next_attempt_at is not None:
                self._engine.retry_at(delivery.id, delivery.next_attempt_at)
                armed += 1
        log.info("announcement timers armed count=%d held=%s", armed, held)
        return armed

    async def _fire_overdue(self, announcement_ids: list[int]) -> None:
        """Deliver what fell due while the bot was down, as one batch (marked as firing, so
        ``sync`` does not arm a timer for each meanwhile)."""
        for ident in announcement_ids:
            self._firing[ident] = self._firing.get(ident, 0) + 1
        try:
            await self._fire_batch(announcement_ids)
        finally:
            for ident in announcement_ids:
                left = self._firing.pop(ident) - 1
                if left:
                    self._firing[ident] = left

    async def _arm_late(self, announcement: Announcement, now: datetime) -> int:
        """Due longer ago than the grace period: finish a fan-out under way; otherwise mark
        it missed (one-off) or move on to the next occurrence (recurring)."""
        due = announcement.due_at
        assert due is not None
        tz = zone(announcement.timezone)
        started = any(
            d.state != DeliveryState.PENDING or d.attempts for d in announcement.deliveries
        )
        if not announcement.recurrence and started:
            # Its fan-out was under way (a crash, or another instance still at it): finish
            # it, rather than leave it out on some platforms only.
            self.arm(announcement.id, now)
            return 1
        if not announcement.recurrence:
            await self._store.update(announcement.id, status=AnnouncementStatus.MISSED)
            for delivery in announcement.deliveries:
                if delivery.state == DeliveryState.PENDING:
                    await self._store.set_delivery(
                        delivery.id, owner=None, state=DeliveryState.MISSED
                    )
            await self._notify(
                announcement,
                f"Announcement #{announcement.id} was due {format_local(due, tz)} while the bot "
                "was not running and is more than the grace period late, so it was not sent "
                "(marked missed). Queue it again if it is still wanted.",
            )
            return 0
        following = next_occurrence(parse_recurrence(announcement.recurrence), now, tz)
        await self._notify(
            announcement,
            f"Recurring announcement #{announcement.id} missed its occurrence of "
            f"{format_local(due, tz)} while the bot was down; the next one is "
            f"{format_local(following, tz)}.",
        )
        return await self._advance(announcement, following)

    async def _advance(self, announcement: Announcement, following: datetime) -> int:
        until = announcement.recur_until
        if until is not None and following > until:
            await self._store.update(announcement.id, status=AnnouncementStatus.DONE)
            self.disarm(announcement.id)
            return 0
        await self._store.update(announcement.id, due_at=following)
        self.arm(announcement.id, following)
        return 1

    def arm(self, announcement_id: int, when: datetime) -> None:
        """(Re)arm the timer of an announcement."""
        self._scheduler.add_job(
            self._fire,
            trigger=DateTrigger(run_date=when),
            args=[announcement_id],
            id=f"announcement-{announcement_id}",
            replace_existing=True,
            misfire_grace_time=None,
        )

    def disarm(self, announcement_id: int) -> None:
        """Remove the timer of an announcement, if any."""
        job = self._scheduler.get_job(f"announcement-{announcement_id}")
        if job is not None:
            job.remove()

    async def fire_now(self, announcement_id: int) -> None:
        """Deliver an announcement immediately (``/announce now``, approvals, resume)."""
        await self._fire(announcement_id)

    async def _fire(self, announcement_id: int) -> None:
        """The timer callback: joins the batch of everything falling due in this instant."""
        loop = asyncio.get_running_loop()
        if self._batch_done is None:
            self._batch_done = loop.create_future()
            loop.call_later(BATCH_WINDOW, self._start_batch)
        self._batch.append(announcement_id)
        self._firing[announcement_id] = self._firing.get(announcement_id, 0) + 1
        try:
            await asyncio.shield(self._batch_done)
        finally:
            left = self._firing.pop(announcement_id) - 1
            if left:
                self._firing[announcement_id] = left

    def _start_batch(self) -> None:
        ids, done = self._batch, self._batch_done
        self._batch, self._batch_done = [], None
        task = asyncio.get_running_loop().create_task(self._fire_batch(ids))
        self._batch_tasks.add(task)

        def finished(t: asyncio.Task[None]) -> None:
            self._batch_tasks.discard(t)
            if done is not None and not done.done():
                if t.cancelled():
                    done.cancel()
                elif t.exception() is not None:
                    done.set_exception(t.exception())  # type: ignore[arg-type]
                else:
                    done.set_result(None)

        task.add_done_callback(finished)

    async def _fire_batch(self, announcement_ids: list[int]) -> None:
        """Deliver a batch, read in slices: the first slice is posting while the next is read
        (after a restart, thousands can be due at once), and no read outgrows a database's
        limit on query parameters."""
        firing: list[asyncio.Task[None]] = []
        start, size = 0, FIRST_READ
        try:
            while start < len(announcement_ids):
                due = await self._due(announcement_ids[start : start + size])
                if due:
                    firing.append(asyncio.create_task(self._deliver_and_advance(*due)))
                # Small first, so the first posts do not wait for thousands of rows to load;
                # then larger, for fewer round trips.
                start, size = start + size, min(size * 2, BATCH_READ)
        finally:
            await asyncio.gather(*firing)

    async def _due(self, announcement_ids: list[int]) -> tuple[list[Announcement], bool] | None:
        """The announcements of a slice that are due now, read once (the engine posts from
        this read), and whether the embargo is on; None if none is due."""
        now = self._clock()
        due: list[Announcement] = []
        announcements, held = await self._store.get_many_for_delivery(announcement_ids)
        for announcement in announcements:
            if announcement.status != AnnouncementStatus.SCHEDULED:
                continue
            if announcement.due_at is None:
                continue
            if announcement.due_at > now + timedelta(seconds=1):
                self.arm(announcement.id, announcement.due_at)  # edited to a later time
                continue
            self.disarm(announcement.id)  # when called directly (now, approve, resume)
            due.append(announcement)
        return (due, held) if due else None

    async def _deliver_and_advance(self, due: list[Announcement], held: bool) -> None:
        now = self._clock()
        if held:
            log.info("announcements held by embargo ids=%s", sorted(a.id for a in due))
        else:
            await self._engine.fire_many([(a, occurrence_key(a)) for a in due])
        for announcement in due:
            if announcement.recurrence and announcement.due_at is not None:
                tz = zone(announcement.timezone)
                rule = parse_recurrence(announcement.recurrence)
                following = next_occurrence(rule, max(announcement.due_at, now), tz)
                await self._advance(announcement, following)

    async def release(self) -> int:
        """After ``/announce resume``: send what fell due during the embargo; returns count."""
        now = self._clock()
        released = 0
        for announcement in await self._store.active():
            if (
                announcement.status == AnnouncementStatus.SCHEDULED
                and not announcement.recurrence
                and announcement.due_at is not None
                and announcement.due_at <= now
            ):
                self.arm(announcement.id, now)
                released += 1
        return released
