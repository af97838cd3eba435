"""The Discord adapter, driving the real discord.py against a fake Discord on 127.0.0.1."""

from __future__ import annotations

import asyncio
import io
import logging
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from discord.gateway import DiscordWebSocket
from discord.http import Route
from sqlalchemy import select

from adapters.discord import DiscordAdapter, command_text, invite_url
from announcements.engine import post_key
from announcements.progress import Doubt
from announcements.store import NewAnnouncement
from bot.cli import _platform_adapters, main
from bot.commands import FAILURE
from bot.config import load_config
from bot.errors import ConfigError, PermanentPlatformError, TransientPlatformError
from bot.events import (
    Choice,
    ChoicePicked,
    Conversation,
    InboundEvent,
    OutgoingMessage,
    utcnow,
)
from bot.runtime import Runtime
from bot.store.engagement import LogFilter
from bot.store.models import Announcement, AuditLog, Delivery
from tests.conftest import make_config
from tests.fakes.discord_api import (
    APP_ID,
    BOT_ID,
    BOT_ROLE,
    DESK,
    DM_CHANNEL,
    GENERAL,
    GUILD_ID,
    NEWS,
    STAFF_ROLE,
    FakeDiscord,
    fake_discord,
    user,
)
from tests.waiting import eventually

TOKEN = "discord-test-token"
DEFAULT_API = "https://discord.com/api/v10"
STAFF = "600000000000000010"
READER = "600000000000000001"


@dataclass
class DiscordBot:
    runtime: Runtime
    fake: FakeDiscord
    adapter: DiscordAdapter

    async def logged(self, kind: str, count: int = 1) -> list[Any]:
        """Engagement rows of ``kind`` once ``count`` exist."""

        async def rows() -> list[Any]:
            found = list(await self.runtime.engagement.list(LogFilter(kind=kind)))
            return found if len(found) >= count else []

        return await eventually(rows, f"{count} {kind} logged")

    async def ask(self, text: str, **options: Any) -> dict[str, Any]:
        """A user message through the gateway; returns its payload."""
        message = self.fake.message(text, **options)
        self.fake.dispatch(
            "MESSAGE_CREATE", message, None if options.get("guild") is False else GUILD_ID
        )
        return message

    async def command(self, *, user: str = STAFF, **options: Any) -> dict[str, Any]:
        """``/announce`` with ``options`` as an INTERACTION_CREATE; returns the payload."""
        data = {
            "id": "910000000000000001",
            "name": "announce",
            "type": 1,
            "options": [
                {"name": name, "type": 5 if isinstance(value, bool) else 3, "value": value}
                for name, value in options.items()
            ],
        }
        roles = [STAFF_ROLE] if user == STAFF else []
        interaction = self.fake.interaction(2, data, author=user, roles=roles)
        self.fake.dispatch("INTERACTION_CREATE", interaction)
        return interaction

    def followups(self, interaction: dict[str, Any]) -> list[dict[str, Any]]:
        """Ephemeral follow-ups sent for an interaction (what the user sees)."""
        path = f"/webhooks/{APP_ID}/{interaction['token']}"
        return [c.body for c in self.fake.calls_to("POST", path)]

    async def reply_to(self, interaction: dict[str, Any]) -> dict[str, Any]:
        await self.fake.wait_for(lambda: self.followups(interaction))
        return self.followups(interaction)[0]


@asynccontextmanager
async def discord_bot(
    db_url: str, adapter: dict[str, Any] | None = None, **sections: Any
) -> AsyncIterator[DiscordBot]:
    async with fake_discord() as fake:
        options: dict[str, Any] = {
            "announce_channels": (NEWS,),
            "guild_ready_timeout": 0.05,
            **(adapter or {}),
        }
        discord_adapter = DiscordAdapter(
            token=TOKEN, api_url=fake.api_url, gateway_url=fake.gateway_url, **options
        )
        config = make_config(
            database={"url": db_url},
            web={"enabled": False},
            staff={"discord_roles": [STAFF_ROLE]},
            **sections,
        )
        runtime = Runtime(config, [discord_adapter])
        await runtime.start()
        try:
            yield DiscordBot(runtime, fake, discord_adapter)
        finally:
            await runtime.stop()


