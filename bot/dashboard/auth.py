"""Who may see what: sessions, roles and CSRF tokens (the login rate limit is
:class:`bot.store.users.LoginLimiter`)."""

from __future__ import annotations

import functools
import hmac
import ipaddress
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar, cast

from aiohttp import web

from bot.store.users import SessionInfo

SESSION_COOKIE = "fb_session"
LOGIN_CSRF_COOKIE = "fb_login_csrf"
COOKIE_PATH = "/dashboard"
CSRF_FIELD = "csrf_token"

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


def client_address(request: web.Request, trusted_proxies: Sequence[str]) -> str:
    """The address a request came from: the peer, or, when the peer is a trusted proxy, the
    nearest address in X-Forwarded-For that is not one (walking it right to left, the usual
    rule: only what trusted hops appended is believed)."""
    networks = [ipaddress.ip_network(p, strict=False) for p in trusted_proxies]
    address = request.remote or "unknown"
    if not networks:
        return address
    hops = [h.strip() for h in ",".join(request.headers.getall("X-Forwarded-For", [])).split(",")]
    hops = [h for h in hops if h]
    while hops and _in(address, networks):
        address = hops.pop()
    return address


def _in(address: str, networks: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)
