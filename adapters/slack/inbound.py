"""What Slack sends the bot, as the core's events: messages, mentions, reactions and button
clicks (answer feedback, suggestion picks). Bolt calls the listeners registered here after it
has verified and acknowledged the request."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Mapping
from typing import Any

from slack_bolt.app.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from adapters.base import EventSink
from adapters.slack.errors import PLATFORM, slack_errors
from adapters.slack.outbound import Reply
from adapters.slack.ui import CHOICE_PREFIX, FEEDBACK_DOWN, FEEDBACK_ESCALATE, FEEDBACK_UP
from bot.errors import PlatformError
from bot.events import (
    Author,
    ChoicePicked,
    Conversation,
    Feedback,
    InboundEvent,
    IncomingMessage,
    Reaction,
)

log = logging.getLogger(__name__)

GROUP_CACHE_SECONDS = 300
#: The Events API events the adapter listens to; slack-app-manifest.yml must subscribe to
#: each (``message`` as message.channels, message.groups and message.im).
BOT_EVENTS = ("app_mention", "message", "reaction_added", "reaction_removed")


class Inbound:
    """Turns Bolt's payloads into the core's events and hands them to the sink."""

    def __init__(self, client: AsyncWebClient, staff_usergroups: tuple[str, ...]) -> None:
        self._client = client
        self._staff_groups = staff_usergroups
        self._groups: dict[str, frozenset[str]] = {}
        self._groups_at = 0.0
        self.sink: EventSink | None = None

    async def deliver(self, event: InboundEvent) -> None:
        """Hand ``event`` to the core (dropped before the adapter has started)."""
        if self.sink is not None:
            await self.sink(event)

    async def author(self, user: str) -> Author:
        """The user, with the configured staff user groups they are in."""
        return Author(id=user, roles=await self._groups_of(user))

    async def _groups_of(self, user: str) -> frozenset[str]:
        """The configured staff user groups this user is in (cached for a few minutes)."""
        if not self._staff_groups:
            return frozenset()
        if time.monotonic() - self._groups_at > GROUP_CACHE_SECONDS:
            members: dict[str, set[str]] = {}
            try:
                with slack_errors():
                    response = await self._client.usergroups_list(include_users=True)
            except PlatformError as exc:
                log.warning("cannot read Slack user groups: %s", exc.reason)
                return self._groups.get(user, frozenset())
            groups: list[dict[str, Any]] = response.get("usergroups", []) or []
            for group in groups:
                if group.get("id") in self._staff_groups:
                    for member in group.get("users", []) or []:
                        members.setdefault(member, set()).add(group["id"])
            self._groups = {u: frozenset(g) for u, g in members.items()}
            self._groups_at = time.monotonic()
        return self._groups.get(user, frozenset())

    def register(self, app: AsyncApp) -> None:
        """Add the event and button listeners to ``app``."""

        async def mention(event: dict[str, Any], body: dict[str, Any]) -> None:
            await self.deliver(await self._message(event, body, mentions_bot=True))

        async def message(event: dict[str, Any], body: dict[str, Any], context: Any) -> None:
            if event.get("subtype") or event.get("bot_id"):
                return  # edits, joins, other bots: not questions
            text = str(event.get("text") or "")
            is_direct = event.get("channel_type") == "im"
            bot_user = getattr(context, "bot_user_id", None) or context.get("bot_user_id")
            if not is_direct and bot_user and f"<@{bot_user}>" in text:
                return  # app_mention delivers this one
            if not is_direct and not event.get("thread_ts"):
                return  # channel chatter outside threads is not for the bot
            await self.deliver(await self._message(event, body, mentions_bot=False))

        async def reaction_added(event: dict[str, Any], body: dict[str, Any]) -> None:
            await self.deliver(await self._reaction(event, body, added=True))

        async def reaction_removed(event: dict[str, Any], body: dict[str, Any]) -> None:
            await self.deliver(await self._reaction(event, body, added=False))

        # Events first: Bolt tries listeners in the order they were added and nearly every
        # request is an event (a question), so it should not be matched against the
        # command, view and action listeners before its own.
        handlers = {
            "app_mention": mention,
            "message": message,
            "reaction_added": reaction_added,
            "reaction_removed": reaction_removed,
        }
        for name in BOT_EVENTS:
            app.event(name)(handlers[name])

        for action_id, helpful, escalate in (
            (FEEDBACK_UP, True, False),
            (FEEDBACK_DOWN, False, False),
            (FEEDBACK_ESCALATE, False, True),
        ):
            app.action(action_id)(self._feedback_listener(helpful, escalate))

        @app.action(re.compile(rf"^{CHOICE_PREFIX}\d+$"))
        async def choice(ack: Any, body: dict[str, Any]) -> None:
            await ack()
            await self.deliver(await self._choice(body))

    def _feedback_listener(self, helpful: bool, escalate: bool) -> Any:
        async def feedback(ack: Any, body: dict[str, Any]) -> None:
            await ack()
            await self.deliver(await self._feedback(body, helpful=helpful, escalate=escalate))

        return feedback

    async def _message(
        self, event: Mapping[str, Any], body: Mapping[str, Any], *, mentions_bot: bool
    ) -> IncomingMessage:
        channel = str(event.get("channel") or "")
        return IncomingMessage(
            where=Conversation(
                PLATFORM,
                channel,
                thread_id=event.get("thread_ts"),
                is_direct=event.get("channel_type") == "im",
            ),
            author=await self.author(str(event.get("user") or "")),
            text=str(event.get("text") or ""),
            message_id=str(event.get("ts") or ""),
            mentions_bot=mentions_bot,
            # app_mention and message share a delivery id; keep them apart, retries equal.
            event_id=f"{body.get('event_id', '')}:{event.get('type', '')}",
        )

    async def _reaction(
        self, event: Mapping[str, Any], body: Mapping[str, Any], *, added: bool
    ) -> Reaction:
        item = event.get("item") or {}
        return Reaction(
            where=Conversation(PLATFORM, str(item.get("channel") or "")),
            author=await self.author(str(event.get("user") or "")),
            message_id=str(item.get("ts") or ""),
            emoji=str(event.get("reaction") or ""),
            added=added,
            event_id=str(body.get("event_id") or ""),
        )

    async def _feedback(
        self, body: Mapping[str, Any], *, helpful: bool, escalate: bool
    ) -> Feedback:
        action, user, where, handle = self._click(body)
        return Feedback(
            where=where,
            author=await self.author(user),
            token=str(action.get("value") or ""),
            helpful=helpful,
            escalate=escalate,
            event_id=f"action:{action.get('action_ts', '')}:{user}",
            handle=handle,
        )

    async def _choice(self, body: Mapping[str, Any]) -> ChoicePicked:
        action, user, where, handle = self._click(body)
        return ChoicePicked(
            where=where,
            author=await self.author(user),
            token=str(action.get("value") or ""),
            event_id=f"action:{action.get('action_ts', '')}:{user}",
            handle=handle,
        )

    @staticmethod
    def _click(
        body: Mapping[str, Any],
    ) -> tuple[Mapping[str, Any], str, Conversation, Reply]:
        """A ``block_actions`` payload's action, clicker, conversation and reply handle."""
        actions = body.get("actions") or [{}]
        action = actions[0] if isinstance(actions[0], Mapping) else {}
        user = str((body.get("user") or {}).get("id") or "")
        channel = str((body.get("channel") or {}).get("id") or "")
        message = body.get("message") or {}
        # A click in a thread stays in that thread; on a top-level message (a DM answer) the
        # conversation is the channel itself.
        where = Conversation(PLATFORM, channel, thread_id=message.get("thread_ts"))
        return action, user, where, Reply(body.get("response_url"), channel, user)


def describe_request(body: Mapping[str, Any]) -> str:
    """What a failed request was, as key=value fields: kinds, names and ids, never tokens."""
    if not isinstance(body, Mapping):
        return "request=unknown"

    def inner(key: str) -> Mapping[str, Any]:
        value = body.get(key)
        return value if isinstance(value, Mapping) else {}

    actions = body.get("actions")
    action = actions[0] if isinstance(actions, list) and actions else {}
    fields = {
        "type": body.get("type") or ("slash_command" if body.get("command") else None),
        "event": inner("event").get("type"),
        "event_id": body.get("event_id"),
        "command": body.get("command"),
        "action": action.get("action_id") if isinstance(action, Mapping) else None,
        "callback": inner("view").get("callback_id"),
        "user": body.get("user_id") or inner("user").get("id") or inner("event").get("user"),
        "channel": body.get("channel_id") or inner("channel").get("id"),
    }
    return " ".join(f"{k}={v}" for k, v in fields.items() if v) or "request=unknown"