async def test_mention_answered_in_a_thread_with_buttons_and_follow_up(sqlite_url: str) -> None:
    async with discord_bot(sqlite_url) as bot:
        assert bot.adapter.is_connected()
        question = await bot.ask("who is on the pytorch foundation board?", mentions_bot=True)
        thread = question["id"]  # Discord gives a thread started from a message its id
        await bot.fake.wait_for(lambda: bot.fake.posts(thread))
        [opened] = bot.fake.calls_to("POST", f"/channels/{GENERAL}/messages/{thread}/threads")
        assert opened.body["name"] == "who is on the pytorch foundation board?"
        [answer] = bot.fake.posts(thread)
        assert "Nvidia" in answer.body["content"]
        assert answer.headers["Authorization"] == f"Bot {TOKEN}"
        assert answer.body["enforce_nonce"] is True and answer.body["nonce"]
        buttons = answer.body["components"][0]["components"]
        token = buttons[0]["custom_id"].split(":")[2]
        assert [b["custom_id"] for b in buttons] == [f"fb:up:{token}", f"fb:down:{token}"]
        await bot.logged("answer")
        [asked] = await bot.logged("question")
        # The log links the question to where it was asked (the dashboard shows the link).
        assert asked.url == f"https://discord.com/channels/{GUILD_ID}/{GENERAL}/{question['id']}"
        await bot.ask("does meta still invest in it?", channel_id=thread)
        await bot.fake.wait_for(lambda: len(bot.fake.posts(thread)) == 2)
        follow_up = bot.fake.posts(thread)[1].body
        assert "Meta" in follow_up["content"]
        assert str(follow_up["message_reference"]["message_id"]) != question["id"]
        assert bot.fake.posts(GENERAL) == []  # nothing in the channel itself


async def test_direct_message_answered_as_a_reply(sqlite_url: str) -> None:
    async with discord_bot(sqlite_url) as bot:
        question = await bot.ask(
            "is pytorch still open source?", channel_id=DM_CHANNEL, guild=False
        )
        await bot.fake.wait_for(lambda: bot.fake.posts(DM_CHANNEL))
        [answer] = bot.fake.posts(DM_CHANNEL)
        assert str(answer.body["message_reference"]["message_id"]) == question["id"]
        assert "open-source" in answer.body["content"]
        assert not bot.fake.calls_to("POST", f"/channels/{DM_CHANNEL}/messages/")
        [row] = await bot.logged("question")
        assert (row.user, row.channel) == (READER, DM_CHANNEL)
        answer_message = next(iter(bot.fake.messages.values()))
        await bot.ask(
            "who announced it?", channel_id=DM_CHANNEL, guild=False, reply_to=answer_message
        )
        await bot.fake.wait_for(lambda: len(bot.fake.posts(DM_CHANNEL)) == 2)
        assert "Zuckerberg" in bot.fake.posts(DM_CHANNEL)[1].body["content"]


async def test_channel_chatter_is_ignored_and_off_topic_declined_inline(sqlite_url: str) -> None:
    async with discord_bot(sqlite_url, adapter={"reply_in_thread": False}) as bot:
        await bot.ask("who is on the pytorch foundation board?")  # no mention: not for the bot
        question = await bot.ask("what's the weather in Paris?", mentions_bot=True)
        await bot.fake.wait_for(lambda: bot.fake.posts(GENERAL))
        [post] = bot.fake.posts(GENERAL)
        assert "won't guess" in post.body["content"]
        assert post.body["components"] == []
        assert str(post.body["message_reference"]["message_id"]) == question["id"]
        assert post.body["allowed_mentions"]["parse"] == []
        assert not bot.fake.calls_to("POST", f"/channels/{GENERAL}/messages/")
        assert [r.text for r in await bot.logged("question")] == [question["content"]]
        with pytest.raises(PermanentPlatformError, match="not a Discord id"):
            await bot.adapter.send(OutgoingMessage(Conversation("discord", "#general"), "hi"))
        # Private text with no interaction to answer goes by DM, split at Discord's limit.
        long_text = "\n".join(f"line {i} " + "x" * 90 for i in range(30))
        sent = await bot.adapter.send(
            OutgoingMessage(Conversation("discord", GENERAL), long_text, ephemeral_to=READER)
        )
        assert sent.channel_id == DM_CHANNEL
        [opened] = bot.fake.calls_to("POST", "/users/@me/channels")
        assert str(opened.body["recipient_id"]) == READER
        parts = [c.body["content"] for c in bot.fake.posts(DM_CHANNEL)]
        assert len(parts) == 2 and all(len(p) <= 2000 for p in parts)
        assert "\n".join(parts) == long_text


