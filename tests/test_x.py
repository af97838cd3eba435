"""The X adapter and the polling jobs, driving real tweepy against a fake X API on 127.0.0.1.

Every request the fake records carries an OAuth 1.0a header whose HMAC-SHA1 signature the fake
recomputes with the known secrets; the end-to-end tests go through the real Runtime, the
delivery engine and the scheduler's jobs.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from adapters.x import TIMELINE, XAdapter, fit_post, translate
from adapters.x.rules import render_x_thread, x_weighted_length
from bot.cli import _configure_logging, _platform_adapters
from bot.config import load_config
from bot.errors import ConfigError, PermanentPlatformError, TransientPlatformError
from bot.events import Conversation, OutgoingMessage
from bot.privacy import Pseudonymizer
from bot.store.engagement import LogFilter
from bot.store.models import BotState, Delivery
from tests.fakes.x_api import (
    ACCESS_TOKEN,
    ACCESS_TOKEN_SECRET,
    API_KEY,
    API_SECRET,
    BOT_HANDLE,
    BOT_ID,
    DUPLICATE_BODY,
    NOT_ENROLLED_BODY,
    RATE_LIMIT_BODY,
    READ_ONLY_BODY,
    SERVER_ERROR_BODY,
    USAGE_CAP_BODY,
    FakeX,
    fake_x,
    rate_limit_headers,
)
from tests.timeline_helpers import Clock, TimelineBot, running_timeline, started
from tests.waiting import PATIENCE, eventually

BOARD = "@foundationbot who is on the pytorch foundation board?"
OPEN_SOURCE = "@foundationbot is pytorch still open source?"
OFF_TOPIC = "@foundationbot what's the weather in Paris today?"
ANNOUNCED = "@foundationbot who announced the pytorch foundation?"

XBot = TimelineBot[XAdapter, FakeX]


def x_adapter(fake: FakeX, prefix: str = "", timeout: float = 30.0) -> XAdapter:
    return XAdapter(
        timeout=timeout,
        api_key=API_KEY,
        api_secret=API_SECRET,
        access_token=ACCESS_TOKEN,
        access_token_secret=ACCESS_TOKEN_SECRET,
        api_url=fake.base + prefix,
        announce_channels=(TIMELINE,),
    )


def running_x(
    fake: FakeX,
    db_url: str,
    *,
    clock: Clock | None = None,
    prefix: str = "",
    x_timeout: float = 30.0,
    x: dict[str, Any] | None = None,
    **options: Any,
) -> AbstractAsyncContextManager[XBot]:
    """A started Runtime with a Slack desk (memory) and the real X adapter on the fake
    (``options``: :func:`~tests.timeline_helpers.running_timeline`'s)."""
    adapter = x_adapter(fake, prefix, x_timeout)
    return running_timeline(adapter, fake, db_url, section=x, clock=clock or Clock(), **options)


def three_part_text() -> str:
    text = " ".join(
        f"Sentence {i} explains one more detail of the foundation move." for i in range(9)
    )
    assert len(render_x_thread(text).parts) == 3
    return text


# --- announcements out ----------------------------------------------------------------------


async def test_short_announcement_is_one_oauth1_signed_post_through_api_url(
    sqlite_url: str,
) -> None:
    async with fake_x() as fake, running_x(fake, sqlite_url, prefix="/proxy") as bot:
        reply = await bot.announce("now --to x The *PyTorch Foundation* is live!")
        [post] = fake.calls_to("create")
        assert post.json == {"text": "The PyTorch Foundation is live!"}
        assert post.headers["Host"] == f"127.0.0.1:{fake.port}"
        assert len(fake.calls_to("me")) == 1  # the handle, for links
        # Every call went to x.api_url (here with a path prefix), OAuth 1.0a user context,
        # signed over api.twitter.com with the app's and the account's secrets.
        assert fake.calls and all(c.signed for c in fake.calls)
        assert post.oauth["oauth_consumer_key"] == API_KEY
        assert post.oauth["oauth_token"] == ACCESS_TOKEN
        [delivery] = await bot.deliveries()
        post_id = fake.created()[0]["id"]
        assert (delivery.state, delivery.external_id) == ("sent", post_id)
        assert delivery.url == f"https://x.com/{BOT_HANDLE}/status/{post_id}"
        assert f"x: posted {delivery.url}" in reply


async def test_long_announcement_is_a_numbered_thread_each_part_replying_to_the_last(
    sqlite_url: str,
) -> None:
    text = three_part_text()
    async with fake_x() as fake, running_x(fake, sqlite_url) as bot:
        await bot.announce(f"now --to x {text}")
        posts = fake.created()
        assert [p["text"] for p in posts] == list(render_x_thread(text).parts)
        assert [p["text"][-5:] for p in posts] == ["(1/3)", "(2/3)", "(3/3)"]
        assert [p["in_reply_to"] for p in posts] == [None, posts[0]["id"], posts[1]["id"]]
        assert all(x_weighted_length(p["text"]) <= 280 for p in posts)
        [delivery] = await bot.deliveries()
        assert delivery.state == "sent"
        assert delivery.progress == [f"{TIMELINE}|{p['id']}" for p in posts]


async def test_thread_failing_at_part_two_resumes_at_part_two_without_reposting(
    db_url: str,
) -> None:
    text = three_part_text()
    parts = render_x_thread(text).parts
    async with fake_x() as fake, running_x(fake, db_url) as bot:
        fake.fail("create", 503, SERVER_ERROR_BODY, call=2)
        reply = await bot.announce(f"now --to x {text}")
        assert "x: will retry" in reply
        [delivery] = await bot.deliveries()
        first = fake.created()[0]["id"]
        assert (delivery.state, delivery.progress) == ("pending", [f"{TIMELINE}|{first}"])
        job = bot.runtime.scheduler.get_job(f"delivery-{delivery.id}")
        assert job is not None
        await job.func(*job.args)  # the retry timer fires
        calls = fake.calls_to("create")
        assert [c.status for c in calls] == [201, 503, 201, 201]
        # Part 1 went out exactly once; part 2 was tried again with the same parent.
        assert [c.json for c in calls] == [
            {"text": parts[0]},
            {"text": parts[1], "reply": {"in_reply_to_tweet_id": first}},
            {"text": parts[1], "reply": {"in_reply_to_tweet_id": first}},
            {"text": parts[2], "reply": {"in_reply_to_tweet_id": fake.created()[1]["id"]}},
        ]
        assert [p["text"] for p in fake.created()] == list(parts)
        [delivery] = await bot.deliveries()
        assert delivery.state == "sent" and len(delivery.progress) == 3


async def test_thread_refused_at_part_two_tells_staff_what_is_already_up(
    sqlite_url: str,
) -> None:
    text = three_part_text()
    async with fake_x() as fake, running_x(fake, sqlite_url) as bot:
        fake.fail("create", 403, READ_ONLY_BODY, call=2)
        await bot.announce(f"now --to x {text}")
        [delivery] = await bot.deliveries()
        assert delivery.state == "failed" and len(delivery.progress) == 1
        [notice] = [n for n in bot.staff_notices() if "failed on x" in n]
        assert "read-only" in notice
        assert "1 post is already up; a retry continues after it" in notice
        assert "/announce retry 1 --to x" in notice
        await bot.announce("retry 1 --to x")
        posts = fake.created()
        assert len(posts) == 3
        assert [p["in_reply_to"] for p in posts] == [None, posts[0]["id"], posts[1]["id"]]


async def test_rate_limit_waits_until_the_reset_then_posts(sqlite_url: str) -> None:
    async with fake_x() as fake, running_x(fake, sqlite_url, live=True) as bot:
        reset = int(time.time()) + 2
        fake.fail("create", 429, RATE_LIMIT_BODY, headers=rate_limit_headers(reset))
        reply = await bot.announce("now --to x Rate limited news")
        assert "x: will retry" in reply
        [delivery] = await bot.deliveries()
        assert delivery.next_attempt_at is not None
        assert delivery.next_attempt_at >= datetime.fromtimestamp(reset, UTC)
        assert "rate limited by X (HTTP 429) until" in (delivery.error or "")
        await fake.wait_for(lambda: fake.calls_to("create", ok=True))
        first, second = fake.calls_to("create")
        assert first.status == 429 and second.status == 201
        assert second.at >= reset  # not a moment before X said the window resets

        async def sent() -> bool:
            [delivery] = await bot.deliveries()
            return delivery.state == "sent"

        await eventually(sent, "the delivery sent")


async def test_duplicate_content_fails_for_good_with_a_clear_message(sqlite_url: str) -> None:
    async with fake_x() as fake, running_x(fake, sqlite_url) as bot:
        await bot.announce("now --to x Same words")
        await bot.announce("now --force --to x Same words")
        deliveries = await bot.deliveries()
        assert [d.state for d in deliveries] == ["sent", "failed"]
        assert "duplicate" in (deliveries[1].error or "")
        assert len(fake.created()) == 1
        assert any("already posted exactly this text" in n for n in bot.staff_notices())


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (403, DUPLICATE_BODY, "duplicate post"),
        (403, READ_ONLY_BODY, "permissions are read-only"),
        (403, NOT_ENROLLED_BODY, "access level of the app's project does not include"),
        (429, USAGE_CAP_BODY, "usage cap"),
        (401, {"title": "Unauthorized", "status": 401, "detail": "Unauthorized"}, "X_API_KEY"),
        (404, {"title": "Not Found Error", "detail": "Not Found"}, "does not exist"),
    ],
)
async def test_refusals_are_permanent_with_a_reason_staff_can_act_on(
    status: int, body: dict[str, Any], expected: str
) -> None:
    async with fake_x() as fake, started(x_adapter(fake)) as adapter:
        fake.fail("create", status, body)
        with pytest.raises(PermanentPlatformError) as caught:
            await adapter.send(OutgoingMessage(Conversation("x", TIMELINE), "hello"))
        assert expected in caught.value.reason


