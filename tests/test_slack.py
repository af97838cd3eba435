"""The Slack adapter, driving real slack-bolt / slack-sdk against a fake Slack on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest
import yaml
from slack_sdk.errors import SlackApiError
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_slack_response import AsyncSlackResponse
from sqlalchemy import select

from adapters.slack import BOT_EVENTS, SlackAdapter, translate
from bot.commands import FAILURE
from bot.errors import PermanentPlatformError, TransientPlatformError
from bot.events import (
    Choice,
    ChoicePicked,
    Conversation,
    InboundEvent,
    OutgoingMessage,
    SlashCommand,
)
from bot.runtime import Runtime
from bot.store.engagement import LogFilter
from bot.store.models import Announcement, Delivery
from bot.web import WebServer, build_app
from tests.conftest import make_config
from tests.fakes.slack_api import BOT_USER, FakeSlack, fake_slack
from tests.waiting import PATIENCE, eventually

SECRET = "test-signing-secret"
TEST_BOT_TOKEN = "xoxb-test"
STAFF = "U-staff"


async def post_signed(
    http: aiohttp.ClientSession,
    url: str,
    secret: str,
    body: str,
    content_type: str,
    headers: dict[str, str] | None = None,
) -> aiohttp.ClientResponse:
    """POST ``body`` to the bot as Slack would, signed with ``secret``."""
    stamp = str(int(time.time()))
    signature = str(SignatureVerifier(secret).generate_signature(timestamp=stamp, body=body))
    all_headers = {
        "Content-Type": content_type,
        "X-Slack-Request-Timestamp": stamp,
        "X-Slack-Signature": signature,
        **(headers or {}),
    }
    async with http.post(url, data=body.encode(), headers=all_headers) as resp:
        await resp.read()
        return resp


@dataclass
class SlackBot:
    runtime: Runtime
    fake: FakeSlack
    url: str
    http: aiohttp.ClientSession
    secret: str = SECRET
    _events: int = 0

    async def post(
        self,
        body: str,
        content_type: str,
        *,
        secret: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> aiohttp.ClientResponse:
        return await post_signed(
            self.http, self.url, secret or self.secret, body, content_type, headers
        )

    async def event(
        self,
        event: dict[str, Any],
        *,
        event_id: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> aiohttp.ClientResponse:
        self._events += 1
        body = {
            "token": "legacy",
            "team_id": "T1",
            "api_app_id": "A1",
            "type": "event_callback",
            "event_id": event_id or f"Ev{self._events}",
            "event_time": int(time.time()),
            "authorizations": [{"team_id": "T1", "user_id": BOT_USER, "is_bot": True}],
            "event": event,
        }
        return await self.post(json.dumps(body), "application/json", headers=headers)

    async def command(self, text: str, user: str = STAFF) -> aiohttp.ClientResponse:
        body = urlencode(
            {
                "command": "/announce",
                "text": text,
                "user_id": user,
                "channel_id": "C-desk",
                "team_id": "T1",
                "response_url": f"{self.fake.base}/hooks/cmd",
                "trigger_id": "trig",
                "token": "legacy",
            }
        )
        return await self.post(body, "application/x-www-form-urlencoded")

    async def action(self, action_id: str, token: str, user: str = "U-reader") -> None:
        payload = {
            "type": "block_actions",
            "user": {"id": user},
            "team": {"id": "T1"},
            "api_app_id": "A1",
            "token": "legacy",
            "trigger_id": "trig",
            "channel": {"id": "C1"},
            "message": {"ts": "1700000000.000001"},
            "response_url": f"{self.fake.base}/hooks/act",
            "actions": [
                {
                    "action_id": action_id,
                    "value": token,
                    "type": "button",
                    "block_id": "feedback",
                    "action_ts": str(time.time()),
                }
            ],
        }
        await self.post(
            urlencode({"payload": json.dumps(payload)}), "application/x-www-form-urlencoded"
        )


async def logged(bot: SlackBot, kind: str, count: int = 1) -> list[Any]:
    """Engagement rows of ``kind`` once ``count`` exist (listeners run after the ack)."""

    async def rows() -> list[Any]:
        found = list(await bot.runtime.engagement.list(LogFilter(kind=kind)))
        return found if len(found) >= count else []

    return await eventually(rows, f"{count} {kind} logged")


def mention(text: str, ts: str = "1700000100.000100", **extra: Any) -> dict[str, Any]:
    return {
        "type": "app_mention",
        "user": "U-reader",
        "text": f"<@{BOT_USER}> {text}",
        "ts": ts,
        "channel": "C1",
        "event_ts": ts,
        **extra,
    }


@asynccontextmanager
async def slack_http(
    db_url: str,
    *,
    client_timeout: float = 30.0,
    staff: dict[str, list[str]] | None = None,
    bot_token: str = TEST_BOT_TOKEN,
    signing_secret: str = SECRET,
    **slack_config: Any,
) -> AsyncIterator[SlackBot]:
    staff = staff or {"slack_users": [STAFF]}
    async with fake_slack() as fake:
        adapter = SlackAdapter(
            bot_token=bot_token,
            signing_secret=signing_secret,
            mode="http",
            api_url=f"{fake.base}/api/",
            announce_channels=("C-news",),
            staff_users=tuple(staff.get("slack_users", ())),
            staff_usergroups=tuple(staff.get("slack_usergroups", ())),
            timeout=client_timeout,
        )
        config = make_config(
            database={"url": db_url},
            web={"enabled": True, "port": 0},
            staff=dict[str, object](staff),
            **slack_config,
        )
        runtime = Runtime(config, [adapter])
        await runtime.start()
        assert runtime.web is not None
        try:
            async with aiohttp.ClientSession() as http:
                yield SlackBot(
                    runtime,
                    fake,
                    f"http://127.0.0.1:{runtime.web.port}/slack/events",
                    http,
                    secret=signing_secret,
                )
        finally:
            await runtime.stop()


async def test_mention_answered_in_thread_with_feedback_buttons(sqlite_url: str) -> None:
    async with slack_http(sqlite_url) as bot:
        resp = await bot.event(mention("who is on the pytorch foundation board?"))
        assert resp.status == 200
        await bot.fake.wait_for(lambda: bot.fake.calls_to("chat.postMessage"))
        [post] = bot.fake.calls_to("chat.postMessage")
        assert post.args["thread_ts"] == "1700000100.000100"
        assert "Nvidia" in post.args["text"]
        buttons = post.args["blocks"][1]["elements"]
        assert [b["action_id"] for b in buttons] == ["feedback_up", "feedback_down"]
        assert post.headers["Authorization"] == "Bearer xoxb-test"


async def test_follow_up_in_the_thread_needs_no_mention(sqlite_url: str) -> None:
    async with slack_http(sqlite_url) as bot:
        await bot.event(mention("will my code need to change?"))
        await bot.fake.wait_for(lambda: len(bot.fake.calls_to("chat.postMessage")) == 1)
        # The listener runs after the ack; wait for the thread to be known.
        await eventually(
            lambda: bot.runtime.engagement.find_thread("slack", "C1", "1700000100.000100"),
            "the answered thread known",
        )
        await bot.event(
            {
                "type": "message",
                "user": "U-reader",
                "channel": "C1",
                "channel_type": "channel",
                "text": "does meta still invest in it?",
                "ts": "1700000200.000200",
                "thread_ts": "1700000100.000100",
            }
        )
        await bot.fake.wait_for(lambda: len(bot.fake.calls_to("chat.postMessage")) == 2)
        assert "Meta" in bot.fake.calls_to("chat.postMessage")[1].args["text"]


async def test_off_topic_declined_without_buttons(sqlite_url: str) -> None:
    async with slack_http(sqlite_url) as bot:
        await bot.event(mention("what's the weather in Paris?"))
        await bot.fake.wait_for(lambda: bot.fake.calls_to("chat.postMessage"))
        [post] = bot.fake.calls_to("chat.postMessage")
        assert "won't guess" in post.args["text"]
        assert "blocks" not in post.args


async def test_feedback_click_is_logged_and_acknowledged(sqlite_url: str) -> None:
    async with slack_http(sqlite_url) as bot:
        await bot.event(mention("is pytorch still open source?"))
        await bot.fake.wait_for(lambda: bot.fake.calls_to("chat.postMessage"))
        token = bot.fake.calls_to("chat.postMessage")[0].args["blocks"][1]["elements"][0]["value"]
        await logged(bot, "answer")
        await bot.action("feedback_down", token)
        await bot.fake.wait_for(lambda: bot.fake.hooks)
        assert bot.fake.hooks[0]["response_type"] == "ephemeral"
        assert "moderator will review" in bot.fake.hooks[0]["text"]
        [feedback] = await logged(bot, "feedback")
        assert (feedback.user, feedback.detail["helpful"]) == ("U-reader", False)
        assert [r.reason for r in await bot.runtime.engagement.open_reviews()] == ["thumbs_down"]


async def test_unauthorized_announce_refused_authorized_schedule_stored(sqlite_url: str) -> None:
    async with slack_http(sqlite_url) as bot:
        resp = await bot.command("now Hello everyone", user="U-random")
        assert resp.status == 200
        await bot.fake.wait_for(lambda: bot.fake.hooks)
        assert "only the comms staff" in bot.fake.hooks[0]["text"]
        await bot.command('schedule --at "in 2 days" --to slack Foundation news')
        await bot.fake.wait_for(lambda: len(bot.fake.hooks) == 2)
        assert bot.fake.hooks[1]["text"].startswith("Scheduled announcement #1")
        assert bot.fake.hooks[1]["response_type"] == "ephemeral"
        async with bot.runtime.db.session() as session:
            [stored] = (await session.scalars(select(Announcement))).all()
        assert stored.author == f"slack:{STAFF}" and stored.targets == ["slack"]


async def test_rate_limited_post_is_retried_by_the_sdk(sqlite_url: str) -> None:
    async with slack_http(sqlite_url) as bot:
        bot.fake.fail["chat.postMessage"] = [
            (429, {"ok": False, "error": "ratelimited"}, {"Retry-After": "1"})
        ]
        await bot.event(mention("who announced the pytorch foundation?"))
        await bot.fake.wait_for(lambda: len(bot.fake.calls_to("chat.postMessage")) == 2)
        first, second = bot.fake.calls_to("chat.postMessage")
        assert second.at - first.at >= 1.0  # waited out Retry-After before asking again
        [answer] = await logged(bot, "answer")
        assert answer.message_id and "delivery" not in answer.detail


async def test_bad_signature_is_401_and_nothing_happens(sqlite_url: str) -> None:
    async with slack_http(sqlite_url) as bot:
        body = json.dumps(
            {
                "type": "event_callback",
                "event_id": "EvBad",
                "event": mention("who is on the pytorch foundation board?"),
            }
        )
        resp = await bot.post(body, "application/json", secret="wrong-secret")
        assert resp.status == 401
        stale = await bot.http.post(
            bot.url,
            data=body,
            headers={
                "Content-Type": "application/json",
                "X-Slack-Request-Timestamp": "1000000000",
                "X-Slack-Signature": str(
                    SignatureVerifier(SECRET).generate_signature(timestamp="1000000000", body=body)
                ),
            },
        )
        assert stale.status == 401
        stale.release()
        # The same question, properly signed: answered once, so the two refused requests did
        # not get through (they would have been answered too: other event ids).
        resp = await bot.event(mention("who is on the pytorch foundation board?"))
        assert resp.status == 200
        await logged(bot, "answer")
        await asyncio.sleep(0.3)  # a late listener for a refused request would show by now
        [post] = bot.fake.calls_to("chat.postMessage")
        assert "Nvidia" in post.args["text"]
        assert len(await bot.runtime.engagement.list(LogFilter(kind="answer"))) == 1


async def test_event_retried_by_slack_is_answered_once(sqlite_url: str) -> None:
    async with slack_http(sqlite_url) as bot:
        event = mention("who is on the pytorch foundation board?")
        await bot.event(event, event_id="EvSame")
        await bot.event(
            event,
            event_id="EvSame",
            headers={"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "timeout"},
        )
        await bot.fake.wait_for(lambda: bot.fake.calls_to("chat.postMessage"))
        await bot.event(mention("is it still open source?", ts="1700000300.000300"))
        await bot.fake.wait_for(lambda: len(bot.fake.calls_to("chat.postMessage")) == 2)
        texts = [c.args["text"] for c in bot.fake.calls_to("chat.postMessage")]
        assert sum("Nvidia" in t for t in texts) == 1


async def test_announcement_posted_with_permalink_and_reactions_logged(sqlite_url: str) -> None:
    async with slack_http(sqlite_url) as bot:
        await bot.command("now --to slack The *PyTorch Foundation* is live!")
        await bot.fake.wait_for(lambda: bot.fake.hooks)
        [post] = [c for c in bot.fake.calls_to("chat.postMessage") if c.args["channel"] == "C-news"]
        assert post.args["text"] == "The _PyTorch Foundation_ is live!"
        assert post.args["blocks"][0]["text"]["type"] == "mrkdwn"
        async with bot.runtime.db.session() as session:
            [delivery] = (await session.scalars(select(Delivery))).all()
        assert delivery.state == "sent"
        assert delivery.url and delivery.url.startswith("https://fake.slack.com/archives/C-news/")
        await bot.event(
            {
                "type": "reaction_added",
                "user": "U-fan",
                "reaction": "tada",
                "item": {"type": "message", "channel": "C-news", "ts": delivery.external_id},
                "event_ts": "1",
            }
        )
        await bot.event(
            {
                "type": "reaction_removed",
                "user": "U-fan",
                "reaction": "tada",
                "item": {"type": "message", "channel": "C-news", "ts": delivery.external_id},
                "event_ts": "2",
            }
        )
        reactions = await logged(bot, "reaction", 2)
        assert [(r.announcement_id, r.detail["added"]) for r in reactions] == [
            (1, True),
            (1, False),
        ]


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        ("not_in_channel", "the bot is not a member of the channel: invite it with /invite"),
        ("not_authed", "no Slack token was sent (check SLACK_BOT_TOKEN)"),
        ("invalid_auth", "Slack rejected the bot token (check SLACK_BOT_TOKEN)"),
        ("channel_not_found", "the channel does not exist or the bot cannot see it"),
    ],
)
async def test_a_post_slack_refuses_for_good_fails_at_once_with_a_clear_reason(
    sqlite_url: str, code: str, reason: str
) -> None:
    async with slack_http(sqlite_url, announcements=FAST_RETRIES) as bot:
        bot.fake.fail["chat.postMessage"] = [(200, {"ok": False, "error": code}, {})]
        await bot.command("now --to slack Hello")
        await bot.fake.wait_for(lambda: bot.fake.hooks)
        [report] = bot.fake.hooks
        assert f"slack: failed ({reason}" in report["text"]
        assert report["response_type"] == "ephemeral"
        delivery = await settled(bot)
        assert delivery.state == "failed"
        await asyncio.sleep(0.3)  # several backoffs of FAST_RETRIES: a retry would show
        posts = [c for c in bot.fake.calls_to("chat.postMessage") if c.args["channel"] == "C-news"]
        assert len(posts) == 1  # not retried
        assert bot.fake.posted("C-news") == []


@pytest.mark.parametrize("mode", ["socket"])
async def test_socket_mode_answers_and_acks(sqlite_url: str, mode: str) -> None:
    async with fake_slack() as fake:
        adapter = SlackAdapter(
            bot_token="xoxb-test", app_token="xapp-test", mode=mode, api_url=f"{fake.base}/api/"
        )
        runtime = Runtime(
            make_config(
                database={"url": sqlite_url}, web={"enabled": False}, staff={"slack_users": [STAFF]}
            ),
            [adapter],
        )
        await runtime.start()
        try:
            open_call = fake.calls_to("apps.connections.open")[0]
            assert open_call.headers["Authorization"] == "Bearer xapp-test"
            await fake.outbox.put(
                {
                    "envelope_id": "env-1",
                    "type": "events_api",
                    "accepts_response_payload": False,
                    "retry_attempt": 0,
                    "retry_reason": "",
                    "payload": {
                        "type": "event_callback",
                        "event_id": "EvS1",
                        "team_id": "T1",
                        "api_app_id": "A1",
                        "event": mention("what is the linux foundation?"),
                        "authorizations": [{"team_id": "T1", "user_id": BOT_USER, "is_bot": True}],
                    },
                }
            )
            await fake.outbox.put(
                {
                    "envelope_id": "env-2",
                    "type": "slash_commands",
                    "accepts_response_payload": True,
                    "payload": {
                        "command": "/announce",
                        "text": "list",
                        "user_id": STAFF,
                        "channel_id": "C-desk",
                        "team_id": "T1",
                        "trigger_id": "t",
                        "response_url": f"{fake.base}/hooks/s",
                    },
                }
            )
            await fake.wait_for(lambda: fake.calls_to("chat.postMessage") and fake.hooks)
            assert "nonprofit" in fake.calls_to("chat.postMessage")[0].args["text"]
            assert "Nothing queued" in fake.hooks[0]["text"]
            await fake.wait_for(
                lambda: {"env-1", "env-2"} <= {a.get("envelope_id") for a in fake.acks}
            )
        finally:
            await runtime.stop()


async def test_thumbs_down_offers_a_moderator_who_gets_the_question(sqlite_url: str) -> None:
    async with slack_http(sqlite_url, slack={"moderators_channel": "C-mods"}) as bot:
        await bot.event(mention("is pytorch still open source?"))
        await bot.fake.wait_for(lambda: bot.fake.calls_to("chat.postMessage"))
        token = bot.fake.calls_to("chat.postMessage")[0].args["blocks"][1]["elements"][1]["value"]
        await logged(bot, "answer")
        await bot.action("feedback_down", token)
        await bot.fake.wait_for(lambda: bot.fake.hooks)
        offer = bot.fake.hooks[0]["blocks"][1]["elements"][0]
        assert (offer["action_id"], offer["value"]) == ("feedback_escalate", token)
        await bot.action("feedback_escalate", token)
        await bot.fake.wait_for(
            lambda: any(
                c.args["channel"] == "C-mods" for c in bot.fake.calls_to("chat.postMessage")
            )
        )
        [to_mods] = [
            c for c in bot.fake.calls_to("chat.postMessage") if c.args["channel"] == "C-mods"
        ]
        assert "is pytorch still open source?" in to_mods.args["text"]
        await bot.fake.wait_for(lambda: len(bot.fake.hooks) == 2)
        assert "asked a moderator" in bot.fake.hooks[1]["text"]


def modal_submission(private_metadata: str, text: str = "Modal *news*") -> str:
    """A filled-in ``/announce schedule`` form as Slack posts it."""
    submission = {
        "type": "view_submission",
        "team": {"id": "T1"},
        "user": {"id": STAFF},
        "api_app_id": "A1",
        "token": "legacy",
        "trigger_id": "t",
        "view": {
            "id": "V1",
            "type": "modal",
            "callback_id": "announce_schedule",
            "private_metadata": private_metadata,
            "state": {
                "values": {
                    "text": {"value": {"type": "plain_text_input", "value": text}},
                    "at": {"value": {"type": "plain_text_input", "value": "in 3 days"}},
                    "tz": {"value": {"type": "plain_text_input", "value": None}},
                    "to": {"value": {"type": "plain_text_input", "value": "slack"}},
                }
            },
        },
    }
    return urlencode({"payload": json.dumps(submission)})


async def test_announce_schedule_modal_is_confirmed_through_the_response_url(
    sqlite_url: str,
) -> None:
    """The command's channel may be one the bot is not in: chat.postEphemeral would fail."""
    async with slack_http(sqlite_url) as bot:
        bot.fake.fail["chat.postEphemeral"] = [(200, {"ok": False, "error": "not_in_channel"}, {})]
        await bot.command("schedule")
        await bot.fake.wait_for(lambda: bot.fake.calls_to("views.open"))
        view = bot.fake.calls_to("views.open")[0].args["view"]
        view = json.loads(view) if isinstance(view, str) else view
        assert [b["block_id"] for b in view["blocks"]] == ["text", "at", "tz", "to"]
        resp = await bot.post(
            modal_submission(view["private_metadata"]), "application/x-www-form-urlencoded"
        )
        assert resp.status == 200
        await bot.fake.wait_for(lambda: bot.fake.hooks)
        [reply] = bot.fake.hooks
        assert reply["text"].startswith("Scheduled announcement #1")
        assert reply["response_type"] == "ephemeral"
        assert bot.fake.calls_to("chat.postEphemeral") == []
        async with bot.runtime.db.session() as session:
            [stored] = (await session.scalars(select(Announcement))).all()
        assert stored.text == "Modal *news*" and stored.origin_channel == "C-desk"