async def test_feedback_click_logged_acknowledged_and_escalated(sqlite_url: str) -> None:
    async with discord_bot(sqlite_url, discord={"moderators_channel": DESK}) as bot:
        question = await bot.ask("is pytorch still open source?", mentions_bot=True)
        await bot.fake.wait_for(lambda: bot.fake.posts(question["id"]))
        answer_call = bot.fake.posts(question["id"])[0]
        down = answer_call.body["components"][0]["components"][1]["custom_id"]
        await bot.logged("answer")
        answer = next(m for m in bot.fake.messages.values() if m["components"])
        click = bot.fake.interaction(
            3,
            {"custom_id": down, "component_type": 2},
            author=READER,
            channel_id=question["id"],
            message=answer,
        )
        bot.fake.dispatch("INTERACTION_CREATE", click)
        ack = await bot.reply_to(click)
        [callback] = bot.fake.calls_to("POST", f"/interactions/{click['id']}/")
        assert callback.body == {"type": 5, "data": {"flags": 64}}
        assert ack["flags"] == 64 and "moderator will review" in ack["content"]
        [feedback] = await bot.logged("feedback")
        assert (feedback.user, feedback.detail["helpful"]) == (READER, False)
        assert feedback.channel == GENERAL  # the thread's channel
        assert [r.reason for r in await bot.runtime.engagement.open_reviews()] == ["thumbs_down"]
        offer = ack["components"][0]["components"][0]
        assert offer["custom_id"] == down.replace("fb:down:", "fb:mod:")
        escalate = bot.fake.interaction(
            3,
            {"custom_id": offer["custom_id"], "component_type": 2},
            author=READER,
            channel_id=question["id"],
            message={**answer, "components": ack["components"]},
        )
        bot.fake.dispatch("INTERACTION_CREATE", escalate)
        await bot.fake.wait_for(lambda: bot.fake.posts(DESK))
        assert "is pytorch still open source?" in bot.fake.posts(DESK)[0].body["content"]
        assert "asked a moderator" in (await bot.reply_to(escalate))["content"]


async def test_unauthorized_announce_refused_and_nothing_posted(sqlite_url: str) -> None:
    async with discord_bot(sqlite_url) as bot:
        interaction = await bot.command(user=READER, action="now", text="Hello everyone")
        reply = await bot.reply_to(interaction)
        assert "only the comms staff" in reply["content"] and reply["flags"] == 64
        assert bot.fake.posts(NEWS) == []
        async with bot.runtime.db.session() as session:
            [audit] = (await session.scalars(select(AuditLog))).all()
            assert not (await session.scalars(select(Announcement))).all()
        assert (audit.actor, audit.allowed) == (f"discord:{READER}", False)


