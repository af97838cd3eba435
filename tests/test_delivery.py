"""Delivery guarantees: retries with backoff, permanent failures, unknown outcomes, resuming
X threads, and nothing posted twice."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from adapters.base import Reconciler
from adapters.memory import MemoryAdapter
from announcements.engine import post_key
from announcements.outcomes import backoff
from announcements.progress import Doubt, posted_entries
from announcements.store import AnnouncementStore
from bot.errors import PermanentPlatformError, StoreError, TransientPlatformError
from bot.events import Conversation, OutgoingMessage, SentMessage, utcnow
from bot.store.models import Announcement, Delivery
from bot.store.states import DeliveryState
from tests.announce_helpers import Bot, running_bot
from tests.waiting import PATIENCE, eventually

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


class GatedMemory(MemoryAdapter):
    """Holds every announcement post until the test lets one go (``release``), so the test
    looks at the rows while a known number of posts is in flight."""

    def __init__(self, platform: str, channel: str) -> None:
        super().__init__(platform, announce_channels=(channel,))
        self.in_flight = 0
        self.gate = asyncio.Semaphore(0)

    def release(self) -> None:
        self.gate.release()

    async def send(self, message: OutgoingMessage) -> SentMessage:
        if message.where.channel_id in self.announce_channels:
            self.in_flight += 1
            try:
                await self.gate.acquire()
            finally:
                self.in_flight -= 1
        return await super().send(message)


async def test_a_process_claims_only_as_many_rows_as_it_has_post_slots(db_url: str) -> None:
    x = GatedMemory("x", "timeline")
    async with running_bot(db_url, platforms={"x": x}, max_parallel_posts=2) as bot:
        for n in range(6):
            await bot.announce(f'schedule --at "in 1 hour" --to x --force Queued news {n}')
        fan_out = asyncio.create_task(bot.runtime.delivery.fire_ids([(i, "") for i in range(1, 7)]))
        seen: list[tuple[int, int, int]] = []  # (posting, sending, pending), post by post

        def posting(n: int) -> Callable[[], bool]:
            return lambda: x.in_flight == n

        def posted_more_than(n: int) -> Callable[[], bool]:
            return lambda: len(bot.posts("x")) > n

        def states_once_sent(n: int) -> Callable[[], Awaitable[list[DeliveryState]]]:
            async def states() -> list[DeliveryState]:
                async with bot.runtime.db.session() as session:  # one consistent snapshot
                    found = list((await session.scalars(select(Delivery.state))).all())
                return found if found.count(DeliveryState.SENT) == n else []

            return states

        for posted in range(6):
            in_flight = min(2, 6 - posted)
            await eventually(posting(in_flight), f"{in_flight} posts in flight")
            # The posts that went out are recorded as sent (the last one may still be
            # committing: its slot is free, but no claim waits for it).
            states = await eventually(states_once_sent(posted), f"{posted} rows sent")
            seen.append(
                (
                    in_flight,
                    states.count(DeliveryState.SENDING),
                    states.count(DeliveryState.PENDING),
                )
            )
            x.release()
            await eventually(posted_more_than(posted), f"post {posted + 1} out")
        await asyncio.wait_for(fan_out, timeout=PATIENCE)
        # Never more rows claimed than posts in flight: while two were posting, the rest
        # stayed pending for any instance to take if this one died.
        assert seen == [(2, 2, 4), (2, 2, 3), (2, 2, 2), (2, 2, 1), (2, 2, 0), (1, 1, 0)]
        assert sorted(bot.posts("x")) == [f"Queued news {n}" for n in range(6)]


# --- posts in doubt (a timeout: the post may be up) on an adapter that can look them up ------


class LookupMemory(MemoryAdapter):
    """A memory adapter whose next posts can time out after going out (or before), and that
    finds its posts by idempotency key, like the Slack adapter does."""

    def __init__(self, platform: str, channels: tuple[str, ...]) -> None:
        super().__init__(platform, announce_channels=channels)
        #: One entry per coming announcement post: True = it goes out but the answer is lost;
        #: False = lost before it went out; None = fine.
        self.time_outs: list[bool | None] = []
        self.lookups: list[tuple[str, datetime, datetime]] = []
        self.lookup_errors: list[TransientPlatformError] = []
        self.posted: dict[str, SentMessage] = {}
        #: Called at each lookup (tests check the delivery row at that moment).
        self.on_lookup: Callable[[], Awaitable[None]] | None = None
        #: Posts scripted "late": the client gives up after ``hang`` seconds and the platform,
        #: still busy with it, puts the post up ``lands_after`` seconds after that.
        self.late: list[tuple[float, float]] = []
        self._landing: set[asyncio.Task[None]] = set()

    async def send(self, message: OutgoingMessage) -> SentMessage:
        if self.late and message.idempotency_key:
            hang, lands_after = self.late.pop(0)
            await asyncio.sleep(hang)
            landing = asyncio.create_task(self._land(message, lands_after))
            self._landing.add(landing)
            landing.add_done_callback(self._landing.discard)
            raise TransientPlatformError(self.platform, "read timeout", ambiguous=True)
        lost = self.time_outs.pop(0) if self.time_outs and message.idempotency_key else None
        if lost is False:
            raise TransientPlatformError(self.platform, "read timeout", ambiguous=True)
        sent = await super().send(message)
        if message.idempotency_key:
            self.posted[message.idempotency_key] = sent
        if lost:
            raise TransientPlatformError(self.platform, "read timeout", ambiguous=True)
        return sent

    async def _land(self, message: OutgoingMessage, after: float) -> None:
        await asyncio.sleep(after)
        assert message.idempotency_key
        self.posted[message.idempotency_key] = await super().send(message)

    async def find_posted(
        self, message: OutgoingMessage, key: str, since: datetime
    ) -> SentMessage | None:
        self.lookups.append((key, since, utcnow()))
        if self.on_lookup is not None:
            await self.on_lookup()
        if self.lookup_errors:
            raise self.lookup_errors.pop(0)
        return self.posted.get(key)


async def fire_retry(bot: Bot, delivery_id: int) -> None:
    job = bot.runtime.scheduler.get_job(f"delivery-{delivery_id}")
    assert job is not None
    await job.func(*job.args)


async def test_post_in_doubt_is_looked_up_after_the_delay_and_never_posted_twice(
    db_url: str,
) -> None:
    slack = LookupMemory("slack", ("C-news", "C-more"))
    assert isinstance(slack, Reconciler) and not isinstance(MemoryAdapter(), Reconciler)
    # The wait before the lookup is longer than the lease; the lease is long enough for a
    # loaded machine's late timers not to let it run out.
    settle = 1.5
    async with running_bot(
        db_url, platforms={"slack": slack}, reconcile_after_seconds=settle, claim_lease_seconds=1.0
    ) as bot:

        async def claim_held() -> None:
            # The wait before the lookup is longer than the lease: the claim was extended.
            [row] = await bot.runtime.announcements.deliveries(1)
            assert row.state == "sending"
            assert row.claimed_until is not None and row.claimed_until > utcnow()

        slack.on_lookup = claim_held
        slack.time_outs = [None, True]  # C-news goes out fine, C-more's answer is lost
        before = utcnow()
        reply = await bot.announce("now --to slack Two channels")
        assert "slack: will retry" in reply and "the post on C-more is looked up" in reply
        [delivery] = await bot.runtime.announcements.deliveries(1)
        assert delivery.state == "pending" and delivery.attempts == 1
        assert delivery.progress[0] == "C-news|slack-1"
        assert delivery.progress[1].startswith("?C-more|")
        assert delivery.next_attempt_at is not None
        assert delivery.next_attempt_at >= before + timedelta(seconds=settle)
        await fire_retry(bot, delivery.id)  # fired early by hand: it still waits the delay
        [(key, since, looked_at)] = slack.lookups
        assert key == f"fb-delivery:{delivery.id}:C-more:0"
        assert since < before and looked_at >= before + timedelta(seconds=settle)
        [delivery] = await bot.runtime.announcements.deliveries(1)
        assert delivery.state == "sent" and delivery.attempts == 2
        assert delivery.progress == ["C-news|slack-1", "C-more|slack-2"]
        assert bot.posts("slack") == ["Two channels", "Two channels"]  # once per channel
        assert (await bot.runtime.announcements.require(1)).status == "done"


async def test_a_post_that_lands_after_the_client_gave_up_is_found_not_posted_again(
    db_url: str,
) -> None:
    # The client waits 0.6 s and gives up; the platform puts the post up 0.3 s after that.
    # The lookup waits the settling delay (0.5 s) from the moment the client gave up, not
    # from the call's start (which would have looked 0.4 s too early and posted it twice).
    slack = LookupMemory("slack", ("C-news",))
    async with running_bot(
        db_url,
        platforms={"slack": slack},
        reconcile_after_seconds=0.5,
        backoff_base_seconds=0.01,
        backoff_max_seconds=0.01,
    ) as bot:
        slack.late = [(0.6, 0.3)]
        before = utcnow()
        await bot.announce("now --to slack Slow platform")
        [delivery] = await bot.runtime.announcements.deliveries(1)
        assert delivery.state == "pending" and delivery.progress[0].startswith("?C-news|")
        _, since, gave_up = delivery.progress[0].removeprefix("?").split("|")
        # The marker keeps when the call began and records when the client gave up on it.
        began, ended = datetime.fromisoformat(since), datetime.fromisoformat(gave_up)
        assert began >= before and ended - began >= timedelta(seconds=0.6)
        assert delivery.next_attempt_at is not None
        assert delivery.next_attempt_at >= before + timedelta(seconds=1.1)
        await fire_retry(bot, delivery.id)  # fired early by hand: it still waits the delay
        [delivery] = await bot.runtime.announcements.deliveries(1)
        assert (delivery.state, delivery.attempts) == ("sent", 2)
        assert bot.posts("slack") == ["Slow platform"]  # once


async def test_post_in_doubt_that_is_not_there_is_posted_and_lookup_errors_retry(
    db_url: str,
) -> None:
    slack = LookupMemory("slack", ("C-news",))
    async with running_bot(db_url, platforms={"slack": slack}, reconcile_after_seconds=0.0) as bot:
        slack.time_outs = [False]  # lost before it went out
        slack.lookup_errors = [TransientPlatformError("slack", "HTTP 503", retry_after=20)]
        await bot.announce("now --to slack Lost news")
        [delivery] = await bot.runtime.announcements.deliveries(1)
        await fire_retry(bot, delivery.id)
        [delivery] = await bot.runtime.announcements.deliveries(1)
        assert delivery.state == "pending" and delivery.progress[0].startswith("?C-news|")
        assert "cannot check whether it went out: HTTP 503" in (delivery.error or "")
        assert delivery.next_attempt_at is not None
        assert delivery.next_attempt_at - delivery.updated_at >= timedelta(seconds=19)
        assert bot.posts("slack") == []
        await fire_retry(bot, delivery.id)
        [delivery] = await bot.runtime.announcements.deliveries(1)
        assert (delivery.state, delivery.attempts) == ("sent", 3)
        assert bot.posts("slack") == ["Lost news"]
        assert len(slack.lookups) == 2


async def test_a_repost_that_times_out_again_is_awaited_again_and_looked_up_from_the_first(
    db_url: str,
) -> None:
    slack = LookupMemory("slack", ("C-news",))
    async with running_bot(db_url, platforms={"slack": slack}, reconcile_after_seconds=0.3) as bot:
        slack.time_outs = [False, True]  # lost on the way; then up, but the answer is lost
        first = utcnow()
        await bot.announce("now --to slack Twice unlucky")
        [delivery] = await bot.runtime.announcements.deliveries(1)
        await fire_retry(bot, delivery.id)  # nothing there: posted again, and that times out
        second = slack.lookups[0][2]
        [delivery] = await bot.runtime.announcements.deliveries(1)
        assert delivery.state == "pending" and bot.posts("slack") == ["Twice unlucky"]
        _, since, last = delivery.progress[0].removeprefix("?").split("|")
        assert datetime.fromisoformat(since) < second <= datetime.fromisoformat(last)
        assert delivery.next_attempt_at is not None
        assert delivery.next_attempt_at >= datetime.fromisoformat(last) + timedelta(seconds=0.3)
        await fire_retry(bot, delivery.id)
        [_, (_, window, looked_at)] = slack.lookups
        assert window < first  # the lookup covers the first attempt too
        assert looked_at >= datetime.fromisoformat(last) + timedelta(seconds=0.3)
        [delivery] = await bot.runtime.announcements.deliveries(1)
        assert (delivery.state, delivery.attempts) == ("sent", 3)
        assert bot.posts("slack") == ["Twice unlucky"]


async def test_mark_sent_on_a_post_left_in_doubt_drops_the_marker(db_url: str) -> None:
    slack = LookupMemory("slack", ("C-news",))
    async with running_bot(
        db_url, platforms={"slack": slack}, max_attempts=1, reconcile_after_seconds=0.0
    ) as bot:
        slack.time_outs = [True]
        reply = await bot.announce("now --to slack Checked by hand")
        assert "slack: unknown (the post on C-news could not be confirmed in 1 attempts" in reply
        [delivery] = await bot.runtime.announcements.deliveries(1)
        assert delivery.progress[0].startswith("?C-news|")
        await bot.announce("mark-sent 1 --to slack")
        [delivery] = await bot.runtime.announcements.deliveries(1)
        assert (delivery.state, delivery.progress) == ("sent", [])
        assert slack.lookups == [] and bot.posts("slack") == ["Checked by hand"]


async def test_a_retry_that_fails_again_at_once_is_still_retried(db_url: str) -> None:
    # The retry timer re-arms itself from inside its own run; with a near-zero backoff the
    # new run falls due before the old one has returned, and must not be skipped.
    async with running_bot(db_url, backoff_base_seconds=0.0001, backoff_max_seconds=0.001) as bot:
        bot.runtime.scheduler.resume()
        bot.x.fail_next(*(TransientPlatformError("x", "HTTP 503") for _ in range(3)))
        await bot.announce("now --to x Third time lucky")

        async def settled() -> Delivery | None:
            [delivery] = await bot.runtime.announcements.deliveries(1)
            return None if delivery.state in ("pending", "sending") else delivery

        delivery = await eventually(settled, "the delivery settled")
        assert (delivery.state, delivery.attempts) == ("sent", 4)
        assert bot.posts("x") == ["Third time lucky"]


async def test_a_claim_that_fails_while_the_database_is_away_gives_its_post_slots_back(
    db_url: str,
) -> None:
    async with running_bot(db_url, max_parallel_posts=2) as bot:
        for n in range(2):
            await bot.announce(f'schedule --at "in 1 hour" --to x --force Outage news {n}')
        store = bot.runtime.announcements
        real_claim = store.claim_many

        async def database_away(*args: object, **kwargs: object) -> dict[int, Delivery]:
            raise StoreError("cannot reach the database at test: connection refused")

        store.claim_many = database_away  # type: ignore[method-assign]
        for _ in range(3):  # more failures than there are slots
            with pytest.raises(StoreError):
                await bot.runtime.delivery.fire_ids([(1, ""), (2, "")])
        store.claim_many = real_claim  # type: ignore[method-assign]
        # The database is back: the same process still posts (no slot was lost).
        await asyncio.wait_for(bot.runtime.delivery.fire_ids([(1, ""), (2, "")]), timeout=PATIENCE)
        assert sorted(bot.posts("x")) == ["Outage news 0", "Outage news 1"]


async def lease_run_out(store: AnnouncementStore) -> None:
    """Wait until the claim on announcement 1's delivery has run out (nobody renews it)."""

    async def over() -> bool:
        [row] = await store.deliveries(1)
        return row.claimed_until is not None and row.claimed_until < utcnow()

    await eventually(over, "the claim's lease run out")


