"""The Discord adapter: the gateway connection, composed of its inbound handlers, outbound
calls, buttons and ``/announce`` app command."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import discord

from adapters.base import EventSink
from adapters.discord.commands import build_commands, sync_commands
from adapters.discord.endpoints import claim_endpoints, release_endpoints
from adapters.discord.errors import DISCORD_ERRORS, PLATFORM, discord_errors, translate
from adapters.discord.inbound import Inbound
from adapters.discord.outbound import Outbound
from adapters.discord.state import State
from adapters.discord.ui import Buttons
from bot.errors import PlatformError, TransientPlatformError
from bot.events import OutgoingMessage, SentMessage

log = logging.getLogger(__name__)


def intents() -> discord.Intents:
    """Only what the bot uses; ``message_content`` is privileged (see the package docstring)."""
    wanted = discord.Intents.none()
    wanted.guilds = True
    wanted.guild_messages = True
    wanted.dm_messages = True
    wanted.guild_reactions = True
    wanted.message_content = True
    return wanted


class _NoVoiceWarnings(logging.Filter):
    """discord.py warns on every start that voice libraries are missing; this bot has no voice."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "voice will NOT be supported" not in record.getMessage()


def _quiet_voice_warnings() -> None:
    logger = logging.getLogger("discord.client")
    if not any(isinstance(f, _NoVoiceWarnings) for f in logger.filters):
        logger.addFilter(_NoVoiceWarnings())


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
        self._shard_count = shard_count
        self._shard_ids = list(shard_ids) if shard_ids is not None else None
        self._guild_ready_timeout = guild_ready_timeout
        self._ready_timeout = ready_timeout
        self._max_ratelimit_timeout = max_ratelimit_timeout
        state = State()
        self._inbound = Inbound(state)
        self._buttons = Buttons(self._inbound.on_vote, self._inbound.on_pick)
        self._outbound = Outbound(
            state=state,
            buttons=self._buttons,
            announce_channels=announce_channels,
            publish_announcements=publish_announcements,
            reply_in_thread=reply_in_thread,
            post_timeout=post_timeout,
        )
        self._client: discord.AutoShardedClient | None = None
        self._runner: asyncio.Task[None] | None = None
        self._claimed = False
        self._failure: PlatformError | None = None

    # --- contract ------------------------------------------------------------------------

    def is_connected(self) -> bool:
        client, runner = self._client, self._runner
        return (
            client is not None
            and runner is not None
            and not runner.done()
            and client.is_ready()
            and not client.is_closed()
            and not self._inbound.down
        )

    def offers_choices(self) -> bool:
        """Suggestions are buttons; they work wherever the bot can post."""
        return True

    async def start(self, sink: EventSink) -> None:
        self._inbound.sink = sink
        _quiet_voice_warnings()
        claim_endpoints(self._api_url, self._gateway_url)
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
        client.add_dynamic_items(*self._buttons.classes)
        self._inbound.register(client)
        build_commands(client, self._inbound.on_announce)
        try:
            with discord_errors():
                await client.login(self._token)
        except PlatformError:
            await self.stop()
            raise
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
            # The gateway runner is the one call whose failure is kept rather than raised.
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
                with discord_errors():
                    await client.close()
            except PlatformError as exc:
                log.warning("discord client did not close cleanly: %s", exc.reason)
        runner, self._runner = self._runner, None
        if runner is not None and not runner.done():
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)
        if self._claimed:
            self._claimed = False
            release_endpoints()

    def _running(self) -> discord.AutoShardedClient:
        if self._client is None:
            raise TransientPlatformError(PLATFORM, "the Discord adapter is not running")
        return self._client

    async def send(self, message: OutgoingMessage) -> SentMessage:
        return await self._outbound.send(self._running(), message)

    async def delete(self, sent: SentMessage) -> None:
        await self._outbound.delete(self._running(), sent)

    async def find_posted(
        self, message: OutgoingMessage, key: str, since: datetime
    ) -> SentMessage | None:
        """The bot's post of ``message`` since ``since`` (see ``Outbound.find_posted``)."""
        return await self._outbound.find_posted(self._running(), message, since)

    # --- sync-commands -------------------------------------------------------------------

    async def sync_commands(self, scopes: Sequence[int] = ()) -> list[str]:
        """Register the app commands in the guilds ``scopes`` (instant) or globally (empty).

        Returns a line per registration, then the invite URL. Needs only the token, not the
        gateway.
        """
        _quiet_voice_warnings()
        claim_endpoints(self._api_url, self._gateway_url)
        client = discord.Client(intents=intents())  # never connects; only logs in over REST
        try:
            return await sync_commands(client, self._inbound.on_announce, self._token, scopes)
        finally:
            await client.close()
            release_endpoints()
