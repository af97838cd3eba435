"""Mastodon.py's errors as the core's platform errors: one translation, one funnel."""

from __future__ import annotations

import time

import requests
from mastodon import (
    MastodonAPIError,
    MastodonError,
    MastodonNetworkError,
    MastodonNotFoundError,
    MastodonRatelimitError,
    MastodonServerError,
    MastodonUnauthorizedError,
)

from adapters.mastodon.rules import PLATFORM
from bot.errors import PermanentPlatformError, PlatformError, TransientPlatformError

REJECTED_CREDENTIALS = (
    "Mastodon rejected the access token (check MASTODON_ACCESS_TOKEN: an application token "
    "of the bot's account with the read and write:statuses scopes)"
)


def _status(exc: MastodonAPIError) -> int:
    """The HTTP status Mastodon.py keeps as the error's second argument."""
    args = exc.args
    return args[1] if len(args) > 1 and isinstance(args[1], int) else 0


def _detail(exc: MastodonAPIError) -> str:
    """Mastodon's error text (``{"error": …}``), if the body was Mastodon's JSON."""
    args = exc.args
    detail = args[3] if len(args) > 3 and isinstance(args[3], str) else ""
    return detail[:200]


def translate(
    exc: BaseException, *, write: bool = False, reset_at: float | None = None
) -> PlatformError:
    """A Mastodon.py error as the core's platform error.

    Args:
        exc: What Mastodon.py raised.
        write: The request creates something: a lost answer may mean it was created.
        reset_at: When the rate limit resets (Unix time, from ``X-RateLimit-Reset``).
    """
    if isinstance(exc, PlatformError):
        return exc
    if isinstance(exc, MastodonRatelimitError):
        wait = max(1.0, reset_at - time.time()) if reset_at else None
        return TransientPlatformError(PLATFORM, "rate limited (HTTP 429)", retry_after=wait)
    if isinstance(exc, MastodonUnauthorizedError):
        return PermanentPlatformError(PLATFORM, REJECTED_CREDENTIALS)
    if isinstance(exc, MastodonNotFoundError):
        return PermanentPlatformError(PLATFORM, "the status does not exist (deleted?)")
    if isinstance(exc, MastodonServerError):
        return TransientPlatformError(PLATFORM, f"Mastodon server error (HTTP {_status(exc)})")
    if isinstance(exc, MastodonAPIError):
        status, detail = _status(exc), _detail(exc)
        if status == 403:
            return PermanentPlatformError(
                PLATFORM,
                f"Mastodon refused (HTTP 403: {detail or 'forbidden'}); the token may lack the "
                "write:statuses scope",
            )
        if status >= 500 or status == 0:
            return TransientPlatformError(PLATFORM, f"Mastodon or a proxy failed (HTTP {status})")
        return PermanentPlatformError(
            PLATFORM, f"Mastodon refused the request (HTTP {status}: {detail or 'no detail'})"
        )
    if isinstance(exc, MastodonNetworkError):
        cause = exc.__context__
        # A connection never made (refused, DNS, connect timeout) posted nothing.
        if isinstance(cause, requests.ConnectTimeout) or "NewConnectionError" in repr(cause):
            return TransientPlatformError(PLATFORM, "cannot reach the Mastodon instance")
        if write:
            return TransientPlatformError(
                PLATFORM, "Mastodon did not confirm the post", ambiguous=True
            )
        return TransientPlatformError(PLATFORM, "Mastodon did not answer in time")
    if isinstance(exc, MastodonError | OSError | TimeoutError):
        return TransientPlatformError(PLATFORM, f"cannot reach Mastodon ({type(exc).__name__})")
    return TransientPlatformError(PLATFORM, f"Mastodon call failed ({type(exc).__name__})")