async def test_announce_schedule_modal_without_a_usable_response_url_confirms_ephemerally(
    sqlite_url: str,
) -> None:
    async with slack_http(sqlite_url) as bot:
        # A form opened before response URLs were kept (bare channel id), then one submitted
        # after its response URL expired: both confirmed with chat.postEphemeral, once each.
        expired = json.dumps({"channel": "C-desk", "response_url": f"{bot.fake.base}/hooks/old"})
        bot.fake.expired_hooks.add("old")
        for count, metadata in enumerate(("C-desk", expired), start=1):
            resp = await bot.post(
                modal_submission(metadata, f"News number {count}"),
                "application/x-www-form-urlencoded",
            )
            assert resp.status == 200
            await bot.fake.wait_for(
                lambda n=count: len(bot.fake.calls_to("chat.postEphemeral")) == n
            )
        replies = [c.args for c in bot.fake.calls_to("chat.postEphemeral")]
        assert [(r["channel"], r["user"]) for r in replies] == [("C-desk", STAFF)] * 2
        assert replies[0]["text"].startswith("Scheduled announcement #1")
        assert replies[1]["text"].startswith("Scheduled announcement #2")
        assert bot.fake.hooks == []


async def test_announce_schedule_from_non_staff_is_refused_before_the_modal(
    sqlite_url: str,
) -> None:
    async with slack_http(sqlite_url) as bot:
        await bot.command("schedule", user="U-random")
        await bot.fake.wait_for(lambda: bot.fake.hooks)
        [refusal] = bot.fake.hooks
        assert refusal["text"] == (
            "Sorry, only the comms staff can use /announce. If you think you should, ask an admin."
        )
        assert refusal["response_type"] == "ephemeral"
        assert bot.fake.calls_to("views.open") == []


