"""The Mastodon adapter, driving the real Mastodon.py against a fake instance on 127.0.0.1."""

from __future__ import annotations

import asyncio
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import pytest

from adapters.mastodon import TIMELINE, MastodonAdapter
from adapters.mastodon.rules import render_mastodon_thread, status_length
from bot.cli import _platform_adapters
from bot.config import load_config
from bot.errors import PermanentPlatformError, TransientPlatformError
from bot.events import Conversation, OutgoingMessage
from bot.store.engagement import LogFilter
from tests.fakes.mastodon_api import BOT_HANDLE, BOT_ID, TOKEN, FakeMastodon, fake_mastodon
from tests.timeline_helpers import (
    TimelineBot,
    post_thread,
    pushes_nothing,
    running_timeline,
    started,
)

BOARD = "who is on the pytorch foundation board?"
OFF_TOPIC = "what's the weather in Paris today?"
MENTIONS = {"mentions": True}

MastodonBot = TimelineBot[MastodonAdapter, FakeMastodon]


def mastodon_adapter(
    fake: FakeMastodon, *, token: str = TOKEN, timeout: float = 5.0
) -> MastodonAdapter:
    return MastodonAdapter(api_url=fake.base, access_token=token, timeout=timeout)


def running_mastodon(
    fake: FakeMastodon, db_url: str, *, mastodon: dict[str, Any] | None = None, **options: Any
) -> AbstractAsyncContextManager[MastodonBot]:
    """A started Runtime with a Slack desk (memory) and the real Mastodon adapter
    (``options``: :func:`~tests.timeline_helpers.running_timeline`'s)."""
    section = {"api_url": fake.base, **(mastodon or {})}
    return running_timeline(mastodon_adapter(fake), fake, db_url, section=section, **options)


async def test_announcement_is_posted_and_logged(sqlite_url: str) -> None:
    async with fake_mastodon() as fake, running_mastodon(fake, sqlite_url) as bot:
        reply = await bot.announce("now --to mastodon The **PyTorch Foundation** is live!")
        assert "mastodon: posted https://fake.social/@foundationbot/" in reply
        [status] = fake.posted()
        assert status["text"] == "The PyTorch Foundation is live!"
        assert status["visibility"] == "public"
        [post] = fake.calls_to("post")
        assert post.headers["Idempotency-Key"]  # every announcement post carries one
        [delivery] = await bot.deliveries()
        assert delivery.url == status["url"]
        [event] = await bot.runtime.engagement.list(LogFilter(kind="announcement_posted"))
        assert event.platform == "mastodon" and event.message_id == status["id"]


async def test_a_long_announcement_renders_as_a_thread_of_replies() -> None:
    text = " ".join(f"Sentence {i} explains one more detail of the move." for i in range(20))
    parts = render_mastodon_thread(text).parts
    assert len(parts) == 3 and parts[0].endswith(" (1/3)")
    assert all(status_length(p) <= 500 for p in parts)
    # Links count 23 whatever their length, mentions without their domain.
    assert status_length("https://example.org/" + "a" * 100) == 23
    assert status_length("@someone@mastodon.example.org hi") == len("@someone hi")
    async with fake_mastodon() as fake, started(mastodon_adapter(fake)) as adapter:
        await post_thread(adapter, Conversation("mastodon", TIMELINE), parts)
    first, second, third = fake.posted()
    assert first["in_reply_to_id"] is None
    assert second["in_reply_to_id"] == first["id"] and third["in_reply_to_id"] == second["id"]


async def test_a_post_whose_answer_is_lost_is_sent_again_with_its_key_and_appears_once() -> None:
    async with fake_mastodon() as fake, started(mastodon_adapter(fake, timeout=0.3)) as adapter:
        fake.time_out("post", 1.0)  # the status is made; the answer comes too late
        sent = await adapter.send(
            OutgoingMessage(Conversation("mastodon", TIMELINE), "Hello", idempotency_key="k1")
        )
    posts = fake.calls_to("post")
    assert len(posts) == 2 and {p.headers["Idempotency-Key"] for p in posts} == {"k1"}
    [status] = fake.posted()
    assert sent.message_id == status["id"]


