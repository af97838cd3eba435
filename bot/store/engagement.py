"""The engagement log, the moderators' review queue and the bot's threads."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Select, Table, func, insert, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from bot.errors import StoreError
from bot.events import utcnow
from bot.store.db import Database
from bot.store.models import AuditLog, BotThread, Delivery, EngagementEvent, ReviewItem

#: Longest text kept per event; the rest is cut (a 10,000-character message is still logged).
MAX_LOGGED_CHARS = 4000
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
#: Unpaired surrogates (from JSON escapes such as "\\udede") cannot be encoded as UTF-8.
_SURROGATE = re.compile(r"[\ud800-\udfff]")


def clean_text(text: str | None, limit: int = MAX_LOGGED_CHARS) -> str | None:
    """Text safe for every backend: no control characters (PostgreSQL rejects NUL), no
    unpaired surrogates (no driver can encode them; kept visible as U+FFFD), bounded."""
    if text is None:
        return None
    cleaned = _SURROGATE.sub("\ufffd", _CONTROL.sub("", text))
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 1] + "…"


@dataclass(slots=True)
class Event:
    """One engagement event to record (the columns of :class:`EngagementEvent`)."""

    platform: str
    kind: str
    channel: str | None = None
    user: str | None = None
    text: str | None = None
    faq_entry_id: int | None = None
    announcement_id: int | None = None
    score: float | None = None
    message_id: str | None = None
    thread_id: str | None = None
    url: str | None = None
    ref: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    def values(self, now: datetime) -> dict[str, Any]:
        """The column values of this event's row."""
        return {
            "platform": self.platform,
            "kind": self.kind,
            "channel": self.channel,
            "user": self.user,
            "text": clean_text(self.text),
            "faq_entry_id": self.faq_entry_id,
            "announcement_id": self.announcement_id,
            "score": self.score,
            "message_id": self.message_id,
            "thread_id": self.thread_id,
            "url": self.url,
            "ref": self.ref,
            "detail": self.detail,
            "created_at": now,
        }

    def row(self) -> EngagementEvent:
        """The ORM row for this event."""
        return EngagementEvent(**self.values(utcnow()))


#: The kinds of engagement events, in the order filters offer them.
EVENT_KINDS = (
    "question",
    "answer",
    "declined",
    "reaction",
    "reply",
    "feedback",
    "command",
    "announcement_posted",
)
#: The bot's reply to a question; it shares the question's ``ref``.
OUTCOME_KINDS = ("answer", "declined")

#: The columns of an exported engagement log (CLI ``logs --format csv|json``, dashboard CSV).
LOG_COLUMNS = (
    "id",
    "created_at",
    "platform",
    "channel",
    "user",
    "kind",
    "text",
    "faq_entry_id",
    "announcement_id",
    "score",
    "link",
)
#: Builds a message's public link from (platform, channel, message id), or None: each
#: platform's own rule (``PlatformRules.message_link``), looked up by the caller.
LinkBuilder = Callable[[str, str, str], str | None]


def message_link(event: EngagementEvent, links: LinkBuilder | None = None) -> str | None:
    """A link to the message on its platform: the one stored with it, else one ``links``
    builds from its ids."""
    if event.url and event.url.startswith(("https://", "http://")):
        return event.url
    if links is None or not event.message_id:
        return None
    return links(event.platform, event.channel or "", event.message_id)


def log_record(event: EngagementEvent, links: LinkBuilder | None = None) -> dict[str, Any]:
    """One logged event as an export row (keys: :data:`LOG_COLUMNS`)."""
    return {
        "id": event.id,
        "created_at": event.created_at.isoformat(timespec="seconds"),
        "platform": event.platform,
        "channel": event.channel,
        "user": event.user,
        "kind": event.kind,
        "text": event.text,
        "faq_entry_id": event.faq_entry_id,
        "announcement_id": event.announcement_id,
        "score": None if event.score is None else round(event.score, 4),
        "link": message_link(event, links),
    }


#: ``foundation-bot logs`` adds the question an answer or decline replied to.
EXCHANGE_COLUMNS = (*LOG_COLUMNS, "question")


def exchange_records(
    events: Sequence[EngagementEvent],
    questions: Mapping[str, EngagementEvent],
    links: LinkBuilder | None = None,
) -> list[dict[str, Any]]:
    """Export rows (keys: :data:`EXCHANGE_COLUMNS`) with each question and its outcome on one
    row: an answer or decline carries the question it replied to (from ``questions``, by
    ``ref``), and a question whose outcome is among ``events`` is not listed again."""
    replied = {e.ref for e in events if e.kind in OUTCOME_KINDS and e.ref}
    rows = []
    for event in events:
        if event.kind == "question" and event.ref in replied:
            continue
        asked = questions.get(event.ref or "") if event.kind in OUTCOME_KINDS else None
        rows.append({**log_record(event, links), "question": asked.text if asked else None})
    return rows