async def test_replies_to_a_posted_announcement_are_logged_not_answered(sqlite_url: str) -> None:
    async with slack_http(sqlite_url) as bot:
        await bot.command("now --to slack Big news today")
        await bot.fake.wait_for(lambda: bot.fake.hooks)
        posts_before = len(bot.fake.calls_to("chat.postMessage"))
        async with bot.runtime.db.session() as session:
            [delivery] = (await session.scalars(select(Delivery))).all()
        await bot.event(
            {
                "type": "message",
                "user": "U-fan",
                "channel": "C-news",
                "channel_type": "channel",
                "text": "congrats!!",
                "ts": "1700000999.000001",
                "thread_ts": delivery.external_id,
            }
        )
        [reply] = await logged(bot, "reply")
        assert (reply.announcement_id, reply.text, reply.user) == (1, "congrats!!", "U-fan")
        assert len(bot.fake.calls_to("chat.postMessage")) == posts_before


async def test_socket_mode_reconnects_after_disconnect(sqlite_url: str) -> None:
    async with fake_slack() as fake:
        adapter = SlackAdapter(
            bot_token="xoxb-test", app_token="xapp-test", mode="socket", api_url=f"{fake.base}/api/"
        )
        runtime = Runtime(
            make_config(database={"url": sqlite_url}, web={"enabled": False}), [adapter]
        )
        await runtime.start()
        try:
            opened = len(fake.calls_to("apps.connections.open"))
            await fake.outbox.put({"type": "disconnect", "reason": "refresh_requested"})
            await fake.wait_for(lambda: len(fake.calls_to("apps.connections.open")) > opened)
            await fake.outbox.put(
                {
                    "envelope_id": "env-after",
                    "type": "events_api",
                    "accepts_response_payload": False,
                    "retry_attempt": 0,
                    "retry_reason": "",
                    "payload": {
                        "type": "event_callback",
                        "event_id": "EvAfter",
                        "team_id": "T1",
                        "api_app_id": "A1",
                        "event": mention("who announced it?"),
                        "authorizations": [{"team_id": "T1", "user_id": BOT_USER, "is_bot": True}],
                    },
                }
            )
            await fake.wait_for(lambda: fake.calls_to("chat.postMessage"))
            assert "Zuckerberg" in fake.calls_to("chat.postMessage")[0].args["text"]
        finally:
            await runtime.stop()


