"""What the bot sends to Discord: answers (in a thread opened under the question, or inline),
ephemeral replies (interaction follow-ups, else a DM), announcements (published in
announcement channels), deletions.

Every message is created with a ``nonce`` and ``enforce_nonce``: Discord returns the earlier
message for a repeated nonce, so a post that timed out is retried once with the same nonce
without risking a duplicate. An announcement's nonce is derived from its idempotency key, so a
repeat by another attempt or process within Discord's nonce window is refused in the same way;
beyond it, :meth:`Outbound.find_posted` looks the post up in the channel's recent messages
before the engine posts it again.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import discord

from adapters.discord.errors import PLATFORM, discord_errors
from adapters.discord.rules import DISCORD_MESSAGE_LIMIT as MESSAGE_LIMIT
from adapters.discord.state import State
from adapters.discord.ui import Buttons, fits_custom_id
from bot.errors import PermanentPlatformError, PlatformError, TransientPlatformError
from bot.events import OutgoingMessage, SentMessage

log = logging.getLogger(__name__)

THREAD_NAME_LIMIT = 100
DEFAULT_THREAD_NAME = "Questions and answers"
#: Discord accepts nonces of up to 25 characters.
NONCE_LENGTH = 25
#: How many of a channel's messages since a lost post :meth:`Outbound.find_posted` reads.
HISTORY_LIMIT = 1000


@dataclass(frozen=True, slots=True)
class InteractionHandle:
    """The handle of an interaction: ephemeral answers go to its follow-up webhook."""

    interaction: discord.Interaction[discord.Client]


def chunks(text: str, limit: int = MESSAGE_LIMIT) -> list[str]:
    """``text`` in messages of at most ``limit`` characters, split at line breaks if possible."""
    text = text or "\u200b"
    parts: list[str] = []
    while len(text) > limit:
        cut = text.rfind("\n", 0, limit)
        if cut <= 0:
            cut = text.rfind(" ", 0, limit)
        if cut <= 0:
            cut = limit
        parts.append(text[:cut])
        text = text[cut:].lstrip("\n")
    parts.append(text)
    return parts


def nonce_for(key: str | None, index: int) -> str:
    """The nonce of one message: derived from the post's idempotency key (the same for every
    attempt at that post, so Discord refuses a repeat), else random."""
    if not key:
        return secrets.token_hex(12)
    digest = hashlib.sha256(f"{key}#{index}".encode()).hexdigest()
    return digest[:NONCE_LENGTH]


class Outbound:
    """Posts through discord.py's REST client; every call goes through :func:`discord_errors`."""

    def __init__(
        self,
        *,
        state: State,
        buttons: Buttons,
        announce_channels: tuple[str, ...],
        publish_announcements: bool,
        reply_in_thread: bool,
        post_timeout: float,
    ) -> None:
        self._state = state
        self._buttons = buttons
        self._announce_channels = announce_channels
        self._publish = publish_announcements
        self._reply_in_thread = reply_in_thread
        self._post_timeout = post_timeout

    async def send(self, client: discord.Client, message: OutgoingMessage) -> SentMessage:
        where = message.where
        # Ephemeral answers go through the interaction (or a DM), not the channel.
        ids = [where.thread_id or "0", message.ephemeral_to or where.channel_id]
        if not all(i.isdigit() for i in ids):
            raise PermanentPlatformError(PLATFORM, f"{where.channel_id!r} is not a Discord id")
        if not all(fits_custom_id(choice.token) for choice in message.choices):
            raise PermanentPlatformError(
                PLATFORM, "a suggestion's token is too long for a Discord button's custom_id"
            )
        with discord_errors():
            if message.ephemeral_to:
                return await self._send_ephemeral(client, message)
            return await self._post(client, message)

    async def find_posted(
        self, client: discord.Client, message: OutgoingMessage, since: datetime
    ) -> SentMessage | None:
        """The bot's post of ``message`` since ``since``, from the channel's recent messages.

        Discord does not return nonces in a channel's history, so a post matches by its
        author (the bot), its first message's text and what it replies to; the read starts
        at ``since`` (a snowflake of that time) and goes forward, at most
        :data:`HISTORY_LIMIT` messages.
        """
        if client.user is None:
            raise TransientPlatformError(PLATFORM, "the Discord adapter is not running")
        where = message.where
        target = int(where.thread_id or where.channel_id)
        cached = client.get_channel(target)
        channel: discord.abc.Messageable = (
            cached
            if isinstance(cached, discord.abc.Messageable)
            else client.get_partial_messageable(target)
        )
        wanted = chunks(message.text)[0]
        reply_to = int(message.reply_to) if message.reply_to else None
        with discord_errors():
            async for found in channel.history(limit=HISTORY_LIMIT, after=since, oldest_first=True):
                replied = found.reference.message_id if found.reference else None
                mine = found.author.id == client.user.id
                if mine and found.content == wanted and replied == reply_to:
                    return SentMessage(
                        PLATFORM,
                        where.channel_id,
                        str(found.id),
                        found.jump_url,
                        thread_id=where.thread_id,
                    )
        return None

    async def delete(self, client: discord.Client, sent: SentMessage) -> None:
        channel = client.get_partial_messageable(int(sent.channel_id))
        with discord_errors():
            await channel.get_partial_message(int(sent.message_id)).delete()

    async def _post(self, client: discord.Client, message: OutgoingMessage) -> SentMessage:
        where = message.where
        target = int(where.thread_id or where.channel_id)
        cached = client.get_channel(target)
        if where.thread_id and cached is None and not self._state.knows_thread(target):
            # A reply chain (thread_id = a bot message), not a thread channel.
            target = int(where.channel_id)
            cached = client.get_channel(target)
        channel: discord.abc.Messageable = (
            cached
            if isinstance(cached, discord.abc.Messageable)
            else client.get_partial_messageable(target)
        )
        in_thread = self._state.thread_parent(cached, target) is not None
        thread_id = str(target) if in_thread else None
        reference: discord.MessageReference | None = None
        if message.reply_to:
            reply_to = int(message.reply_to)
            opened = None
            if self._reply_in_thread and not in_thread and not where.is_direct:
                opened = await self._open_thread(client, cached, target, reply_to)
            if opened is not None:
                channel, thread_id = opened, str(opened.id)
            else:
                reference = discord.MessageReference(
                    message_id=reply_to, channel_id=target, fail_if_not_exists=False
                )
        view = self._buttons.view(feedback_token=message.feedback_token, choices=message.choices)
        parts = chunks(message.text)
        first: discord.Message | None = None
        for index, part in enumerate(parts):
            last = index == len(parts) - 1
            sent = await self._create(
                channel,
                part,
                reference if index == 0 else None,
                view if last else None,
                nonce=nonce_for(message.idempotency_key, index),
            )
            first = first or sent
        assert first is not None
        top_level = not message.reply_to and thread_id is None
        if top_level and self._publish and where.channel_id in self._announce_channels:
            await self._publish_message(client, first)
        return SentMessage(
            PLATFORM,
            str(first.channel.id) if thread_id is None else where.channel_id,
            str(first.id),
            first.jump_url,
            thread_id=thread_id,
        )

    async def _create(
        self,
        channel: discord.abc.Messageable,
        text: str,
        reference: discord.MessageReference | None,
        view: discord.ui.View | None,
        *,
        nonce: str | None = None,
    ) -> discord.Message:
        """Create one message; a timeout is retried once with the same nonce (no duplicate).

        discord.py sends ``enforce_nonce`` with every nonce.
        """
        nonce = nonce or nonce_for(None, 0)
        options: dict[str, Any] = {}
        if reference is not None:
            options["reference"] = reference
        if view is not None:
            options["view"] = view
        for attempt in (1, 2):
            try:
                async with asyncio.timeout(self._post_timeout):
                    return await channel.send(text, nonce=nonce, mention_author=False, **options)
            except TimeoutError:
                if attempt == 2:
                    raise
                log.warning(
                    "discord post timed out after %.0fs; retrying once with the same nonce",
                    self._post_timeout,
                )
        raise AssertionError("unreachable")

    async def _open_thread(
        self,
        client: discord.Client,
        channel: object,
        channel_id: int,
        message_id: int,
    ) -> discord.Thread | None:
        """A public thread under ``message_id``, named after the question; None if not allowed."""
        question = self._state.take_question(message_id)
        me = f"<@{client.user.id}>" if client.user else ""
        name = " ".join(question.replace(me, "").split())[:THREAD_NAME_LIMIT]
        try:
            with discord_errors():
                if channel is None:
                    channel = await client.fetch_channel(channel_id)
                if not isinstance(channel, discord.TextChannel):
                    return None  # forum posts, voice chats, ... keep inline replies
                thread = await channel.get_partial_message(message_id).create_thread(
                    name=name or DEFAULT_THREAD_NAME, auto_archive_duration=1440
                )
        except PlatformError as exc:
            log.warning("discord thread not created, replying inline: %s", exc.reason)
            return None
        self._state.add_thread(thread.id, channel_id)
        return thread

    async def _publish_message(self, client: discord.Client, sent: discord.Message) -> None:
        """Crosspost an announcement to the channels following it (announcement channels)."""
        channel_id = sent.channel.id
        if channel_id not in self._state.news:
            channel = client.get_channel(channel_id)
            if channel is None:
                try:
                    with discord_errors():
                        channel = await client.fetch_channel(channel_id)
                except PlatformError as exc:
                    log.warning("discord channel type unknown: %s", exc.reason)
                    return
            is_news = isinstance(channel, discord.TextChannel) and channel.is_news()
            self._state.news[channel_id] = is_news
        if not self._state.news[channel_id]:
            return
        try:
            with discord_errors():
                await sent.publish()
        except PlatformError as exc:
            # The post itself is done; publishing again later is a person's call.
            log.warning("discord announcement %s posted but not published: %s", sent.id, exc.reason)

    async def _send_ephemeral(
        self, client: discord.Client, message: OutgoingMessage
    ) -> SentMessage:
        handle = message.handle
        view = self._buttons.view(
            escalation_token=message.escalation_token, choices=message.choices
        )
        parts = chunks(message.text)
        if isinstance(handle, InteractionHandle):
            followup = handle.interaction.followup
            first: discord.WebhookMessage | None = None
            for index, part in enumerate(parts):
                if view is not None and index == len(parts) - 1:
                    sent = await followup.send(part, ephemeral=True, view=view, wait=True)
                else:
                    sent = await followup.send(part, ephemeral=True, wait=True)
                first = first or sent
            return SentMessage(PLATFORM, message.where.channel_id, str(first.id) if first else "")
        # No interaction to answer privately: a direct message is the private channel left.
        recipient = message.ephemeral_to
        assert recipient is not None
        dm = await client.create_dm(discord.Object(id=int(recipient)))
        sent_dm: discord.Message | None = None
        for part in parts:
            created = await self._create(dm, part, None, None)
            sent_dm = sent_dm or created
        return SentMessage(PLATFORM, str(dm.id), str(sent_dm.id) if sent_dm else "")
