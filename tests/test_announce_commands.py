"""``/announce`` end to end through the core, with recording platforms and a hand-moved clock."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from adapters.memory import MemoryAdapter
from adapters.registry import SUPPORTED
from bot.errors import PermanentPlatformError
from bot.events import OutgoingMessage, SentMessage, SlashCommand
from bot.runtime import Runtime
from bot.store.models import Announcement, AuditLog, Delivery
from tests.announce_helpers import DESK, MEMBER, STAFF, STAFF2, Bot, running_bot
from tests.conftest import make_config
from tests.waiting import PATIENCE


async def count(bot: Bot, model: type[Announcement] | type[Delivery]) -> int:
    async with bot.runtime.db.session() as session:
        return int(await session.scalar(select(func.count(model.id))) or 0)


async def job_time(bot: Bot, announcement_id: int) -> datetime | None:
    job = bot.runtime.scheduler.get_job(f"announcement-{announcement_id}")
    return None if job is None else job.next_run_time.astimezone(UTC)


async def fire_due(bot: Bot, announcement_id: int) -> None:
    """Move the clock to the due time and run the timer, as APScheduler would."""
    announcement = await bot.runtime.announcements.require(announcement_id)
    assert announcement.due_at is not None
    bot.clock.now = max(bot.clock.now, announcement.due_at)
    await bot.runtime.announcement_timers.fire_now(announcement_id)


async def test_schedule_replies_with_id_local_and_utc_time_and_arms_timer(db_url: str) -> None:
    async with running_bot(db_url) as bot:
        reply = await bot.announce("schedule --at tomorrow 9am --to slack,x **PyTorch** joins LF")
        # Stella's zone is Europe/Berlin (UTC+1 in November).
        assert reply.startswith("Scheduled announcement #1 for 2026-11-23 09:00 CET (08:00 UTC)")
        assert "to slack, x" in reply
        assert await job_time(bot, 1) == datetime(2026, 11, 23, 8, tzinfo=UTC)
        assert bot.posts("slack") == []
        await fire_due(bot, 1)
        assert len(bot.posts("slack")) == 1 and len(bot.posts("x")) == 1
        assert bot.posts("discord") == []
        assert bot.posts("x") == ["PyTorch joins LF"]


@pytest.mark.parametrize(
    ("command", "reason"),
    [
        ("schedule --at yesterday Hello", "in the past"),
        ('schedule --at "in 400 days" Hello', "more than a year ahead"),
        ("schedule --at tomorrow 9am --tz Mars/Base Hello", "Unknown time zone 'Mars/Base'"),
        ("schedule --at blorp Hello", "can't read the time"),
        ("schedule --at tomorrow 9am --to slack,myspace Hello", "Unknown platform 'myspace'"),
        ("schedule --at tomorrow 9am", "text is empty"),
        ("schedule --at tomorrow 9am --colour red Hello", "Unknown option --colour"),
        ("schedule Hello", "needs --at"),
        ("now", "text is empty"),
        ("show 99", "no announcement #99"),
        ("cancel 99", "no announcement #99"),
        ("edit nine hello", "is not an announcement id"),
        ("fly me to the moon", "Unknown action 'fly'"),
        ("now " + "word " * 3000, "the limit is 10000"),
        ("now --to x " + "Lorem ipsum dolor sit amet. " * 300, "too long for X: needs"),
        ('schedule --at tomorrow 9am --every "blursday 5pm" Hi', "repeat rule"),
    ],
)
async def test_bad_input_gets_one_line_reason_with_usage_and_changes_nothing(
    db_url: str, command: str, reason: str
) -> None:
    async with running_bot(db_url) as bot:
        reply = await bot.announce(command)
        first_line = reply.splitlines()[0]
        assert reason in first_line
        assert "Usage" in reply
        assert len(reply.splitlines()) <= 3  # the reason and a short usage, not the manual
        assert await count(bot, Announcement) == 0
        assert bot.posts("slack") == [] and bot.posts("x") == []


async def test_members_are_refused_politely_and_every_command_is_audited(db_url: str) -> None:
    async with running_bot(db_url) as bot:
        reply = await bot.announce("now Hello world", author=MEMBER)
        assert "only the comms staff" in reply
        await bot.announce("list")
        assert await count(bot, Announcement) == 0
        async with bot.runtime.db.session() as session:
            rows = (await session.scalars(select(AuditLog).order_by(AuditLog.id))).all()
        assert [(r.actor, r.target, r.allowed) for r in rows] == [
            ("slack:U-member", "/announce now Hello world", False),
            ("slack:U-staff", "/announce list", True),
        ]


async def test_now_posts_everywhere_concurrently(db_url: str) -> None:
    async with running_bot(db_url) as bot:
        barrier = asyncio.Barrier(3)

        def gate(send: Callable[[OutgoingMessage], Awaitable[SentMessage]]) -> Any:
            async def gated(message: OutgoingMessage) -> SentMessage:
                if message.where.channel_id in ("C-news", "D-news", "timeline"):
                    # Only passes if all three platforms are being posted to at the same time.
                    await asyncio.wait_for(barrier.wait(), timeout=PATIENCE)
                return await send(message)

            return gated

        for adapter in (bot.slack, bot.discord, bot.x):
            adapter.send = gate(adapter.send)  # type: ignore[method-assign]
        reply = await bot.announce("now Big news: the PyTorch Foundation is here.")
        assert "slack: posted" in reply and "discord: posted" in reply and "x: posted" in reply
        assert all(bot.posts(p) for p in ("slack", "discord", "x"))


async def test_list_show_edit_cancel(db_url: str) -> None:
    async with running_bot(db_url) as bot:
        await bot.announce("schedule --at 2026-11-25T10:00 --to slack,x First *draft*")
        listing = await bot.announce("list")
        assert "#1 · 2026-11-25 10:00 CET (09:00 UTC) · scheduled" in listing
        assert "slack: pending, x: pending" in listing
        show = await bot.announce("show 1")
        assert "--- slack (1 message) ---\nFirst _draft_" in show
        assert "--- x (1 post) ---\nFirst draft" in show
        edited = await bot.announce('edit 1 --at "2026-11-26 18:30" Final text')
        assert "Updated the text and time of announcement #1; due 2026-11-26 18:30 CET" in edited
        assert await job_time(bot, 1) == datetime(2026, 11, 26, 17, 30, tzinfo=UTC)
        assert "Final text" in await bot.announce("show 1")
        assert await bot.announce("cancel 1") == "Cancelled announcement #1."
        assert await job_time(bot, 1) is None
        assert "already cancelled" in await bot.announce("cancel 1")
        assert "cancelled; only queued" in await bot.announce("edit 1 again")
        await fire_due(bot, 1)
        assert bot.posts("slack") == []
        assert "#1" in await bot.announce("history")


async def test_editing_an_announcement_being_sent_is_refused(db_url: str) -> None:
    async with running_bot(db_url) as bot:
        await bot.announce("schedule --at 2026-11-25T10:00 --to slack Hello there")
        deliveries = await bot.runtime.announcements.deliveries(1)
        await bot.runtime.announcements.claim(deliveries[0].id, "other", timedelta(minutes=5))
        reply = await bot.announce("edit 1 New text")
        assert "already being sent" in reply
        assert (await bot.runtime.announcements.require(1)).text == "Hello there"


async def test_same_text_again_needs_force(db_url: str) -> None:
    async with running_bot(db_url) as bot:
        await bot.announce("schedule --at 2026-11-25T10:00 Hello   World")
        reply = await bot.announce("schedule --at 2026-11-26T10:00 hello world")
        assert "Announcement #1 has the same text" in reply and "--force" in reply
        assert await count(bot, Announcement) == 1
        forced = await bot.announce("schedule --at 2026-11-26T10:00 --force hello world")
        assert forced.startswith("Scheduled announcement #2")


async def test_daily_quota_warns_at_queue_time(db_url: str) -> None:
    async with running_bot(db_url, daily_quota={"x": 1}) as bot:
        first = await bot.announce("schedule --at 2026-11-25T10:00 --to x One")
        second = await bot.announce("schedule --at 2026-11-25T15:00 --to x Two")
        other_day = await bot.announce("schedule --at 2026-11-26T15:00 --to x Three")
        assert "Warning" not in first
        assert "this makes 2 posts to x on 2026-11-25; the daily quota is 1" in second
        assert "Warning" not in other_day


async def test_approval_by_a_second_staff_member(db_url: str) -> None:
    async with running_bot(db_url, require_approval=True) as bot:
        reply = await bot.announce("schedule --at 2026-11-25T10:00 --to slack Approved news")
        assert "needs /announce approve 1 from another staff member" in reply
        assert await job_time(bot, 1) is None
        await fire_due(bot, 1)
        assert bot.posts("slack") == []
        assert "another staff member must approve" in await bot.announce("approve 1")
        assert "Approved announcement #1" in await bot.announce("approve 1", author=STAFF2)
        await bot.runtime.announcement_timers.fire_now(1)
        assert bot.posts("slack") == ["Approved news"]


async def test_hold_pauses_and_resume_releases(db_url: str) -> None:
    async with running_bot(db_url) as bot:
        await bot.announce("schedule --at 2026-11-22T14:00 --to slack Embargoed")
        assert "Embargo on" in await bot.announce("hold")
        await fire_due(bot, 1)
        assert bot.posts("slack") == []
        assert "Embargo on" in await bot.announce("list")
        reply = await bot.announce("resume")
        assert "1 announcement(s)" in reply
        await bot.runtime.announcement_timers.fire_now(1)
        assert bot.posts("slack") == ["Embargoed"]


async def test_now_during_an_embargo_says_it_is_held_and_resume_sends_it(db_url: str) -> None:
    async with running_bot(db_url) as bot:
        await bot.announce("hold")
        reply = await bot.announce("now --to slack,x Held back")
        assert reply == (
            "Announcement #1 is queued, but the embargo is on: it goes out to slack, x when "
            "/announce resume lifts it."
        )
        assert bot.posts("slack") == [] and bot.posts("x") == []
        assert "1 announcement(s)" in await bot.announce("resume")
        await bot.runtime.announcement_timers.fire_now(1)
        assert bot.posts("slack") == ["Held back"] and bot.posts("x") == ["Held back"]


async def test_approving_during_an_embargo_says_it_waits_for_resume(db_url: str) -> None:
    async with running_bot(db_url, require_approval=True) as bot:
        await bot.announce("now --to slack Needs two people")
        await bot.announce("hold")
        reply = await bot.announce("approve 1", author=STAFF2)
        assert reply == (
            "Approved announcement #1; the embargo is on, so it goes out once /announce resume "
            "lifts it."
        )


async def test_retract_deletes_every_posted_part(db_url: str) -> None:
    async with running_bot(db_url) as bot:
        long_text = " ".join(f"Sentence number {i} about the foundation." for i in range(20))
        await bot.announce(f"now --to slack,x {long_text}")
        x_posts = bot.posts("x")
        assert len(x_posts) >= 3
        reply = await bot.announce("retract 1")
        assert "slack: deleted" in reply and "x: deleted" in reply
        assert len(bot.x.deleted) == len(x_posts) and len(bot.slack.deleted) == 1
        assert (await bot.runtime.announcements.require(1)).status == "retracted"


async def test_retract_reports_a_platform_that_refuses(db_url: str) -> None:
    async with running_bot(db_url) as bot:
        await bot.announce("now --to slack,x Short news")

        async def refuse(sent: SentMessage) -> None:
            raise PermanentPlatformError("x", "deleting posts needs a higher access tier")

        bot.x.delete = refuse  # type: ignore[method-assign]
        reply = await bot.announce("retract 1")
        assert "x: not deleted (deleting posts needs a higher access tier)" in reply
        assert "slack: deleted" in reply


async def test_recurring_keeps_local_hour_across_dst_and_stops_after_until(db_url: str) -> None:
    async with running_bot(db_url) as bot:
        bot.clock.now = datetime(2027, 3, 20, 12, tzinfo=UTC)
        reply = await bot.announce(
            'schedule --at 2027-03-21 --every "sunday 17:00" --until 2027-04-04 --to slack Weekly'
        )
        assert "Repeats every sunday 17:00 (Europe/Berlin wall-clock time)" in reply
        assert await job_time(bot, 1) == datetime(2027, 3, 21, 16, tzinfo=UTC)  # CET
        await fire_due(bot, 1)
        assert await job_time(bot, 1) == datetime(2027, 3, 28, 15, tzinfo=UTC)  # CEST
        await fire_due(bot, 1)
        await fire_due(bot, 1)
        assert bot.posts("slack") == ["Weekly"] * 3
        assert (await bot.runtime.announcements.require(1)).status == "done"
        assert await job_time(bot, 1) is None


async def test_published_announcement_failure_is_reported_to_staff(db_url: str) -> None:
    async with running_bot(db_url) as bot:
        bot.x.fail_next(PermanentPlatformError("x", "403 duplicate content"))
        reply = await bot.announce("now --to slack,x Hello X")
        assert "x: failed (403 duplicate content)" in reply
        notices = [
            m.text
            for m in bot.slack.sent
            if m.where.channel_id == "C-comms" and m.ephemeral_to is None
        ]
        assert any("failed on x: 403 duplicate content" in n for n in notices)
        assert "x: failed" in await bot.announce("list")


async def test_preview_renders_every_supported_platform_connected_or_not(db_url: str) -> None:
    # Only Slack runs here: Discord and X are not connected, yet their renderings show.
    slack = MemoryAdapter("slack", announce_channels=("C-news",))
    config = make_config(
        database={"url": db_url}, web={"enabled": False}, staff={"slack_users": [STAFF.id]}
    )
    runtime = Runtime(config, [slack])
    await runtime.start()
    try:
        before = len(slack.sent)
        await slack.inject(
            SlashCommand(DESK, STAFF, "announce", "preview **Big** news: " + "word " * 80)
        )
        [reply] = slack.sent[before:]
        preview = reply.text
        assert preview.startswith("Preview (nothing is queued):")
        for platform in SUPPORTED:
            assert f"--- {platform} (" in preview
        assert "--- slack (1 message) ---\n*Big* news" in preview
        assert "--- discord (1 message) ---\n**Big** news" in preview
        assert "--- x (2 posts) ---\n[1] Big news" in preview  # 405 characters: a thread
        await slack.inject(
            SlashCommand(DESK, STAFF, "announce", 'preview --to x --x-text "Short" Long text')
        )
        assert slack.sent[-1].text.endswith("--- x (1 post) ---\nShort")
        async with runtime.db.session() as session:
            assert not (await session.scalars(select(Announcement))).all()
    finally:
        await runtime.stop()


async def test_show_renders_targets_that_are_not_connected(db_url: str) -> None:
    async with running_bot(db_url) as bot:
        await bot.announce("schedule --at 2026-11-25T10:00 --to slack,discord Hello **all**")
    # The same database, with only Slack connected now.
    slack = MemoryAdapter("slack", announce_channels=("C-news",))
    config = make_config(
        database={"url": db_url}, web={"enabled": False}, staff={"slack_users": [STAFF.id]}
    )
    runtime = Runtime(config, [slack])
    await runtime.start()
    try:
        await slack.inject(SlashCommand(DESK, STAFF, "announce", "show 1"))
        show = slack.sent[-1].text
        assert "--- discord (1 message) ---\nHello **all**" in show
        assert "--- slack (1 message) ---\nHello *all*" in show
    finally:
        await runtime.stop()