@dataclass(frozen=True, slots=True)
class LogFilter:
    """Which engagement events to list."""

    since: datetime | None = None
    until: datetime | None = None
    platform: str | None = None
    kind: str | None = None
    user: str | None = None
    channel: str | None = None
    limit: int | None = None
    #: Words that must all appear in the text (case-insensitive).
    search: str | None = None
    offset: int = 0
    newest_first: bool = False


def _fail(batch: Sequence[_Write], exc: BaseException) -> None:
    for item in batch:
        if not item.done.done():
            item.done.set_exception(exc)


@dataclass(slots=True)
class _Write:
    events: tuple[Event, ...]
    review: ReviewItem | None
    thread: tuple[str, str, str] | None
    done: asyncio.Future[list[int]]


_EVENTS = cast(Table, EngagementEvent.__table__)
_REVIEWS = cast(Table, ReviewItem.__table__)
_INSERT_EVENTS = insert(_EVENTS).returning(_EVENTS.c.id, sort_by_parameter_order=True)


class EngagementLog:
    """Writes and reads engagement events, review items and bot threads."""

    def __init__(self, db: Database, pseudonymize: Callable[[str], str] | None = None) -> None:
        self._db = db
        #: With ``privacy.pseudonymize_users``: maps platform user ids to keyed hashes.
        self._pseudonymize = pseudonymize
        self._pending: list[_Write] = []
        self._writer: asyncio.Task[None] | None = None

    async def record(
        self,
        *events: Event,
        review: ReviewItem | None = None,
        thread: tuple[str, str, str] | None = None,
    ) -> list[int]:
        """Store events (and optionally a review item linked to the first, and a bot thread
        as ``(platform, channel, thread_id)``) in one transaction; returns the event ids.

        Concurrent calls are group-committed: whoever arrives while a commit is in flight
        joins the next one. Every caller still returns only once its rows are committed, but
        under load one commit serves many questions instead of one each.
        """
        loop = asyncio.get_running_loop()
        done: asyncio.Future[list[int]] = loop.create_future()
        self._pending.append(_Write(events, review, thread, done))
        if self._writer is None or self._writer.done():
            self._writer = loop.create_task(self._write_batches())
        return await done

    async def _write_batches(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                try:
                    async with self._db.session() as session:
                        results = await self._write_many(session, batch)
                except Exception as exc:
                    if len(batch) == 1 or isinstance(exc, StoreError):
                        _fail(batch, exc)
                        continue
                    # One bad row must not take the others down: write them one by one.
                    for item in batch:
                        await self._write_alone(item)
                    continue
                for item, ids in zip(batch, results, strict=True):
                    if not item.done.done():
                        item.done.set_result(ids)
            finally:
                # Whatever happened (even cancellation), no caller is left waiting forever.
                _fail(batch, StoreError("the engagement log write was interrupted"))

    async def _write_alone(self, item: _Write) -> None:
        try:
            async with self._db.session() as session:
                ids = await self._write(session, item)
        except Exception as exc:
            if not item.done.done():
                item.done.set_exception(exc)
        else:
            if not item.done.done():
                item.done.set_result(ids)

    async def _write(self, session: AsyncSession, item: _Write) -> list[int]:
        return (await self._write_many(session, [item]))[0]

    async def _write_many(self, session: AsyncSession, batch: Sequence[_Write]) -> list[list[int]]:
        """All rows of a batch with one flush and one thread insert (not one per caller)."""
        threads = list(dict.fromkeys(item.thread for item in batch if item.thread is not None))
        if threads:
            await self._remember_threads(session, threads)
        # Core bulk INSERT ... RETURNING (ids in parameter order) rather than ORM objects and a
        # unit-of-work flush: this is the hot path of every answered question.
        now = utcnow()
        params = [event.values(now) for item in batch for event in item.events]
        if self._pseudonymize is not None:
            for row in params:
                if row["user"]:
                    row["user"] = self._pseudonymize(row["user"])
        ids: list[int] = []
        connection = await session.connection()
        if params:
            # The Table, not the mapped class: a plain Core executemany skips the ORM's bulk
            # machinery, which was the biggest cost of a logged answer.
            result = await connection.execute(_INSERT_EVENTS, params)
            ids = [int(row[0]) for row in result.all()]
        out: list[list[int]] = []
        position = 0
        reviews: list[ReviewItem] = []
        for item in batch:
            item_ids = ids[position : position + len(item.events)]
            position += len(item.events)
            out.append(item_ids)
            if item.review is not None:
                item.review.engagement_id = item_ids[0] if item_ids else None
                item.review.question = clean_text(item.review.question) or ""
                reviews.append(item.review)
        if reviews:
            # Core executemany again (declines are a third of questions under load).
            await connection.execute(
                insert(_REVIEWS),
                [
                    {
                        "engagement_id": r.engagement_id,
                        "platform": r.platform,
                        "question": r.question,
                        "reason": r.reason,
                        "best_entry_id": r.best_entry_id,
                        "score": r.score,
                        "status": r.status or "open",
                        "created_at": r.created_at or now,
                    }
                    for r in reviews
                ],
            )
        return out

    async def list(self, flt: LogFilter) -> Sequence[EngagementEvent]:
        """Events matching ``flt``, oldest first (or newest first)."""
        order = (
            (EngagementEvent.created_at.desc(), EngagementEvent.id.desc())
            if flt.newest_first
            else (EngagementEvent.created_at, EngagementEvent.id)
        )
        stmt = self._filtered(select(EngagementEvent), flt).order_by(*order)
        if flt.offset:
            stmt = stmt.offset(flt.offset)
        if flt.limit:
            stmt = stmt.limit(flt.limit)
        async with self._db.session() as session:
            return (await session.scalars(stmt)).all()

    async def count(self, flt: LogFilter) -> int:
        """How many events match ``flt`` (limit and offset ignored)."""
        stmt = self._filtered(select(func.count(EngagementEvent.id)), flt)
        async with self._db.session() as session:
            return int(await session.scalar(stmt) or 0)

    def _filtered(self, stmt: Select[Any], flt: LogFilter) -> Select[Any]:
        if flt.since is not None:
            stmt = stmt.where(EngagementEvent.created_at >= flt.since)
        if flt.until is not None:
            stmt = stmt.where(EngagementEvent.created_at < flt.until)
        if flt.platform:
            stmt = stmt.where(EngagementEvent.platform == flt.platform)
        if flt.kind:
            stmt = stmt.where(EngagementEvent.kind == flt.kind)
        if flt.user:
            # A pseudonym, or a platform id whose pseudonym is looked up with the key.
            users = {flt.user}
            if self._pseudonymize is not None:
                users.add(self._pseudonymize(flt.user))
            stmt = stmt.where(EngagementEvent.user.in_(users))
        if flt.channel:
            stmt = stmt.where(EngagementEvent.channel == flt.channel)
        for word in (flt.search or "").split()[:10]:
            escaped = word.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            stmt = stmt.where(func.lower(EngagementEvent.text).like(f"%{escaped}%", escape="\\"))
        return stmt

    async def get(self, event_id: int) -> EngagementEvent | None:
        """One event by id."""
        async with self._db.session() as session:
            return await session.get(EngagementEvent, event_id)

    async def open_reviews(self) -> Sequence[ReviewItem]:
        """The moderators' queue: unresolved review items, oldest first."""
        async with self._db.session() as session:
            stmt = select(ReviewItem).where(ReviewItem.status == "open").order_by(ReviewItem.id)
            return (await session.scalars(stmt)).all()

    async def remember_thread(
        self, platform: str, channel: str, thread_id: str, announcement_id: int | None = None
    ) -> None:
        """Mark a thread as the bot's, so follow-ups there are answered without a mention."""
        async with self._db.session() as session:
            await self.remember_thread_in(session, platform, channel, thread_id, announcement_id)

    @staticmethod
    async def remember_thread_in(
        session: AsyncSession,
        platform: str,
        channel: str,
        thread_id: str,
        announcement_id: int | None = None,
    ) -> None:
        """Like :meth:`remember_thread`, inside the caller's transaction; idempotent."""
        await EngagementLog._remember_threads(
            session, [(platform, channel, thread_id)], announcement_id
        )

    @staticmethod
    async def _remember_threads(
        session: AsyncSession,
        threads: Sequence[tuple[str, str, str]],
        announcement_id: int | None = None,
    ) -> None:
        now = utcnow()
        dialect = session.get_bind().dialect.name
        insert = pg_insert if dialect == "postgresql" else sqlite_insert
        await session.execute(
            insert(BotThread).on_conflict_do_nothing(
                index_elements=["platform", "channel", "thread_id"]
            ),
            [
                {
                    "platform": p,
                    "channel": c,
                    "thread_id": t,
                    "announcement_id": announcement_id,
                    "created_at": now,
                }
                for p, c, t in threads
            ],
        )

    async def find_thread(self, platform: str, channel: str, thread_id: str) -> BotThread | None:
        """The bot thread with this id, if the bot started or answered in it."""
        async with self._db.session() as session:
            stmt = select(BotThread).where(
                BotThread.platform == platform,
                BotThread.channel == channel,
                BotThread.thread_id == thread_id,
            )
            return (await session.scalars(stmt)).first()

    async def find_bot_message(self, platform: str, message_id: str) -> BotMessage | None:
        """The announcement or answer a platform message id belongs to, if it is the bot's."""
        async with self._db.session() as session:
            return await _find_bot_message(session, platform, message_id)

    async def questions_for(self, refs: Iterable[str]) -> dict[str, EngagementEvent]:
        """The question events behind these answer/decline refs, by ref."""
        wanted = sorted(set(refs))
        found: dict[str, EngagementEvent] = {}
        async with self._db.session() as session:
            for start in range(0, len(wanted), 500):  # bounded IN lists
                stmt = select(EngagementEvent).where(
                    EngagementEvent.kind == "question",
                    EngagementEvent.ref.in_(wanted[start : start + 500]),
                )
                for event in await session.scalars(stmt):
                    found.setdefault(event.ref or "", event)
        return found

    async def replies_to(self, platform: str, user: str, since: datetime) -> int:
        """How many of ``user``'s questions on ``platform`` asked since ``since`` got a posted
        reply (an answer or a decline); ``user`` is the platform's id, pseudonymized here like
        the rows were."""
        if self._pseudonymize is not None:
            user = self._pseudonymize(user)
        question, reply = aliased(EngagementEvent), aliased(EngagementEvent)
        stmt = (
            select(func.count())
            .select_from(question)
            .join(reply, reply.ref == question.ref)
            .where(
                question.platform == platform,
                question.kind == "question",
                question.user == user,
                question.created_at >= since,
                reply.kind.in_(OUTCOME_KINDS),
                reply.message_id.is_not(None),
            )
        )
        async with self._db.session() as session:
            return int(await session.scalar(stmt) or 0)

    async def question_for(self, ref: str) -> EngagementEvent | None:
        """The question event behind an answer's feedback token."""
        async with self._db.session() as session:
            stmt = select(EngagementEvent).where(
                EngagementEvent.ref == ref, EngagementEvent.kind == "question"
            )
            return (await session.scalars(stmt)).first()


class AuditTrail:
    """Who did what."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def record(
        self,
        actor: str,
        action: str,
        target: str | None = None,
        *,
        allowed: bool = True,
        detail: str | None = None,
    ) -> None:
        """Append one audit row."""
        async with self._db.session() as session:
            session.add(
                AuditLog(
                    actor=actor,
                    action=action,
                    target=clean_text(target, 1000),
                    allowed=allowed,
                    detail=clean_text(detail, 2000),
                )
            )

    async def list(self, limit: int = 100, offset: int = 0) -> Sequence[AuditLog]:
        """The newest rows first."""
        async with self._db.session() as session:
            stmt = select(AuditLog).order_by(AuditLog.id.desc()).offset(offset).limit(limit)
            return (await session.scalars(stmt)).all()

    async def count(self) -> int:
        """How many rows there are."""
        async with self._db.session() as session:
            return int(await session.scalar(select(func.count(AuditLog.id))) or 0)


@dataclass(frozen=True, slots=True)
class BotMessage:
    """What a platform message id of the bot's points at."""

    announcement_id: int | None
    faq_entry_id: int | None
    ref: str | None


async def _find_bot_message(
    session: AsyncSession, platform: str, message_id: str
) -> BotMessage | None:
    delivery = (
        await session.execute(
            select(Delivery.announcement_id).where(
                Delivery.platform == platform, Delivery.external_id == message_id
            )
        )
    ).first()
    if delivery is not None:
        return BotMessage(delivery[0], None, None)
    answer = (
        await session.scalars(
            select(EngagementEvent).where(
                EngagementEvent.platform == platform,
                EngagementEvent.kind.in_(("answer", "declined", "clarify")),
                EngagementEvent.message_id == message_id,
            )
        )
    ).first()
    if answer is not None:
        return BotMessage(answer.announcement_id, answer.faq_entry_id, answer.ref)
    return None
