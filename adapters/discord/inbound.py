"""What Discord sends the bot, as the core's events: messages, reactions, button clicks
(answer feedback, suggestion picks) and ``/announce`` invocations."""

from __future__ import annotations

import logging
from typing import Any

import discord

from adapters.base import EventSink
from adapters.discord.errors import PLATFORM, discord_errors
from adapters.discord.outbound import InteractionHandle
from adapters.discord.state import State
from bot.errors import PlatformError
from bot.events import (
    Author,
    ChoicePicked,
    Conversation,
    Feedback,
    InboundEvent,
    IncomingMessage,
    Reaction,
    SlashCommand,
)

log = logging.getLogger(__name__)


def jump_url(guild_id: int | None, channel_id: int, message_id: int) -> str:
    """The message's link, as ``discord.Message.jump_url`` makes it (raw events have no
    message object)."""
    return f"https://discord.com/channels/{guild_id or '@me'}/{channel_id}/{message_id}"


def author_of(user: discord.User | discord.Member | discord.abc.User, bot_id: int) -> Author:
    """The core's author for a Discord user; a member's role ids are its roles."""
    roles: frozenset[str] = frozenset()
    if isinstance(user, discord.Member):
        roles = frozenset(str(role.id) for role in user.roles)
    return Author(
        id=str(user.id),
        name=user.name,
        roles=roles,
        is_bot=bool(getattr(user, "bot", False)) and user.id != bot_id,
    )


async def acknowledge(interaction: discord.Interaction[Any], *, thinking: bool = True) -> bool:
    """Acknowledge within Discord's 3 seconds.

    Args:
        thinking: Show "thinking…" until a private answer follows (commands, feedback);
            otherwise acknowledge silently (a suggestion pick, answered in the conversation).
    """
    try:
        with discord_errors():
            if thinking:
                await interaction.response.defer(ephemeral=True, thinking=True)
            else:
                await interaction.response.defer()
    except PlatformError as exc:
        log.warning("discord interaction not acknowledged: %s", exc.reason)
        return False
    return True


