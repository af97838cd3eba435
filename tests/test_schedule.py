"""Timers rebuilt from the database at start, and the missed-while-down policy."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from announcements.progress import Doubt
from announcements.schedule import OVERDUE_JOB
from bot.events import utcnow
from tests.announce_helpers import DESK, Bot, Clock, running_bot


def timers(bot: Bot) -> dict[str, datetime]:
    """The armed announcement timers."""
    return {
        j.id: j.next_run_time.astimezone(UTC)
        for j in bot.runtime.scheduler.get_jobs()
        if j.id.startswith("announcement-")
    }


def due_at_start(bot: Bot) -> list[int]:
    """The announcements the restart found overdue (within grace): delivered as one batch."""
    job = bot.runtime.scheduler.get_job(OVERDUE_JOB)
    return list(job.args[0]) if job is not None else []


async def queue(db_url: str, clock: Clock, *commands: str) -> None:
    """Queue announcements in one bot run, then stop it (as if it went down)."""
    async with running_bot(db_url, clock=clock) as bot:
        for command in commands:
            assert not (await bot.announce(command)).startswith("Usage")


async def test_restart_rearms_every_timer(db_url: str) -> None:
    clock = Clock()
    await queue(
        db_url, clock, "schedule --at 2026-11-24T10:00 One", "schedule --at 2026-11-25T10:00 Two"
    )
    async with running_bot(db_url, clock=clock) as bot:
        jobs = timers(bot)
        assert jobs == {
            "announcement-1": datetime(2026, 11, 24, 9, tzinfo=UTC),
            "announcement-2": datetime(2026, 11, 25, 9, tzinfo=UTC),
        }


async def test_missed_within_grace_is_sent_at_start_older_is_marked_missed(db_url: str) -> None:
    clock = Clock()
    await queue(
        db_url,
        clock,
        "schedule --at 2026-11-22T14:00 --to slack Slightly late",
        "schedule --at 2026-11-22T13:30 --to slack Far too late",
    )
    clock.now = datetime(2026, 11, 22, 13, 10, tzinfo=UTC)  # 14:10 / 13:30 Berlin = 13:00/12:30 UTC
    async with running_bot(db_url, clock=clock, grace_minutes=15) as bot:
        assert timers(bot) == {} and due_at_start(bot) == [1]
        await bot.runtime.announcement_timers.fire_now(1)
        assert bot.posts("slack") == ["Slightly late"]
        missed = await bot.runtime.announcements.require(2)
        assert missed.status == "missed"
        assert [d.state for d in missed.deliveries] == ["missed"]
        notices = [m.text for m in bot.slack.sent if m.where == DESK]
        assert any("#2 was due 2026-11-22 13:30" in n and "marked missed" in n for n in notices)


async def test_a_fan_out_under_way_is_finished_at_start_however_late(db_url: str) -> None:
    clock = Clock()
    await queue(db_url, clock, "schedule --at 2026-11-22T13:30 --to slack,x Half sent")
    async with running_bot(db_url, clock=clock) as bot:
        store = bot.runtime.announcements
        slack_row = next(d for d in await store.deliveries(1) if d.platform == "slack")
        await store.set_delivery(slack_row.id, owner=None, state="sent", progress=["C-news|1"])
    clock.now = datetime(2026, 11, 22, 18, tzinfo=UTC)  # hours past the grace period
    async with running_bot(db_url, clock=clock, grace_minutes=15) as bot:
        assert timers(bot) == {"announcement-1": clock.now}
        await bot.runtime.announcement_timers.fire_now(1)
        assert bot.posts("x") == ["Half sent"] and bot.posts("slack") == []
        assert (await bot.runtime.announcements.require(1)).status == "done"
        assert not [m for m in bot.slack.sent if m.where == DESK]  # nothing marked missed


async def test_recurring_never_bursts_missed_occurrences(db_url: str) -> None:
    clock = Clock()
    await queue(db_url, clock, 'schedule --at 2026-11-23 --every "day 09:00" --to slack Daily')
    clock.now = datetime(2026, 11, 27, 12, tzinfo=UTC)  # four occurrences missed
    async with running_bot(db_url, clock=clock) as bot:
        jobs = timers(bot)
        assert jobs == {"announcement-1": datetime(2026, 11, 28, 8, tzinfo=UTC)}
        assert bot.posts("slack") == []
        notices = [m.text for m in bot.slack.sent if m.where == DESK]
        assert len(notices) == 1 and "the next one is 2026-11-28 09:00 CET" in notices[0]


async def test_a_claim_that_died_before_posting_is_posted_and_one_mid_call_is_asked_about(
    db_url: str,
) -> None:
    clock = Clock()
    await queue(db_url, clock, "schedule --at 2026-11-24T10:00 --to slack,x Interrupted")
    async with running_bot(db_url, clock=clock) as bot:
        store = bot.runtime.announcements
        rows = {d.platform: d for d in await store.deliveries(1)}
        claimed = await store.claim_many(
            [d.id for d in rows.values()], "crashed-process", timedelta(seconds=-1)
        )
        # The process died with its X call under way (the part marked), before any Slack call.
        now = utcnow()
        x_claim = claimed[rows["x"].id].claimed_by
        marker = Doubt("news", now, now).entry()
        assert await store.set_delivery(rows["x"].id, owner=x_claim, progress=[marker])
    async with running_bot(db_url, clock=clock) as bot:
        # Slack: nothing was under way, so it goes out by itself at once; nobody is bothered.
        slack_row = next(
            d for d in await bot.runtime.announcements.deliveries(1) if d.platform == "slack"
        )
        job = bot.runtime.scheduler.get_job(f"delivery-{slack_row.id}")
        assert job is not None and job.next_run_time <= utcnow()
        await job.func(*job.args)
        assert bot.posts("slack") == ["Interrupted"]
        states = {d.platform: d.state for d in await bot.runtime.announcements.deliveries(1)}
        assert states == {"slack": "sent", "x": "unknown"}
        # X (here a platform that cannot be asked) may have it: a person checks.
        notices = [m.text for m in bot.slack.sent if m.where == DESK]
        [notice] = notices
        assert "was being posted to x when the bot stopped" in notice
        clock.now = datetime(2026, 11, 24, 9, tzinfo=UTC)
        await bot.runtime.announcement_timers.fire_now(1)
        assert bot.posts("slack") == ["Interrupted"]
        assert bot.posts("x") == []  # never re-posted blindly