async def test_a_command_that_fails_inside_the_bot_gets_a_one_line_apology(
    sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with discord_bot(sqlite_url) as bot:

        async def broken_core(event: object) -> None:
            raise RuntimeError("core exploded")

        bot.adapter._inbound.sink = broken_core  # the failure is the bot's, past the SDK
        interaction = await bot.command(action="list")
        reply = await bot.reply_to(interaction)
        assert reply["content"] == FAILURE and reply["flags"] == 64  # private, one line
        assert "Traceback" not in reply["content"] and "exploded" not in reply["content"]
    failed = [r for r in caplog.records if "app command failed" in r.getMessage()]
    assert failed and failed[0].exc_info is not None  # the operator's log has the traceback


async def test_authorized_announce_schedule_via_modal_is_stored(sqlite_url: str) -> None:
    async with discord_bot(sqlite_url) as bot:
        interaction = await bot.command(action="schedule", at="in 2 days", to="discord")
        path = f"/interactions/{interaction['id']}/{interaction['token']}/callback"
        await bot.fake.wait_for(lambda: bot.fake.calls_to("POST", path))
        modal = bot.fake.calls_to("POST", path)[0].body
        assert modal["type"] == 9
        field = modal["data"]["components"][0]["components"][0]
        submit = bot.fake.interaction(
            5,
            {
                "custom_id": modal["data"]["custom_id"],
                "components": [
                    {
                        "type": 1,
                        "components": [
                            {"type": 4, "custom_id": field["custom_id"], "value": "Modal **news**"}
                        ],
                    }
                ],
            },
            author=STAFF,
            roles=[STAFF_ROLE],
        )
        bot.fake.dispatch("INTERACTION_CREATE", submit)
        reply = await bot.reply_to(submit)
        assert reply["content"].startswith("Scheduled announcement #1") and reply["flags"] == 64
        async with bot.runtime.db.session() as session:
            [stored] = (await session.scalars(select(Announcement))).all()
        assert (stored.author, stored.targets, stored.text) == (
            f"discord:{STAFF}",
            ["discord"],
            "Modal **news**",
        )
        assert bot.fake.posts(NEWS) == []


async def test_bad_announce_options_get_one_line_and_change_nothing(sqlite_url: str) -> None:
    async with discord_bot(sqlite_url) as bot:
        interaction = await bot.command(action="schedule", at="yesterday-ish soon", text="Hi")
        reply = await bot.reply_to(interaction)
        assert "Traceback" not in reply["content"] and reply["flags"] == 64
        assert "--at" in reply["content"] or "time" in reply["content"].lower()
        async with bot.runtime.db.session() as session:
            assert not (await session.scalars(select(Announcement))).all()


async def test_announcement_posted_published_and_engagement_logged(sqlite_url: str) -> None:
    async with discord_bot(sqlite_url, adapter={"publish_announcements": True}) as bot:
        interaction = await bot.command(
            action="now", to="discord", text="The **PyTorch Foundation** is live!"
        )
        reply = await bot.reply_to(interaction)
        assert "discord" in reply["content"]
        [post] = bot.fake.posts(NEWS)
        assert post.body["content"] == "The **PyTorch Foundation** is live!"
        assert post.body["allowed_mentions"]["parse"] == []  # no @everyone from a text
        async with bot.runtime.db.session() as session:
            [delivery] = (await session.scalars(select(Delivery))).all()
        assert delivery.state == "sent"
        message_id = delivery.external_id
        assert delivery.url == f"https://discord.com/channels/{GUILD_ID}/{NEWS}/{message_id}"
        assert bot.fake.calls_to("POST", f"/channels/{NEWS}/messages/{message_id}/crosspost")
        for event, emoji in (("MESSAGE_REACTION_ADD", "🎉"), ("MESSAGE_REACTION_REMOVE", "🎉")):
            reaction: dict[str, Any] = {
                "user_id": "600000000000000077",
                "channel_id": NEWS,
                "message_id": message_id,
                "guild_id": GUILD_ID,
                "emoji": {"id": None, "name": emoji},
                "type": 0,
                "burst": False,
            }
            if event == "MESSAGE_REACTION_ADD":
                reaction["member"] = {
                    "user": user("600000000000000077", "fan"),
                    "roles": [],
                    "joined_at": "2024-01-01T00:00:00+00:00",
                    "deaf": False,
                    "mute": False,
                    "flags": 0,
                }
            bot.fake.dispatch(event, reaction)
        reactions = await bot.logged("reaction", 2)
        assert [(r.announcement_id, r.text, r.detail["added"]) for r in reactions] == [
            (1, "🎉", True),
            (1, "🎉", False),
        ]
        link = f"https://discord.com/channels/{GUILD_ID}/{NEWS}/{message_id}"
        assert {r.url for r in reactions} == {link}
        announcement = bot.fake.messages[str(message_id)]
        await bot.ask("congrats!!", channel_id=NEWS, reply_to=announcement)
        [reply_row] = await bot.logged("reply")
        assert (reply_row.announcement_id, reply_row.text) == (1, "congrats!!")
        assert len(bot.fake.posts(NEWS)) == 1  # a reply is engagement, not a question


async def test_announcement_discussion_thread_answers_without_a_mention(sqlite_url: str) -> None:
    async with discord_bot(sqlite_url, announcements={"discussion": ["discord"]}) as bot:
        interaction = await bot.command(action="now", to="discord", text="Big **news** today")
        await bot.reply_to(interaction)
        [post] = bot.fake.posts(NEWS)
        announcement_id = next(
            m["id"] for m in bot.fake.messages.values() if m["content"] == "Big **news** today"
        )
        await bot.fake.wait_for(lambda: bot.fake.posts(announcement_id))
        [opener] = bot.fake.posts(announcement_id)  # the thread under the announcement
        assert "Reply in this thread" in opener.body["content"]
        [thread] = bot.fake.calls_to("POST", f"/channels/{NEWS}/messages/{announcement_id}/")
        assert thread.body["name"] == "Questions and answers"
        await bot.ask("who is on the pytorch foundation board?", channel_id=announcement_id)
        await bot.fake.wait_for(lambda: len(bot.fake.posts(announcement_id)) == 2)
        assert "Nvidia" in bot.fake.posts(announcement_id)[1].body["content"]
        [question] = await bot.logged("question")
        assert (question.announcement_id, question.channel) == (1, NEWS)
        assert post.body["content"] == "Big **news** today"


async def test_rate_limited_post_waits_and_succeeds_logged_without_secrets(
    sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with discord_bot(sqlite_url) as bot:
        bot.fake.fail[("POST", f"/channels/{NEWS}/messages")] = [
            (
                429,
                {"message": "You are being rate limited.", "retry_after": 0.2, "global": False},
                {"Via": "1.1 google", "X-RateLimit-Scope": "user"},
            )
        ]
        interaction = await bot.command(action="now", to="discord", text="Rate limited news")
        await bot.reply_to(interaction)
        assert len(bot.fake.posts(NEWS)) == 2
        async with bot.runtime.db.session() as session:
            [delivery] = (await session.scalars(select(Delivery))).all()
        assert (delivery.state, delivery.attempts) == ("sent", 1)
    assert any(
        r.name == "discord.http" and r.levelno == logging.WARNING and "429" in r.getMessage()
        for r in caplog.records
    )
    assert TOKEN not in caplog.text


async def test_long_rate_limit_is_rescheduled_not_slept_on(sqlite_url: str) -> None:
    async with discord_bot(sqlite_url) as bot:
        bot.fake.fail[("POST", f"/channels/{NEWS}/messages")] = [
            (
                429,
                {"message": "You are being rate limited.", "retry_after": 120.0, "global": False},
                {"Via": "1.1 google"},
            )
        ]
        interaction = await bot.command(action="now", to="discord", text="Busy news")
        await bot.reply_to(interaction)
        async with bot.runtime.db.session() as session:
            [delivery] = (await session.scalars(select(Delivery))).all()
        assert (delivery.state, delivery.error) == ("pending", "rate limited (HTTP 429)")
        assert delivery.next_attempt_at is not None
        wait = delivery.next_attempt_at.replace(tzinfo=UTC) - datetime.now(UTC)
        assert timedelta(seconds=100) < wait <= timedelta(seconds=121)
        assert len(bot.fake.posts(NEWS)) == 1


async def test_thread_not_allowed_falls_back_to_an_inline_reply(sqlite_url: str) -> None:
    async with discord_bot(sqlite_url) as bot:
        bot.fake.fail[("POST", f"/channels/{GENERAL}/messages/1000000000000000001/threads")] = [
            (403, {"code": 50013, "message": "Missing Permissions"}, {})
        ]
        question = await bot.ask("who is on the pytorch foundation board?", mentions_bot=True)
        assert question["id"] == "1000000000000000001"
        await bot.fake.wait_for(lambda: bot.fake.posts(GENERAL))
        [answer] = bot.fake.posts(GENERAL)
        assert str(answer.body["message_reference"]["message_id"]) == question["id"]
        assert "Nvidia" in answer.body["content"]


async def test_one_process_cannot_point_two_discord_clients_at_different_apis() -> None:
    async with fake_discord() as fake:

        async def sink(event: object) -> None:
            return None

        first = DiscordAdapter(
            token=TOKEN, api_url=fake.api_url, gateway_url=fake.gateway_url, guild_ready_timeout=0
        )
        other = DiscordAdapter(token=TOKEN, api_url="http://127.0.0.1:9/api/v10")
        await first.start(sink)
        try:
            assert fake.api_url == Route.BASE
            with pytest.raises(PermanentPlatformError, match="different endpoints"):
                await other.start(sink)
            assert fake.api_url == Route.BASE and first.is_connected()
        finally:
            await first.stop()
            await other.stop()
        assert DEFAULT_API == Route.BASE
        assert str(DiscordWebSocket.DEFAULT_GATEWAY) == "wss://gateway.discord.gg/"


@pytest.mark.parametrize(
    ("channel", "status", "code", "reason"),
    [
        (NEWS, 403, 50013, "the bot lacks a permission in the channel (Missing Permissions)"),
        ("810000000000000999", 404, 10003, "the channel does not exist or the bot cannot see it"),
    ],
)
async def test_permission_and_unknown_channel_fail_at_once_with_a_clear_reason(
    sqlite_url: str, channel: str, status: int, code: int, reason: str
) -> None:
    async with discord_bot(sqlite_url, adapter={"announce_channels": (channel,)}) as bot:
        if channel == NEWS:
            bot.fake.fail[("POST", f"/channels/{NEWS}/messages")] = [
                (status, {"code": code, "message": "Missing Permissions"}, {})
            ]
        interaction = await bot.command(action="now", to="discord", text="Hello")
        reply = await bot.reply_to(interaction)
        assert f"discord: failed ({reason}" in reply["content"]
        async with bot.runtime.db.session() as session:
            [delivery] = (await session.scalars(select(Delivery))).all()
        assert (delivery.state, delivery.attempts) == ("failed", 1)
        assert len(bot.fake.calls_to("POST", f"/channels/{channel}/messages")) == 1
        # Staff are also told where the command came from.
        await bot.fake.wait_for(lambda: bot.fake.posts(DESK))
        assert reason in bot.fake.posts(DESK)[0].body["content"]


async def test_timed_out_post_is_retried_with_its_nonce_and_posted_once(sqlite_url: str) -> None:
    # Every post must land within post_timeout but the stalled one: well above what a post
    # takes even on a loaded machine, and the stall well above it.
    options = {"post_timeout": 1.5, "max_ratelimit_timeout": 0.1}
    async with discord_bot(sqlite_url, adapter=options) as bot:
        bot.fake.stall[("POST", f"/channels/{NEWS}/messages")] = [3.0]
        interaction = await bot.command(action="now", to="discord", text="Slow news")
        await bot.reply_to(interaction)
        first, second = bot.fake.posts(NEWS)
        assert first.body["nonce"] == second.body["nonce"]
        await bot.fake.wait_for(lambda: bot.fake.stalled_answered == 1)  # it lands too
        assert [m["content"] for m in bot.fake.messages.values()] == ["Slow news"]
        async with bot.runtime.db.session() as session:
            [delivery] = (await session.scalars(select(Delivery))).all()
        assert delivery.state == "sent"


async def test_gateway_drop_resumes_the_session_and_replays_what_was_missed(
    sqlite_url: str,
) -> None:
    async with discord_bot(sqlite_url) as bot:
        await bot.fake.drop_connections()
        question = await bot.ask("who announced the pytorch foundation?", mentions_bot=True)
        await bot.fake.wait_for(lambda: bot.fake.ops_of(6))
        [resume] = bot.fake.ops_of(6)
        assert resume["d"]["session_id"] == "session-1"
        assert resume["d"]["token"] == TOKEN and resume["d"]["seq"] >= 2
        await bot.fake.wait_for(lambda: bot.fake.posts(question["id"]))
        assert "Zuckerberg" in bot.fake.posts(question["id"])[0].body["content"]
        assert len(bot.fake.ops_of(2)) == 1  # resumed, not re-identified
        await bot.fake.wait_for(bot.adapter.is_connected)


async def test_shards_split_across_processes(sqlite_url: str) -> None:
    shard = (int(GUILD_ID) >> 22) % 2
    async with discord_bot(sqlite_url, adapter={"shard_count": 2, "shard_ids": [shard]}) as bot:
        [identify] = bot.fake.ops_of(2)
        assert identify["d"]["shard"] == [shard, 2]
        assert identify["d"]["intents"] & (1 << 15)  # message content, privileged
        assert identify["d"]["token"] == TOKEN and bot.fake.ops_of(1)  # heartbeats
        assert not bot.fake.calls_to("GET", "/gateway/bot")
        question = await bot.ask("who is on the pytorch foundation board?", mentions_bot=True)
        await bot.fake.wait_for(lambda: bot.fake.posts(question["id"]))


async def test_rejected_token_stops_the_start_with_a_clear_reason() -> None:
    async with fake_discord() as fake:
        fake.fail[("GET", "/users/@me")] = [(401, {"code": 0, "message": "401: Unauthorized"}, {})]
        adapter = DiscordAdapter(token="bad", api_url=fake.api_url, gateway_url=fake.gateway_url)

        async def sink(event: object) -> None:
            raise AssertionError("no events expected")

        with pytest.raises(PermanentPlatformError, match="DISCORD_BOT_TOKEN"):
            await adapter.start(sink)
        assert not adapter.is_connected()
        assert not fake.ops


async def test_message_content_intent_not_enabled_stops_with_what_to_switch_on() -> None:
    async with fake_discord() as fake:
        fake.close_on_identify = 4014
        adapter = DiscordAdapter(token=TOKEN, api_url=fake.api_url, gateway_url=fake.gateway_url)

        async def sink(event: object) -> None:
            raise AssertionError("no events expected")

        with pytest.raises(PermanentPlatformError, match="Message Content intent"):
            await adapter.start(sink)
        assert not adapter.is_connected()
        assert DEFAULT_API == Route.BASE  # released for the next client


async def test_mentioning_the_bot_role_counts_as_a_mention(sqlite_url: str) -> None:
    async with discord_bot(sqlite_url) as bot:
        message = bot.fake.message("who is on the pytorch foundation board?")
        message["content"] = f"<@&{BOT_ROLE}> {message['content']}"
        message["mention_roles"] = [BOT_ROLE]
        bot.fake.dispatch("MESSAGE_CREATE", message)
        await bot.fake.wait_for(lambda: bot.fake.posts(message["id"]))
        assert "Nvidia" in bot.fake.posts(message["id"])[0].body["content"]


def test_command_text_and_invite_url() -> None:
    assert (
        command_text("schedule", at='tomorrow "9am"', to="slack, discord", force=True, text="Hi")
        == 'schedule --at "tomorrow 9am" --to "slack,discord" --force Hi'
    )
    assert command_text("retry", ident=3, to="x") == 'retry 3 --to "x"'
    url = invite_url(APP_ID)
    assert f"client_id={APP_ID}" in url and "applications.commands" in url
    assert "permissions=" in url and BOT_ID not in url


def _cli(argv: list[str], config: Path, env: dict[str, str]) -> tuple[int, str, str]:
    """``foundation-bot`` in a worker thread (it runs its own event loop), like a shell would."""
    out, err = io.StringIO(), io.StringIO()
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    old_err, sys.stderr = sys.stderr, err
    try:
        code = main(["--config", str(config), *argv], stdout=out)
    finally:
        sys.stderr = old_err
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return code, out.getvalue(), err.getvalue()


async def test_sync_commands_puts_the_definitions_in_a_guild_or_globally(tmp_path: Path) -> None:
    async with fake_discord() as fake:
        config = tmp_path / "bot.toml"
        config.write_text(f'[discord]\napi_url = "{fake.api_url}"\n', encoding="utf-8")
        env = {"DISCORD_BOT_TOKEN": TOKEN}
        code, out, err = await asyncio.to_thread(
            _cli, ["discord", "sync-commands", "--guild", GUILD_ID], config, env
        )
        assert (code, err) == (0, "")
        assert out.startswith(f"registered guild {GUILD_ID}: /announce")
        assert f"invite URL: https://discord.com/oauth2/authorize?client_id={APP_ID}" in out
        [put] = fake.calls_to("PUT", f"/applications/{APP_ID}/guilds/{GUILD_ID}/commands")
        [announce] = put.body
        assert announce["name"] == "announce" and put.headers["Authorization"] == f"Bot {TOKEN}"
        options = {o["name"]: o for o in announce["options"]}
        assert list(options)[:2] == ["action", "id"]
        assert "mark-sent" in [c["value"] for c in options["action"]["choices"]]
        assert options["action"]["required"] and not options["text"].get("required")
        code, out, _ = await asyncio.to_thread(_cli, ["discord", "sync-commands"], config, env)
        assert code == 0 and "registered global: /announce" in out
        assert fake.calls_to("PUT", f"/applications/{APP_ID}/commands")
        assert not fake.ops  # registering commands needs no gateway connection
        code, _, err = await asyncio.to_thread(
            _cli, ["discord", "sync-commands"], config, {"DISCORD_BOT_TOKEN": ""}
        )
        assert code == 1 and err.strip().count("\n") == 0 and "DISCORD_BOT_TOKEN" in err


def test_enabled_discord_is_built_from_the_config(tmp_path: Path) -> None:
    config = load_config(
        write(
            tmp_path,
            '[discord]\nenabled = true\nannounce_channels = ["1234"]\nshard_count = 4\n'
            "shard_ids = [2, 3]\n",
        ),
        environ={"DISCORD_BOT_TOKEN": TOKEN},
    )
    [adapter] = _platform_adapters(config)
    assert isinstance(adapter, DiscordAdapter)
    assert adapter.announce_channels == ("1234",) and adapter.platform == "discord"
    assert TOKEN not in repr(config)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("[discord]\nshard_ids = [0]\n", "shard_ids needs shard_count"),
        ("[discord]\nshard_count = 2\nshard_ids = [2]\n", "from 0 to 1"),
        ('[discord]\nannounce_channels = ["#news"]\n', "Discord channel ids are numbers"),
        ("[discord]\nenabled = true\n", "DISCORD_BOT_TOKEN"),
    ],
)
def test_bad_discord_config_is_one_line(tmp_path: Path, body: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, body), environ={})
    assert expected in str(caught.value) and "\n" not in str(caught.value)


