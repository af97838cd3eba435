"""atproto's errors as the core's platform errors: one translation, used by the one funnel."""

from __future__ import annotations

import time
from typing import Any

import httpx
from atproto_client import exceptions as at

from adapters.bluesky.rules import PLATFORM
from bot.errors import PermanentPlatformError, PlatformError, TransientPlatformError

REJECTED_LOGIN = (
    "Bluesky rejected the handle or app password (check bluesky.handle and "
    "BLUESKY_APP_PASSWORD: an app password from Settings → Privacy and security → App passwords)"
)


def _status(exc: at.RequestErrorBase) -> int:
    response = exc.response
    return int(getattr(response, "status_code", 0) or 0) if response is not None else 0


def detail(exc: BaseException) -> str:
    """The XRPC error name and message (``RecordNotFound: …``), if the body was JSON."""
    response: Any = getattr(exc, "response", None)
    content = getattr(response, "content", None)
    error = getattr(content, "error", None)
    if isinstance(error, str):
        message = getattr(content, "message", None)
        return f"{error}: {message}"[:200] if message else error
    return ""


def translate(exc: BaseException, *, write: bool = False, login: bool = False) -> PlatformError:
    """An atproto or network error as the core's platform error.

    Args:
        exc: What atproto raised.
        write: The request creates something: a lost answer may mean it was created.
        login: The request was the login (a refusal means the credentials).
    """
    if isinstance(exc, PlatformError):
        return exc
    if isinstance(exc, at.RateLimitExceededError):
        wait = exc.retry_after
        if wait is None and exc.reset_at is not None:
            wait = max(1.0, exc.reset_at.timestamp() - time.time())
        return TransientPlatformError(PLATFORM, "rate limited (HTTP 429)", retry_after=wait)
    if isinstance(exc, at.UnauthorizedError):
        if login:
            return PermanentPlatformError(PLATFORM, REJECTED_LOGIN)
        return PermanentPlatformError(
            PLATFORM, f"Bluesky refused (HTTP {_status(exc)}: {detail(exc) or 'unauthorized'})"
        )
    if isinstance(exc, at.InvokeTimeoutError):
        if write:
            return TransientPlatformError(
                PLATFORM, "Bluesky did not confirm the post", ambiguous=True
            )
        return TransientPlatformError(PLATFORM, "Bluesky did not answer in time")
    if isinstance(exc, at.NetworkError):
        if exc.response is not None:
            return TransientPlatformError(
                PLATFORM, f"Bluesky or a proxy failed (HTTP {_status(exc)})"
            )
        # A connection never made posted nothing; one broken after sending may have.
        if write and not isinstance(exc.__cause__, httpx.ConnectError):
            return TransientPlatformError(
                PLATFORM, "the connection to Bluesky broke before it answered", ambiguous=True
            )
        return TransientPlatformError(PLATFORM, "cannot reach Bluesky")
    if isinstance(exc, at.RequestErrorBase):
        status = _status(exc)
        if status >= 500 or status == 0:
            return TransientPlatformError(PLATFORM, f"Bluesky server error (HTTP {status})")
        if "RecordNotFound" in detail(exc) or status == 404:
            return PermanentPlatformError(PLATFORM, "the post does not exist (deleted?)")
        return PermanentPlatformError(
            PLATFORM, f"Bluesky refused the request (HTTP {status}: {detail(exc) or 'no detail'})"
        )
    return TransientPlatformError(PLATFORM, f"cannot reach Bluesky ({type(exc).__name__})")