async def test_server_errors_are_transient_and_timeouts_ambiguous() -> None:
    async with fake_x() as fake, started(x_adapter(fake)) as adapter:
        fake.fail("create", 503, SERVER_ERROR_BODY)
        with pytest.raises(TransientPlatformError) as caught:
            await adapter.send(OutgoingMessage(Conversation("x", TIMELINE), "hello"))
        assert not caught.value.ambiguous
    lost = translate(TimeoutError(), write=True)
    assert isinstance(lost, TransientPlatformError) and lost.ambiguous
    assert not translate(TimeoutError()).ambiguous


async def test_retraction_deletes_every_part_newest_first(sqlite_url: str) -> None:
    async with fake_x() as fake, running_x(fake, sqlite_url) as bot:
        await bot.announce(f"now --to x {three_part_text()}")
        reply = await bot.announce("retract 1")
        assert "x: deleted" in reply
        ids = [p["id"] for p in fake.created()]
        assert [c.path for c in fake.calls_to("delete")] == [f"/2/tweets/{i}" for i in ids[::-1]]


# --- a post whose answer is lost (timeout) is looked up, never posted twice ------------------

#: Client timeout and the fake's late answer: the answer always comes after the client gave up.
#: Every other call must be answered within the timeout, also on a loaded machine.
CLIENT_TIMEOUT = 1.0
LATE = CLIENT_TIMEOUT + 1.0
RECONCILE = {"reconcile_after_seconds": 0.3}