def write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "bot.toml"
    path.write_text(body, encoding="utf-8")
    return path


@asynccontextmanager
async def started_adapter(
    fake: FakeDiscord, events: asyncio.Queue[InboundEvent] | None = None
) -> AsyncIterator[DiscordAdapter]:
    """The adapter alone, started against the fake, queueing what it delivers."""
    delivered: asyncio.Queue[InboundEvent] = events if events is not None else asyncio.Queue()

    async def record(event: InboundEvent) -> None:
        delivered.put_nowait(event)

    adapter = DiscordAdapter(
        token=TOKEN,
        api_url=fake.api_url,
        gateway_url=fake.gateway_url,
        announce_channels=(NEWS,),
        guild_ready_timeout=0.05,
    )
    await adapter.start(record)
    try:
        yield adapter
    finally:
        await adapter.stop()


@pytest.mark.parametrize(
    ("status", "error", "reason"),
    [
        (503, TransientPlatformError, "Discord server error (HTTP 503)"),
        (429, TransientPlatformError, "rate limited (HTTP 429)"),
        (403, PermanentPlatformError, "Missing Permissions"),
        (400, PermanentPlatformError, "Discord refused the request (HTTP 400, code 0)"),
    ],
)
async def test_an_error_body_that_is_not_json_is_judged_by_its_status(
    status: int, error: type[Exception], reason: str
) -> None:
    # What a proxy or load balancer in front of discord.api_url answers: plain text.
    async with fake_discord() as fake, started_adapter(fake) as adapter:
        fake.fail[("POST", f"/channels/{NEWS}/messages")] = [
            (status, "upstream connect error or disconnect/reset before headers", {})
        ]
        with pytest.raises(error) as caught:
            await adapter.send(OutgoingMessage(Conversation("discord", NEWS), "Hello"))
        assert reason in str(caught.value)