# --- a post whose answer is lost (timeout) is looked up, never posted twice ------------------

#: Client timeout and the fake's late answer: the answer always comes after the client gave up.
#: Every other call must be answered within the timeout, also on a loaded machine.
CLIENT_TIMEOUT = 1.0
LATE = CLIENT_TIMEOUT + 1.0
FAST_RETRIES = {
    "reconcile_after_seconds": 0.3,
    "backoff_base_seconds": 0.01,
    "backoff_max_seconds": 0.05,
}


async def settled(bot: SlackBot) -> Delivery:
    """The delivery once it is no longer pending or sending (the retry timer is live)."""
    async with asyncio.timeout(PATIENCE):
        while True:
            async with bot.runtime.db.session() as session:
                rows = (await session.scalars(select(Delivery))).all()
            # The slash command is acknowledged before the announcement is stored, so the
            # row may not exist yet on the first look.
            if rows:
                [delivery] = rows
                if delivery.state not in ("pending", "sending"):
                    return delivery
            await asyncio.sleep(0.05)


async def test_timed_out_post_that_went_out_is_found_by_its_key_not_posted_again(
    sqlite_url: str,
) -> None:
    async with slack_http(
        sqlite_url, client_timeout=CLIENT_TIMEOUT, announcements=FAST_RETRIES
    ) as bot:
        bot.fake.time_out("chat.postMessage", posted=True, seconds=LATE)
        bot.runtime.scheduler.pause()  # look at the row between the two attempts
        started = time.time()
        await bot.command("now --to slack Big *news* today")
        await bot.fake.wait_for(lambda: bot.fake.hooks)
        report = bot.fake.hooks[0]["text"]
        assert "slack: will retry" in report and "Slack did not answer in time" in report
        assert "is looked up before it is posted again" in report
        async with bot.runtime.db.session() as session:
            [pending] = (await session.scalars(select(Delivery))).all()
        [marker] = pending.progress
        assert pending.state == "pending" and marker.startswith("?C-news|")
        assert bot.fake.posted("C-news")  # it did go out, only the answer was lost
        bot.runtime.scheduler.resume()
        delivery = await settled(bot)
        [post] = bot.fake.posted("C-news")
        assert post["metadata"] == {
            "event_type": "foundation_bot_post",
            "event_payload": {"key": f"fb-delivery:{delivery.id}:C-news:0"},
        }
        assert (delivery.state, delivery.external_id) == ("sent", post["ts"])
        assert delivery.progress == [f"C-news|{post['ts']}"]
        assert delivery.url and delivery.url.endswith(post["ts"].replace(".", ""))
        posts = [c for c in bot.fake.calls_to("chat.postMessage") if c.args["channel"] == "C-news"]
        assert len(posts) == 1  # found, so never sent again
        [lookup] = bot.fake.calls_to("conversations.history")
        assert lookup.args["channel"] == "C-news"
        assert lookup.args["include_all_metadata"] in ("1", "true", True)
        assert float(lookup.args["oldest"]) < started < float(post["ts"]) + 1
        # Not looked up before the settling delay had passed since the lost attempt.
        assert bot.fake.calls.index(lookup) > bot.fake.calls.index(posts[0])
        [event] = await logged(bot, "announcement_posted")
        assert event.message_id == post["ts"]