async def test_a_mention_is_answered_once_and_off_topic_is_ignored(sqlite_url: str) -> None:
    async with fake_mastodon() as fake:
        question = fake.mention(BOARD)
        off_topic = fake.mention(OFF_TOPIC, author="109000000000000043", username="bob")
        async with running_mastodon(fake, sqlite_url, mastodon=MENTIONS) as bot:
            assert await bot.job("mastodon-mentions")() == 2
            assert await bot.job("mastodon-mentions")() == 0
            questions = await bot.runtime.engagement.list(LogFilter(kind="question"))
            declined = await bot.runtime.engagement.list(LogFilter(kind="declined"))
        replies = [s for s in fake.posted() if s["in_reply_to_id"] == question["id"]]
        assert len(replies) == 1 and "Nvidia" in replies[0]["text"]
        # Off-topic: no reply on a public timeline, but the moderators see the question.
        assert not [s for s in fake.posted() if s["in_reply_to_id"] == off_topic["id"]]
        assert sorted(q.text or "" for q in questions) == sorted([BOARD, OFF_TOPIC])
        assert [d.detail.get("delivery") for d in declined] == ["silent"]
        # The cursor is the notification id: the second poll asked only for newer ones.
        assert fake.calls_to("notifications")[-1].path == "/api/v1/notifications"


async def test_a_mention_gets_an_answer_under_it_and_never_a_chat_notice(sqlite_url: str) -> None:
    """Mentions go through the dispatcher chat messages go through, with the timeline's policy:
    answers stay under the mention even when chat answers are kept out of threads
    (``answering.reply_in_thread = false``). A command typed without its slash gets no hint
    about commands (there are none here) and is not answered as a question ("announce list"
    once got the "what happened" answer): it is logged, left unanswered and not queued."""
    async with fake_mastodon() as fake:
        question = fake.mention(BOARD)
        command = fake.mention("announce list", author="109000000000000043", username="bob")
        async with running_mastodon(
            fake, sqlite_url, mastodon=MENTIONS, answering={"reply_in_thread": False}
        ) as bot:
            assert await bot.job("mastodon-mentions")() == 2
            questions = await bot.runtime.engagement.list(LogFilter(kind="question"))
            declined = await bot.runtime.engagement.list(LogFilter(kind="declined"))
            thread = await bot.runtime.engagement.find_thread("mastodon", TIMELINE, question["id"])
            queue = await bot.runtime.engagement.open_reviews()
        answers = {s["in_reply_to_id"]: s["text"] for s in fake.posted()}
        assert set(answers) == {question["id"]} and command["id"] not in answers
        assert "Nvidia" in answers[question["id"]]
        assert thread is not None  # a follow-up under an answer needs no mention
        assert [q.text for q in questions] == [BOARD, "announce list"]
        assert [d.detail.get("delivery") for d in declined] == ["silent"]
        assert "announce list" not in [item.question for item in queue]


async def test_replies_under_an_announcement_and_metrics_are_engagement(sqlite_url: str) -> None:
    async with (
        fake_mastodon() as fake,
        running_mastodon(fake, sqlite_url, mastodon=MENTIONS) as bot,
    ):
        await bot.announce("now --to mastodon Big news")
        [status] = fake.posted()
        # Mastodon puts @foundationbot in front of every reply: a comment, not a question.
        fake.mention("congratulations everyone!", in_reply_to=status["id"])
        assert await bot.job("mastodon-mentions")() == 1
        [reply] = await bot.runtime.engagement.list(LogFilter(kind="reply"))
        assert reply.text == "congratulations everyone!"
        assert not [s for s in fake.posted() if s["in_reply_to_id"]]  # no answer to a comment
        status.update(favourites_count=7, reblogs_count=3, replies_count=1)
        metrics = await bot.adapter.fetch_metrics([status["id"], "404"])
        assert (metrics[status["id"]].likes, metrics[status["id"]].reposts) == (7, 3)
        assert "404" not in metrics  # deleted statuses are left out