async def test_suggestions_are_buttons_whose_click_is_acknowledged_and_picked() -> None:
    events: asyncio.Queue[InboundEvent] = asyncio.Queue()
    choices = (
        Choice("pick-board", "Who sits on the governing board of the PyTorch Foundation?"),
        Choice("pick-" + "t" * 93, "x" * 120),  # the longest token a custom_id takes
    )
    async with fake_discord() as fake:
        async with started_adapter(fake, events) as adapter:
            sent = await adapter.send(
                OutgoingMessage(
                    Conversation("discord", GENERAL), "Which did you mean?", choices=choices
                )
            )
        [post] = fake.posts(GENERAL)
        buttons = [b for row in post.body["components"] for b in row["components"]]
        assert [b["custom_id"] for b in buttons] == ["c:" + c.token for c in choices]
        assert all(len(b["custom_id"]) <= 100 for b in buttons)
        assert buttons[0]["label"] == choices[0].label
        assert len(buttons[1]["label"]) == 80 and buttons[1]["label"].endswith("…")
        # A click after a restart still reaches the bot: the buttons are matched by template.
        async with started_adapter(fake, events):
            click = fake.interaction(
                3,
                {"custom_id": buttons[0]["custom_id"], "component_type": 2},
                author=READER,
                channel_id=GENERAL,
                message=fake.messages[sent.message_id],
            )
            fake.dispatch("INTERACTION_CREATE", click)
            async with asyncio.timeout(10):
                picked = await events.get()
            [callback] = fake.calls_to("POST", f"/interactions/{click['id']}/")
    assert callback.body == {"type": 6}  # acknowledged without a "thinking…" message
    assert events.empty()
    assert isinstance(picked, ChoicePicked)
    assert (picked.token, picked.author.id) == ("pick-board", READER)
    assert picked.where == Conversation("discord", GENERAL)