async def test_timed_out_post_that_never_arrived_is_posted_once_on_the_retry(
    sqlite_url: str,
) -> None:
    async with slack_http(
        sqlite_url, client_timeout=CLIENT_TIMEOUT, announcements=FAST_RETRIES
    ) as bot:
        bot.fake.time_out("chat.postMessage", posted=False, seconds=LATE)
        await bot.command("now --to slack Lost on the way")
        delivery = await settled(bot)
        [post] = bot.fake.posted("C-news")
        assert post["text"] == "Lost on the way"
        assert (delivery.state, delivery.external_id) == ("sent", post["ts"])
        assert delivery.attempts == 2
        calls = [c for c in bot.fake.calls_to("chat.postMessage") if c.args["channel"] == "C-news"]
        assert len(calls) == 2  # the lost request, then the one posted after the lookup
        assert calls[0].args["metadata"] == calls[1].args["metadata"]
        assert len(bot.fake.calls_to("conversations.history")) == 1


async def test_find_posted_looks_in_the_thread_for_a_reply_and_matches_the_key_only(
    sqlite_url: str,
) -> None:
    async with fake_slack() as fake:
        adapter = SlackAdapter(
            bot_token="xoxb-test",
            signing_secret=SECRET,
            mode="http",
            api_url=f"{fake.base}/api/",
            timeout=CLIENT_TIMEOUT,
        )
        await adapter.start(_no_events)
        try:
            since = datetime.now(UTC) - timedelta(seconds=5)
            root = await adapter.send(OutgoingMessage(Conversation("slack", "C-news"), "Root"))
            reply = OutgoingMessage(
                Conversation("slack", "C-news"),
                "Part two",
                reply_to=root.message_id,
                idempotency_key="k-2",
            )
            fake.time_out("chat.postMessage", posted=True, seconds=LATE)
            with pytest.raises(TransientPlatformError) as caught:
                await adapter.send(reply)
            assert caught.value.ambiguous
            found = await adapter.find_posted(reply, "k-2", since)
            [posted] = fake.posted("C-news", "Part two")
            assert found is not None and found.message_id == posted["ts"]
            assert found.thread_id == root.message_id
            [lookup] = fake.calls_to("conversations.replies")
            assert lookup.args["ts"] == root.message_id
            assert await adapter.find_posted(reply, "k-other", since) is None
            later = datetime.now(UTC) + timedelta(seconds=5)
            assert await adapter.find_posted(reply, "k-2", later) is None
        finally:
            await adapter.stop()


async def _no_events(event: object) -> None:
    raise AssertionError(f"unexpected event {event!r}")


async def test_connection_dropped_after_the_post_is_looked_up_not_resent_by_the_sdk(
    sqlite_url: str,
) -> None:
    async with slack_http(
        sqlite_url, client_timeout=CLIENT_TIMEOUT, announcements=FAST_RETRIES
    ) as bot:
        bot.fake.drop("chat.postMessage")  # posted, then the connection closes unanswered
        await bot.command("now --to slack Dropped line")
        delivery = await settled(bot)
        [post] = bot.fake.posted("C-news")
        assert (delivery.state, delivery.external_id) == ("sent", post["ts"])
        posts = [c for c in bot.fake.calls_to("chat.postMessage") if c.args["channel"] == "C-news"]
        assert len(posts) == 1 and len(bot.fake.calls_to("conversations.history")) == 1


async def test_an_answer_is_still_resent_by_the_sdk_when_the_connection_drops(
    sqlite_url: str,
) -> None:
    async with slack_http(sqlite_url) as bot:
        bot.fake.drop("chat.postMessage")  # keep-alive connection closed under the request
        await bot.event(mention("who is on the pytorch foundation board?"))
        await bot.fake.wait_for(lambda: len(bot.fake.calls_to("chat.postMessage")) == 2)
        [answer] = await logged(bot, "answer")
        assert answer.message_id


async def test_a_permalink_failure_after_the_post_does_not_post_it_again(sqlite_url: str) -> None:
    async with slack_http(sqlite_url, announcements=FAST_RETRIES) as bot:
        bot.fake.fail["chat.getPermalink"] = [(500, {"ok": False, "error": "internal_error"}, {})]
        await bot.command("now --to slack Linkless but posted")
        delivery = await settled(bot)
        [post] = bot.fake.posted("C-news")
        assert (delivery.state, delivery.external_id, delivery.url) == ("sent", post["ts"], None)


