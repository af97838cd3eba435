"""discord.py's process-wide endpoints, claimed by the adapters that use them.

discord.py reads its REST base (``discord.http.Route.BASE``, also used for interaction
callbacks and webhooks) and its gateway (``DiscordWebSocket.DEFAULT_GATEWAY``) from class
attributes, i.e. once per *process*. The adapter sets them from ``discord.api_url`` /
``discord.gateway_url`` when it starts and restores them when the last user stops; a second
Discord client in the same process asking for different endpoints is refused rather than
silently re-pointing the first.
"""

from __future__ import annotations

from dataclasses import dataclass

import yarl
from discord.gateway import DiscordWebSocket
from discord.http import Route

from adapters.discord.errors import PLATFORM
from bot.errors import PermanentPlatformError

DEFAULT_API_URL = "https://discord.com/api/v10"
DEFAULT_GATEWAY_URL = "wss://gateway.discord.gg/"


@dataclass
class _Endpoints:
    """Who holds discord.py's process-wide REST base and gateway, and what they were before."""

    users: int = 0
    api: str = DEFAULT_API_URL
    gateway: str = DEFAULT_GATEWAY_URL
    saved: tuple[str, yarl.URL] | None = None


_ENDPOINTS = _Endpoints()


def claim_endpoints(api_url: str | None, gateway_url: str | None) -> None:
    """Point discord.py at these endpoints (or check they are the ones in use).

    Raises:
        PermanentPlatformError: another client in this process uses different ones.
    """
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


def release_endpoints() -> None:
    """One user fewer; the last one restores discord.py's own endpoints."""
    _ENDPOINTS.users = max(0, _ENDPOINTS.users - 1)
    if not _ENDPOINTS.users and _ENDPOINTS.saved is not None:
        Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY = _ENDPOINTS.saved
        _ENDPOINTS.saved = None