class StallingMemory(MemoryAdapter):
    """Holds announcement posts until the test lets them go (then posts or raises)."""

    def __init__(self, platform: str, channel: str) -> None:
        super().__init__(platform, announce_channels=(channel,))
        self.posting = asyncio.Event()
        self.go = asyncio.Event()
        self.then_raise: Exception | None = None

    async def send(self, message: OutgoingMessage) -> SentMessage:
        if message.where.channel_id in self.announce_channels:
            self.posting.set()
            await self.go.wait()
            if self.then_raise is not None:
                raise self.then_raise
        return await super().send(message)


@pytest.mark.parametrize("outcome", ["posted", "failed", "taken over"])
async def test_a_post_finishing_after_its_lease_ran_out_never_overwrites_the_row_silently(
    db_url: str, outcome: str
) -> None:
    slack = StallingMemory("slack", "C-news")
    async with running_bot(db_url, platforms={"slack": slack}, claim_lease_seconds=0.3) as bot:
        await bot.announce('schedule --at "in 1 hour" --to slack Lease news')
        store = bot.runtime.announcements
        real_renew = store.renew_claims

        async def database_away(*args: object, **kwargs: object) -> bool:
            raise StoreError("cannot reach the database at test: connection refused")

        # This instance stalls mid-post and cannot reach the database to renew its lease…
        store.renew_claims = database_away  # type: ignore[assignment]
        firing = asyncio.create_task(bot.runtime.delivery.fire(1))
        await asyncio.wait_for(slack.posting.wait(), timeout=PATIENCE)
        await lease_run_out(store)
        # …so the recovery (any instance's) takes the row for abandoned and tells staff.
        assert await bot.runtime.announcement_timers.recover_interrupted() == 1
        store.renew_claims = real_renew  # type: ignore[method-assign]
        told = len(bot.slack.sent)
        assert "may or may not be there" in bot.slack.sent[-1].text
        [row] = await store.deliveries(1)
        if outcome == "taken over":  # another instance retries the unknown row meanwhile
            assert await store.set_delivery_if(
                row.id, (DeliveryState.UNKNOWN,), state=DeliveryState.PENDING, error=None
            )
            assert await store.claim(row.id, "other-host:7:beef", timedelta(seconds=60))
        if outcome == "failed":
            slack.then_raise = TransientPlatformError("slack", "HTTP 503")
        slack.go.set()  # the stalled post finishes after all
        await asyncio.wait_for(firing, timeout=PATIENCE)

        [row] = await store.deliveries(1)
        notices = [m.text for m in bot.slack.sent[told:] if m.where.channel_id != "C-news"]
        if outcome == "failed":
            # Nothing went out, and nobody had acted on the unknown row: the attempt knows
            # better now, so the row goes back to a scheduled retry and staff, who were told
            # "may or may not be there", learn that it is not there and is being retried.
            assert row.state == "pending" and row.error == "HTTP 503"
            assert row.next_attempt_at is not None
            assert bot.runtime.scheduler.get_job(f"delivery-{row.id}") is not None
            assert bot.posts("slack") == []
            [notice] = notices
            assert "not posted (HTTP 503); retrying" in notice and "nothing to do" in notice
            return
        assert bot.posts("slack") == ["Lease news"]
        [notice] = notices
        if outcome == "taken over":
            # The other instance's claim is untouched; staff learn a second copy may come.
            assert row.state == "sending" and posted_entries(row.progress) == []
            assert (row.claimed_by or "").startswith("other-host:7:beef#")
            assert "twice, possibly" in notice and "second copy" in notice
            return
        # Nobody had acted on the unknown row: the post that is up is recorded, and the
        # staff who were told "may or may not be there" are told it is.
        assert row.state == "sent" and row.external_id is not None
        assert row.progress == [f"C-news|{row.external_id}"]
        assert row.error is not None and "finished the post after all" in row.error
        assert "up after all" in notice and f"message {row.external_id}" in notice
        assert "nothing to do" in notice
        assert (await store.require(1)).status == "done"


