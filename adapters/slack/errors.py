"""Slack's errors as the core's platform errors: one table, one translation, one funnel.

Every Web API call of the adapter runs inside :func:`slack_errors`, the one place where
slack-sdk's and aiohttp's exceptions are caught and turned into
:class:`~bot.errors.TransientPlatformError` or :class:`~bot.errors.PermanentPlatformError`
(as httpx's ``map_httpcore_exceptions`` does for httpcore).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import aiohttp
from slack_sdk.errors import SlackApiError

from adapters.slack.rules import PLATFORM as PLATFORM
from bot.errors import PermanentPlatformError, PlatformError, TransientPlatformError

#: What a Slack call can raise that :func:`translate` turns into a platform error.
SLACK_ERRORS = (SlackApiError, aiohttp.ClientError, OSError, TimeoutError)

#: Slack error codes retrying cannot fix, with the sentence staff see.
PERMANENT_ERRORS = {
    "not_in_channel": "the bot is not a member of the channel: invite it with /invite",
    "channel_not_found": "the channel does not exist or the bot cannot see it",
    "is_archived": "the channel is archived",
    "not_authed": "no Slack token was sent (check SLACK_BOT_TOKEN)",
    "invalid_auth": "Slack rejected the bot token (check SLACK_BOT_TOKEN)",
    "account_inactive": "the Slack bot account is deactivated",
    "token_revoked": "the Slack bot token was revoked",
    "missing_scope": "the Slack app lacks a scope it needs (see slack-app-manifest.yml)",
    "msg_too_long": "the message is too long for Slack",
    "restricted_action": "a workspace setting prevents the bot from posting there",
    "message_not_found": "the message no longer exists",
    "cant_delete_message": "Slack does not allow the bot to delete that message",
}
#: Error codes Slack answers when the fault is on its side.
SERVER_ERRORS = ("internal_error", "fatal_error", "service_unavailable")


def error_code(exc: SlackApiError) -> str:
    """Slack's error code (``invalid_auth``), or ``""``.

    slack-sdk keeps a body that is not JSON (a proxy's ``text/plain`` 503, an HTML error page)
    as a string or bytes: only a JSON object has a code.
    """
    response = exc.response
    data = getattr(response, "data", None)
    if isinstance(data, dict):
        return str(data.get("error") or "")
    return ""


def status_code(exc: SlackApiError) -> int:
    """The HTTP status of the failed call (0 if there was no response)."""
    status = getattr(exc.response, "status_code", 0)
    return status if isinstance(status, int) else 0


def describe(exc: SlackApiError) -> str:
    """Slack's error code, else the HTTP status, for a one-line message."""
    return error_code(exc) or str(status_code(exc) or "no answer")


def translate(exc: BaseException, *, write: bool = False) -> PlatformError:
    """A Slack SDK or network error as the core's platform error.

    Args:
        exc: What slack-sdk or aiohttp raised.
        write: The request posts something: a connection lost after it was sent may mean
            Slack posted it, so that is ambiguous (a failed connect is not).
    """
    if isinstance(exc, PlatformError):
        return exc
    if isinstance(exc, SlackApiError):
        code, status = error_code(exc), status_code(exc)
        if status == 429 or code == "ratelimited":
            headers = getattr(exc.response, "headers", None) or {}
            retry_after = headers.get("Retry-After") or headers.get("retry-after")
            return TransientPlatformError(
                PLATFORM,
                "rate limited (HTTP 429)",
                retry_after=_seconds(retry_after),
            )
        if status >= 500 or code in SERVER_ERRORS:
            return TransientPlatformError(PLATFORM, f"Slack server error ({code or status})")
        reason = PERMANENT_ERRORS.get(code, f"Slack refused the request ({code or status})")
        return PermanentPlatformError(PLATFORM, reason)
    if isinstance(exc, TimeoutError):
        # The request went out; Slack may have posted it before we gave up waiting.
        return TransientPlatformError(PLATFORM, "Slack did not answer in time", ambiguous=True)
    if write and not isinstance(exc, aiohttp.ClientConnectorError):
        return TransientPlatformError(
            PLATFORM,
            f"the connection to Slack broke before it answered ({type(exc).__name__})",
            ambiguous=True,
        )
    return TransientPlatformError(PLATFORM, f"cannot reach Slack ({type(exc).__name__})")


def _seconds(value: object) -> float | None:
    try:
        return float(str(value)) if value else None
    except ValueError:
        return None  # an HTTP date or garbage: the engine's own backoff applies


@contextlib.contextmanager
def slack_errors(*, write: bool = False) -> Iterator[None]:
    """The funnel: SDK and network errors raised inside become platform errors.

    Args:
        write: The calls inside post something (see :func:`translate`).
    """
    try:
        yield
    except SLACK_ERRORS as exc:
        raise translate(exc, write=write) from exc