async def test_with_a_fifth_of_requests_failing_every_announcement_goes_out_once(
    sqlite_url: str,
) -> None:
    """429s, 500s, timeouts (with and without the post made) and dropped connections at
    random, 20 % of the posts and history reads: each announcement is posted exactly once."""
    texts = [f"Announcement number {n} for the foundation" for n in range(10)]
    async with slack_http(
        sqlite_url,
        client_timeout=CLIENT_TIMEOUT,
        announcements={**FAST_RETRIES, "max_attempts": 12},
    ) as bot:
        bot.fake.chaos, bot.fake.rng, bot.fake.chaos_late = 0.2, random.Random(5), LATE
        bot.fake.time_out("chat.postMessage", posted=True, seconds=LATE)  # at least this one
        for text in texts:
            await bot.command(f"now --to slack {text}")
        await bot.fake.wait_for(lambda: len(bot.fake.hooks) == len(texts), limit=2 * PATIENCE)
        async with asyncio.timeout(2 * PATIENCE):
            while True:
                async with bot.runtime.db.session() as session:
                    rows = (await session.scalars(select(Delivery))).all()
                assert all(d.state in ("pending", "sending", "sent") for d in rows)
                if len(rows) == len(texts) and all(d.state == "sent" for d in rows):
                    break
                await asyncio.sleep(0.05)
        posted = [m["text"] for m in bot.fake.posted("C-news")]
        assert sorted(posted) == sorted(texts)  # each exactly once
        for delivery in rows:
            [post] = [m for m in bot.fake.posted("C-news") if m["ts"] == delivery.external_id]
            assert post["metadata"]["event_payload"]["key"].startswith(
                f"fb-delivery:{delivery.id}:"
            )
        assert bot.fake.calls_to("conversations.history")


# --- start-up: rejected tokens fail at once, with the token's name -------------------------


def socket_runtime(fake: FakeSlack, db_url: str, **tokens: str) -> Runtime:
    adapter = SlackAdapter(
        bot_token=tokens.get("bot_token", "xoxb-test"),
        app_token=tokens.get("app_token", "xapp-test"),
        signing_secret=tokens.get("signing_secret"),
        mode="socket",
        api_url=f"{fake.base}/api/",
        announce_channels=("C-news",),
        staff_users=(STAFF,),
    )
    config = make_config(
        database={"url": db_url}, web={"enabled": False}, staff={"slack_users": [STAFF]}
    )
    return Runtime(config, [adapter])


async def test_a_rejected_app_token_fails_the_start_at_once_naming_slack_app_token(
    sqlite_url: str,
) -> None:
    async with fake_slack() as fake:
        # Rejected every time: slack-sdk alone would retry the connection forever.
        fake.fail["apps.connections.open"] = [(200, {"ok": False, "error": "invalid_auth"}, {})] * 5
        runtime = socket_runtime(fake, sqlite_url)
        try:
            with pytest.raises(PermanentPlatformError) as caught:
                async with asyncio.timeout(PATIENCE):
                    await runtime.start()
        finally:
            await runtime.stop()
        message = str(caught.value)
        assert message == (
            "slack: Slack rejected the app-level token (invalid_auth): check SLACK_APP_TOKEN, "
            "an xapp- token with the connections:write scope"
        )
        assert len(fake.calls_to("apps.connections.open")) == 1
        assert fake.calls_to("apps.connections.open")[0].headers["Authorization"] == (
            "Bearer xapp-test"
        )


@pytest.mark.parametrize("mode", ["socket", "http"])
async def test_a_rejected_bot_token_fails_the_start_naming_slack_bot_token(
    sqlite_url: str, mode: str
) -> None:
    async with fake_slack() as fake:
        fake.fail["auth.test"] = [(200, {"ok": False, "error": "invalid_auth"}, {})]
        adapter = SlackAdapter(
            bot_token="xoxb-revoked",
            app_token="xapp-test" if mode == "socket" else None,
            signing_secret=SECRET if mode == "http" else None,
            mode=mode,
            api_url=f"{fake.base}/api/",
        )
        with pytest.raises(PermanentPlatformError) as caught:
            async with asyncio.timeout(PATIENCE):
                await adapter.start(_no_events)
        await adapter.stop()
        assert str(caught.value) == (
            "slack: Slack rejected the bot token (invalid_auth): check SLACK_BOT_TOKEN, the app's "
            "xoxb- Bot User OAuth Token"
        )
        [check] = fake.calls_to("auth.test")
        assert check.headers["Authorization"] == "Bearer xoxb-revoked"
        assert fake.calls_to("apps.connections.open") == []  # the app token is not the problem
        assert not adapter.is_connected()


# --- who gets answered, who counts as staff -----------------------------------------------


async def test_a_direct_message_without_a_mention_is_answered(sqlite_url: str) -> None:
    async with slack_http(sqlite_url) as bot:
        await bot.event(
            {
                "type": "message",
                "channel_type": "im",
                "channel": "D-reader",
                "user": "U-reader",
                "text": "who is on the pytorch foundation board?",
                "ts": "1700000400.000400",
                "event_ts": "1700000400.000400",
            }
        )
        await bot.fake.wait_for(lambda: bot.fake.calls_to("chat.postMessage"))
        await logged(bot, "answer")
        [post] = bot.fake.calls_to("chat.postMessage")
        assert post.args["channel"] == "D-reader"
        assert "Nvidia" in post.args["text"]


async def test_staff_by_user_group_member_allowed_non_member_refused(sqlite_url: str) -> None:
    async with slack_http(sqlite_url, staff={"slack_usergroups": ["S-comms"]}) as bot:
        bot.fake.usergroups = [
            {"id": "S-comms", "handle": "comms", "users": ["U-comms"]},
            {"id": "S-other", "handle": "other", "users": ["U-outsider"]},
        ]
        await bot.command("list", user="U-comms")
        await bot.fake.wait_for(lambda: len(bot.fake.hooks) == 1)
        assert "Nothing queued" in bot.fake.hooks[0]["text"]
        await bot.command("list", user="U-outsider")
        await bot.fake.wait_for(lambda: len(bot.fake.hooks) == 2)
        assert "only the comms staff" in bot.fake.hooks[1]["text"]
        await bot.command("schedule", user="U-comms")  # the form, for group members too
        await bot.fake.wait_for(lambda: bot.fake.calls_to("views.open"))
        assert len(bot.fake.hooks) == 2


# --- the app manifest subscribes to what the adapter listens to ---------------------------

#: Manifest bot events an Events API event needs (``message`` arrives per conversation kind).
MANIFEST_EVENTS = {"message": {"message.channels", "message.groups", "message.im"}}


def test_the_app_manifest_subscribes_to_every_event_the_adapter_handles() -> None:
    manifest = yaml.safe_load((Path(__file__).parent.parent / "slack-app-manifest.yml").read_text())
    settings = manifest["settings"]
    subscribed = set(settings["event_subscriptions"]["bot_events"])
    for event in BOT_EVENTS:
        needed = MANIFEST_EVENTS.get(event, {event})
        assert needed <= subscribed, f"{event}: the manifest lacks {needed - subscribed}"
    commands = [c["command"] for c in manifest["features"]["slash_commands"]]
    assert commands == ["/announce"]
    assert settings["interactivity"]["is_enabled"] is True
    assert settings["socket_mode_enabled"] is True
    scopes = set(manifest["oauth_config"]["scopes"]["bot"])
    assert {"app_mentions:read", "chat:write", "commands", "reactions:read"} <= scopes


