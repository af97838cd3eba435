"""What the adapter remembers about Discord between events: threads discord.py has not cached,
the questions threads are named after, and which channels are announcement channels."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import discord

from adapters.discord.errors import PLATFORM
from bot.events import Conversation

#: Entries kept per cache (oldest dropped first).
CACHE_SIZE = 10_000


def _remember(cache: OrderedDict[int, Any], key: int, value: Any) -> None:
    cache[key] = value
    cache.move_to_end(key)
    if len(cache) > CACHE_SIZE:
        cache.popitem(last=False)


class State:
    """Bounded caches shared by the inbound and outbound halves of the adapter."""

    def __init__(self) -> None:
        #: thread id -> parent channel id, for threads discord.py has not cached (yet).
        self._threads: OrderedDict[int, int] = OrderedDict()
        #: question message id -> its text, to name the answer's thread after the question.
        self._questions: OrderedDict[int, str] = OrderedDict()
        #: channel id -> whether it is an announcement (news) channel, learned once.
        self.news: dict[int, bool] = {}

    def add_thread(self, thread_id: int, parent_id: int) -> None:
        _remember(self._threads, thread_id, parent_id)

    def knows_thread(self, thread_id: int) -> bool:
        return thread_id in self._threads

    def thread_parent(self, channel: object, channel_id: int) -> int | None:
        """The parent channel if ``channel_id`` is a thread, else None."""
        if isinstance(channel, discord.Thread):
            return channel.parent_id
        return self._threads.get(channel_id)

    def add_question(self, message_id: int, text: str) -> None:
        _remember(self._questions, message_id, text[:200])

    def take_question(self, message_id: int) -> str:
        """The question's text, once (its thread is being opened)."""
        return self._questions.pop(message_id, "")

    def where(self, channel: object, channel_id: int, *, direct: bool) -> Conversation:
        """The core's conversation for a Discord channel or thread."""
        parent = self.thread_parent(channel, channel_id)
        if parent is not None:
            return Conversation(PLATFORM, str(parent), thread_id=str(channel_id))
        return Conversation(PLATFORM, str(channel_id), is_direct=direct)
