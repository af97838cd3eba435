"""Answering questions in posts that mention the bot, on platforms where mentions are polled (X).

Each tick reads the mentions newer than the stored cursor (``since_id`` in ``bot_state``), and
for each one, oldest first:

1. skips the bot's own posts;
2. claims the mention id in the database *before* anything is posted, so no restart and no
   second process ever replies to the same post twice;
3. answers through the same path as every platform (:class:`~bot.answering.Knowledge`, then
   :func:`~bot.dispatch.record_exchange` into the engagement log and the review queue); a
   decline stays silent unless the config asks for the fallback reply, and an author who got
   the hourly number of replies gets no more (both are logged);
4. a comment under a posted announcement that does not ask the bot anything is logged as a
   ``reply`` on that announcement, like replies in Slack threads.

The cursor only moves past mentions that are finished. A transient failure to reply (rate
limit, 5xx) releases that mention's claim and stops the tick there, so the next tick tries it
again; an ambiguous one (the reply may be up) keeps the claim: never a double reply.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import aliased

from adapters.base import Adapter, MentionSource
from bot.answering import Knowledge
from bot.dispatch import log_announcement_reply, record_exchange
from bot.errors import PermanentPlatformError, PlatformError, TransientPlatformError
from bot.events import IncomingMessage, OutgoingMessage, SentMessage, utcnow
from bot.store.claims import Claims
from bot.store.db import Database
from bot.store.engagement import EngagementLog
from bot.store.models import EngagementEvent
from bot.telemetry import Metrics
from bot.timeline import MentionBatch

log = logging.getLogger(__name__)

Alert = Callable[[str], Awaitable[None]]

#: Mention claims outlive the cursor's lag by far; after this they guard nothing.
CLAIM_DAYS = 7


@dataclass(frozen=True, slots=True)
class MentionPolicy:
    """How the bot treats mentions on one platform."""

    #: Replies to one author per rolling hour (0 = never reply).
    replies_per_author_per_hour: int = 3
    #: Reply with the fallback text when there is no answer (else stay silent).
    decline_reply: bool = False
    #: With no cursor yet, mentions at most this old are answered.
    backlog: timedelta = timedelta(hours=1)


class MentionResponder:
    """Polls one platform's mentions and answers each one at most once."""

    def __init__(
        self,
        *,
        db: Database,
        adapter: Adapter,
        source: MentionSource,
        knowledge: Knowledge,
        engagement: EngagementLog,
        policy: MentionPolicy,
        alert: Alert | None = None,
        clock: Callable[[], datetime] = utcnow,
        metrics: Metrics | None = None,
    ) -> None:
        self._db = db
        self._claims = Claims(db)
        self._adapter = adapter
        self._source = source
        self._knowledge = knowledge
        self._log = engagement
        self._policy = policy
        self._alert = alert
        self._clock = clock
        self._metrics = metrics
        self._resume_at: datetime | None = None
        #: Set when the platform refused for good (access level, credentials).
        self.stopped_reason: str | None = None

    @property
    def platform(self) -> str:
        return self._source.platform

    @property
    def cursor_key(self) -> str:
        """The ``bot_state`` key holding the newest mention id dealt with."""
        return f"mentions.{self.platform}.since_id"

    def _claim_key(self, message_id: str) -> str:
        return f"mention.{self.platform}.{message_id}"

    async def poll(self) -> int:
        """One tick; returns how many mentions this process handled. Never raises for
        platform errors (a rate limit pauses until its reset; a permanent refusal stops
        polling with one message to staff)."""
        now = self._clock()
        if self.stopped_reason is not None:
            return 0
        if self._resume_at is not None and now < self._resume_at:
            return 0
        since = await self._claims.get(self.cursor_key)
        try:
            batch = await self._source.fetch_mentions(
                since, start_time=None if since else now - self._policy.backlog
            )
        except TransientPlatformError as exc:
            self._pause(now, exc, "mentions not read")
            return 0
        except PermanentPlatformError as exc:
            await self._stop(exc.reason)
            return 0
        self._resume_at = None
        if batch.truncated:
            log.warning(
                "mentions: more than one poll can read arrived on %s; older ones were skipped",
                self.platform,
            )
        handled = 0
        done: str | None = batch.newest_id
        for mention in batch.mentions:
            try:
                if await self._handle(mention):
                    handled += 1
            except TransientPlatformError as exc:
                self._pause(now, exc, f"reply to {mention.message_id} not posted")
                done = self._before(batch, mention)
                break
        if done:
            await self._claims.advance(self.cursor_key, done)
        await self._claims.prune(f"mention.{self.platform}.", now - timedelta(days=CLAIM_DAYS))
        return handled

    @staticmethod
    def _before(batch: MentionBatch, mention: IncomingMessage) -> str | None:
        """The mention before ``mention``: where the cursor may move to."""
        index = batch.mentions.index(mention)
        return batch.position(index - 1) if index else None

    def _pause(self, now: datetime, exc: TransientPlatformError, what: str) -> None:
        wait = exc.retry_after or 60.0
        self._resume_at = now + timedelta(seconds=wait)
        log.warning("%s platform=%s, next try in %.0fs: %s", what, self.platform, wait, exc.reason)

    async def _stop(self, reason: str) -> None:
        self.stopped_reason = reason
        message = (
            f"Answering mentions on {self.platform} is switched off until the bot restarts: "
            f"{reason}."
        )
        log.error("%s", message)
        if self._alert is not None:
            await self._alert(message)

    async def _handle(self, msg: IncomingMessage) -> bool:
        """Deal with one mention; False if it was not this process's to handle."""
        if msg.is_own or msg.author.is_bot:
            return False  # never reply to itself (or another bot)
        key = self._claim_key(msg.message_id)
        if not await self._claims.claim(key, json.dumps({"author": msg.author.id})):
            return False  # replied to already, by an earlier run or another process
        in_bot_thread, announcement_id = await self._thread(msg)
        if not (msg.mentions_bot or in_bot_thread):
            await log_announcement_reply(self._log, msg)
            return True
        # On a public timeline a clarification is noise: answer or stay silent.
        answer = await self._knowledge.respond(msg.text, clarify=False)
        ref = uuid.uuid4().hex
        outcome: str | None = None
        wants_reply = answer.answered or self._policy.decline_reply
        if not wants_reply:
            outcome = "silent"
        elif (
            await self._replies_last_hour(msg.author.id) >= self._policy.replies_per_author_per_hour
        ):
            outcome = "capped"
            log.info(
                "mentions: hourly cap reached platform=%s author=%s", self.platform, msg.author.id
            )
        sent: SentMessage | None = None
        if outcome is None:
            try:
                sent = await self._adapter.send(
                    OutgoingMessage(where=msg.where, text=answer.text, reply_to=msg.message_id)
                )
            except TransientPlatformError as exc:
                if not exc.ambiguous:
                    await self._claims.release(key)  # certainly not posted: try again later
                    raise
                outcome = "unknown"
                log.warning(
                    "mention reply may or may not be up id=%s: %s", msg.message_id, exc.reason
                )
            except PlatformError as exc:
                outcome = "failed"
                log.warning("mention reply refused id=%s: %s", msg.message_id, exc.reason)
        thread = None
        if sent is not None and not in_bot_thread:
            where = msg.where
            thread = (where.platform, where.channel_id, where.thread_id or msg.message_id)
        if self._metrics is not None:
            self._metrics.question(msg.where.platform, answer.answered)
        await record_exchange(
            self._log,
            msg,
            answer,
            ref,
            sent,
            announcement_id or answer.announcement_id,
            thread=thread,
            extra={"delivery": outcome} if outcome else None,
        )
        return True

    async def _thread(self, msg: IncomingMessage) -> tuple[bool, int | None]:
        where = msg.where
        if where.thread_id is None:
            return False, None
        thread = await self._log.find_thread(where.platform, where.channel_id, where.thread_id)
        return thread is not None, thread.announcement_id if thread else None

    async def _replies_last_hour(self, author: str) -> int:
        """Replies the bot posted to ``author``'s questions on this platform in the last hour."""
        question, reply = aliased(EngagementEvent), aliased(EngagementEvent)
        # Engagement rows carry the wall-clock time they were written.
        since = utcnow() - timedelta(hours=1)
        stmt = (
            select(func.count())
            .select_from(question)
            .join(reply, reply.ref == question.ref)
            .where(
                question.platform == self.platform,
                question.kind == "question",
                question.user == author,
                question.created_at >= since,
                reply.kind.in_(("answer", "declined")),
                reply.message_id.is_not(None),
            )
        )
        async with self._db.session() as session:
            return int(await session.scalar(stmt) or 0)
