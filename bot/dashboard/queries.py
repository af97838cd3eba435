"""Read-only queries behind the dashboard's pages and charts (the writes go through the
stores the rest of the bot uses)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from bot.store.db import Database
from bot.store.models import Announcement, Delivery, EngagementEvent, FaqEntry, ReviewItem
from bot.store.states import NEEDS_PERSON

#: Engagement kinds that count as people engaging with an announcement.
ENGAGEMENT_KINDS = ("reaction", "reply", "question", "feedback")


@dataclass(frozen=True, slots=True)
class DayCount:
    """Questions answered and declined on one day (UTC)."""

    day: date
    answered: int
    declined: int


@dataclass(frozen=True, slots=True)
class EngagementPoint:
    """One engagement event of an announcement: when and on which platform."""

    platform: str
    kind: str
    at: datetime


class DashboardQueries:
    """Aggregates for the overview, the announcements pages and the review queue."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def questions_per_day(self, days: int, today: date) -> list[DayCount]:
        """Answers and declines per day for the last ``days`` days, oldest first."""
        start_utc = datetime.combine(today - timedelta(days=days - 1), time(0), tzinfo=UTC)
        async with self._db.session() as session:
            rows = (
                await session.execute(
                    select(EngagementEvent.created_at, EngagementEvent.kind).where(
                        EngagementEvent.kind.in_(("answer", "declined")),
                        EngagementEvent.created_at >= start_utc,
                    )
                )
            ).all()
        counts = {today - timedelta(days=i): [0, 0] for i in range(days)}
        for created, kind in rows:
            bucket = counts.get(created.date())
            if bucket is not None:
                bucket[0 if kind == "answer" else 1] += 1
        return [DayCount(day, a, d) for day, (a, d) in sorted(counts.items())]

    async def top_entries(self, since: datetime, limit: int = 10) -> list[tuple[str, int]]:
        """The FAQ entries answered most often since ``since``: (question, count)."""
        async with self._db.session() as session:
            rows = (
                await session.execute(
                    select(FaqEntry.question, func.count(EngagementEvent.id).label("n"))
                    .join(FaqEntry, FaqEntry.id == EngagementEvent.faq_entry_id)
                    .where(EngagementEvent.kind == "answer", EngagementEvent.created_at >= since)
                    .group_by(FaqEntry.id, FaqEntry.question)
                    .order_by(func.count(EngagementEvent.id).desc(), FaqEntry.question)
                    .limit(limit)
                )
            ).all()
        return [(str(q), int(n)) for q, n in rows]

    async def announcements(self, limit: int, offset: int) -> Sequence[Announcement]:
        """Announcements with their deliveries, newest first."""
        async with self._db.session() as session:
            stmt = (
                select(Announcement)
                .order_by(Announcement.id.desc())
                .offset(offset)
                .limit(limit)
                .options(selectinload(Announcement.deliveries))
            )
            return (await session.scalars(stmt)).all()

    async def needing_person(self, limit: int = 100) -> list[tuple[Announcement, Delivery]]:
        """Failed and unknown deliveries with their announcements, newest first."""
        async with self._db.session() as session:
            rows = (
                await session.execute(
                    select(Announcement, Delivery)
                    .join(Delivery, Delivery.announcement_id == Announcement.id)
                    .where(Delivery.state.in_(NEEDS_PERSON))
                    .order_by(Delivery.id.desc())
                    .limit(limit)
                )
            ).all()
        return [(a, d) for a, d in rows]

    async def announcement_count(self) -> int:
        """How many announcements exist."""
        async with self._db.session() as session:
            return int(await session.scalar(select(func.count(Announcement.id))) or 0)

    async def engagement_counts(self, announcement_ids: Sequence[int]) -> dict[int, int]:
        """Engagement events per announcement."""
        if not announcement_ids:
            return {}
        async with self._db.session() as session:
            rows = (
                await session.execute(
                    select(EngagementEvent.announcement_id, func.count(EngagementEvent.id))
                    .where(
                        EngagementEvent.announcement_id.in_(announcement_ids),
                        EngagementEvent.kind.in_(ENGAGEMENT_KINDS),
                    )
                    .group_by(EngagementEvent.announcement_id)
                )
            ).all()
        return {int(a): int(n) for a, n in rows if a is not None}

    async def engagement_of(self, announcement_id: int) -> list[EngagementPoint]:
        """Every engagement event on one announcement, oldest first."""
        async with self._db.session() as session:
            rows = (
                await session.execute(
                    select(
                        EngagementEvent.platform, EngagementEvent.kind, EngagementEvent.created_at
                    )
                    .where(
                        EngagementEvent.announcement_id == announcement_id,
                        EngagementEvent.kind.in_(ENGAGEMENT_KINDS),
                    )
                    .order_by(EngagementEvent.created_at, EngagementEvent.id)
                )
            ).all()
        return [EngagementPoint(str(p), str(k), at) for p, k, at in rows]

    async def metrics_of(
        self, announcement_id: int
    ) -> list[tuple[str, datetime, dict[str, object]]]:
        """Metrics snapshots (X public metrics) of one announcement, oldest first."""
        async with self._db.session() as session:
            rows = (
                await session.execute(
                    select(
                        EngagementEvent.platform,
                        EngagementEvent.created_at,
                        EngagementEvent.detail,
                    )
                    .where(
                        EngagementEvent.announcement_id == announcement_id,
                        EngagementEvent.kind == "metrics",
                    )
                    .order_by(EngagementEvent.created_at, EngagementEvent.id)
                )
            ).all()
        return [(str(p), at, dict(detail or {})) for p, at, detail in rows]

    async def open_reviews(self, limit: int = 1000) -> Sequence[ReviewItem]:
        """Open review items, newest first."""
        async with self._db.session() as session:
            stmt = (
                select(ReviewItem)
                .where(ReviewItem.status == "open")
                .order_by(ReviewItem.id.desc())
                .limit(limit)
            )
            return (await session.scalars(stmt)).all()

    async def open_reviews_by_id(self, ids: Sequence[int]) -> Sequence[ReviewItem]:
        """Those of ``ids`` that are open review items, oldest first."""
        if not ids:
            return []
        async with self._db.session() as session:
            stmt = (
                select(ReviewItem)
                .where(ReviewItem.id.in_(ids[:1000]), ReviewItem.status == "open")
                .order_by(ReviewItem.id)
            )
            return (await session.scalars(stmt)).all()

    async def resolve_reviews(self, ids: Sequence[int], status: str, by: str, now: datetime) -> int:
        """Close open review items; returns how many were still open."""
        if not ids:
            return 0
        async with self._db.session() as session:
            items = (
                await session.scalars(
                    select(ReviewItem).where(ReviewItem.id.in_(ids), ReviewItem.status == "open")
                )
            ).all()
            for item in items:
                item.status = status
                item.resolved_by = by
                item.resolved_at = now
            return len(items)
