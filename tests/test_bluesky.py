"""The Bluesky adapter, driving the real atproto SDK against a fake PDS on 127.0.0.1."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from adapters.bluesky import FEED, BlueskyAdapter, record_key
from adapters.bluesky.rules import graphemes, post_link, render_bluesky_thread
from bot.cli import _platform_adapters
from bot.config import load_config
from bot.errors import PermanentPlatformError, TransientPlatformError
from bot.events import Conversation, OutgoingMessage
from bot.store.engagement import LogFilter
from tests.fakes.bluesky_api import (
    DID,
    HANDLE,
    PASSWORD,
    READER_DID,
    READER_HANDLE,
    FakeBluesky,
    fake_bluesky,
)
from tests.timeline_helpers import (
    Clock,
    TimelineBot,
    post_thread,
    pushes_nothing,
    running_timeline,
    started,
)

BOARD = f"@{HANDLE} who is on the pytorch foundation board?"
OFF_TOPIC = f"@{HANDLE} what's the weather in Paris today?"
MENTIONS = {"mentions": True}

BlueskyBot = TimelineBot[BlueskyAdapter, FakeBluesky]


def bluesky_adapter(
    fake: FakeBluesky, *, password: str = PASSWORD, timeout: float = 5.0
) -> BlueskyAdapter:
    return BlueskyAdapter(handle=HANDLE, app_password=password, api_url=fake.base, timeout=timeout)


def running_bluesky(
    fake: FakeBluesky, db_url: str, *, bluesky: dict[str, Any] | None = None, **options: Any
) -> AbstractAsyncContextManager[BlueskyBot]:
    """A started Runtime with a Slack desk (memory) and the real Bluesky adapter
    (``options``: :func:`~tests.timeline_helpers.running_timeline`'s)."""
    section = {"handle": HANDLE, "api_url": fake.base, **(bluesky or {})}
    return running_timeline(bluesky_adapter(fake), fake, db_url, section=section, **options)


async def test_announcement_posted_with_link_and_mention_facets(sqlite_url: str) -> None:
    text = f"Read https://pytorch.org/blog — thanks @{READER_HANDLE}! 🎉"
    async with fake_bluesky() as fake, running_bluesky(fake, sqlite_url) as bot:
        reply = await bot.announce(f"now --to bluesky {text}")
        [post] = fake.posts_by(DID)
        assert f"bluesky: posted {post_link(post['uri'])}" in reply
        record = post["value"]
        assert record["text"] == text
        encoded = text.encode()
        link, mention = sorted(record["facets"], key=lambda f: f["index"]["byteStart"])
        start, end = link["index"]["byteStart"], link["index"]["byteEnd"]
        assert encoded[start:end] == b"https://pytorch.org/blog"
        assert link["features"][0]["uri"] == "https://pytorch.org/blog"
        start, end = mention["index"]["byteStart"], mention["index"]["byteEnd"]
        assert encoded[start:end] == f"@{READER_HANDLE}".encode()
        assert mention["features"][0]["did"] == READER_DID
        # The record key comes from the post's idempotency key.
        [delivery] = await bot.deliveries()
        assert delivery.url == post_link(post["uri"])


async def test_a_long_announcement_renders_as_a_thread_with_root_and_parent() -> None:
    text = " ".join(f"Sentence {i} explains one more detail of the move. 🇫🇷" for i in range(12))
    parts = render_bluesky_thread(text).parts
    assert len(parts) == 3 and all(graphemes(p) <= 300 for p in parts)
    assert graphemes("🇫🇷👍🏽é") == 3  # a flag, an emoji with its skin tone, e + accent
    async with fake_bluesky() as fake, started(bluesky_adapter(fake)) as adapter:
        await post_thread(adapter, Conversation("bluesky", FEED), parts)
    first, second, third = fake.posts_by(DID)
    assert "reply" not in first["value"]
    assert refs(second) == (first["uri"], first["uri"])
    assert refs(third) == (first["uri"], second["uri"])
    assert second["value"]["reply"]["root"]["cid"] == first["cid"]
    assert first["uri"].endswith("/" + record_key(f"d1:{FEED}:0"))


def refs(post: dict[str, Any]) -> tuple[str, str]:
    """A reply record's (root, parent) uris."""
    reply = post["value"]["reply"]
    return reply["root"]["uri"], reply["parent"]["uri"]


async def test_a_post_whose_answer_is_lost_is_found_by_its_key_and_appears_once() -> None:
    async with fake_bluesky() as fake, started(bluesky_adapter(fake, timeout=0.3)) as adapter:
        fake.time_out("com.atproto.repo.createRecord", 1.0)  # made; the answer comes late
        message = OutgoingMessage(Conversation("bluesky", FEED), "Hello", idempotency_key="k1")
        sent = await adapter.send(message)  # the timeout is resolved by looking the key up
        [post] = fake.posts_by(DID)
        assert sent.message_id == post["uri"]
        again = await adapter.send(message)  # a retry: refused as a repeat, found again
        assert again.message_id == post["uri"]
        found = await adapter.find_posted(message, "k1", datetime.now(UTC) - timedelta(hours=1))
        assert found is not None and found.message_id == post["uri"]
        other = OutgoingMessage(Conversation("bluesky", FEED), "Other", idempotency_key="k2")
        assert await adapter.find_posted(other, "k2", datetime.now(UTC)) is None
    assert len(fake.posts_by(DID)) == 1


async def test_a_mention_is_answered_in_its_thread_and_off_topic_is_ignored(
    sqlite_url: str,
) -> None:
    async with fake_bluesky() as fake:
        question = fake.mention(BOARD)
        off_topic = fake.mention(OFF_TOPIC)
        async with running_bluesky(fake, sqlite_url, bluesky=MENTIONS) as bot:
            assert await bot.job("bluesky-mentions")() == 2
            assert await bot.job("bluesky-mentions")() == 0
            declined = await bot.runtime.engagement.list(LogFilter(kind="declined"))
        replies = [p for p in fake.posts_by(DID) if "reply" in p["value"]]
        [answer] = replies
        assert "Nvidia" in answer["value"]["text"]
        assert refs(answer) == (question, question)
        assert not [p for p in replies if refs(p)[1] == off_topic]
        assert [d.detail.get("delivery") for d in declined] == ["silent"]


async def test_a_mention_whose_answer_failed_is_answered_on_a_later_poll_once(
    sqlite_url: str,
) -> None:
    """The second time a polled mention reaches the chain it is not dropped as a retried
    delivery: its answer certainly did not go out the first time, so it goes out now, and the
    question is logged once."""
    clock = Clock()
    async with fake_bluesky() as fake:
        question = fake.mention(BOARD)
        async with running_bluesky(fake, sqlite_url, bluesky=MENTIONS, clock=clock) as bot:
            fake.fail("com.atproto.repo.createRecord", 503, "upstream connect error")
            assert await bot.job("bluesky-mentions")() == 0
            assert [p for p in fake.posts_by(DID) if "reply" in p["value"]] == []
            clock.advance(seconds=61)  # past the pause after a failed reply
            assert await bot.job("bluesky-mentions")() == 1
            assert await bot.job("bluesky-mentions")() == 0
            questions = await bot.runtime.engagement.list(LogFilter(kind="question"))
        [answer] = [p for p in fake.posts_by(DID) if "reply" in p["value"]]
        assert refs(answer) == (question, question) and "Nvidia" in answer["value"]["text"]
        assert [q.message_id for q in questions] == [question]


async def test_replies_under_an_announcement_and_metrics_are_engagement(sqlite_url: str) -> None:
    async with fake_bluesky() as fake, running_bluesky(fake, sqlite_url, bluesky=MENTIONS) as bot:
        await bot.announce("now --to bluesky Big news")
        [post] = fake.posts_by(DID)
        fake.mention("congratulations everyone!", reason="reply", reply_to=post["uri"])
        assert await bot.job("bluesky-mentions")() == 1
        [reply] = await bot.runtime.engagement.list(LogFilter(kind="reply"))
        assert reply.text == "congratulations everyone!"
        assert len(fake.posts_by(DID)) == 1  # no answer to a comment
        fake.counts[post["uri"]] = {"likes": 5, "reposts": 2, "replies": 1, "quotes": 1}
        metrics = await bot.adapter.fetch_metrics([post["uri"], f"at://{DID}/x/gone"])
        found = metrics[post["uri"]]
        assert (found.likes, found.reposts, found.replies, found.quotes) == (5, 2, 1, 1)
        assert len(metrics) == 1


async def test_retract_deletes_the_records(sqlite_url: str) -> None:
    async with fake_bluesky() as fake, running_bluesky(fake, sqlite_url) as bot:
        await bot.announce("now --to bluesky Soon gone")
        assert "bluesky: deleted" in await bot.announce("retract 1")
        assert fake.posts_by(DID) == []


async def test_a_429_is_transient_with_the_reset_time() -> None:
    async with fake_bluesky() as fake, started(bluesky_adapter(fake)) as adapter:
        fake.fail(
            "com.atproto.repo.createRecord",
            429,
            {"error": "RateLimitExceeded", "message": "Rate Limit Exceeded"},
            {"ratelimit-reset": "4102444800", "ratelimit-remaining": "0"},
        )
        with pytest.raises(TransientPlatformError) as caught:
            await adapter.send(OutgoingMessage(Conversation("bluesky", FEED), "Hi"))
    assert caught.value.retry_after is not None and caught.value.retry_after > 3600


@pytest.mark.parametrize(
    ("status", "error"),
    [(503, TransientPlatformError), (502, TransientPlatformError), (400, PermanentPlatformError)],
)
async def test_an_error_body_that_is_not_json_is_judged_by_its_status(
    status: int, error: type[Exception]
) -> None:
    async with fake_bluesky() as fake, started(bluesky_adapter(fake)) as adapter:
        fake.fail("com.atproto.repo.createRecord", status, "upstream connect error")
        with pytest.raises(error):
            await adapter.send(OutgoingMessage(Conversation("bluesky", FEED), "Hi"))


async def test_bad_credentials_stop_the_start_with_one_line() -> None:
    async with fake_bluesky() as fake:
        adapter = bluesky_adapter(fake, password="wrong")
        with pytest.raises(PermanentPlatformError) as caught:
            await adapter.start(pushes_nothing)
    assert "\n" not in str(caught.value) and "BLUESKY_APP_PASSWORD" in str(caught.value)
    assert not adapter.is_connected()


def test_the_config_section_builds_the_adapter(tmp_path: Path) -> None:
    path = tmp_path / "bot.toml"
    path.write_text(
        f'[bluesky]\nenabled = true\nhandle = "{HANDLE}"\nmentions = true\n', encoding="utf-8"
    )
    [adapter] = _platform_adapters(load_config(path, environ={"BLUESKY_APP_PASSWORD": "p"}))
    assert isinstance(adapter, BlueskyAdapter)
    assert adapter.platform == "bluesky" and adapter.announce_channels == (FEED,)
    with pytest.raises(Exception, match="BLUESKY_APP_PASSWORD"):
        load_config(path, environ={})


async def test_a_long_announcement_goes_out_as_a_thread(sqlite_url: str) -> None:
    text = " ".join(f"Sentence {i} explains one more detail of the move." for i in range(12))
    async with fake_bluesky() as fake, running_bluesky(fake, sqlite_url) as bot:
        await bot.announce(f"now --to bluesky {text}")
        first, second, third = fake.posts_by(DID)
    assert "reply" not in first["value"] and first["value"]["text"].endswith(" (1/3)")
    assert refs(second) == (first["uri"], first["uri"])
    assert refs(third) == (first["uri"], second["uri"])