# --- secrets never reach a log record -------------------------------------------------------

BOT_TOKEN = "xoxb-1234567890-0987654321-secretbottokenvalue"
APP_TOKEN = "xapp-1-A0123456789-1234567890-secretapptokenvalue"
SIGNING = "8f742231b10e8888abcd99yyysecretsigning"


def envelope(number: int, kind: str, payload: dict[str, Any]) -> dict[str, Any]:
    return {
        "envelope_id": f"env-{number}",
        "type": kind,
        "accepts_response_payload": kind == "slash_commands",
        "retry_attempt": 0,
        "retry_reason": "",
        "payload": payload,
    }


def event_callback(event: dict[str, Any], event_id: str) -> dict[str, Any]:
    return {
        "type": "event_callback",
        "event_id": event_id,
        "team_id": "T1",
        "api_app_id": "A1",
        "event": event,
        "authorizations": [{"team_id": "T1", "user_id": BOT_USER, "is_bot": True}],
    }


@pytest.mark.parametrize("mode", ["socket", "http"])
async def test_no_token_or_signing_secret_in_any_log_record_at_debug(
    sqlite_url: str, mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A whole session at DEBUG: a question, a command and an announcement posted."""
    caplog.set_level(logging.DEBUG)
    if mode == "http":
        async with slack_http(sqlite_url, bot_token=BOT_TOKEN, signing_secret=SIGNING) as bot:
            await bot.event(mention("who is on the pytorch foundation board?"))
            await bot.command("now --to slack The foundation is live")
            await bot.fake.wait_for(
                lambda: len(bot.fake.calls_to("chat.postMessage")) == 2 and bot.fake.hooks
            )
            await bot.action("feedback_up", "token")
            await logged(bot, "answer")
            headers = [c.headers.get("Authorization") for c in bot.fake.calls]
    else:
        async with fake_slack() as fake:
            runtime = socket_runtime(
                fake, sqlite_url, bot_token=BOT_TOKEN, app_token=APP_TOKEN, signing_secret=SIGNING
            )
            await runtime.start()
            try:
                question = event_callback(mention("who is on the pytorch foundation board?"), "E1")
                await fake.outbox.put(envelope(1, "events_api", question))
                command = {
                    "command": "/announce",
                    "text": "now --to slack The foundation is live",
                    "user_id": STAFF,
                    "channel_id": "C-desk",
                    "team_id": "T1",
                    "trigger_id": "t",
                    "response_url": f"{fake.base}/hooks/s",
                }
                await fake.outbox.put(envelope(2, "slash_commands", command))
                await fake.wait_for(
                    lambda: len(fake.calls_to("chat.postMessage")) == 2 and fake.hooks
                )
                await fake.wait_for(
                    lambda: {"env-1", "env-2"} <= {a["envelope_id"] for a in fake.acks}
                )
            finally:
                await runtime.stop()
            headers = [c.headers.get("Authorization") for c in fake.calls]
    assert f"Bearer {BOT_TOKEN}" in headers  # the secrets were in use
    assert mode == "http" or f"Bearer {APP_TOKEN}" in headers
    assert len(caplog.records) > 20  # DEBUG was on: the SDKs had plenty to say
    everything = caplog.text + "\n".join(
        f"{r.getMessage()} {r.args!r} {r.exc_text or ''} {r.stack_info or ''}"
        for r in caplog.records
    )
    for secret in (BOT_TOKEN, APP_TOKEN, SIGNING):
        assert secret not in everything
        assert secret[-16:] not in everything  # not even the end of one


# --- an unexpected failure: a traceback in the server log, one line to the user ------------


async def test_a_command_that_crashes_gets_the_one_line_apology_and_a_logged_traceback(
    sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(command: SlashCommand) -> str:
        raise RuntimeError("Traceback (most recent call last): internal detail")

    async with slack_http(sqlite_url) as bot:
        bot.runtime.router.register("announce", broken, staff_only=True, summary="broken")
        await bot.command("list")
        await bot.fake.wait_for(lambda: bot.fake.hooks)
        [reply] = bot.fake.hooks
        assert reply["text"] == FAILURE and "\n" not in reply["text"]
        assert "internal detail" not in reply["text"]
        assert reply["response_type"] == "ephemeral"
    [record] = [r for r in caplog.records if r.exc_info and r.exc_info[0] is RuntimeError]
    assert "command failed name=announce" in record.getMessage()


async def test_a_slack_listener_that_crashes_logs_a_traceback_with_context_and_apologizes(
    sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with slack_http(sqlite_url) as bot:
        for _ in range(3):  # the first try and both of the SDK's retries
            bot.fake.drop("views.open")
        await bot.command("schedule")
        await bot.fake.wait_for(lambda: bot.fake.hooks)
        [reply] = bot.fake.hooks
        assert reply["text"] == FAILURE
        assert reply["response_type"] == "ephemeral"
        assert len(bot.fake.calls_to("views.open")) == 3
    [record] = [r for r in caplog.records if r.getMessage().startswith("slack listener failed")]
    assert record.levelno == logging.ERROR and record.exc_info is not None
    assert "Traceback" in caplog.text
    message = record.getMessage()
    assert "command=/announce" in message and f"user={STAFF}" in message
    assert "hooks" not in message and "legacy" not in message  # no response URL, no token


@pytest.mark.parametrize("debug", [False, True])
async def test_sdk_request_debug_lines_appear_only_with_debug_logging(
    debug: bool, caplog: pytest.LogCaptureFixture
) -> None:
    """slack-sdk builds a debug line per request whenever its logger's own level is unset;
    the adapter pins it to the effective level, and --verbose still shows the lines."""
    from adapters.slack import SDK_LOGGERS

    for name in SDK_LOGGERS:
        logging.getLogger(name).setLevel(logging.NOTSET)
    caplog.set_level(logging.DEBUG if debug else logging.WARNING)
    async with fake_slack() as fake:
        adapter = SlackAdapter(
            bot_token="xoxb-test", signing_secret=SECRET, mode="http", api_url=f"{fake.base}/api/"
        )
        await adapter.start(_no_events)
        try:
            await adapter.send(OutgoingMessage(Conversation("slack", "C-news"), "Hello"))
        finally:
            await adapter.stop()
    levels = {logging.getLogger(name).level for name in SDK_LOGGERS}
    assert levels == {logging.DEBUG if debug else logging.WARNING}
    sending = [r for r in caplog.records if r.getMessage().startswith("Sending a request")]
    assert bool(sending) is debug
    for name in SDK_LOGGERS:
        logging.getLogger(name).setLevel(logging.NOTSET)


@dataclass
class LoneSlack:
    """The Slack adapter alone in HTTP mode on the bot's web server, queueing its events."""

    adapter: SlackAdapter
    fake: FakeSlack
    events: asyncio.Queue[InboundEvent]
    url: str
    http: aiohttp.ClientSession

    async def click(self, action_id: str, value: str, *, thread_ts: str | None = None) -> None:
        message: dict[str, Any] = {"ts": "1700000000.000002"}
        if thread_ts:
            message["thread_ts"] = thread_ts
        payload = {
            "type": "block_actions",
            "user": {"id": "U-reader"},
            "team": {"id": "T1"},
            "api_app_id": "A1",
            "token": "legacy",
            "trigger_id": "trig",
            "channel": {"id": "C1"},
            "message": message,
            "response_url": f"{self.fake.base}/hooks/act",
            "actions": [
                {
                    "action_id": action_id,
                    "value": value,
                    "type": "button",
                    "block_id": "choices",
                    "action_ts": "1700000001.000001",
                }
            ],
        }
        body = urlencode({"payload": json.dumps(payload)})
        resp = await post_signed(
            self.http, self.url, SECRET, body, "application/x-www-form-urlencoded"
        )
        assert resp.status == 200


@asynccontextmanager
async def lone_slack() -> AsyncIterator[LoneSlack]:
    events: asyncio.Queue[InboundEvent] = asyncio.Queue()

    async def record(event: InboundEvent) -> None:
        events.put_nowait(event)

    async def database_ok() -> None:
        return None

    async with fake_slack() as fake:
        adapter = SlackAdapter(
            bot_token=TEST_BOT_TOKEN,
            signing_secret=SECRET,
            mode="http",
            api_url=f"{fake.base}/api/",
            retries=0,
        )
        server = WebServer(build_app(database_ok, {"slack": adapter}), "127.0.0.1", 0)
        await server.start()
        await adapter.start(record)
        try:
            async with aiohttp.ClientSession() as http:
                url = f"http://127.0.0.1:{server.port}/slack/events"
                yield LoneSlack(adapter, fake, events, url, http)
        finally:
            await adapter.stop()
            await server.stop()


@pytest.mark.parametrize("data", ["upstream connect error", "<html>502 Bad Gateway</html>"])
def test_translate_survives_an_error_body_that_is_not_json(data: str) -> None:
    # slack-sdk keeps a body that is not JSON as a string.
    def error(status: int) -> SlackApiError:
        response = AsyncSlackResponse(
            client=None,
            http_verb="POST",
            api_url="http://127.0.0.1/api/chat.postMessage",
            req_args={},
            data=data,  # type: ignore[arg-type]  # what slack-sdk stores for a text body
            headers={},
            status_code=status,
        )
        return SlackApiError("refused", response)  # type: ignore[no-untyped-call]

    server = translate(error(503), write=True)
    assert isinstance(server, TransientPlatformError) and not server.ambiguous
    assert server.reason == "Slack server error (503)"
    refused = translate(error(403))
    assert isinstance(refused, PermanentPlatformError)
    assert refused.reason == "Slack refused the request (403)"
    assert isinstance(translate(error(429)), TransientPlatformError)


@pytest.mark.parametrize(
    ("status", "error"),
    [(503, TransientPlatformError), (502, TransientPlatformError), (403, PermanentPlatformError)],
)
async def test_a_plain_text_error_from_a_proxy_is_a_platform_error(
    status: int, error: type[Exception]
) -> None:
    async with lone_slack() as slack:
        for method in ("chat.postMessage", "chat.postMessage"):
            slack.fake.fail.setdefault(method, []).append(
                (status, "upstream connect error or disconnect/reset before headers", {})
            )
        news = Conversation("slack", "C-news")
        # An announcement post (keyed: never re-sent by the SDK) and an answer both get the
        # core's error, so the delivery engine retries and the dispatcher logs it.
        with pytest.raises(error):
            await slack.adapter.send(OutgoingMessage(news, "Big news", idempotency_key="d1:0"))
        with pytest.raises(error):
            await slack.adapter.send(OutgoingMessage(news, "An answer", reply_to="1.000"))


async def test_suggestions_are_buttons_and_a_click_is_the_clickers_pick() -> None:
    choices = (
        Choice("pick-board", "Who sits on the governing board?"),
        Choice("pick-why", "Why did PyTorch move to the Linux Foundation? " * 3),
    )
    async with lone_slack() as slack:
        where = Conversation("slack", "C1", thread_id="1700000000.000001")
        await slack.adapter.send(OutgoingMessage(where, "Which did you mean?", choices=choices))
        [post] = slack.fake.calls_to("chat.postMessage")
        section, actions = post.args["blocks"]
        assert section["text"]["text"] == "Which did you mean?"
        assert [b["value"] for b in actions["elements"]] == ["pick-board", "pick-why"]
        labels = [b["text"]["text"] for b in actions["elements"]]
        assert labels[0] == "Who sits on the governing board?"
        assert len(labels[1]) <= 75 and labels[1].endswith("…")
        assert len({b["action_id"] for b in actions["elements"]}) == 2  # unique in the block

        await slack.click(
            actions["elements"][1]["action_id"], "pick-why", thread_ts=where.thread_id
        )
        async with asyncio.timeout(10):
            picked = await slack.events.get()
    assert isinstance(picked, ChoicePicked)
    assert (picked.token, picked.author.id) == ("pick-why", "U-reader")
    assert picked.where == where
    assert picked.event_id.startswith("action:")


async def test_suggestions_and_feedback_buttons_share_a_message() -> None:
    async with lone_slack() as slack:
        await slack.adapter.send(
            OutgoingMessage(
                Conversation("slack", "C1"),
                "Answer",
                feedback_token="ref1",
                choices=(Choice("other", "Something else?"),),
            )
        )
        [post] = slack.fake.calls_to("chat.postMessage")
        assert [b.get("block_id") for b in post.args["blocks"]] == [None, "choices", "feedback"]


@pytest.mark.parametrize("mode", ["socket", "http"])
async def test_a_slack_start_with_the_tokens_in_the_environment_logs_no_warning(
    sqlite_url: str, mode: str, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The way operators run it (SLACK_BOT_TOKEN in the environment): Bolt used to warn at
    every start that the token it read from there was unused."""
    monkeypatch.setenv("SLACK_BOT_TOKEN", TEST_BOT_TOKEN)
    monkeypatch.setenv("SLACK_SIGNING_SECRET", SECRET)
    caplog.set_level(logging.INFO)
    if mode == "http":
        async with slack_http(sqlite_url) as bot:
            assert bot.runtime.adapters["slack"].is_connected()
    else:
        async with fake_slack() as fake:
            runtime = socket_runtime(fake, sqlite_url)
            await runtime.start()
            try:
                assert runtime.adapters["slack"].is_connected()
            finally:
                await runtime.stop()
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
