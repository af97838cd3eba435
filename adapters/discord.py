"""Discord on discord.py: answers, feedback buttons, the ``/announce`` app command, announcements.

The bot connects through the gateway with :class:`discord.AutoShardedClient` (``shard_count``
and ``shard_ids`` let several processes split a large deployment; unset, Discord recommends the
count). Everything Discord-shaped stays here: gateway payloads become the core's events on the
way in, ``OutgoingMessage`` becomes a channel message, a thread, an inline reply or an
interaction follow-up on the way out, and discord.py's exceptions become the core's transient or
permanent platform errors with a sentence staff can act on.

Intents: guilds (channel, thread and role cache), guild and DM messages, guild reactions, and
the privileged **message content** intent, without which follow-ups in a bot thread arrive
empty (mentions and DMs carry their text either way). It must be switched on in the Developer
Portal; a bot refused it stops with a message saying so.

Endpoints: discord.py reads its REST base (``discord.http.Route.BASE``, also used for
interaction callbacks and webhooks) and its gateway (``DiscordWebSocket.DEFAULT_GATEWAY``)
from class attributes, i.e. once per *process*. The adapter sets them from ``discord.api_url``
/ ``discord.gateway_url`` when it starts and restores them when the last user stops; a second
Discord client in the same process asking for different endpoints is refused rather than
silently re-pointing the first.

Rate limits: discord.py's per-route buckets wait out short 429s itself (and log them on the
``discord.http`` logger); a wait longer than ``max_ratelimit_timeout`` raises instead of
sleeping inside a send, and becomes a transient error with Retry-After so the announcement
engine reschedules. Every message is created with a ``nonce`` and ``enforce_nonce``: Discord
returns the earlier message for a repeated nonce, so a post that timed out is retried once with
the same nonce without risking a duplicate. An announcement's nonce is derived from its
idempotency key, so a repeat by another attempt or process within Discord's nonce window is
refused in the same way; beyond it, :meth:`DiscordAdapter.find_posted` looks the post up in
the channel's recent messages before the engine posts it again.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import secrets
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import aiohttp
import discord
import yarl
from discord import app_commands
from discord.gateway import DiscordWebSocket
from discord.http import Route

from adapters.base import EventSink
from bot.commands import FAILURE as COMMAND_FAILED
from bot.errors import PermanentPlatformError, PlatformError, TransientPlatformError
from bot.events import (
    Author,
    Conversation,
    Feedback,
    InboundEvent,
    IncomingMessage,
    OutgoingMessage,
    Reaction,
    SentMessage,
    SlashCommand,
)

log = logging.getLogger(__name__)

PLATFORM = "discord"
DEFAULT_API_URL = "https://discord.com/api/v10"
DEFAULT_GATEWAY_URL = "wss://gateway.discord.gg/"
MESSAGE_LIMIT = 2000
THREAD_NAME_LIMIT = 100
DEFAULT_THREAD_NAME = "Questions and answers"
#: Discord accepts nonces of up to 25 characters.
NONCE_LENGTH = 25
#: How many of a channel's messages since a lost post :meth:`DiscordAdapter.find_posted` reads.
HISTORY_LIMIT = 1000
#: custom_id of the answer buttons: the vote and the core's feedback token.
FEEDBACK_TEMPLATE = r"fb:(?P<vote>up|down|mod):(?P<token>[0-9A-Za-z_-]{1,80})"
ANNOUNCE_ACTIONS = (
    "schedule",
    "now",
    "list",
    "show",
    "edit",
    "cancel",
    "history",
    "retract",
    "hold",
    "resume",
    "approve",
    "retry",
    "mark-sent",
    "help",
)
#: Permissions the invite URL asks for (see README), no more: read and post, post in and open
#: threads, link previews, and message history (needed to reply to a message). Publishing
#: the bot's own posts in an announcement channel needs only Send Messages.
INVITE_PERMISSIONS = discord.Permissions(
    view_channel=True,
    send_messages=True,
    send_messages_in_threads=True,
    create_public_threads=True,
    embed_links=True,
    read_message_history=True,
)

#: Discord JSON error codes retrying cannot fix, with the sentence staff see.
PERMANENT_CODES = {
    10003: "the channel does not exist or the bot cannot see it (check discord.announce_channels)",
    10008: "the message no longer exists",
    10062: "the interaction expired before the bot answered",
    50001: "the bot cannot see the channel (Missing Access): add it to the channel",
    50013: (
        "the bot lacks a permission in the channel (Missing Permissions): it needs View "
        "Channel, Send Messages, Send Messages in Threads and Create Public Threads"
    ),
    50007: "Discord does not let the bot message this user",
    50035: "Discord rejected the message as invalid",
    160002: "the bot cannot reply in a thread that is archived or locked",
}
#: Gateway close codes that mean a person must change something.
CLOSE_CODES = {
    4004: "Discord rejected the bot token (check DISCORD_BOT_TOKEN)",
    4010: "invalid shard: check discord.shard_ids and discord.shard_count",
    4011: "Discord requires sharding for this bot: set discord.shard_count",
    4013: "invalid gateway intents",
    4014: (
        "the Message Content intent is not enabled: turn it on in the Developer Portal "
        "(Bot → Privileged Gateway Intents)"
    ),
}

#: What a Discord call can raise that :func:`translate` turns into a platform error.
DISCORD_ERRORS = (discord.DiscordException, aiohttp.ClientError, OSError, TimeoutError)


def translate(exc: BaseException) -> PlatformError:
    """A discord.py or network error as the core's platform error."""
    if isinstance(exc, PlatformError):
        return exc
    if isinstance(exc, discord.RateLimited):
        return TransientPlatformError(
            PLATFORM, "rate limited (HTTP 429)", retry_after=exc.retry_after
        )
    if isinstance(exc, discord.LoginFailure):
        return PermanentPlatformError(PLATFORM, CLOSE_CODES[4004])
    if isinstance(exc, discord.PrivilegedIntentsRequired):
        return PermanentPlatformError(PLATFORM, CLOSE_CODES[4014])
    if isinstance(exc, discord.ConnectionClosed):
        reason = CLOSE_CODES.get(exc.code)
        if reason:
            return PermanentPlatformError(PLATFORM, reason)
        return TransientPlatformError(PLATFORM, f"gateway closed (code {exc.code})")
    if isinstance(exc, discord.HTTPException):
        status, code = exc.status, exc.code
        if status == 429:
            return TransientPlatformError(PLATFORM, "rate limited (HTTP 429)")
        if status >= 500:
            return TransientPlatformError(PLATFORM, f"Discord server error (HTTP {status})")
        if status == 401:
            return PermanentPlatformError(PLATFORM, CLOSE_CODES[4004])
        if code in PERMANENT_CODES:
            return PermanentPlatformError(PLATFORM, PERMANENT_CODES[code])
        if status == 403:
            return PermanentPlatformError(PLATFORM, PERMANENT_CODES[50013])
        return PermanentPlatformError(
            PLATFORM, f"Discord refused the request (HTTP {status}, code {code})"
        )
    if isinstance(exc, TimeoutError):
        # The request went out; Discord may have created the message before we gave up.
        return TransientPlatformError(PLATFORM, "Discord did not answer in time", ambiguous=True)
    if isinstance(exc, discord.GatewayNotFound):
        return TransientPlatformError(PLATFORM, "the Discord gateway cannot be found")
    return TransientPlatformError(PLATFORM, f"cannot reach Discord ({type(exc).__name__})")


