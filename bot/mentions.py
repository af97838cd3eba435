"""Polled mentions: reading them, once each, into the same chain as pushed messages.

On platforms whose mentions are polled (X, Mastodon, Bluesky; each a ``MentionSource``), each
tick reads the mentions newer than the stored cursor (``since_id`` in ``bot_state``) and, for
each one, oldest first:

1. skips the bot's own posts and other bots' (the chain would drop them anyway);
2. claims the mention id in the database *before* anything is posted, so no restart and no
   second process ever replies to the same post twice;
3. hands it, marked ``polled``, to the same chain and dispatcher as a pushed message
   (:mod:`bot.chain`, :class:`bot.dispatch.Dispatcher`). How the bot replies there — declines
   silent unless the config asks for the fallback, a cap on replies per author and hour, no
   clarification choices, comments under announcements logged as replies — is the platform's
   data (its :class:`~bot.timeline.ReplyPolicy`, its adapter's capabilities), applied there.

What stays here is what polling alone needs. The cursor only moves past mentions that are
finished. A reply that certainly did not go out (rate limit, 5xx) comes back from the
dispatcher as ``TransientPlatformError``: that mention's claim is released and the tick
stops there, so the next tick tries it again; an ambiguous one (the reply may be up) is logged
and keeps the claim: never a double reply. A rate-limited read pauses the polling until the
platform's reset; a permanent refusal stops it with one message to staff.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import datetime, timedelta

from adapters.base import MentionSource
from bot.chain import Next, bot_authored
from bot.errors import PermanentPlatformError, TransientPlatformError
from bot.events import IncomingMessage, utcnow
from bot.store.claims import Claims
from bot.store.db import Database
from bot.timeline import MentionBatch

log = logging.getLogger(__name__)

Alert = Callable[[str], Awaitable[None]]

#: Mention claims outlive the cursor's lag by far; after this they guard nothing.
CLAIM_DAYS = 7


class MentionResponder:
    """Polls one platform's mentions and hands each one to the chain at most once (again
    only if its reply certainly did not go out)."""

    def __init__(
        self,
        *,
        db: Database,
        source: MentionSource,
        deliver: Next,
        backlog: timedelta = timedelta(hours=1),
        alert: Alert | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        """Args:
        db: Where the cursor and the claims are kept.
        source: The adapter the mentions are read from.
        deliver: The chain, ending in the dispatcher (the same as pushed events go through).
        backlog: With no cursor yet (first start), mentions at most this old are answered.
        alert: Tells staff that polling stopped for good.
        clock: Now, in UTC (tests move it).
        """
        self._claims = Claims(db)
        self._source = source
        self._deliver = deliver
        self._backlog = backlog
        self._alert = alert
        self._clock = clock
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
                since, start_time=None if since else now - self._backlog
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
        if bot_authored(msg):
            return False  # never a reply to itself (or another bot), so nothing to claim
        key = self._claim_key(msg.message_id)
        if not await self._claims.claim(key, json.dumps({"author": msg.author.id})):
            return False  # handled already, by an earlier run or another process
        try:
            await self._deliver(replace(msg, polled=True))
        except TransientPlatformError:
            await self._claims.release(key)  # the reply certainly did not go out: try again
            raise
        return True