async def test_a_post_still_running_at_shutdown_stops_holding_its_claim(db_url: str) -> None:
    """After the shutdown grace, the process stops renewing the leases of posts it could not
    finish, so the recovery (another instance, or the next start) can take them up."""
    slack = StallingMemory("slack", "C-news")
    # Renewed every lease/3: a lease this long outlasts a loaded machine's late timers.
    async with running_bot(db_url, platforms={"slack": slack}, claim_lease_seconds=2.0) as bot:
        await bot.announce('schedule --at "in 1 hour" --to slack Slow news')
        store = bot.runtime.announcements
        firing = asyncio.create_task(bot.runtime.delivery.fire(1))
        await asyncio.wait_for(slack.posting.wait(), timeout=PATIENCE)
        [row] = await store.deliveries(1)
        first_lease = row.claimed_until
        assert first_lease is not None

        async def renewed_past_the_first_lease() -> bool:
            [row] = await store.deliveries(1)
            assert row.claimed_until is not None
            return utcnow() > first_lease and row.claimed_until > utcnow()

        await eventually(renewed_past_the_first_lease, "the claim renewed past its first lease")
        assert await bot.runtime.announcement_timers.recover_interrupted() == 0
        assert await bot.runtime.delivery.drain(0.05) == 1
        await lease_run_out(store)
        assert await bot.runtime.announcement_timers.recover_interrupted() == 1
        [row] = await bot.runtime.announcements.deliveries(1)
        assert row.state == "unknown"
        slack.then_raise = TransientPlatformError("slack", "HTTP 503")
        slack.go.set()
        await asyncio.wait_for(firing, timeout=PATIENCE)
        # The attempt failed after all, so the row is back to a retry; but a process that is
        # shutting down claims nothing new (its retry timer firing meanwhile).
        [row] = await bot.runtime.announcements.deliveries(1)
        assert row.state == "pending"
        slack.then_raise = None  # a post would go through now, if it were claimed
        await bot.runtime.delivery.deliver(row.id)
        [row] = await bot.runtime.announcements.deliveries(1)
        assert row.state == "pending" and bot.posts("slack") == []