def invite_url(application_id: int | str) -> str:
    """The OAuth2 URL that adds the bot with the permissions and scopes it needs."""
    return discord.utils.oauth_url(
        int(application_id),
        permissions=INVITE_PERMISSIONS,
        scopes=("bot", "applications.commands"),
    )


def intents() -> discord.Intents:
    """Only what the bot uses; ``message_content`` is privileged (see the module docstring)."""
    wanted = discord.Intents.none()
    wanted.guilds = True
    wanted.guild_messages = True
    wanted.dm_messages = True
    wanted.guild_reactions = True
    wanted.message_content = True
    return wanted


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


def _jump_url(guild_id: int | None, channel_id: int, message_id: int) -> str:
    """The message's link, as ``discord.Message.jump_url`` makes it (raw events have no
    message object)."""
    return f"https://discord.com/channels/{guild_id or '@me'}/{channel_id}/{message_id}"


def _quote(value: str) -> str:
    return f'"{value.replace(chr(34), "").strip()}"'


def command_text(
    action: str,
    *,
    ident: int | None = None,
    at: str | None = None,
    tz: str | None = None,
    to: str | None = None,
    every: str | None = None,
    until: str | None = None,
    force: bool = False,
    text: str | None = None,
) -> str:
    """The ``/announce`` grammar text that app command options (and the modal) stand for."""
    parts = [action]
    if ident is not None:
        parts.append(str(ident))
    for option, value in (
        ("--at", at),
        ("--tz", tz),
        ("--to", to.replace(" ", "") if to else to),
        ("--every", every),
        ("--until", until),
    ):
        if value and value.strip():
            parts += [option, _quote(value)]
    if force:
        parts.append("--force")
    if text and text.strip():
        parts.append(text.strip())
    return " ".join(parts)