async def run_retry(bot: XBot) -> Delivery:
    """Fire the delivery's retry timer by hand (the scheduler is paused); the row after it."""
    [delivery] = await bot.deliveries()
    job = bot.runtime.scheduler.get_job(f"delivery-{delivery.id}")
    assert job is not None, delivery.state
    await job.func(*job.args)
    [delivery] = await bot.deliveries()
    return delivery


def thread_chain_ok(fake: FakeX, parts: tuple[str, ...]) -> None:
    posts = fake.created()
    assert [p["text"] for p in posts] == list(parts)  # each part exactly once
    assert [p["in_reply_to"] for p in posts] == [None] + [p["id"] for p in posts[:-1]]


async def test_thread_part_that_went_out_despite_a_timeout_is_found_and_the_thread_goes_on(
    sqlite_url: str,
) -> None:
    text = three_part_text()
    parts = render_x_thread(text).parts
    async with (
        fake_x() as fake,
        running_x(fake, sqlite_url, x_timeout=CLIENT_TIMEOUT, announcements=RECONCILE) as bot,
    ):
        fake.time_out("create", posted=True, seconds=LATE, call=2)
        attempted = datetime.now(UTC)
        reply = await bot.announce(f"now --to x {text}")
        assert "x: will retry" in reply and "X did not confirm the post" in reply
        [delivery] = await bot.deliveries()
        first, second = (p["id"] for p in fake.created())  # part 2 is up; X's answer was lost
        assert delivery.state == "pending"
        assert delivery.progress[0] == f"{TIMELINE}|{first}"
        assert delivery.progress[1].startswith(f"?{TIMELINE}|")
        assert "part 2/3 on timeline is looked up before it is posted again" in (
            delivery.error or ""
        )
        delivery = await run_retry(bot)
        assert delivery.state == "sent"
        thread_chain_ok(fake, parts)
        assert delivery.progress == [f"{TIMELINE}|{p['id']}" for p in fake.created()]
        assert fake.created()[1]["id"] == second
        # Part 2 was never sent again: the retry went on with part 3, replying to it.
        assert [c.json for c in fake.calls_to("create")][2:] == [
            {"text": parts[2], "reply": {"in_reply_to_tweet_id": second}}
        ]
        [lookup] = fake.calls_to("timeline")
        assert lookup.path == f"/2/users/{BOT_ID}/tweets" and lookup.signed
        start = datetime.fromisoformat(lookup.query["start_time"].replace("Z", "+00:00"))
        assert start < attempted
        assert "referenced_tweets" in lookup.query["tweet.fields"]
        # Not looked up before the settling delay had passed since the lost attempt.
        assert lookup.at - fake.calls_to("create")[1].at >= 0.3


