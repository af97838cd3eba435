"""FAQ entries in the database."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select

from bot.faqfile import FaqRecord
from bot.store.db import Database
from bot.store.models import FaqEntry


def to_record(entry: FaqEntry) -> FaqRecord:
    """The file form of a stored entry."""
    return FaqRecord(
        slug=entry.slug,
        question=entry.question,
        phrasings=tuple(entry.phrasings),
        answer=entry.answer,
        tags=tuple(entry.tags),
        source_url=entry.source_url,
        as_of=entry.as_of,
    )


class FaqStore:
    """Reads and writes FAQ entries."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def all(self) -> Sequence[FaqEntry]:
        """Every entry, by id."""
        async with self._db.session() as session:
            return (await session.scalars(select(FaqEntry).order_by(FaqEntry.id))).all()

    async def get(self, entry_id: int) -> FaqEntry | None:
        """One entry by id."""
        async with self._db.session() as session:
            return await session.get(FaqEntry, entry_id)

    async def version(self) -> tuple[object, ...]:
        """A fingerprint of the whole FAQ that changes with any add, edit or delete.

        Every running process compares it every couple of seconds, so a change made by any
        of them (``faq import``, the dashboard) reaches all of them without a message bus.
        """
        async with self._db.session() as session:
            row = (
                await session.execute(
                    select(
                        func.count(FaqEntry.id),
                        func.max(FaqEntry.updated_at),
                        func.sum(FaqEntry.id),
                    )
                )
            ).one()
        return (int(row[0] or 0), str(row[1]), int(row[2] or 0))

    async def count(self) -> int:
        """How many entries there are."""
        async with self._db.session() as session:
            return int(await session.scalar(select(func.count(FaqEntry.id))) or 0)

    async def upsert(
        self, records: Sequence[FaqRecord], *, replace: bool = False
    ) -> tuple[int, int, int]:
        """Create or update entries by slug in one transaction.

        Args:
            records: validated entries.
            replace: also delete stored entries whose slug is not in ``records``.

        Returns:
            (created, updated, deleted) counts.
        """
        created = updated = deleted = 0
        async with self._db.session() as session:
            existing = {e.slug: e for e in (await session.scalars(select(FaqEntry))).all()}
            for record in records:
                entry = existing.get(record.slug)
                if entry is None:
                    session.add(
                        FaqEntry(
                            slug=record.slug,
                            question=record.question,
                            phrasings=list(record.phrasings),
                            answer=record.answer,
                            tags=list(record.tags),
                            source_url=record.source_url,
                            as_of=record.as_of,
                        )
                    )
                    created += 1
                elif to_record(entry) != record:
                    entry.question = record.question
                    entry.phrasings = list(record.phrasings)
                    entry.answer = record.answer
                    entry.tags = list(record.tags)
                    entry.source_url = record.source_url
                    entry.as_of = record.as_of
                    updated += 1
            if replace:
                wanted = {r.slug for r in records}
                for slug, entry in existing.items():
                    if slug not in wanted:
                        await session.delete(entry)
                        deleted += 1
        return created, updated, deleted

    async def add_phrasing(self, entry_id: int, phrasing: str) -> bool:
        """Add an alternative phrasing to an entry; False if the entry does not exist."""
        async with self._db.session() as session:
            entry = await session.get(FaqEntry, entry_id)
            if entry is None:
                return False
            if phrasing not in entry.phrasings:
                entry.phrasings = [*entry.phrasings, phrasing]
            return True

    async def delete(self, entry_id: int) -> bool:
        """Delete an entry; False if it does not exist."""
        async with self._db.session() as session:
            entry = await session.get(FaqEntry, entry_id)
            if entry is None:
                return False
            await session.delete(entry)
            return True