class _NoVoiceWarnings(logging.Filter):
    """discord.py warns on every start that voice libraries are missing; this bot has no voice."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "voice will NOT be supported" not in record.getMessage()


def _quiet_voice_warnings() -> None:
    logger = logging.getLogger("discord.client")
    if not any(isinstance(f, _NoVoiceWarnings) for f in logger.filters):
        logger.addFilter(_NoVoiceWarnings())


# --- process-wide endpoints ----------------------------------------------------------------


@dataclass
class _Endpoints:
    """Who holds discord.py's process-wide REST base and gateway, and what they were before."""

    users: int = 0
    api: str = DEFAULT_API_URL
    gateway: str = DEFAULT_GATEWAY_URL
    saved: tuple[str, yarl.URL] | None = None


_ENDPOINTS = _Endpoints()


def _claim_endpoints(api_url: str | None, gateway_url: str | None) -> None:
    api = (api_url or DEFAULT_API_URL).rstrip("/")
    gateway = gateway_url or DEFAULT_GATEWAY_URL
    if _ENDPOINTS.users and (api, gateway) != (_ENDPOINTS.api, _ENDPOINTS.gateway):
        raise PermanentPlatformError(
            PLATFORM,
            "another Discord client in this process uses different endpoints; "
            "run one Discord configuration per process",
        )
    if not _ENDPOINTS.users:
        _ENDPOINTS.saved = (Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY)
        _ENDPOINTS.api, _ENDPOINTS.gateway = api, gateway
        Route.BASE = api
        DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(gateway)
    _ENDPOINTS.users += 1


def _release_endpoints() -> None:
    _ENDPOINTS.users = max(0, _ENDPOINTS.users - 1)
    if not _ENDPOINTS.users and _ENDPOINTS.saved is not None:
        Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY = _ENDPOINTS.saved
        _ENDPOINTS.saved = None


# --- handles and UI --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Interaction:
    """The handle of an interaction: ephemeral answers go to its follow-up webhook."""

    interaction: discord.Interaction[discord.Client]


Click = Callable[[discord.Interaction[discord.Client], str, str], Awaitable[None]]


Button = discord.ui.DynamicItem[discord.ui.Button[Any]]


def _button_type(on_click: Click) -> tuple[type[Button], Callable[[str, str], Button]]:
    """The 👍/👎/moderator button class, bound to ``on_click``, and its constructor.

    A dynamic item is matched by its ``custom_id`` template, so a click on an answer posted
    before a restart still reaches the bot.
    """

    class FeedbackButton(
        discord.ui.DynamicItem[discord.ui.Button[Any]], template=FEEDBACK_TEMPLATE
    ):
        def __init__(self, vote: str, token: str) -> None:
            label, emoji, style = {
                "up": ("Helpful", "👍", discord.ButtonStyle.secondary),
                "down": ("Not helpful", "👎", discord.ButtonStyle.secondary),
                "mod": ("Ask a moderator", None, discord.ButtonStyle.primary),
            }[vote]
            super().__init__(
                discord.ui.Button(
                    label=label, emoji=emoji, style=style, custom_id=f"fb:{vote}:{token}"
                )
            )
            self.vote = vote
            self.token = token

        @classmethod
        async def from_custom_id(
            cls,
            interaction: discord.Interaction[Any],
            item: discord.ui.Item[Any],
            match: re.Match[str],
            /,
        ) -> FeedbackButton:
            return cls(match["vote"], match["token"])

        async def callback(self, interaction: discord.Interaction[Any]) -> None:
            await on_click(interaction, self.vote, self.token)

    def make(vote: str, token: str) -> Button:
        return FeedbackButton(vote, token)

    return FeedbackButton, make


