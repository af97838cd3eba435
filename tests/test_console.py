"""The terminal chat adapter: lines in, numbered suggestions out, a number picks one."""

from __future__ import annotations

import asyncio
import io
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import IO

from adapters.base import OffersChoices
from adapters.console import ConsoleAdapter
from bot.events import (
    Choice,
    ChoicePicked,
    Conversation,
    InboundEvent,
    IncomingMessage,
    OutgoingMessage,
)

TERMINAL = Conversation("console", "terminal", is_direct=True)


@dataclass
class Terminal:
    adapter: ConsoleAdapter
    keyboard: IO[str]
    screen: io.StringIO
    events: asyncio.Queue[InboundEvent]

    async def type(self, line: str) -> InboundEvent:
        self.keyboard.write(line + "\n")
        self.keyboard.flush()
        async with asyncio.timeout(10):
            return await self.events.get()


@asynccontextmanager
async def terminal() -> AsyncIterator[Terminal]:
    read_end, write_end = os.pipe()
    events: asyncio.Queue[InboundEvent] = asyncio.Queue()

    async def record(event: InboundEvent) -> None:
        events.put_nowait(event)

    screen = io.StringIO()
    with os.fdopen(read_end, "r") as stdin, os.fdopen(write_end, "w") as keyboard:
        adapter = ConsoleAdapter(stdin=stdin, stdout=screen)
        await adapter.start(record)
        try:
            yield Terminal(adapter, keyboard, screen, events)
        finally:
            await adapter.stop()


CHOICES = (
    Choice("tok-board", "Who sits on the governing board?"),
    Choice("tok-why", "Why the Linux Foundation?"),
)


async def test_suggestions_are_numbered_and_the_next_number_picks_one() -> None:
    async with terminal() as term:
        assert isinstance(term.adapter, OffersChoices) and term.adapter.offers_choices()
        await term.adapter.send(OutgoingMessage(TERMINAL, "Which did you mean?", choices=CHOICES))
        shown = term.screen.getvalue()
        assert "bot> Which did you mean?" in shown
        assert "1. Who sits on the governing board?" in shown
        assert "2. Why the Linux Foundation?" in shown
        picked = await term.type(" 2 ")
        assert isinstance(picked, ChoicePicked)
        assert (picked.token, picked.author.id, picked.where) == ("tok-why", "console", TERMINAL)
        # Only the line right after the suggestions picks: later, a number is a question.
        again = await term.type("2")
        assert isinstance(again, IncomingMessage) and again.text == "2"


async def test_a_number_outside_the_suggestions_or_other_text_is_a_message() -> None:
    async with terminal() as term:
        await term.adapter.send(OutgoingMessage(TERMINAL, "Which?", choices=CHOICES))
        outside = await term.type("3")
        assert isinstance(outside, IncomingMessage) and outside.text == "3"
        await term.adapter.send(OutgoingMessage(TERMINAL, "Which?", choices=CHOICES))
        words = await term.type("the first one")
        assert isinstance(words, IncomingMessage)
        # A plain answer offers nothing: a number after it is a message.
        await term.adapter.send(OutgoingMessage(TERMINAL, "An answer"))
        plain = await term.type("1")
        assert isinstance(plain, IncomingMessage)