async def test_a_suggestion_token_too_long_for_a_custom_id_is_refused() -> None:
    async with fake_discord() as fake, started_adapter(fake) as adapter:
        message = OutgoingMessage(
            Conversation("discord", GENERAL), "Which?", choices=(Choice("t" * 99, "Too long"),)
        )
        with pytest.raises(PermanentPlatformError, match="custom_id"):
            await adapter.send(message)
        assert not fake.posts(GENERAL)


async def test_one_announcement_post_repeated_with_its_key_appears_once(sqlite_url: str) -> None:
    """The nonce comes from the post's idempotency key, so a repeat by another attempt (or
    another process) within Discord's nonce window gets the first message back."""
    async with discord_bot(sqlite_url) as bot:
        message = OutgoingMessage(
            Conversation("discord", NEWS), "Once only", idempotency_key="fb-delivery:7:news:0"
        )
        first = await bot.adapter.send(message)
        again = await bot.adapter.send(message)
        assert again.message_id == first.message_id
        assert [m["content"] for m in bot.fake.messages.values()] == ["Once only"]
        one, two = bot.fake.posts(NEWS)
        assert one.body["nonce"] == two.body["nonce"] and two.body["enforce_nonce"] is True


async def test_a_post_a_crash_left_in_doubt_is_found_in_the_channel_not_posted_again(
    sqlite_url: str,
) -> None:
    async with discord_bot(sqlite_url, announcements={"reconcile_after_seconds": 0.0}) as bot:
        store = bot.runtime.announcements
        created = await store.create(
            NewAnnouncement("ops", "Crash news", ("discord", "x"), utcnow(), "UTC", {})
        )
        rows = {d.platform: d for d in created.deliveries}
        # A process claimed both rows, marked its Discord call under way, and died after
        # Discord made the post but before it could record it.
        claims = await store.claim_many([d.id for d in rows.values()], "dead", timedelta(0))
        row = rows["discord"]
        now = utcnow()
        marker = [Doubt(NEWS, now, now).entry()]
        assert await store.set_delivery(row.id, owner=claims[row.id].claimed_by, progress=marker)
        key = post_key(row, NEWS, 0)
        posted = await bot.adapter.send(
            OutgoingMessage(Conversation("discord", NEWS), "Crash news", idempotency_key=key)
        )
        # The takeover: Discord is looked up first; X (no adapter here) was never called, so
        # it simply goes out again (and fails for want of an adapter, not silently).
        assert await bot.runtime.announcement_timers.recover_interrupted() == 2
        for _ in range(500):
            states = {d.platform: d for d in await store.deliveries(created.id)}
            if states["discord"].state == "sent" and states["x"].state == "failed":
                break
            await asyncio.sleep(0.02)
        found = states["discord"]
        assert found.state == "sent" and found.external_id == posted.message_id
        assert found.progress == [f"{NEWS}|{posted.message_id}"]
        assert [m["content"] for m in bot.fake.messages.values()] == ["Crash news"]
        assert bot.fake.calls_to("GET", f"/channels/{NEWS}/messages")
        assert "no x adapter" in (states["x"].error or "")


async def test_a_post_in_doubt_that_is_not_in_the_channel_is_posted_once(sqlite_url: str) -> None:
    async with discord_bot(sqlite_url) as bot:
        since = utcnow()
        message = OutgoingMessage(Conversation("discord", NEWS), "Lost on the way")
        assert await bot.adapter.find_posted(message, "k", since) is None
        await bot.adapter.send(OutgoingMessage(Conversation("discord", NEWS), "Other news"))
        sent = await bot.adapter.send(message)
        found = await bot.adapter.find_posted(message, "k", since)
        assert found is not None and found.message_id == sent.message_id
