"""Engagement curves of posted announcements: metrics snapshots at growing intervals.

After an announcement is posted, the platform's counts (likes, reposts, replies, quotes,
impressions where reported) are read at each offset of a schedule, e.g. 10 min, 1 h, 6 h,
24 h, 7 d after the delivery's ``sent_at``, and stored as ``metrics`` engagement events linked
to the announcement — the points of the curve moderators see.

Nothing about the schedule lives in memory: each tick derives from the database which
snapshot of which delivery is due, so a restart neither loses nor repeats one. Snapshots that
fell due while the bot was down collapse into one, labelled with the latest step due (its
``age_seconds`` says when it was really taken). Each snapshot is stored together with a claim
keyed by ``(delivery, step)``, so two processes running the same tick store it once.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select

from adapters.base import MetricsSource
from bot.errors import PermanentPlatformError, TransientPlatformError
from bot.events import utcnow
from bot.store.claims import Claims
from bot.store.db import Database
from bot.store.engagement import Event
from bot.store.models import Delivery
from bot.store.states import DeliveryState
from bot.timeline import PostMetrics

log = logging.getLogger(__name__)

Alert = Callable[[str], Awaitable[None]]

#: How long past the last step a late snapshot is still taken (relative to that step).
LATE_FACTOR = 2


def claim_key(delivery_id: int, step: int) -> str:
    """The claim guarding one snapshot."""
    return f"metrics.{delivery_id}.{step}"


def label(offset: timedelta) -> str:
    """``10m``, ``1h``, ``7d``: a schedule step as people say it."""
    seconds = int(offset.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def due_step(sent_at: datetime, schedule: Sequence[timedelta], now: datetime) -> int | None:
    """The latest step of ``schedule`` that has fallen due, or None before the first."""
    due = [i for i, offset in enumerate(schedule) if sent_at + offset <= now]
    return due[-1] if due else None


@dataclass(frozen=True, slots=True)
class _Due:
    delivery: Delivery
    step: int


class MetricsPoller:
    """Stores metrics snapshots of one platform's posted announcements when they fall due."""

    def __init__(
        self,
        *,
        db: Database,
        source: MetricsSource,
        schedule: Sequence[timedelta],
        alert: Alert | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        if not schedule or any(b <= a for a, b in itertools.pairwise(schedule)):
            raise ValueError("the metrics schedule must be increasing")
        self._db = db
        self._claims = Claims(db)
        self._source = source
        self._schedule = tuple(schedule)
        self._alert = alert
        self._clock = clock
        self._resume_at: datetime | None = None
        #: Set when the platform refused for good (tier, credentials): polling stops.
        self.stopped_reason: str | None = None

    @property
    def platform(self) -> str:
        return self._source.platform

    async def poll(self) -> int:
        """One tick: take every snapshot that is due; returns how many were stored.

        Never raises for platform errors: a rate limit pauses polling until its reset, and a
        permanent refusal (access level, credentials) stops it with one message to staff.
        """
        now = self._clock()
        if self.stopped_reason is not None:
            return 0
        if self._resume_at is not None and now < self._resume_at:
            return 0
        due = await self._due(now)
        if not due:
            return 0
        post_ids = [d.delivery.external_id for d in due if d.delivery.external_id]
        try:
            found = await self._source.fetch_metrics(post_ids)
        except TransientPlatformError as exc:
            wait = exc.retry_after or 60.0
            self._resume_at = now + timedelta(seconds=wait)
            log.warning(
                "metrics not read platform=%s, next try in %.0fs: %s",
                self.platform,
                wait,
                exc.reason,
            )
            return 0
        except PermanentPlatformError as exc:
            await self._stop(exc.reason)
            return 0
        self._resume_at = None
        stored = 0
        for item in due:
            snapshot = found.get(item.delivery.external_id or "")
            if await self._store(item, snapshot, now):
                stored += 1
        await self._claims.prune("metrics.", now - self._horizon() - timedelta(days=1))
        return stored

    def _horizon(self) -> timedelta:
        return self._schedule[-1] * LATE_FACTOR

    async def _due(self, now: datetime) -> list[_Due]:
        async with self._db.session() as session:
            deliveries = (
                await session.scalars(
                    select(Delivery)
                    .where(
                        Delivery.platform == self.platform,
                        Delivery.state == DeliveryState.SENT,
                        Delivery.external_id.is_not(None),
                        Delivery.sent_at >= now - self._horizon(),
                    )
                    .order_by(Delivery.id)
                )
            ).all()
        candidates = []
        for delivery in deliveries:
            assert delivery.sent_at is not None
            step = due_step(delivery.sent_at, self._schedule, now)
            if step is not None:
                candidates.append(_Due(delivery, step))
        taken = await self._claims.existing(claim_key(c.delivery.id, c.step) for c in candidates)
        return [c for c in candidates if claim_key(c.delivery.id, c.step) not in taken]

    async def _store(self, item: _Due, snapshot: PostMetrics | None, now: datetime) -> bool:
        delivery = item.delivery
        key = claim_key(delivery.id, item.step)
        if snapshot is None:
            # Deleted on the platform (or retracted by hand): nothing to measure, ever again.
            await self._claims.claim(key, "missing")
            log.info(
                "metrics: post gone platform=%s delivery=%s post=%s",
                self.platform,
                delivery.id,
                delivery.external_id,
            )
            return False
        assert delivery.sent_at is not None
        offset = self._schedule[item.step]
        counts = snapshot.counts()
        event = Event(
            platform=self.platform,
            kind="metrics",
            channel=(delivery.progress[0].rpartition("|")[0] if delivery.progress else None),
            text=" · ".join(f"{name} {value}" for name, value in counts.items()),
            announcement_id=delivery.announcement_id,
            message_id=snapshot.post_id,
            url=delivery.url,
            detail={
                **counts,
                "step": item.step,
                "schedule": label(offset),
                "age_seconds": int((now - delivery.sent_at).total_seconds()),
                "delivery_id": delivery.id,
                "occurrence": delivery.occurrence,
            },
        )
        return await self._claims.claim_with_event(key, "stored", event)

    async def _stop(self, reason: str) -> None:
        self.stopped_reason = reason
        message = (
            f"Engagement metrics on {self.platform} are switched off until the bot restarts: "
            f"{reason}."
        )
        log.error("%s", message)
        if self._alert is not None:
            await self._alert(message)
