"""Delivery guarantees: retries with backoff, permanent failures, unknown outcomes, resuming
X threads, and nothing posted twice."""

from __future__ import annotations

import random
from datetime import timedelta

from announcements.delivery import backoff
from bot.errors import PermanentPlatformError, TransientPlatformError
from tests.announce_helpers import running_bot

LONG = " ".join(f"Sentence {i} explains one more detail of the foundation move." for i in range(14))


async def test_transient_error_retries_honouring_retry_after_then_succeeds(db_url: str) -> None:
    async with running_bot(db_url) as bot:
        bot.slack.fail_next(TransientPlatformError("slack", "HTTP 429", retry_after=30))
        reply = await bot.announce("now --to slack,discord Rate limited news")
        assert "slack: will retry" in reply and "discord: posted" in reply
        [delivery] = [
            d for d in await bot.runtime.announcements.deliveries(1) if d.platform == "slack"
        ]
        assert delivery.state == "pending" and delivery.attempts == 1
        assert delivery.next_attempt_at is not None
        assert delivery.next_attempt_at - delivery.updated_at >= timedelta(seconds=29)
        job = bot.runtime.scheduler.get_job(f"delivery-{delivery.id}")
        assert job is not None
        await job.func(*job.args)  # the retry timer fires
        assert bot.posts("slack") == ["Rate limited news"]
        assert bot.posts("discord") == ["Rate limited news"]
        assert (await bot.runtime.announcements.require(1)).status == "done"


async def test_gives_up_after_max_attempts_and_reports(db_url: str) -> None:
    async with running_bot(db_url, max_attempts=2) as bot:
        bot.slack.fail_next(TransientPlatformError("slack", "HTTP 503"))
        await bot.announce("now --to slack Flaky news")
        [delivery] = await bot.runtime.announcements.deliveries(1)
        job = bot.runtime.scheduler.get_job(f"delivery-{delivery.id}")
        assert job is not None
        bot.slack.fail_next(TransientPlatformError("slack", "HTTP 503"))
        await job.func(*job.args)
        [delivery] = await bot.runtime.announcements.deliveries(1)
        assert delivery.state == "failed"
        assert delivery.error == "gave up after 2 attempts: HTTP 503"
        assert bot.posts("slack") == []
        notices = [m.text for m in bot.slack.sent if m.where.channel_id == "C-comms"]
        assert any("failed on slack: gave up after 2 attempts" in n for n in notices)


async def test_permanent_error_fails_at_once(db_url: str) -> None:
    async with running_bot(db_url) as bot:
        bot.discord.fail_next(PermanentPlatformError("discord", "Missing Permissions"))
        await bot.announce("now --to discord No permission")
        [delivery] = await bot.runtime.announcements.deliveries(1)
        assert (delivery.state, delivery.attempts) == ("failed", 1)
        assert bot.runtime.scheduler.get_job(f"delivery-{delivery.id}") is None


async def test_ambiguous_outcome_becomes_unknown_for_a_person(db_url: str) -> None:
    async with running_bot(db_url) as bot:
        bot.slack.fail_next(TransientPlatformError("slack", "read timeout", ambiguous=True))
        reply = await bot.announce("now --to slack Maybe posted")
        assert "slack: unknown (read timeout)" in reply
        assert bot.runtime.scheduler.get_job("delivery-1") is None
        marked = await bot.announce("mark-sent 1 --to slack")
        assert marked == "Marked announcement #1 as sent on slack."
        [delivery] = await bot.runtime.announcements.deliveries(1)
        assert delivery.state == "sent"
        assert bot.posts("slack") == []  # a person said it is there: never re-posted
        assert "no failed or unknown deliveries" in await bot.announce("retry 1")


async def test_retry_command_posts_a_failed_delivery_once(db_url: str) -> None:
    async with running_bot(db_url) as bot:
        bot.x.fail_next(PermanentPlatformError("x", "401 invalid token"))
        await bot.announce("now --to x Token fixed later")
        assert bot.posts("x") == []
        reply = await bot.announce("retry 1 --to x")
        assert reply == "Retried announcement #1: x: sent"
        assert bot.posts("x") == ["Token fixed later"]
        assert "no failed or unknown" in await bot.announce("retry 1 --to x")


async def test_x_thread_failing_at_part_two_resumes_at_part_two(db_url: str) -> None:
    async with running_bot(db_url) as bot:
        original = bot.x.send
        calls = 0

        async def fail_second(message):  # type: ignore[no-untyped-def]
            nonlocal calls
            calls += 1
            if calls == 2:
                raise TransientPlatformError("x", "HTTP 503")
            return await original(message)

        bot.x.send = fail_second  # type: ignore[method-assign]
        await bot.announce(f"now --to x {LONG}")
        [delivery] = await bot.runtime.announcements.deliveries(1)
        assert delivery.state == "pending" and len(delivery.progress) == 1
        job = bot.runtime.scheduler.get_job(f"delivery-{delivery.id}")
        assert job is not None
        await job.func(*job.args)
        posts = bot.x.sent
        assert len(posts) >= 3
        assert len({p.text for p in posts}) == len(posts)  # nothing posted twice
        assert posts[0].text.endswith(f"(1/{len(posts)})")
        assert posts[1].text.endswith(f"(2/{len(posts)})")
        # Each part replies to the one before it, across the failure.
        assert posts[0].reply_to is None
        assert posts[1].reply_to == "x-1"
        assert all(p.reply_to == f"x-{i}" for i, p in enumerate(posts[1:], start=1))
        [delivery] = await bot.runtime.announcements.deliveries(1)
        assert delivery.state == "sent" and len(delivery.progress) == len(posts)


async def test_backoff_is_exponential_with_full_jitter_and_capped() -> None:
    rng = random.Random(7)
    samples = [backoff(3, 2.0, 300.0, rng) for _ in range(200)]
    assert all(0 <= s <= 16 for s in samples) and max(samples) > 12
    assert all(backoff(30, 2.0, 300.0, rng) <= 300 for _ in range(50))
