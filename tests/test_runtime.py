"""The core end to end through the in-memory adapter: questions, commands, feedback, shutdown."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import select

from adapters import registry
from adapters.console import ConsoleRules
from adapters.memory import MemoryAdapter
from bot.errors import TransientPlatformError
from bot.events import (
    Author,
    Conversation,
    Feedback,
    IncomingMessage,
    OutgoingMessage,
    Reaction,
    SentMessage,
    SlashCommand,
)
from bot.faqfile import FaqRecord
from bot.runtime import Runtime
from bot.store.engagement import LogFilter
from bot.store.models import AuditLog, ReviewItem
from tests.conftest import database_away, make_config
from tests.waiting import PATIENCE

CHANNEL = Conversation("memory", "C1")
ALICE = Author("U-alice", "alice")


def question(text: str, mid: str = "m1", **kw: Any) -> IncomingMessage:
    kw.setdefault("mentions_bot", True)
    kw.setdefault("where", CHANNEL)
    return IncomingMessage(author=kw.pop("author", ALICE), text=text, message_id=mid, **kw)


@pytest.fixture
async def bot(db_url: str) -> AsyncIterator[tuple[Runtime, MemoryAdapter]]:
    adapter = MemoryAdapter("memory")
    config = make_config(
        database={"url": db_url},
        web={"enabled": False},
        answering={"per_user_per_minute": 3},
        bot={"shutdown_grace_seconds": 5.0},
    )
    runtime = Runtime(config, [adapter])
    await runtime.start()
    try:
        yield runtime, adapter
    finally:
        await runtime.stop()


async def test_mention_is_answered_in_thread_with_source_and_logged(
    bot: tuple[Runtime, MemoryAdapter],
) -> None:
    runtime, adapter = bot
    await adapter.inject(question("<@BOT> who is on the pytorch foundation governing board?"))
    [reply] = adapter.sent
    assert "AMD" in reply.text and "Nvidia" in reply.text
    assert "Source: https://" in reply.text and "as of 12 September 2022" in reply.text
    assert reply.reply_to == "m1"
    assert reply.feedback_token
    kinds = [e.kind for e in await runtime.engagement.list(LogFilter())]
    assert kinds == ["question", "answer"]


async def test_follow_up_in_bot_thread_needs_no_mention_but_other_chatter_is_ignored(
    bot: tuple[Runtime, MemoryAdapter],
) -> None:
    _, adapter = bot
    await adapter.inject(question("will my pytorch code have to change?"))
    thread = Conversation("memory", "C1", thread_id="m1")
    await adapter.inject(
        question("and does meta still invest in pytorch?", "m2", where=thread, mentions_bot=False)
    )
    assert len(adapter.sent) == 2
    assert "Meta" in adapter.sent[1].text
    await adapter.inject(question("lunch anyone?", "m3", mentions_bot=False))
    other_thread = Conversation("memory", "C1", thread_id="zzz")
    await adapter.inject(
        question(
            "who is on the pytorch foundation board?", "m4", where=other_thread, mentions_bot=False
        )
    )
    assert len(adapter.sent) == 2


async def test_direct_message_is_answered(bot: tuple[Runtime, MemoryAdapter]) -> None:
    _, adapter = bot
    dm = Conversation("memory", "D1", is_direct=True)
    await adapter.inject(question("what is the linux foundation", where=dm, mentions_bot=False))
    assert "nonprofit" in adapter.sent[0].text.lower()


@pytest.mark.parametrize(
    "text",
    [
        "what's the weather in paris tomorrow?",
        "tell me a joke",
        "'; DROP TABLE faq_entries; --",
        "how do I fix CUDA out of memory in my training loop?",
    ],
)
async def test_off_topic_is_declined_honestly_and_queued_for_moderators(
    bot: tuple[Runtime, MemoryAdapter], text: str
) -> None:
    runtime, adapter = bot
    await adapter.inject(question(text))
    [reply] = adapter.sent
    assert "won't guess" in reply.text
    assert reply.feedback_token is None
    async with runtime.db.session() as session:
        items = (await session.scalars(select(ReviewItem))).all()
    assert [i.question for i in items] == [text]
    assert [e.kind for e in await runtime.engagement.list(LogFilter())] == ["question", "declined"]


async def test_a_question_declined_then_taught_is_answered_the_next_time(
    bot: tuple[Runtime, MemoryAdapter],
) -> None:
    runtime, adapter = bot
    text = "<@BOT> where is the pytorch conference held this year?"
    await adapter.inject(question(text, "m1"))
    assert "won't guess" in adapter.sent[-1].text
    # A moderator turns it into an FAQ entry: the same words must not get the old verdict.
    record = FaqRecord(
        "conference-venue",
        "Where is the PyTorch Conference held this year?",
        ("where is the pytorch conference",),
        "The PyTorch Conference is in San Francisco this year.",
        (),
        None,
        None,
    )
    await runtime.faq.upsert([record])
    await runtime.knowledge.reload()
    await adapter.inject(question(text, "m2"))
    assert "San Francisco" in adapter.sent[-1].text


@pytest.mark.parametrize(
    "text", ["", "   \t  ", "🙂🎉🔥", "\x00\x07\x1b[31m", "x" * 10_000, "pytorch " * 1500]
)
async def test_bad_input_gets_a_reply_never_a_crash(
    bot: tuple[Runtime, MemoryAdapter], text: str
) -> None:
    runtime, adapter = bot
    await adapter.inject(question(text))
    [reply] = adapter.sent
    assert "Traceback" not in reply.text
    assert reply.feedback_token is None
    events = await runtime.engagement.list(LogFilter())
    assert [e.kind for e in events] == ["question", "declined"]
    # The bot keeps serving afterwards.
    await adapter.inject(question("who announced the pytorch foundation?", "m2"))
    assert "Zuckerberg" in adapter.sent[-1].text


async def test_own_and_duplicate_events_are_not_answered_twice(
    bot: tuple[Runtime, MemoryAdapter],
) -> None:
    _, adapter = bot
    await adapter.inject(question("who is on the pytorch foundation board?", is_own=True))
    await adapter.inject(
        question("who is on the pytorch foundation board?", author=Author("B", is_bot=True))
    )
    assert adapter.sent == []
    retried = question("who is on the pytorch foundation board?", event_id="Ev1")
    await adapter.inject(retried)
    await adapter.inject(retried)
    assert len(adapter.sent) == 1


async def test_rate_limit_warns_once_then_drops(bot: tuple[Runtime, MemoryAdapter]) -> None:
    _, adapter = bot
    for i in range(6):
        await adapter.inject(question("who is on the pytorch foundation board?", f"m{i}"))
    texts = adapter.texts()
    assert len(texts) == 4
    assert "faster than I can keep up" in texts[3]


async def test_commands_are_authorized_and_audited(bot: tuple[Runtime, MemoryAdapter]) -> None:
    runtime, adapter = bot
    runtime.router.register("secret", _echo, staff_only=True, summary="staff only")
    await adapter.inject(SlashCommand(CHANNEL, ALICE, "secret", "hello"))
    await adapter.inject(SlashCommand(CHANNEL, ALICE, "nope", ""))
    await adapter.inject(SlashCommand(CHANNEL, ALICE, "help", ""))
    refusal, unknown, helptext = adapter.sent
    assert "only the comms staff" in refusal.text and refusal.ephemeral_to == ALICE.id
    assert "Unknown command /nope" in unknown.text
    assert "/help" in helptext.text and "/secret" not in helptext.text
    async with runtime.db.session() as session:
        rows = (await session.scalars(select(AuditLog).order_by(AuditLog.id))).all()
    assert [(r.target, r.allowed) for r in rows] == [
        ("/secret hello", False),
        ("/nope", False),
        ("/help", True),
    ]


async def test_commands_are_answered_while_the_database_is_away(
    bot: tuple[Runtime, MemoryAdapter],
) -> None:
    runtime, adapter = bot
    runtime.router.register("secret", _echo, staff_only=True, summary="staff only")

    async def count(cmd: SlashCommand) -> str:
        return f"{await runtime.faq.count()} entries"

    runtime.router.register("count", count, staff_only=False, summary="needs the database")
    async with database_away(runtime.db):
        for name in ("help", "secret", "nope", "count"):
            await adapter.inject(SlashCommand(CHANNEL, ALICE, name, "now"))
    helptext, refusal, unknown, unreachable = adapter.sent
    assert all(m.ephemeral_to == ALICE.id for m in adapter.sent)
    assert "/help" in helptext.text
    assert "only the comms staff" in refusal.text
    assert "Unknown command /nope" in unknown.text
    assert "can't reach my database" in unreachable.text and "\n" not in unreachable.text
    # The database is back: commands are audited again.
    await adapter.inject(SlashCommand(CHANNEL, ALICE, "count", ""))
    assert adapter.sent[-1].text.endswith(" entries")
    async with runtime.db.session() as session:
        audited = (await session.scalars(select(AuditLog.target))).all()
    assert audited == ["/count"]


async def _echo(cmd: SlashCommand) -> str:
    return cmd.text


async def test_a_feedback_click_is_answered_honestly_while_the_database_is_away(
    bot: tuple[Runtime, MemoryAdapter],
) -> None:
    runtime, adapter = bot
    await adapter.inject(question("is pytorch still open source?"))
    token = adapter.sent[0].feedback_token
    assert token
    async with database_away(runtime.db):
        await adapter.inject(Feedback(CHANNEL, Author("U-bob"), token, helpful=False))
    reply = adapter.sent[-1]
    assert reply.ephemeral_to == "U-bob" and "couldn't save your feedback" in reply.text
    assert await runtime.engagement.list(LogFilter(kind="feedback")) == []


async def test_feedback_is_logged_and_thumbs_down_goes_to_review(
    bot: tuple[Runtime, MemoryAdapter],
) -> None:
    runtime, adapter = bot
    await adapter.inject(question("is pytorch still open source?"))
    token = adapter.sent[0].feedback_token
    assert token
    await adapter.inject(Feedback(CHANNEL, Author("U-bob"), token, helpful=True))
    await adapter.inject(Feedback(CHANNEL, Author("U-carol"), token, helpful=False))
    assert adapter.sent[1].text == "Thanks for the feedback!"
    assert adapter.sent[2].ephemeral_to == "U-carol"
    feedback = await runtime.engagement.list(LogFilter(kind="feedback"))
    assert [(f.user, f.detail["helpful"]) for f in feedback] == [
        ("U-bob", True),
        ("U-carol", False),
    ]
    assert all(f.faq_entry_id is not None for f in feedback)
    reviews = await runtime.engagement.open_reviews()
    assert [(r.reason, r.question) for r in reviews] == [
        ("thumbs_down", "is pytorch still open source?")
    ]


async def test_reactions_on_bot_answers_are_logged_others_ignored(
    bot: tuple[Runtime, MemoryAdapter],
) -> None:
    runtime, adapter = bot
    await adapter.inject(question("who is on the pytorch foundation board?"))
    await adapter.inject(Reaction(CHANNEL, Author("U-bob"), "memory-1", "tada", added=True))
    await adapter.inject(Reaction(CHANNEL, Author("U-bob"), "someone-elses", "tada", added=True))
    reactions = await runtime.engagement.list(LogFilter(kind="reaction"))
    assert [(r.text, r.faq_entry_id is not None) for r in reactions] == [("tada", True)]


async def test_platform_failure_on_reply_is_logged_and_bot_keeps_serving(
    bot: tuple[Runtime, MemoryAdapter],
) -> None:
    runtime, adapter = bot
    adapter.fail_next(TransientPlatformError("memory", "HTTP 503"))
    await adapter.inject(question("who is on the pytorch foundation board?"))
    await adapter.inject(question("who is on the pytorch foundation board?", "m2"))
    answers = await runtime.engagement.list(LogFilter(kind="answer"))
    assert [a.detail.get("delivery") for a in answers] == ["failed", None]


async def test_a_reply_that_may_have_been_posted_is_logged_unknown_not_failed(
    bot: tuple[Runtime, MemoryAdapter],
) -> None:
    runtime, adapter = bot
    adapter.fail_next(TransientPlatformError("memory", "timed out", ambiguous=True))
    await adapter.inject(question("who is on the pytorch foundation board?"))
    [answer] = await runtime.engagement.list(LogFilter(kind="answer"))
    assert answer.detail["delivery"] == "unknown" and answer.message_id is None


class KioskRules(ConsoleRules):
    """A platform of its own that declares no threads, as the terminal does."""

    name = "kiosk"


@pytest.mark.parametrize(
    ("platform", "threads"),
    [("console", False), ("kiosk", False), ("slack", True), ("memory", True)],
)
async def test_the_bot_keeps_a_thread_only_where_the_platform_declares_threads(
    sqlite_url: str, platform: str, threads: bool
) -> None:
    """The platform's rules say it (``has_threads``), not its name: the terminal, and any
    platform declaring no threads, get no bot thread; the others do, and a follow-up there
    needs no mention. A platform without rules (the test adapter) is taken to have threads."""
    adapter = MemoryAdapter(platform)
    config = make_config(database={"url": sqlite_url}, web={"enabled": False})
    platforms = {**registry.SUPPORTED, "kiosk": KioskRules()}
    runtime = Runtime(config, [adapter], platforms=platforms)
    await runtime.start()
    try:
        channel = Conversation(platform, "C1")
        await adapter.inject(question("who is on the pytorch foundation board?", where=channel))
        assert "Nvidia" in adapter.sent[0].text
        kept = await runtime.engagement.find_thread(platform, "C1", "m1")
        assert (kept is not None) is threads
        follow_up = Conversation(platform, "C1", thread_id="m1")
        await adapter.inject(
            question("is pytorch still open source?", "m2", where=follow_up, mentions_bot=False)
        )
        assert len(adapter.sent) == (2 if threads else 1)
    finally:
        await runtime.stop()


class SlowMemory(MemoryAdapter):
    """Takes a while to post, and says when a post has started."""

    def __init__(self) -> None:
        super().__init__("memory", latency=0.3)
        self.posting = asyncio.Event()

    async def send(self, message: OutgoingMessage) -> SentMessage:
        self.posting.set()
        return await super().send(message)


async def test_shutdown_lets_in_flight_reply_finish(sqlite_url: str) -> None:
    adapter = SlowMemory()
    runtime = Runtime(make_config(database={"url": sqlite_url}, web={"enabled": False}), [adapter])
    await runtime.start()
    handling = asyncio.create_task(
        adapter.inject(question("who is on the pytorch foundation board?"))
    )
    await asyncio.wait_for(adapter.posting.wait(), timeout=PATIENCE)
    handling.cancel()  # the platform connection goes away mid-reply
    await runtime.stop()
    assert len(adapter.sent) == 1
    # Nothing half-written: the exchange was logged as a whole.
    runtime2 = Runtime(make_config(database={"url": sqlite_url}, web={"enabled": False}), [])
    await runtime2.start()
    kinds = [e.kind for e in await runtime2.engagement.list(LogFilter())]
    await runtime2.stop()
    assert kinds == ["question", "answer"]


async def test_database_outage_costs_the_log_not_the_answer(tmp_path: Any) -> None:
    """The answer comes from memory: with the database gone the user is still answered."""
    from tests.conftest import create_pg_database, drop_pg_database, postgres_url_or_skip

    url = await create_pg_database(postgres_url_or_skip())
    adapter = MemoryAdapter("memory")
    runtime = Runtime(make_config(database={"url": url}, web={"enabled": False}), [adapter])
    await runtime.start()
    try:
        await drop_pg_database(url)  # the database disappears under the running bot
        await adapter.inject(question("who is on the pytorch foundation board?"))
        await adapter.inject(question("is it still open source?", "m2"))
        assert len(adapter.sent) == 2
        assert "Nvidia" in adapter.sent[0].text
        assert all("Traceback" not in m.text for m in adapter.sent)
    finally:
        await runtime.stop()