# --- what a crash leaves, and what the next start makes of it ------------------------------


class CheckingMemory(MemoryAdapter):
    """Notes, at each announcement post, what its delivery row says in the database."""

    def __init__(self, platform: str, channel: str, bot: list[Bot]) -> None:
        super().__init__(platform, announce_channels=(channel,))
        self.rows: list[list[str]] = []
        self._bot = bot

    async def send(self, message: OutgoingMessage) -> SentMessage:
        if message.where.channel_id in self.announce_channels:
            [row] = await self._bot[0].runtime.announcements.deliveries(1)
            self.rows.append(list(row.progress))
        return await super().send(message)


async def test_every_platform_call_is_marked_in_the_row_before_it_is_made(db_url: str) -> None:
    holder: list[Bot] = []
    x = CheckingMemory("x", "timeline", holder)
    async with running_bot(db_url, platforms={"x": x}) as bot:
        holder.append(bot)
        await bot.announce(f"now --to x {LONG}")
        first, second, *_ = x.rows
        # Before part 1: only the mark. Before part 2: part 1's id, then the mark.
        assert len(first) == 1 and first[0].startswith("?timeline|")
        assert second[0] == "timeline|x-1" and second[1].startswith("?timeline|")
        [row] = await bot.runtime.announcements.deliveries(1)
        assert row.state == "sent" and not [e for e in row.progress if e.startswith("?")]


