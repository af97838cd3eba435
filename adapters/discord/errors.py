"""Discord's errors as the core's platform errors: the tables, one translation, one funnel.

Every discord.py call of the adapter runs inside :func:`discord_errors`, the one place where
discord.py's and aiohttp's exceptions are caught and turned into
:class:`~bot.errors.TransientPlatformError` or :class:`~bot.errors.PermanentPlatformError`
with a sentence staff can act on.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import aiohttp
import discord

from adapters.discord.rules import PLATFORM as PLATFORM
from bot.errors import PermanentPlatformError, PlatformError, TransientPlatformError

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
    """A discord.py or network error as the core's platform error.

    An error body that is not Discord's JSON (a proxy's plain-text 503) has no code
    (discord.py sets 0 and keeps the text): it is judged by its HTTP status alone.
    """
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


@contextlib.contextmanager
def discord_errors() -> Iterator[None]:
    """The funnel: discord.py and network errors raised inside become platform errors."""
    try:
        yield
    except DISCORD_ERRORS as exc:
        raise translate(exc) from exc
