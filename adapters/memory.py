"""An in-memory adapter for tests and benchmarks: records what it was asked to post.

It implements the same :class:`~adapters.base.Adapter` contract as the real platforms. Tests
push events in with :meth:`MemoryAdapter.inject` and read :attr:`MemoryAdapter.sent`.
Failures can be scripted per call with :meth:`MemoryAdapter.fail_next`.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import deque
from dataclasses import replace

from adapters.base import EventSink
from bot.errors import PlatformError
from bot.events import Author, ChoicePicked, InboundEvent, OutgoingMessage, SentMessage


class MemoryAdapter:
    """Records sends; optionally slow or failing."""

    def __init__(
        self,
        platform: str = "memory",
        *,
        latency: float = 0.0,
        announce_channels: tuple[str, ...] = ("news",),
        choices: bool = True,
    ) -> None:
        self.platform = platform
        #: Whether it shows clarification suggestions (:class:`adapters.base.OffersChoices`).
        self.choices = choices
        self.announce_channels = announce_channels
        self.latency = latency
        self.sent: list[OutgoingMessage] = []
        self.deleted: list[SentMessage] = []
        self._sink: EventSink | None = None
        self._ids = itertools.count(1)
        self._failures: deque[PlatformError] = deque()
        self._connected = False

    def is_connected(self) -> bool:
        return self._connected

    def offers_choices(self) -> bool:
        return self.choices

    async def start(self, sink: EventSink) -> None:
        self._sink = sink
        self._connected = True

    async def stop(self) -> None:
        self._connected = False

    def fail_next(self, *errors: PlatformError) -> None:
        """The next sends raise these errors, one per call, in order."""
        self._failures.extend(errors)

    async def inject(self, event: InboundEvent) -> None:
        """Deliver an event to the core as the platform would."""
        if self._sink is None:
            raise RuntimeError("adapter not started")
        await self._sink(event)

    async def send(self, message: OutgoingMessage) -> SentMessage:
        if self.latency:
            await asyncio.sleep(self.latency)
        if self._failures:
            raise self._failures.popleft()
        self.sent.append(message)
        message_id = f"{self.platform}-{next(self._ids)}"
        thread = message.where.thread_id or message.reply_to
        return SentMessage(
            self.platform,
            message.where.channel_id,
            message_id,
            url=f"memory://{self.platform}/{message.where.channel_id}/{message_id}",
            thread_id=thread,
        )

    async def delete(self, sent: SentMessage) -> None:
        self.deleted.append(sent)

    async def pick(self, message: OutgoingMessage, index: int, author: Author) -> None:
        """``author`` picks the ``index``-th suggestion of a sent ``message``, as a click would."""
        choice = message.choices[index]
        where = message.where
        if where.thread_id is None and message.reply_to:
            where = replace(where, thread_id=message.reply_to)
        await self.inject(
            ChoicePicked(
                where=where,
                author=author,
                token=choice.token,
                event_id=f"pick:{next(self._ids)}",
            )
        )

    def texts(self) -> list[str]:
        """The text of every message sent so far."""
        return [m.text for m in self.sent]