async def test_a_batch_falling_due_together_is_read_once(db_url: str) -> None:
    async with running_bot(db_url) as bot:
        for n in range(3):
            await bot.announce(f'schedule --at "in 1 hour" --to slack,x --force Batch {n}')
        store = bot.runtime.announcements
        reads = 0
        real = store.get_many_for_delivery

        async def counted(ids: Sequence[int]) -> tuple[Sequence[Announcement], bool]:
            nonlocal reads
            reads += 1
            return await real(ids)

        store.get_many_for_delivery = counted  # type: ignore[method-assign,assignment]
        bot.clock.advance(hours=1)
        await asyncio.gather(*(bot.runtime.announcement_timers.fire_now(i) for i in (1, 2, 3)))
        assert reads == 1
        assert (
            sorted(bot.posts("slack")) == sorted(bot.posts("x")) == [f"Batch {n}" for n in range(3)]
        )


async def crash_mid_call(bot: Bot, channel: str, *, reached: LookupMemory | None) -> int:
    """Leave delivery 1 as a process killed during its platform call would: claimed, the
    part marked; with ``reached``, the post made it to the platform before the kill."""
    store = bot.runtime.announcements
    [row] = await store.deliveries(1)
    claimed = await store.claim_many([row.id], "dead-host:1:x", timedelta(seconds=-1))
    now = utcnow()
    marker = [Doubt(channel, now, now).entry()]
    assert await store.set_delivery(row.id, owner=claimed[row.id].claimed_by, progress=marker)
    if reached is not None:
        key = post_key(row, channel, 0)
        message = OutgoingMessage(Conversation("slack", channel), "Crash news", idempotency_key=key)
        reached.posted[key] = await MemoryAdapter.send(reached, message)
    return row.id


