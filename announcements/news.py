"""Announcements as news for the answering side (:class:`bot.answering.NewsSource`)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select

from announcements.store import AnnouncementStore
from bot.answering import NewsItem
from bot.store.db import Database
from bot.store.models import Announcement, Delivery
from bot.store.states import AnnouncementStatus, DeliveryState


class AnnouncementNews:
    """Published and upcoming announcements, read from the store."""

    def __init__(self, db: Database, store: AnnouncementStore) -> None:
        self._db = db
        self._store = store

    async def version(self) -> tuple[object, ...]:
        """Changes when an announcement is sent or retracted (see :meth:`published`)."""
        async with self._db.session() as session:
            sent = (
                await session.execute(
                    select(func.count(Delivery.id), func.max(Delivery.sent_at)).where(
                        Delivery.sent_at.is_not(None)
                    )
                )
            ).one()
            retracted = await session.scalar(
                select(func.count(Announcement.id)).where(
                    Announcement.status == AnnouncementStatus.RETRACTED
                )
            )
        return (int(sent[0] or 0), str(sent[1]), int(retracted or 0))

    async def published(self, limit: int) -> Sequence[NewsItem]:
        """Sent announcements (not retracted), newest first, with a link to the first post."""
        async with self._db.session() as session:
            newest = func.max(Delivery.sent_at)
            stmt = (
                select(Announcement, newest)
                .join(Delivery)
                .where(
                    Delivery.state == DeliveryState.SENT,
                    Announcement.status != AnnouncementStatus.RETRACTED,
                )
                .group_by(Announcement.id)
                .order_by(newest.desc())
                .limit(limit)
            )
            rows = (await session.execute(stmt)).all()
            urls = {
                d.announcement_id: d.url
                for d in (
                    await session.scalars(
                        select(Delivery).where(
                            Delivery.announcement_id.in_([r[0].id for r in rows]),
                            Delivery.state == DeliveryState.SENT,
                            Delivery.url.is_not(None),
                        )
                    )
                ).all()
            }
        return [NewsItem(a.id, a.text, sent_at, urls.get(a.id)) for a, sent_at in rows if sent_at]

    async def upcoming(self, limit: int) -> Sequence[NewsItem]:
        """Scheduled announcements, soonest first; nothing while the embargo is on."""
        if await self._store.held():
            return []
        items = [
            NewsItem(a.id, "", a.due_at)
            for a in await self._store.active()
            if a.status == AnnouncementStatus.SCHEDULED and a.due_at is not None
        ]
        return items[:limit]
