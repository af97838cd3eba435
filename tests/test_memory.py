"""The in-memory adapter plays a platform with suggestion buttons (or without)."""

from __future__ import annotations

from adapters.base import OffersChoices
from adapters.memory import MemoryAdapter
from bot.events import Author, Choice, ChoicePicked, Conversation, InboundEvent, OutgoingMessage


async def test_a_pick_is_delivered_in_the_suggestions_thread() -> None:
    events: list[InboundEvent] = []

    async def record(event: InboundEvent) -> None:
        events.append(event)

    adapter = MemoryAdapter("chat")
    await adapter.start(record)
    assert isinstance(adapter, OffersChoices) and adapter.offers_choices()
    assert not MemoryAdapter("chat", choices=False).offers_choices()
    choices = (Choice("a", "First?"), Choice("b", "Second?"))
    await adapter.send(
        OutgoingMessage(Conversation("chat", "general"), "Which?", reply_to="q1", choices=choices)
    )
    reader = Author("reader")
    await adapter.pick(adapter.sent[0], 1, reader)
    [picked] = events
    assert isinstance(picked, ChoicePicked)
    assert (picked.token, picked.author) == ("b", reader)
    assert picked.where == Conversation("chat", "general", thread_id="q1")
