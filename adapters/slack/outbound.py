"""What the bot sends to Slack: answers, ephemeral replies, announcements, deletions, and the
look-up of an announcement post whose answer was lost."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from adapters.slack.errors import PLATFORM, slack_errors
from adapters.slack.ui import escalation_blocks, message_blocks
from bot.errors import PlatformError
from bot.events import OutgoingMessage, SentMessage

log = logging.getLogger(__name__)

#: The message metadata event type carrying an announcement post's idempotency key.
POST_METADATA_EVENT = "foundation_bot_post"
#: Pages of channel history read when looking for a post whose answer was lost.
HISTORY_PAGES = 5


@dataclass(frozen=True, slots=True)
class Reply:
    """The handle of an interaction: where an ephemeral answer goes."""

    response_url: str | None
    channel: str
    user: str


class Outbound:
    """Posts through the Web API; every call goes through :func:`slack_errors`."""

    def __init__(self, client: AsyncWebClient, keyed_client: AsyncWebClient) -> None:
        self._client = client
        # Announcement posts (they carry an idempotency key) are not re-sent by slack-sdk when
        # the connection drops: Slack may have posted them already. The delivery engine looks
        # them up instead (find_posted) and posts again only if they are not there.
        self._keyed_client = keyed_client

    async def send(self, message: OutgoingMessage) -> SentMessage:
        if message.ephemeral_to:
            return await self._send_ephemeral(message)
        channel = message.where.channel_id
        keyed = bool(message.idempotency_key)
        thread = message.where.thread_id or message.reply_to
        kwargs: dict[str, Any] = {"channel": channel, "text": message.text}
        if thread:
            kwargs["thread_ts"] = thread
        blocks = message_blocks(
            message.text,
            feedback_token=message.feedback_token,
            choices=message.choices,
            blocks=message.blocks,
        )
        if blocks:
            kwargs["blocks"] = blocks
        if message.idempotency_key:
            kwargs["metadata"] = {
                "event_type": POST_METADATA_EVENT,
                "event_payload": {"key": message.idempotency_key},
            }
        client = self._keyed_client if keyed else self._client
        with slack_errors(write=keyed):
            response = await client.chat_postMessage(**kwargs)
        ts = str(response["ts"])
        url = None
        if not thread:  # top-level posts (announcements) get a permalink for the log
            url = await self.permalink(channel, ts)
        return SentMessage(
            PLATFORM, str(response.get("channel", channel)), ts, url, thread_id=thread or None
        )

    async def _send_ephemeral(self, message: OutgoingMessage) -> SentMessage:
        channel = message.where.channel_id
        handle = message.handle if isinstance(message.handle, Reply) else None
        blocks = message_blocks(message.text, choices=message.choices)
        if message.escalation_token:
            blocks = escalation_blocks(message.text, message.escalation_token)
        if handle is not None and handle.response_url:
            webhook = AsyncWebhookClient(handle.response_url)
            extra: dict[str, Any] = {"blocks": blocks} if blocks else {}
            with slack_errors():
                answer = await webhook.send(
                    text=message.text, response_type="ephemeral", replace_original=False, **extra
                )
            if 200 <= answer.status_code < 300:
                return SentMessage(PLATFORM, channel, "", None)
            # Refused, so not shown: a response URL lasts 30 minutes and 5 uses (a modal
            # can be submitted later than that). Never log the URL: it can post.
            log.warning(
                "response_url refused status=%s; answering with chat.postEphemeral",
                answer.status_code,
            )
        with slack_errors():
            response = await self._client.chat_postEphemeral(
                channel=channel, user=message.ephemeral_to or "", text=message.text
            )
        return SentMessage(PLATFORM, channel, str(response.get("message_ts", "")))

    async def permalink(self, channel: str, ts: str) -> str | None:
        """The message's link, or None: the message is up, so a failure here is no failure."""
        try:
            with slack_errors():
                link = await self._client.chat_getPermalink(channel=channel, message_ts=ts)
        except PlatformError as exc:
            log.warning("no permalink for a posted message ts=%s: %s", ts, exc.reason)
            return None
        return str(link.get("permalink") or "") or None

    async def delete(self, sent: SentMessage) -> None:
        with slack_errors():
            await self._client.chat_delete(channel=sent.channel_id, ts=sent.message_id)

    async def find_posted(
        self, message: OutgoingMessage, key: str, since: datetime
    ) -> SentMessage | None:
        """The bot's message carrying ``key`` in its metadata, posted since ``since``.

        Reads the channel history (``conversations.history``; a thread reply:
        ``conversations.replies``) with every message's metadata, newest first.
        """
        channel = message.where.channel_id
        thread = message.where.thread_id or message.reply_to
        args: dict[str, Any] = {
            "channel": channel,
            "oldest": f"{since.timestamp():.6f}",
            "include_all_metadata": True,
            "limit": 200,
        }
        cursor: str | None = None
        for _ in range(HISTORY_PAGES):
            if cursor:
                args["cursor"] = cursor
            with slack_errors():
                if thread:
                    response = await self._client.conversations_replies(ts=thread, **args)
                else:
                    response = await self._client.conversations_history(**args)
            found: list[dict[str, Any]] = response.get("messages", []) or []
            for item in found:
                metadata = item.get("metadata") or {}
                payload = metadata.get("event_payload") or {}
                if metadata.get("event_type") == POST_METADATA_EVENT and payload.get("key") == key:
                    ts = str(item["ts"])
                    url = None if thread else await self.permalink(channel, ts)
                    return SentMessage(PLATFORM, channel, ts, url, thread_id=thread or None)
            meta = response.get("response_metadata") or {}
            cursor = str(meta.get("next_cursor") or "") or None
            if not cursor:
                break
        return None
