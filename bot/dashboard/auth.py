"""Who may see what: sessions, roles, CSRF tokens and the login rate limit."""

from __future__ import annotations

import functools
import hmac
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast

from aiohttp import web

from bot.store.users import SessionInfo

SESSION_COOKIE = "fb_session"
LOGIN_CSRF_COOKIE = "fb_login_csrf"
COOKIE_PATH = "/dashboard"
CSRF_FIELD = "csrf_token"
#: Window over which failed logins are counted.
LOGIN_WINDOW_SECONDS = 15 * 60

#: What each role may do. Everyone signed in may read the log, announcements and FAQ.
PERMISSIONS: dict[str, frozenset[str]] = {
    "view": frozenset({"moderator", "comms", "admin"}),
    "edit_faq": frozenset({"moderator", "admin"}),
    "review": frozenset({"moderator", "admin"}),
    "manage_announcements": frozenset({"comms", "admin"}),
    "audit": frozenset({"admin"}),
}

USER_KEY = web.RequestKey("user", SessionInfo)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Method = Callable[[Any, web.Request], Awaitable[web.StreamResponse]]
M = TypeVar("M", bound=Method)


def allowed(role: str, permission: str) -> bool:
    """Whether ``role`` has ``permission``."""
    return role in PERMISSIONS[permission]


def current_user(request: web.Request) -> SessionInfo:
    """The logged-in user (the auth middleware guarantees one on every private route)."""
    return request[USER_KEY]


def requires(permission: str) -> Callable[[M], M]:
    """Refuse the handler (a view method) with 403 unless the user's role has ``permission``."""

    def wrap(handler: M) -> M:
        @functools.wraps(handler)
        async def checked(self: Any, request: web.Request) -> web.StreamResponse:
            role = current_user(request).role
            if not allowed(role, permission):
                raise web.HTTPForbidden(text=f"The {role} role cannot do this.")
            return await handler(self, request)

        return cast(M, checked)

    return wrap


def same_token(given: str | None, expected: str | None) -> bool:
    """Constant-time comparison of two tokens; False if either is missing."""
    if not given or not expected:
        return False
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


class LoginLimiter:
    """Counts failed logins per client address and per user name in a sliding window.

    In memory, per process: a restart forgets the counts, which is acceptable for slowing
    down password guessing (argon2 makes each guess expensive too).
    """

    def __init__(
        self,
        max_failures: int,
        window: float = LOGIN_WINDOW_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._max = max_failures
        self._window = window
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, key: str) -> deque[float]:
        now = self._clock()
        stamps = self._failures.get(key)
        if stamps is None:
            return deque()
        while stamps and stamps[0] <= now - self._window:
            stamps.popleft()
        if not stamps:
            del self._failures[key]
        return stamps

    def retry_after(self, *keys: str) -> float:
        """Seconds until another attempt is allowed (0 if allowed now)."""
        wait = 0.0
        for key in keys:
            stamps = self._recent(key)
            if len(stamps) >= self._max:
                wait = max(wait, stamps[-self._max] + self._window - self._clock())
        return wait

    def failed(self, *keys: str) -> None:
        """Record a failed attempt under each key."""
        now = self._clock()
        for key in keys:
            self._failures.setdefault(key, deque()).append(now)
            if len(self._failures) > 10_000:  # bound memory under a spray of names
                self._failures.pop(next(iter(self._failures)))

    def succeeded(self, name_key: str) -> None:
        """A right password clears that name's failures (not the address's)."""
        self._failures.pop(name_key, None)