Submit = Callable[[discord.Interaction[discord.Client], str], Awaitable[None]]


class AnnounceModal(discord.ui.Modal, title="Announcement"):
    """The announcement text, asked for when ``/announce schedule|now`` has no ``text``."""

    text: discord.ui.TextInput[AnnounceModal] = discord.ui.TextInput(
        label="Announcement (Markdown)",
        style=discord.TextStyle.paragraph,
        placeholder="The PyTorch Foundation is live!",
        max_length=4000,
    )

    def __init__(self, on_text: Submit) -> None:
        super().__init__(timeout=900)
        self._on_text = on_text

    async def on_submit(self, interaction: discord.Interaction[Any]) -> None:
        await self._on_text(interaction, self.text.value)


# --- the adapter -----------------------------------------------------------------------------


class DiscordAdapter:
    """The Discord platform behind the core's Adapter contract."""

    platform = PLATFORM

    def __init__(
        self,
        *,
        token: str,
        api_url: str | None = None,
        gateway_url: str | None = None,
        announce_channels: tuple[str, ...] = (),
        publish_announcements: bool = False,
        reply_in_thread: bool = True,
        shard_count: int | None = None,
        shard_ids: Sequence[int] | None = None,
        guild_ready_timeout: float = 2.0,
        ready_timeout: float = 60.0,
        post_timeout: float = 60.0,
        max_ratelimit_timeout: float = 30.0,
    ) -> None:
        """The adapter; nothing connects before :meth:`start`.

        ``post_timeout`` bounds one message create; keep it above ``max_ratelimit_timeout``
        (discord.py's longest wait on a 429 before it raises; it never goes below 30 s), so a
        rate-limit wait is not mistaken for a lost request. ``guild_ready_timeout`` is how
        long discord.py waits for guild data after READY (small in tests).
        """
        if shard_ids is not None and shard_count is None:
            raise ValueError("shard_ids needs shard_count")
        self.announce_channels = announce_channels
        self._token = token
        self._api_url = api_url
        self._gateway_url = gateway_url
        self._publish = publish_announcements
        self._reply_in_thread = reply_in_thread
        self._shard_count = shard_count
        self._shard_ids = list(shard_ids) if shard_ids is not None else None
        self._guild_ready_timeout = guild_ready_timeout
        self._ready_timeout = ready_timeout
        self._post_timeout = post_timeout
        self._max_ratelimit_timeout = max_ratelimit_timeout
        self._button_class, self._button = _button_type(self._on_button)
        self._client: discord.AutoShardedClient | None = None
        self._runner: asyncio.Task[None] | None = None
        self._sink: EventSink | None = None
        self._claimed = False
        self._failure: PlatformError | None = None
        self._down: set[int | None] = set()
        #: thread id -> parent channel id, for threads discord.py has not cached (yet).
        self._threads: OrderedDict[int, int] = OrderedDict()
        #: question message id -> its text, to name the answer's thread after the question.
        self._questions: OrderedDict[int, str] = OrderedDict()
        #: channel id -> whether it is an announcement (news) channel, learned once.
        self._news: dict[int, bool] = {}

    # --- contract ------------------------------------------------------------------------

    def is_connected(self) -> bool:
        client, runner = self._client, self._runner
        return (
            client is not None
            and runner is not None
            and not runner.done()
            and client.is_ready()
            and not client.is_closed()
            and not self._down
        )

    async def start(self, sink: EventSink) -> None:
        self._sink = sink
        _quiet_voice_warnings()
        _claim_endpoints(self._api_url, self._gateway_url)
        self._claimed = True
        sharding: dict[str, Any] = {"shard_count": self._shard_count}
        if self._shard_ids is not None:
            sharding["shard_ids"] = self._shard_ids
        client = discord.AutoShardedClient(
            intents=intents(),
            **sharding,
            guild_ready_timeout=self._guild_ready_timeout,
            max_ratelimit_timeout=self._max_ratelimit_timeout,
            chunk_guilds_at_startup=False,
            member_cache_flags=discord.MemberCacheFlags.none(),
            max_messages=None,
            allowed_mentions=discord.AllowedMentions.none(),
        )
        self._client = client
        self._register(client)
        build_commands(client, self._announce)
        try:
            await client.login(self._token)
        except DISCORD_ERRORS as exc:
            await self.stop()
            raise translate(exc) from exc
        self._runner = asyncio.create_task(self._connect(client), name="discord-gateway")
        ready = asyncio.create_task(client.wait_until_ready())
        done, _ = await asyncio.wait(
            {ready, self._runner}, timeout=self._ready_timeout, return_when="FIRST_COMPLETED"
        )
        if not ready.done():
            ready.cancel()
        if self._runner in done:
            failure = self._failure
            await self.stop()
            raise failure or TransientPlatformError(PLATFORM, "the gateway connection ended")
        if ready not in done:
            log.warning(
                "discord gateway not ready after %.0fs; still connecting in the background",
                self._ready_timeout,
            )

    async def _connect(self, client: discord.AutoShardedClient) -> None:
        """Run the gateway until the client closes; a fatal error is logged, never raised."""
        try:
            await client.connect(reconnect=True)
        except DISCORD_ERRORS as exc:
            self._failure = translate(exc)
            log.error("discord gateway stopped: %s", self._failure.reason)
        except Exception as exc:
            # discord.py ends the connection on a payload it cannot parse; say so, keep running.
            self._failure = TransientPlatformError(
                PLATFORM, f"gateway stopped on an unexpected {type(exc).__name__}"
            )
            log.exception("discord gateway stopped")

    async def stop(self) -> None:
        client, self._client = self._client, None
        if client is not None and not client.is_closed():
            try:
                await client.close()
            except DISCORD_ERRORS as exc:
                log.warning("discord client did not close cleanly: %s", translate(exc).reason)
        runner, self._runner = self._runner, None
        if runner is not None and not runner.done():
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)
        if self._claimed:
            self._claimed = False
            _release_endpoints()

    async def send(self, message: OutgoingMessage) -> SentMessage:
        client = self._client
        if client is None:
            raise TransientPlatformError(PLATFORM, "the Discord adapter is not running")
        where = message.where
        # Ephemeral answers go through the interaction (or a DM), not the channel.
        ids = [where.thread_id or "0", message.ephemeral_to or where.channel_id]
        if not all(i.isdigit() for i in ids):
            raise PermanentPlatformError(PLATFORM, f"{where.channel_id!r} is not a Discord id")
        try:
            if message.ephemeral_to:
                return await self._send_ephemeral(client, message)
            return await self._post(client, message)
        except DISCORD_ERRORS as exc:
            raise translate(exc) from exc

    async def find_posted(
        self, message: OutgoingMessage, key: str, since: datetime
    ) -> SentMessage | None:
        """The bot's post of ``message`` since ``since``, from the channel's recent messages.

        Discord does not return nonces in a channel's history, so a post matches by its
        author (the bot), its first message's text and what it replies to; the read starts
        at ``since`` (a snowflake of that time) and goes forward, at most
        :data:`HISTORY_LIMIT` messages.
        """
        client = self._client
        if client is None or client.user is None:
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
        try:
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
        except DISCORD_ERRORS as exc:
            raise translate(exc) from exc
        return None

    async def delete(self, sent: SentMessage) -> None:
        client = self._client
        if client is None:
            raise TransientPlatformError(PLATFORM, "the Discord adapter is not running")
        channel = client.get_partial_messageable(int(sent.channel_id))
        try:
            await channel.get_partial_message(int(sent.message_id)).delete()
        except DISCORD_ERRORS as exc:
            raise translate(exc) from exc

    # --- sync-commands -------------------------------------------------------------------

    async def sync_commands(self, guild_ids: Iterable[int] = ()) -> list[str]:
        """Register the app commands in ``guild_ids`` (instant) or globally (empty).

        Returns a line per registration, then the invite URL. Needs only the token, not the
        gateway.
        """
        _quiet_voice_warnings()
        _claim_endpoints(self._api_url, self._gateway_url)
        client = discord.Client(intents=intents())  # never connects; only logs in over REST
        try:
            tree = build_commands(client, self._announce)
            await client.login(self._token)
            done: list[str] = []
            guilds = list(guild_ids)
            for guild_id in guilds:
                guild = discord.Object(id=guild_id)
                tree.copy_global_to(guild=guild)
                commands = await tree.sync(guild=guild)
                names = ", ".join("/" + c.name for c in commands)
                done.append(f"registered guild {guild_id}: {names}")
            if not guilds:
                commands = await tree.sync()
                names = ", ".join("/" + c.name for c in commands)
                done.append(f"registered global: {names}")
            if client.application_id is not None:
                done.append(f"invite URL: {invite_url(client.application_id)}")
            return done
        except DISCORD_ERRORS as exc:
            raise translate(exc) from exc
        finally:
            await client.close()
            _release_endpoints()

    # --- outbound ------------------------------------------------------------------------

    def _thread_parent(self, channel: object, channel_id: int) -> int | None:
        if isinstance(channel, discord.Thread):
            return channel.parent_id
        return self._threads.get(channel_id)

    def _remember(self, cache: OrderedDict[int, Any], key: int, value: Any) -> None:
        cache[key] = value
        cache.move_to_end(key)
        if len(cache) > 10_000:
            cache.popitem(last=False)

    async def _post(
        self, client: discord.AutoShardedClient, message: OutgoingMessage
    ) -> SentMessage:
        where = message.where
        target = int(where.thread_id or where.channel_id)
        cached = client.get_channel(target)
        if where.thread_id and cached is None and target not in self._threads:
            # A reply chain (thread_id = a bot message), not a thread channel.
            target = int(where.channel_id)
            cached = client.get_channel(target)
        channel: discord.abc.Messageable = (
            cached
            if isinstance(cached, discord.abc.Messageable)
            else client.get_partial_messageable(target)
        )
        in_thread = self._thread_parent(cached, target) is not None
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
        view: discord.ui.View | None = None
        if message.feedback_token:
            view = discord.ui.View(timeout=None)
            view.add_item(self._button("up", message.feedback_token))
            view.add_item(self._button("down", message.feedback_token))
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
        if top_level and self._publish and where.channel_id in self.announce_channels:
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
        client: discord.AutoShardedClient,
        channel: object,
        channel_id: int,
        message_id: int,
    ) -> discord.Thread | None:
        """A public thread under ``message_id``, named after the question; None if not allowed."""
        question = self._questions.pop(message_id, "")
        me = f"<@{client.user.id}>" if client.user else ""
        name = " ".join(question.replace(me, "").split())[:THREAD_NAME_LIMIT]
        try:
            if channel is None:
                channel = await client.fetch_channel(channel_id)
            if not isinstance(channel, discord.TextChannel):
                return None  # forum posts, voice chats, ... keep inline replies
            thread = await channel.get_partial_message(message_id).create_thread(
                name=name or DEFAULT_THREAD_NAME, auto_archive_duration=1440
            )
        except DISCORD_ERRORS as exc:
            log.warning("discord thread not created, replying inline: %s", translate(exc).reason)
            return None
        self._remember(self._threads, thread.id, channel_id)
        return thread

    async def _publish_message(
        self, client: discord.AutoShardedClient, sent: discord.Message
    ) -> None:
        """Crosspost an announcement to the channels following it (announcement channels)."""
        channel_id = sent.channel.id
        if channel_id not in self._news:
            channel = client.get_channel(channel_id)
            if channel is None:
                try:
                    channel = await client.fetch_channel(channel_id)
                except DISCORD_ERRORS as exc:
                    log.warning("discord channel type unknown: %s", translate(exc).reason)
                    return
            self._news[channel_id] = isinstance(channel, discord.TextChannel) and channel.is_news()
        if not self._news[channel_id]:
            return
        try:
            await sent.publish()
        except DISCORD_ERRORS as exc:
            # The post itself is done; publishing again later is a person's call.
            log.warning(
                "discord announcement %s posted but not published: %s",
                sent.id,
                translate(exc).reason,
            )

    async def _send_ephemeral(
        self, client: discord.AutoShardedClient, message: OutgoingMessage
    ) -> SentMessage:
        handle = message.handle
        view: discord.ui.View | None = None
        if message.escalation_token:
            view = discord.ui.View(timeout=None)
            view.add_item(self._button("mod", message.escalation_token))
        parts = chunks(message.text)
        if isinstance(handle, _Interaction):
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

    # --- inbound -------------------------------------------------------------------------

    async def _deliver(self, event: InboundEvent) -> None:
        if self._sink is not None:
            await self._sink(event)

    @staticmethod
    def _author(user: discord.User | discord.Member | discord.abc.User, bot_id: int) -> Author:
        roles: frozenset[str] = frozenset()
        if isinstance(user, discord.Member):
            roles = frozenset(str(role.id) for role in user.roles)
        return Author(
            id=str(user.id),
            name=user.name,
            roles=roles,
            is_bot=bool(getattr(user, "bot", False)) and user.id != bot_id,
        )

    def _where(self, channel: object, channel_id: int, *, direct: bool) -> Conversation:
        parent = self._thread_parent(channel, channel_id)
        if parent is not None:
            return Conversation(PLATFORM, str(parent), thread_id=str(channel_id))
        return Conversation(PLATFORM, str(channel_id), is_direct=direct)

    def _register(self, client: discord.AutoShardedClient) -> None:
        client.add_dynamic_items(self._button_class)

        async def on_message(message: discord.Message) -> None:
            await self._on_message(client, message)

        async def on_raw_reaction_add(payload: discord.RawReactionActionEvent) -> None:
            await self._on_reaction(client, payload, added=True)

        async def on_raw_reaction_remove(payload: discord.RawReactionActionEvent) -> None:
            await self._on_reaction(client, payload, added=False)

        async def on_thread_create(thread: discord.Thread) -> None:
            if thread.parent_id is not None:
                self._remember(self._threads, thread.id, thread.parent_id)

        async def on_shard_ready(shard_id: int) -> None:
            self._down.discard(shard_id)

        async def on_shard_connect(shard_id: int) -> None:
            self._down.discard(shard_id)

        async def on_shard_resumed(shard_id: int) -> None:
            self._down.discard(shard_id)
            log.info("discord gateway resumed shard=%s", shard_id)

        async def on_shard_disconnect(shard_id: int) -> None:
            if not client.is_closed():
                self._down.add(shard_id)
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

    async def _on_message(
        self, client: discord.AutoShardedClient, message: discord.Message
    ) -> None:
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
        where = self._where(channel, channel.id, direct=direct)
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
            self._remember(self._questions, message.id, message.content[:200])
        await self._deliver(
            IncomingMessage(
                where=where,
                author=self._author(message.author, me.id),
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
        client: discord.AutoShardedClient,
        payload: discord.RawReactionActionEvent,
        *,
        added: bool,
    ) -> None:
        me = client.user
        if me is None or payload.user_id == me.id:
            return
        channel = client.get_channel(payload.channel_id)
        user: discord.abc.User | None = payload.member
        await self._deliver(
            Reaction(
                where=self._where(channel, payload.channel_id, direct=payload.guild_id is None),
                author=(
                    self._author(user, me.id) if user is not None else Author(str(payload.user_id))
                ),
                message_id=str(payload.message_id),
                emoji=str(payload.emoji),
                added=added,
                url=_jump_url(payload.guild_id, payload.channel_id, payload.message_id),
            )
        )

    def _interaction_where(self, interaction: discord.Interaction[Any]) -> Conversation:
        if interaction.channel_id is None:  # Discord always sends one; never post to "0"
            return Conversation(PLATFORM, "", is_direct=interaction.guild_id is None)
        return self._where(
            interaction.channel, interaction.channel_id, direct=interaction.guild_id is None
        )

    async def _on_button(
        self, interaction: discord.Interaction[discord.Client], vote: str, token: str
    ) -> None:
        """A 👍/👎/"ask a moderator" click: acknowledged privately once the core has logged it."""
        if not await _defer(interaction):
            return
        bot_id = interaction.client.user.id if interaction.client.user else 0
        await self._deliver(
            Feedback(
                where=self._interaction_where(interaction),
                author=self._author(interaction.user, bot_id),
                token=token,
                helpful=vote == "up",
                escalate=vote == "mod",
                event_id=f"interaction:{interaction.id}",
                handle=_Interaction(interaction),
            )
        )

    async def _announce(self, interaction: discord.Interaction[discord.Client], text: str) -> None:
        """An ``/announce`` invocation (options or modal) as the core's command."""
        bot_id = interaction.client.user.id if interaction.client.user else 0
        await self._deliver(
            SlashCommand(
                where=self._interaction_where(interaction),
                author=self._author(interaction.user, bot_id),
                name="announce",
                text=text,
                event_id=f"interaction:{interaction.id}",
                handle=_Interaction(interaction),
            )
        )


async def _defer(interaction: discord.Interaction[Any]) -> bool:
    """Acknowledge within Discord's 3 seconds; the answer follows privately."""
    try:
        await interaction.response.defer(ephemeral=True, thinking=True)
    except DISCORD_ERRORS as exc:
        log.warning("discord interaction not acknowledged: %s", translate(exc).reason)
        return False
    return True


Announce = Callable[[discord.Interaction[discord.Client], str], Awaitable[None]]


def build_commands(client: discord.Client, on_announce: Announce) -> app_commands.CommandTree[Any]:
    """The app command tree: ``/announce`` with the grammar's options, text in a modal."""
    tree: app_commands.CommandTree[Any] = app_commands.CommandTree(client)

    @app_commands.command(name="announce", description="Queue and manage announcements")
    @app_commands.describe(
        action="What to do (help lists them)",
        id="Announcement number (show, edit, cancel, retract, approve, retry, mark-sent)",
        text="Markdown text; leave empty for schedule/now to type it in a form",
        at='When: ISO or "tomorrow 9am", "in 2 hours"',
        tz="IANA time zone for --at, e.g. Europe/Berlin",
        to="Platforms, e.g. slack,discord,x",
        every='Repeat, e.g. "monday 17:00"',
        until="Last date of a repetition",
        force="Queue even if the same text went out recently",
    )
    @app_commands.choices(action=[app_commands.Choice(name=a, value=a) for a in ANNOUNCE_ACTIONS])
    async def announce(
        interaction: discord.Interaction[discord.Client],
        action: str,
        id: app_commands.Range[int, 1] | None = None,
        text: app_commands.Range[str, 1, 4000] | None = None,
        at: str | None = None,
        tz: str | None = None,
        to: str | None = None,
        every: str | None = None,
        until: str | None = None,
        force: bool = False,
    ) -> None:
        def grammar(body: str | None) -> str:
            return command_text(
                action,
                ident=id,
                at=at,
                tz=tz,
                to=to,
                every=every,
                until=until,
                force=force,
                text=body,
            )

        if action in ("schedule", "now") and not text:

            async def submitted(
                modal_interaction: discord.Interaction[discord.Client], body: str
            ) -> None:
                if await _defer(modal_interaction):
                    await on_announce(modal_interaction, grammar(body))

            try:
                await interaction.response.send_modal(AnnounceModal(submitted))
            except DISCORD_ERRORS as exc:
                log.warning("announce modal not opened: %s", translate(exc).reason)
            return
        if await _defer(interaction):
            await on_announce(interaction, grammar(text))

    tree.add_command(announce)

    @tree.error
    async def on_error(
        interaction: discord.Interaction[Any], error: app_commands.AppCommandError
    ) -> None:
        # The traceback is for the operator's log; the user gets one line instead of a
        # "thinking…" that never ends.
        log.error("discord app command failed: %s", type(error).__name__, exc_info=error)
        try:
            if interaction.response.is_done():
                await interaction.followup.send(COMMAND_FAILED, ephemeral=True)
            else:
                await interaction.response.send_message(COMMAND_FAILED, ephemeral=True)
        except DISCORD_ERRORS as exc:
            log.warning("discord apology not sent: %s", translate(exc).reason)

    return tree