async def test_retract_deletes_the_status(sqlite_url: str) -> None:
    async with fake_mastodon() as fake, running_mastodon(fake, sqlite_url) as bot:
        await bot.announce("now --to mastodon Soon gone")
        assert "mastodon: deleted" in await bot.announce("retract 1")
        assert fake.posted() == []


async def test_a_429_is_transient_with_the_reset_time() -> None:
    async with fake_mastodon() as fake, started(mastodon_adapter(fake)) as adapter:
        reset = "2099-01-01T00:00:00.000Z"
        fake.fail("post", 429, {"error": "Too many requests"}, {"X-RateLimit-Reset": reset})
        with pytest.raises(TransientPlatformError) as caught:
            await adapter.send(OutgoingMessage(Conversation("mastodon", TIMELINE), "Hi"))
    assert caught.value.retry_after is not None and caught.value.retry_after > 3600


@pytest.mark.parametrize(
    ("status", "error"),
    [(503, TransientPlatformError), (502, TransientPlatformError), (403, PermanentPlatformError)],
)
async def test_an_error_body_that_is_not_json_is_judged_by_its_status(
    status: int, error: type[Exception]
) -> None:
    async with fake_mastodon() as fake, started(mastodon_adapter(fake)) as adapter:
        fake.fail("post", status, "upstream connect error or disconnect/reset")
        with pytest.raises(error):
            await adapter.send(OutgoingMessage(Conversation("mastodon", TIMELINE), "Hi"))


async def test_bad_credentials_stop_the_start_with_one_line() -> None:
    async with fake_mastodon() as fake:
        adapter = mastodon_adapter(fake, token="wrong")
        with pytest.raises(PermanentPlatformError) as caught:
            await adapter.start(pushes_nothing)
    assert "\n" not in str(caught.value) and "MASTODON_ACCESS_TOKEN" in str(caught.value)
    assert not adapter.is_connected()


async def test_an_instance_with_a_smaller_limit_is_refused_at_start() -> None:
    async with fake_mastodon() as fake:
        fake.max_characters = 400
        adapter = mastodon_adapter(fake)
        with pytest.raises(PermanentPlatformError, match="400 characters"):
            await adapter.start(pushes_nothing)


async def test_the_mastodon_py_calls_leave_the_event_loop_free() -> None:
    async with fake_mastodon() as fake, started(mastodon_adapter(fake, timeout=2.0)) as adapter:
        fake.time_out("post", 0.5)
        ticks = 0

        async def count() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.01)

        counter = asyncio.create_task(count())
        await adapter.send(OutgoingMessage(Conversation("mastodon", TIMELINE), "Hi"))
        counter.cancel()
    assert ticks >= 10  # the loop kept running while the post waited half a second


def test_the_config_section_builds_the_adapter(tmp_path: Path) -> None:
    path = tmp_path / "bot.toml"
    path.write_text(
        '[mastodon]\nenabled = true\napi_url = "https://fosstodon.example"\n'
        'visibility = "unlisted"\nmentions = true\n',
        encoding="utf-8",
    )
    env = {"MASTODON_ACCESS_TOKEN": "secret-token"}
    [adapter] = _platform_adapters(load_config(path, environ=env))
    assert isinstance(adapter, MastodonAdapter)
    assert adapter.platform == "mastodon" and adapter.announce_channels == (TIMELINE,)
    with pytest.raises(Exception, match="MASTODON_ACCESS_TOKEN"):
        load_config(path, environ={})
    assert BOT_HANDLE and BOT_ID  # the fake's account, used by the fake's mentions


async def test_a_long_announcement_goes_out_as_a_thread(sqlite_url: str) -> None:
    text = " ".join(f"Sentence {i} explains one more detail of the move." for i in range(20))
    async with fake_mastodon() as fake, running_mastodon(fake, sqlite_url) as bot:
        await bot.announce(f"now --to mastodon {text}")
        first, second, third = fake.posted()
    assert first["in_reply_to_id"] is None and first["text"].endswith(" (1/3)")
    assert second["in_reply_to_id"] == first["id"] and third["in_reply_to_id"] == second["id"]