async def test_post_lost_on_the_way_is_posted_after_the_lookup_finds_nothing(
    sqlite_url: str,
) -> None:
    text = "R&D news <today>: see pytorch.org/blog for the details"
    async with (
        fake_x() as fake,
        running_x(fake, sqlite_url, x_timeout=CLIENT_TIMEOUT, announcements=RECONCILE) as bot,
    ):
        # Something else the account posted in the window, with the escaping X applies.
        fake.posts["1"] = {
            "id": "1",
            "text": "R&D news <yesterday>",
            "author_id": BOT_ID,
            "in_reply_to": None,
            "conversation_id": "1",
            "created_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        }
        fake.time_out("create", posted=False, seconds=LATE)
        await bot.announce(f"now --to x {text}")
        assert len(fake.created()) == 1  # nothing new went out
        delivery = await run_retry(bot)
        assert delivery.state == "sent" and delivery.attempts == 2
        [_, post] = fake.created()
        assert post["text"] == text
        assert delivery.progress == [f"{TIMELINE}|{post['id']}"]
        # The lost request (its late answer is still on the way) and the one after the lookup.
        assert len(fake.calls_to("create")) == 2 and len(fake.calls_to("create", ok=True)) == 1
        assert len(fake.calls_to("timeline")) == 1


async def test_escaped_text_with_a_link_is_recognised_on_the_timeline(sqlite_url: str) -> None:
    text = "R&D news <today>: see pytorch.org/blog for the details"
    async with (
        fake_x() as fake,
        running_x(fake, sqlite_url, x_timeout=CLIENT_TIMEOUT, announcements=RECONCILE) as bot,
    ):
        fake.time_out("create", posted=True, seconds=LATE)
        await bot.announce(f"now --to x {text}")
        [post] = fake.created()
        delivery = await run_retry(bot)
        assert (delivery.state, delivery.external_id) == ("sent", post["id"])
        assert len(fake.calls_to("create")) == 1


async def test_duplicate_refusal_on_the_retry_of_a_lost_post_means_look_again(
    sqlite_url: str,
) -> None:
    async with (
        fake_x() as fake,
        running_x(fake, sqlite_url, x_timeout=CLIENT_TIMEOUT, announcements=RECONCILE) as bot,
    ):
        fake.timeline_lag = 3600  # X's timeline does not show the new post yet
        fake.time_out("create", posted=True, seconds=LATE)
        await bot.announce("now --to x Slow timeline news")
        delivery = await run_retry(bot)  # not on the timeline, so posted: X says duplicate
        assert [c.status for c in fake.calls_to("create")] == [201, 403]
        assert delivery.state == "pending" and delivery.progress[-1].startswith("?")
        assert "duplicate" in (delivery.error or "")
        fake.timeline_lag = 0
        delivery = await run_retry(bot)
        [post] = fake.created()
        assert (delivery.state, delivery.external_id) == ("sent", post["id"])
        assert len(fake.calls_to("create")) == 2 and len(fake.calls_to("timeline")) == 2
        assert not [n for n in bot.staff_notices() if "failed" in n]


async def test_lookup_refused_keeps_the_post_in_doubt_then_unknown_and_retry_looks_first(
    sqlite_url: str,
) -> None:
    async with (
        fake_x() as fake,
        running_x(
            fake,
            sqlite_url,
            x_timeout=CLIENT_TIMEOUT,
            announcements={**RECONCILE, "max_attempts": 2},
        ) as bot,
    ):
        fake.time_out("create", posted=True, seconds=LATE)
        fake.fail("timeline", 403, NOT_ENROLLED_BODY)
        await bot.announce("now --to x Unreadable timeline news")
        delivery = await run_retry(bot)
        assert delivery.state == "unknown"
        assert delivery.progress[-1].startswith("?")
        [notice] = [n for n in bot.staff_notices() if "may or may not have reached x" in n]
        assert "the post on timeline could not be confirmed in 2 attempts" in notice
        assert "cannot check whether it went out: the X API access level" in notice
        assert "a retry looks for it first" in notice
        assert delivery.next_attempt_at is None  # no more automatic retries
        reply = await bot.announce("retry 1 --to x")  # the access level was raised meanwhile
        assert reply == "Retried announcement #1: x: sent"
        [post] = fake.created()
        [delivery] = await bot.deliveries()
        assert (delivery.state, delivery.progress) == ("sent", [f"{TIMELINE}|{post['id']}"])
        assert len(fake.calls_to("create")) == 1


async def test_with_a_fifth_of_requests_failing_every_thread_goes_out_once(
    sqlite_url: str,
) -> None:
    """429s, 503s and timeouts (with and without the post created) at random, 20 % of the
    posts and timeline reads: every thread is complete, each part exactly once."""
    texts = [three_part_text().replace("detail", f"detail ({n})") for n in range(8)]
    async with (
        fake_x() as fake,
        running_x(
            fake,
            sqlite_url,
            live=True,
            x_timeout=CLIENT_TIMEOUT,
            announcements={**RECONCILE, "max_attempts": 12},
        ) as bot,
    ):
        fake.chaos, fake.rng, fake.chaos_late = 0.2, random.Random(2), LATE
        for text in texts:
            await bot.announce(f"now --to x {text}")
        async with asyncio.timeout(2 * PATIENCE):
            while any(d.state != "sent" for d in await bot.deliveries()):
                assert all(
                    d.state in ("pending", "sending", "sent") for d in await bot.deliveries()
                )
                await asyncio.sleep(0.05)
        posts = fake.created()
        expected = [part for text in texts for part in render_x_thread(text).parts]
        assert sorted(p["text"] for p in posts) == sorted(expected)  # each exactly once
        by_text = {p["text"]: p for p in posts}
        for delivery, text in zip(await bot.deliveries(), texts, strict=True):
            thread = [by_text[part] for part in render_x_thread(text).parts]
            assert [p["in_reply_to"] for p in thread] == [None] + [p["id"] for p in thread[:-1]]
            assert delivery.progress == [f"{TIMELINE}|{p['id']}" for p in thread]
        failed = [c for c in fake.calls if c.route in ("create", "timeline") and c.status != 201]
        assert failed and fake.calls_to("timeline")  # the chaos did happen, timeouts too


# --- engagement metrics ---------------------------------------------------------------------


async def test_metrics_snapshots_follow_the_schedule_across_a_restart(db_url: str) -> None:
    clock = Clock()
    schedule = {"metrics_schedule_minutes": [10, 60, 360]}
    async with fake_x() as fake:
        async with running_x(fake, db_url, clock=clock, x=schedule) as bot:
            await bot.announce("now --to x Metrics news")
            post_id = fake.created()[0]["id"]
            poll = bot.job("x-metrics")
            assert await poll() == 0  # nothing due before 10 minutes
            assert fake.calls_to("lookup") == []
            fake.metrics[post_id] = {"like_count": 3, "retweet_count": 1, "impression_count": 120}
            clock.advance(minutes=11)
            assert await poll() == 1
            assert await poll() == 0  # the same tick again stores nothing
            fake.metrics[post_id] = {"like_count": 10, "retweet_count": 2, "impression_count": 900}
            clock.advance(minutes=50)
            assert await poll() == 1
        async with running_x(fake, db_url, clock=clock, x=schedule) as bot:
            poll = bot.job("x-metrics")
            assert await poll() == 0  # the 1 h snapshot was stored before the restart
            fake.hide_impressions = True  # an access level without view counts
            fake.metrics[post_id] = {"like_count": 12, "reply_count": 4}
            clock.advance(hours=6)
            assert await poll() == 1
            clock.advance(days=2)
            assert await poll() == 0  # the schedule is done
            rows = await bot.runtime.engagement.list(LogFilter(kind="metrics"))
    assert [(r.detail["schedule"], r.detail["likes"]) for r in rows] == [
        ("10m", 3),
        ("1h", 10),
        ("6h", 12),
    ]
    assert [r.detail.get("impressions") for r in rows] == [120, 900, None]
    assert rows[2].detail["replies"] == 4
    assert {(r.announcement_id, r.message_id, r.platform) for r in rows} == {(1, post_id, "x")}
    assert rows[0].detail["age_seconds"] >= 600
    assert (
        rows[0].text == "likes 3 · reposts 1 · replies 0 · quotes 0 · bookmarks 0 · impressions 120"
    )
    lookups = fake.calls_to("lookup")
    assert len(lookups) == 3 and all(c.signed for c in lookups)
    assert lookups[0].query == {"ids": post_id, "tweet.fields": "public_metrics"}


async def test_snapshots_missed_while_down_collapse_into_the_latest_step(sqlite_url: str) -> None:
    clock = Clock()
    async with (
        fake_x() as fake,
        running_x(
            fake, sqlite_url, clock=clock, x={"metrics_schedule_minutes": [10, 60, 360]}
        ) as bot,
    ):
        await bot.announce("now --to x Catching up")
        clock.advance(hours=7)
        assert await bot.job("x-metrics")() == 1
        assert await bot.job("x-metrics")() == 0
        [row] = await bot.runtime.engagement.list(LogFilter(kind="metrics"))
        assert row.detail["schedule"] == "6h" and row.detail["step"] == 2


async def test_metrics_refused_by_the_access_level_stop_with_one_message(sqlite_url: str) -> None:
    clock = Clock()
    async with fake_x() as fake, running_x(fake, sqlite_url, clock=clock) as bot:
        await bot.announce("now --to x Tier news")
        clock.advance(minutes=11)
        fake.fail("lookup", 403, NOT_ENROLLED_BODY)
        assert await bot.job("x-metrics")() == 0
        clock.advance(hours=2)
        assert await bot.job("x-metrics")() == 0
        assert len(fake.calls_to("lookup")) == 1  # stopped: no request every tick
        [alert] = [m for m in bot.slack.sent if m.where.channel_id == "C-comms"]
        assert "metrics on x are switched off" in alert.text
        assert "does not include this endpoint" in alert.text


# --- mentions -------------------------------------------------------------------------------


async def test_mentions_are_answered_once_across_a_restart(sqlite_url: str) -> None:
    async with fake_x() as fake:
        first = fake.mention(BOARD)
        async with running_x(fake, sqlite_url, x={"mentions": True}) as bot:
            assert await bot.job("x-mentions")() == 1
            [answer] = fake.replies_to(first)
            assert "Nvidia" in answer["text"]
            assert await bot.job("x-mentions")() == 0
        second = fake.mention(OPEN_SOURCE, author="2002", username="bob")
        async with running_x(fake, sqlite_url, x={"mentions": True}) as bot:
            assert await bot.job("x-mentions")() == 1
            assert fake.calls_to("mentions")[-1].query["since_id"] == first  # kept in the DB
            assert len(fake.replies_to(first)) == 1
            assert len(fake.replies_to(second)) == 1
            exposition = bot.runtime.metrics.exposition().decode()
            assert 'foundation_bot_questions_total{outcome="answered",platform="x"} 1.0' in (
                exposition
            )
            questions = await bot.runtime.engagement.list(LogFilter(kind="question"))
            answers = await bot.runtime.engagement.list(LogFilter(kind="answer"))
            async with bot.runtime.db.session() as session:
                cursor = await session.get(BotState, "mentions.x.since_id")
    assert [(q.user, q.message_id) for q in questions] == [("2001", first), ("2002", second)]
    assert [a.message_id for a in answers] == [
        fake.replies_to(first)[0]["id"],
        fake.replies_to(second)[0]["id"],
    ]
    assert cursor is not None and cursor.value == second
    mention_calls = fake.calls_to("mentions")
    assert all(c.signed for c in mention_calls)
    assert mention_calls[0].path == f"/2/users/{BOT_ID}/mentions"


async def test_two_processes_polling_together_reply_once(pg_url: str) -> None:
    async with fake_x() as fake:
        fake.ignore_since_id = True  # only the claims stand between us and a double reply
        ids = [fake.mention(BOARD), fake.mention(OPEN_SOURCE, author="2002", username="bob")]
        async with (
            running_x(fake, pg_url, x={"mentions": True}) as one,
            running_x(fake, pg_url, x={"mentions": True}) as two,
        ):
            # Normally only the leader polls; here both tick at once, as they might for a
            # moment while leadership moves.
            handled = await asyncio.gather(one.tick("x-mentions")(), two.tick("x-mentions")())
            assert sum(handled) == 2
            assert await one.tick("x-mentions")() == 0
            assert await two.tick("x-mentions")() == 0
            # Through the scheduler's job, only one of the two is the leader and polls.
            polled: list[object] = [await one.job("x-mentions")(), await two.job("x-mentions")()]
            assert polled.count(None) == 1
        assert [len(fake.replies_to(i)) for i in ids] == [1, 1]


async def test_first_poll_answers_only_the_recent_backlog(sqlite_url: str) -> None:
    async with fake_x() as fake:
        old = fake.mention(BOARD, created_at=datetime.now(UTC) - timedelta(days=2))
        new = fake.mention(OPEN_SOURCE, author="2002", username="bob")
        async with running_x(fake, sqlite_url, x={"mentions": True}) as bot:
            assert await bot.job("x-mentions")() == 1
        assert "start_time" in fake.calls_to("mentions")[0].query
        assert fake.replies_to(old) == [] and len(fake.replies_to(new)) == 1


async def test_mention_policy_own_posts_silent_declines_cap_and_comments(
    sqlite_url: str,
) -> None:
    async with (
        fake_x() as fake,
        running_x(fake, sqlite_url, x={"mentions": True, "replies_per_author_per_hour": 2}) as bot,
    ):
        await bot.announce("now --to x Big foundation news today")
        announcement = fake.created()[0]["id"]
        comment = fake.mention("@foundationbot congrats!!", author="2003", reply_to=announcement)
        own = fake.mention(f"@{BOT_HANDLE} testing myself", author=BOT_ID, username=BOT_HANDLE)
        declined = fake.mention(OFF_TOPIC, author="2004", username="dora")
        asked = [
            fake.mention(q, author="2005", username="eve") for q in (BOARD, OPEN_SOURCE, ANNOUNCED)
        ]
        assert await bot.job("x-mentions")() == 5
        assert [len(fake.replies_to(i)) for i in (comment, own, declined)] == [0, 0, 0]
        assert [len(fake.replies_to(i)) for i in asked] == [1, 1, 0]  # hourly cap of 2
        log = bot.runtime.engagement
        [reply] = await log.list(LogFilter(kind="reply"))
        assert (reply.announcement_id, reply.user, reply.text) == (1, "2003", "congrats!!")
        [decline] = await log.list(LogFilter(kind="declined"))
        assert decline.detail["delivery"] == "silent" and decline.message_id is None
        answers = await log.list(LogFilter(kind="answer"))
        assert [a.detail.get("delivery") for a in answers] == [None, None, "capped"]
        assert [r.reason for r in await log.open_reviews()] == ["declined"]
        questions = await log.list(LogFilter(kind="question"))
        assert BOT_ID not in {q.user for q in questions}


async def test_polled_mentions_meet_the_per_minute_limit_of_pushed_messages(
    sqlite_url: str,
) -> None:
    """Mentions go through the chain pushed messages go through: a burst from one author is
    cut at the per-minute limit (quietly: a slow-down notice would be public), while a backlog
    read in one poll counts each mention when it was posted, not when it was read."""
    async with (
        fake_x() as fake,
        running_x(
            fake,
            sqlite_url,
            x={"mentions": True, "replies_per_author_per_hour": 10},
            answering={"per_user_per_minute": 2},
        ) as bot,
    ):
        now = datetime.now(UTC)
        backlog = [
            fake.mention(text, author="2005", username="eve", created_at=now - timedelta(minutes=m))
            for text, m in ((BOARD, 40), (OPEN_SOURCE, 30), (OFF_TOPIC, 20))
        ]
        burst = [
            fake.mention(text, author="2005", username="eve")
            for text in (OFF_TOPIC, OFF_TOPIC, ANNOUNCED)
        ]
        assert await bot.job("x-mentions")() == 6  # all claimed and finished
        assert [len(fake.replies_to(i)) for i in backlog] == [1, 1, 0]
        assert fake.replies_to(burst[-1]) == []  # over the limit: not answered
        assert not [p for p in fake.created() if "faster than I can keep up" in p["text"]]
        questions = await bot.runtime.engagement.list(LogFilter(kind="question"))
        assert [q.message_id for q in questions] == [*backlog, *burst[:2]]


async def test_the_hourly_cap_counts_an_author_whose_id_is_stored_pseudonymized(
    sqlite_url: str,
) -> None:
    async with (
        fake_x() as fake,
        running_x(
            fake,
            sqlite_url,
            x={"mentions": True, "replies_per_author_per_hour": 1},
            privacy={"pseudonymize_users": True},
            secrets={("privacy", "pseudonym_key"): "k" * 32},
        ) as bot,
    ):
        asked = [fake.mention(q, author="2005", username="eve") for q in (BOARD, OPEN_SOURCE)]
        assert await bot.job("x-mentions")() == 2
        assert [len(fake.replies_to(i)) for i in asked] == [1, 0]
        answers = await bot.runtime.engagement.list(LogFilter(kind="answer"))
        assert [a.detail.get("delivery") for a in answers] == [None, "capped"]
        questions = await bot.runtime.engagement.list(LogFilter(kind="question"))
        assert {q.user for q in questions} == {Pseudonymizer("k" * 32)("2005")}


async def test_decline_reply_posts_the_fallback_fitted_to_one_post(sqlite_url: str) -> None:
    async with (
        fake_x() as fake,
        running_x(fake, sqlite_url, x={"mentions": True, "decline_reply": True}) as bot,
    ):
        declined = fake.mention(OFF_TOPIC, author="2004", username="dora")
        assert await bot.job("x-mentions")() == 1
        [reply] = fake.replies_to(declined)
        assert "won't guess" in reply["text"]
        assert x_weighted_length(reply["text"]) <= 280
        assert reply["text"].endswith("Read more: https://ai.meta.com/blog/pytorch-foundation/")


async def test_mentions_rate_limited_wait_for_the_reset_and_reply_failures_retry(
    sqlite_url: str,
) -> None:
    clock = Clock()
    async with (
        fake_x() as fake,
        running_x(fake, sqlite_url, clock=clock, x={"mentions": True}) as bot,
    ):
        first = fake.mention(BOARD)
        poll = bot.job("x-mentions")
        fake.fail(
            "mentions", 429, RATE_LIMIT_BODY, headers=rate_limit_headers(int(time.time()) + 60)
        )
        assert await poll() == 0
        assert await poll() == 0  # still before the reset: not even asked
        assert len(fake.calls_to("mentions")) == 1
        clock.advance(seconds=62)
        fake.fail("create", 503, SERVER_ERROR_BODY)  # the reply fails: try again later
        assert await poll() == 0
        assert fake.replies_to(first) == []
        clock.advance(seconds=61)
        assert await poll() == 1
        assert len(fake.replies_to(first)) == 1
        assert await poll() == 0
        assert len(fake.replies_to(first)) == 1


async def test_a_reply_that_may_be_up_is_never_posted_again(sqlite_url: str) -> None:
    async with (
        fake_x() as fake,
        running_x(fake, sqlite_url, x_timeout=CLIENT_TIMEOUT, x={"mentions": True}) as bot,
    ):
        first = fake.mention(BOARD)
        fake.stall["create"] = LATE  # X posts the reply but the answer never arrives
        assert await bot.job("x-mentions")() == 1
        fake.stall.clear()
        assert await bot.job("x-mentions")() == 0
        fake.ignore_since_id = True
        assert await bot.job("x-mentions")() == 0
        assert len(fake.replies_to(first)) == 1
        [answer] = await bot.runtime.engagement.list(LogFilter(kind="answer"))
        assert answer.detail["delivery"] == "unknown" and answer.message_id is None


async def test_shutdown_lets_a_reply_in_progress_finish_and_be_logged(sqlite_url: str) -> None:
    async with fake_x() as fake:
        first = fake.mention(BOARD)
        async with running_x(fake, sqlite_url, x={"mentions": True}) as bot:
            fake.stall["create"] = 0.5
            tick = asyncio.ensure_future(bot.job("x-mentions")())
            await fake.wait_for(lambda: fake.calls_to("create"))
            await bot.runtime.stop()  # while X is still answering the reply
            assert tick.done() and tick.result() == 1
        async with running_x(fake, sqlite_url, x={"mentions": True}) as bot:
            [answer] = await bot.runtime.engagement.list(LogFilter(kind="answer"))
            assert answer.message_id == fake.replies_to(first)[0]["id"]
            assert await bot.job("x-mentions")() == 0


async def test_handle_unknown_at_start_is_read_before_the_first_mentions_poll(
    sqlite_url: str,
) -> None:
    async with fake_x() as fake:
        fake.fail("me", 503, SERVER_ERROR_BODY)
        async with running_x(fake, sqlite_url, x={"mentions": True}) as bot:
            assert bot.adapter.is_connected() and bot.adapter.username is None
            await bot.announce("now --to x Handle-less link")
            [delivery] = await bot.deliveries()
            assert delivery.url == f"https://x.com/i/web/status/{delivery.external_id}"
            comment = fake.mention(
                "@foundationbot nice", author="2003", reply_to=delivery.external_id or ""
            )
            assert await bot.job("x-mentions")() == 1
            assert bot.adapter.username == BOT_HANDLE
            assert fake.replies_to(comment) == []  # a comment, not a question
            assert [c.route for c in fake.calls][-2:] == ["me", "mentions"]


async def test_mentions_refused_by_the_access_level_stop_with_one_message(
    sqlite_url: str,
) -> None:
    async with fake_x() as fake, running_x(fake, sqlite_url, x={"mentions": True}) as bot:
        fake.fail("mentions", 403, NOT_ENROLLED_BODY)
        assert await bot.job("x-mentions")() == 0
        assert await bot.job("x-mentions")() == 0
        assert len(fake.calls_to("mentions")) == 1
        [alert] = [m for m in bot.slack.sent if m.where.channel_id == "C-comms"]
        assert "Answering mentions on x is switched off" in alert.text


# --- small pieces ---------------------------------------------------------------------------


def test_fit_post_keeps_short_text_and_the_source_line_of_long_answers() -> None:
    assert fit_post("short") == "short"
    long = " ".join(["governance"] * 60) + "\n\nSource: https://pytorch.org/foundation"
    fitted = fit_post(long)
    assert x_weighted_length(fitted) <= 280
    assert fitted.endswith("…\n\nSource: https://pytorch.org/foundation")
    assert x_weighted_length(fit_post("x" * 1000)) <= 280


def test_cli_builds_the_x_adapter_from_config_and_secrets(tmp_path: Path) -> None:
    path = tmp_path / "bot.toml"
    path.write_text('[x]\nenabled = true\napi_url = "http://127.0.0.1:9"\nannounce = false\n')
    env = {
        "X_API_KEY": API_KEY,
        "X_API_SECRET": API_SECRET,
        "X_ACCESS_TOKEN": ACCESS_TOKEN,
        "X_ACCESS_TOKEN_SECRET": ACCESS_TOKEN_SECRET,
    }
    [adapter] = _platform_adapters(load_config(path, environ=env))
    assert isinstance(adapter, XAdapter)
    assert (adapter.platform, adapter.announce_channels, adapter.user_id) == ("x", (), BOT_ID)
    with pytest.raises(ConfigError, match="X_ACCESS_TOKEN_SECRET"):
        load_config(path, environ={k: v for k, v in env.items() if k != "X_ACCESS_TOKEN_SECRET"})


def test_verbose_logging_never_lets_tweepy_log_the_oauth_header() -> None:
    before = {n: logging.getLogger(n).level for n in ("tweepy", "oauthlib", "apscheduler")}
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        _configure_logging(None, quiet=False, verbose=True)
        assert logging.getLogger("tweepy.asynchronous.client").getEffectiveLevel() >= logging.INFO
        assert logging.getLogger("oauthlib.oauth1").getEffectiveLevel() >= logging.INFO
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        for name, value in before.items():
            logging.getLogger(name).setLevel(value)


@pytest.mark.parametrize(
    ("status", "error"),
    [(503, TransientPlatformError), (429, TransientPlatformError), (403, PermanentPlatformError)],
)
async def test_an_error_body_that_is_not_json_is_judged_by_its_status(
    status: int, error: type[Exception]
) -> None:
    # What a proxy or load balancer in front of x.api_url answers: plain text.
    async with fake_x() as fake, started(x_adapter(fake)) as adapter:
        fake.fail("create", status, "upstream connect error or disconnect/reset")
        with pytest.raises(error):
            await adapter.send(OutgoingMessage(Conversation("x", TIMELINE), "hello"))


async def test_staff_retry_of_an_unknown_post_that_is_up_records_it_instead_of_reposting(
    sqlite_url: str,
) -> None:
    """A row left unknown with nothing marked (by an earlier version, or a crash inside the
    bot) may be up: staff's retry looks first, and finds it."""
    async with fake_x() as fake, running_x(fake, sqlite_url, announcements=RECONCILE) as bot:
        await bot.announce("now --to x Up already")
        [delivery] = await bot.deliveries()
        await bot.runtime.announcements.set_delivery(
            delivery.id, owner=None, state="unknown", progress=[], external_id=None, url=None
        )
        assert await bot.announce("retry 1 --to x") == "Retried announcement #1: x: sent"
        [post] = fake.created()
        [delivery] = await bot.deliveries()
        assert (delivery.external_id, delivery.progress) == (
            post["id"],
            [f"{TIMELINE}|{post['id']}"],
        )
        assert len(fake.calls_to("create")) == 1


async def test_staff_retry_that_x_refuses_as_a_duplicate_ends_sent_not_failed(
    sqlite_url: str,
) -> None:
    async with fake_x() as fake, running_x(fake, sqlite_url, announcements=RECONCILE) as bot:
        await bot.announce("now --to x Up but not shown yet")
        [delivery] = await bot.deliveries()
        await bot.runtime.announcements.set_delivery(
            delivery.id, owner=None, state="unknown", progress=[], external_id=None, url=None
        )
        fake.timeline_lag = 3600  # the lookup does not see it, so it is posted: a duplicate
        assert await bot.announce("retry 1 --to x") == "Retried announcement #1: x: pending"
        [delivery] = await bot.deliveries()
        assert "duplicate" in (delivery.error or "") and delivery.progress[-1].startswith("?")
        fake.timeline_lag = 0
        delivery = await run_retry(bot)  # looked up again, and there it is
        [post] = fake.created()
        assert (delivery.state, delivery.external_id) == ("sent", post["id"])
        assert [c.status for c in fake.calls_to("create")] == [201, 403]
        assert not [n for n in bot.staff_notices() if "failed" in n]