@pytest.mark.parametrize("reached", [True, False])
async def test_a_crash_mid_call_is_looked_up_at_restart_and_posted_only_if_missing(
    db_url: str, reached: bool
) -> None:
    slack = LookupMemory("slack", ("C-news",))
    async with running_bot(db_url, platforms={"slack": slack}, reconcile_after_seconds=0.0) as bot:
        await bot.announce('schedule --at "in 1 hour" --to slack Crash news')
        ident = await crash_mid_call(bot, "C-news", reached=slack if reached else None)
        assert await bot.runtime.announcement_timers.recover_interrupted() == 1
        await fire_retry(bot, ident)
        [row] = await bot.runtime.announcements.deliveries(1)
        assert row.state == "sent" and bot.posts("slack") == ["Crash news"]  # exactly once
        assert [key for key, _, _ in slack.lookups] == [f"fb-delivery:{ident}:C-news:0"]
        notices = [m.text for m in bot.slack.sent if m.where.channel_id == "C-comms"]
        notices = [n for n in notices if not n.startswith("Scheduled")]  # the command's reply
        assert notices == []  # staff were not asked to do anything


async def test_the_database_away_before_a_call_leaves_the_row_to_the_takeover_not_a_person(
    db_url: str,
) -> None:
    async with running_bot(db_url) as bot:
        await bot.announce('schedule --at "in 1 hour" --to slack Outage news')
        store = bot.runtime.announcements
        real = store.set_delivery

        async def database_away(*args: object, **kwargs: object) -> bool:
            raise StoreError("cannot reach the database at test: connection refused")

        store.set_delivery = database_away  # type: ignore[method-assign]
        await bot.runtime.delivery.fire(1)  # the call cannot be marked, so it is not made
        store.set_delivery = real  # type: ignore[method-assign]
        [row] = await store.deliveries(1)
        assert (row.state, row.progress, bot.posts("slack")) == ("sending", [], [])
        # As after a restart (the lease has run out): nothing was under way, so it goes out.
        assert await bot.runtime.delivery.recover(include_live_claims=True) == 1
        await fire_retry(bot, row.id)
        [row] = await store.deliveries(1)
        assert row.state == "sent" and bot.posts("slack") == ["Outage news"]
        notices = [m.text for m in bot.slack.sent if m.where.channel_id == "C-comms"]
        assert [n for n in notices if not n.startswith("Scheduled")] == []
