"""Cross-cutting concerns as one chain, applied to every inbound event before the dispatcher.

Each link is ``async (event, call_next) -> None``; a link drops an event by not calling
``call_next``. Order matters: own messages first, then retried deliveries, then rate limits.
Staff authorization lives with the commands (:mod:`bot.commands`) because it must be audited.

Pushed events (an adapter's sink, through ``Runtime.handle``) and polled mentions
(:mod:`bot.mentions`) go through the same chain; a polled message (``polled``) is already
claimed by its poller, so it is not de-duplicated again here.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

from bot.errors import StoreError
from bot.events import InboundEvent, IncomingMessage, utcnow

log = logging.getLogger(__name__)

Next = Callable[[InboundEvent], Awaitable[None]]


class Link(Protocol):
    """One link of the chain."""

    async def __call__(self, event: InboundEvent, call_next: Next) -> None: ...


def build_chain(links: Sequence[Link], endpoint: Next) -> Next:
    """Compose ``links`` around ``endpoint`` (the first link runs first)."""
    handler = endpoint
    for link in reversed(links):
        handler = _bind(link, handler)
    return handler


def _bind(link: Link, call_next: Next) -> Next:
    async def run(event: InboundEvent) -> None:
        await link(event, call_next)

    return run


def bot_authored(message: IncomingMessage) -> bool:
    """Whether ``message`` is the bot's own or another bot's: never answered."""
    return message.is_own or message.author.is_bot


class IgnoreOwnMessages:
    """Drop the bot's own messages and other bots' so two bots never talk in a loop."""

    async def __call__(self, event: InboundEvent, call_next: Next) -> None:
        if isinstance(event, IncomingMessage) and bot_authored(event):
            return
        await call_next(event)


#: Asks the shared store whether this (platform, event id) is new: True for the first caller.
FirstDelivery = Callable[[str, str], Awaitable[bool]]


class DropDuplicates:
    """Drop an event whose platform delivery id was seen already (Slack and X retry).

    Ids are remembered in memory, which is enough for one process. With several instances
    (PostgreSQL) a retry can reach another instance than the first delivery did, so ``shared``
    also claims each id in the database and only the first claimant goes on. If the database
    cannot be asked, the event goes on: answering twice beats not answering.
    """

    def __init__(self, capacity: int = 10_000, shared: FirstDelivery | None = None) -> None:
        self._seen: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._capacity = capacity
        self._shared = shared

    async def __call__(self, event: InboundEvent, call_next: Next) -> None:
        # A polled message comes again only when its poller released it (its reply certainly
        # did not go out): that one must pass.
        polled = isinstance(event, IncomingMessage) and event.polled
        if event.event_id and not polled:
            key = (event.where.platform, event.event_id)
            if key in self._seen:
                log.info("duplicate event dropped platform=%s id=%s", *key)
                return
            self._seen[key] = None
            if len(self._seen) > self._capacity:
                self._seen.popitem(last=False)
            if self._shared is not None and not await self._first_here(*key):
                log.info(
                    "duplicate event dropped (seen by another instance) platform=%s id=%s", *key
                )
                return
        await call_next(event)

    async def _first_here(self, platform: str, event_id: str) -> bool:
        assert self._shared is not None
        try:
            return await self._shared(platform, event_id)
        except StoreError as exc:
            log.warning(
                "cannot check for a duplicate event platform=%s id=%s: %s", platform, event_id, exc
            )
            return True


class RateLimitQuestions:
    """At most ``per_minute`` messages per user and platform; the rest are dropped quietly.

    The first message over the limit gets one ``notify`` so the user knows why the bot went
    quiet; the following ones are dropped without a reply to avoid amplifying a flood. A
    polled message counts at the moment it was posted, so a backlog read in one tick (after
    a restart, or the mentions of one poll interval) is not taken for a burst.
    """

    def __init__(
        self,
        per_minute: int,
        notify: Callable[[IncomingMessage], Awaitable[None]],
        clock: Callable[[], float] = time.monotonic,
        exempt: frozenset[str] = frozenset(),
    ) -> None:
        """``exempt``: platforms whose users are not limited (the local terminal)."""
        self._exempt = exempt
        self._limit = per_minute
        self._notify = notify
        self._clock = clock
        self._hits: dict[tuple[str, str], deque[float]] = {}
        self._warned: set[tuple[str, str]] = set()

    async def __call__(self, event: InboundEvent, call_next: Next) -> None:
        if (
            not isinstance(event, IncomingMessage)
            or event.where.platform in self._exempt
            # Chatter the bot will ignore anyway must not use up anyone's allowance.
            or not (event.mentions_bot or event.where.is_direct or event.where.thread_id)
        ):
            await call_next(event)
            return
        key = (event.where.platform, event.author.id)
        now = self._clock()
        if event.polled:
            now -= max(0.0, (utcnow() - event.received_at).total_seconds())
        hits = self._hits.setdefault(key, deque())
        while hits and now - hits[0] >= 60:
            hits.popleft()
        if len(hits) >= self._limit:
            if key not in self._warned:
                self._warned.add(key)
                await self._notify(event)
            return
        self._warned.discard(key)
        hits.append(now)
        if len(self._hits) > 50_000:
            self._hits = {k: v for k, v in self._hits.items() if v and now - v[-1] < 60}
        await call_next(event)