class Inbound:
    """Turns discord.py's events into the core's events and hands them to the sink."""

    def __init__(self, state: State) -> None:
        self._state = state
        self.sink: EventSink | None = None
        #: Shards whose gateway connection is down (``/readyz`` reports them).
        self.down: set[int | None] = set()

    async def deliver(self, event: InboundEvent) -> None:
        """Hand ``event`` to the core (dropped before the adapter has started)."""
        if self.sink is not None:
            await self.sink(event)

    def register(self, client: discord.AutoShardedClient) -> None:
        """Add the event handlers to ``client``."""

        async def on_message(message: discord.Message) -> None:
            await self._on_message(client, message)

        async def on_raw_reaction_add(payload: discord.RawReactionActionEvent) -> None:
            await self._on_reaction(client, payload, added=True)

        async def on_raw_reaction_remove(payload: discord.RawReactionActionEvent) -> None:
            await self._on_reaction(client, payload, added=False)

        async def on_thread_create(thread: discord.Thread) -> None:
            if thread.parent_id is not None:
                self._state.add_thread(thread.id, thread.parent_id)

        async def on_shard_ready(shard_id: int) -> None:
            self.down.discard(shard_id)

        async def on_shard_connect(shard_id: int) -> None:
            self.down.discard(shard_id)

        async def on_shard_resumed(shard_id: int) -> None:
            self.down.discard(shard_id)
            log.info("discord gateway resumed shard=%s", shard_id)

        async def on_shard_disconnect(shard_id: int) -> None:
            if not client.is_closed():
                self.down.add(shard_id)
                log.warning("discord gateway disconnected shard=%s; resuming", shard_id)

        async def on_error(event: str, *args: object, **kwargs: object) -> None:
            log.exception("discord event handler failed event=%s", event)

        for handler in (
            on_message,
            on_raw_reaction_add,
            on_raw_reaction_remove,
            on_thread_create,
            on_shard_ready,
            on_shard_connect,
            on_shard_resumed,
            on_shard_disconnect,
            on_error,
        ):
            client.event(handler)

    async def _on_message(self, client: discord.Client, message: discord.Message) -> None:
        me = client.user
        if me is None or message.type not in (
            discord.MessageType.default,
            discord.MessageType.reply,
        ):
            return
        if message.author.id == me.id:
            return  # the bot's own posts (answers, announcements) are not questions
        channel = message.channel
        direct = message.guild is None or isinstance(channel, discord.DMChannel)
        where = self._state.where(channel, channel.id, direct=direct)
        own_role = message.guild.self_role if message.guild is not None else None
        # People often pick the bot's managed role from the @ list instead of the bot itself.
        mentions_bot = any(m.id == me.id for m in message.mentions) or (
            own_role is not None and own_role in message.role_mentions
        )
        reply_to: str | None = None
        reference = message.reference
        if reference is not None and reference.message_id is not None:
            reply_to = str(reference.message_id)
            replied = reference.resolved
            if (
                where.thread_id is None
                and not where.is_direct
                and isinstance(replied, discord.Message)
                and replied.author.id == me.id
            ):
                # A reply to one of the bot's messages (an announcement, an answer) is in its
                # "thread": the core logs replies to announcements as engagement.
                where = Conversation(PLATFORM, where.channel_id, thread_id=reply_to)
        if not (mentions_bot or where.is_direct or where.thread_id):
            return  # channel chatter outside threads is not for the bot
        if mentions_bot and where.thread_id is None:
            self._state.add_question(message.id, message.content)
        await self.deliver(
            IncomingMessage(
                where=where,
                author=author_of(message.author, me.id),
                text=message.content,
                message_id=str(message.id),
                mentions_bot=mentions_bot,
                event_id=f"message:{message.id}",
                reply_to_id=reply_to,
                url=message.jump_url,
            )
        )

    async def _on_reaction(
        self,
        client: discord.Client,
        payload: discord.RawReactionActionEvent,
        *,
        added: bool,
    ) -> None:
        me = client.user
        if me is None or payload.user_id == me.id:
            return
        channel = client.get_channel(payload.channel_id)
        user: discord.abc.User | None = payload.member
        await self.deliver(
            Reaction(
                where=self._state.where(
                    channel, payload.channel_id, direct=payload.guild_id is None
                ),
                author=(
                    author_of(user, me.id) if user is not None else Author(str(payload.user_id))
                ),
                message_id=str(payload.message_id),
                emoji=str(payload.emoji),
                added=added,
                url=jump_url(payload.guild_id, payload.channel_id, payload.message_id),
            )
        )

    def _interaction_where(self, interaction: discord.Interaction[Any]) -> Conversation:
        if interaction.channel_id is None:  # Discord always sends one; never post to "0"
            return Conversation(PLATFORM, "", is_direct=interaction.guild_id is None)
        return self._state.where(
            interaction.channel, interaction.channel_id, direct=interaction.guild_id is None
        )

    @staticmethod
    def _clicker(interaction: discord.Interaction[discord.Client]) -> Author:
        bot_id = interaction.client.user.id if interaction.client.user else 0
        return author_of(interaction.user, bot_id)

    async def on_vote(
        self, interaction: discord.Interaction[discord.Client], vote: str, token: str
    ) -> None:
        """A 👍/👎/"ask a moderator" click: acknowledged privately once the core has logged it."""
        if not await acknowledge(interaction):
            return
        await self.deliver(
            Feedback(
                where=self._interaction_where(interaction),
                author=self._clicker(interaction),
                token=token,
                helpful=vote == "up",
                escalate=vote == "mod",
                event_id=f"interaction:{interaction.id}",
                handle=InteractionHandle(interaction),
            )
        )

    async def on_pick(self, interaction: discord.Interaction[discord.Client], token: str) -> None:
        """A suggestion button: acknowledged silently (the answer goes to the conversation,
        or privately through the handle), then delivered as the clicker's pick."""
        if not await acknowledge(interaction, thinking=False):
            return
        await self.deliver(
            ChoicePicked(
                where=self._interaction_where(interaction),
                author=self._clicker(interaction),
                token=token,
                event_id=f"interaction:{interaction.id}",
                handle=InteractionHandle(interaction),
            )
        )

    async def on_announce(
        self, interaction: discord.Interaction[discord.Client], text: str
    ) -> None:
        """An ``/announce`` invocation (options or modal) as the core's command."""
        await self.deliver(
            SlashCommand(
                where=self._interaction_where(interaction),
                author=self._clicker(interaction),
                name="announce",
                text=text,
                event_id=f"interaction:{interaction.id}",
                handle=InteractionHandle(interaction),
            )
        )
