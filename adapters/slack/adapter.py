"""The Slack adapter: the connection (Socket Mode or HTTP), composed of its inbound listeners,
outbound calls and ``/announce`` command."""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable
from datetime import datetime

import aiohttp
from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.app.async_app import AsyncApp
from slack_bolt.logger.messages import warning_client_prioritized_and_token_skipped
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from adapters.base import EventSink
from adapters.slack.commands import register_commands
from adapters.slack.errors import PLATFORM, describe, slack_errors
from adapters.slack.inbound import Inbound
from adapters.slack.outbound import Outbound
from bot.errors import PermanentPlatformError
from bot.events import OutgoingMessage, SentMessage

log = logging.getLogger(__name__)

EVENTS_PATH = "/slack/events"
DEFAULT_API_URL = "https://slack.com/api/"

#: slack-sdk's Web API client loggers. It decides whether to format a debug line for each
#: request from ``logger.level <= DEBUG`` rather than ``isEnabledFor``, so while a logger's
#: own level is NOTSET (0, the default) it builds that line (headers, the JSON body) for
#: every call and then drops it.
SDK_LOGGERS = ("slack_sdk.web.async_base_client", "slack_sdk.web.async_internal_utils")


def _pin_sdk_log_levels() -> None:
    """Give slack-sdk's client loggers their effective level as their own: the same records
    come out (DEBUG still does when the bot runs with --verbose), minus the wasted work."""
    for name in SDK_LOGGERS:
        logger = logging.getLogger(name)
        if logger.level == logging.NOTSET:
            logger.setLevel(logger.getEffectiveLevel())


def _not_token_unused(record: logging.LogRecord) -> bool:
    """Bolt takes SLACK_BOT_TOKEN from the environment even when given a client, then warns
    at every start that the token is unused: the client carries that very token."""
    return record.getMessage() != warning_client_prioritized_and_token_skipped()


class SlackAdapter:
    """The Slack platform behind the core's Adapter contract."""

    platform = PLATFORM

    def __init__(
        self,
        *,
        bot_token: str,
        app_token: str | None = None,
        signing_secret: str | None = None,
        mode: str = "socket",
        api_url: str | None = None,
        announce_channels: tuple[str, ...] = (),
        staff_users: tuple[str, ...] = (),
        staff_usergroups: tuple[str, ...] = (),
        retries: int = 2,
        timeout: float = 30.0,
    ) -> None:
        if mode == "socket" and not app_token:
            raise ValueError("socket mode needs an app-level token")
        if mode == "http" and not signing_secret:
            raise ValueError("HTTP mode needs a signing secret")
        self.announce_channels = announce_channels
        self._mode = mode
        self._app_token = app_token
        self._timeout = timeout
        self.client = AsyncWebClient(
            token=bot_token,
            base_url=api_url or DEFAULT_API_URL,
            timeout=max(1, math.ceil(timeout)),
            retry_handlers=[
                AsyncRateLimitErrorRetryHandler(max_retry_count=retries),
                AsyncConnectionErrorRetryHandler(max_retry_count=retries),
            ],
        )
        self._keyed_client = AsyncWebClient(
            token=bot_token,
            base_url=api_url or DEFAULT_API_URL,
            timeout=max(1, math.ceil(timeout)),
            retry_handlers=[AsyncRateLimitErrorRetryHandler(max_retry_count=retries)],
        )
        logging.getLogger("slack_bolt.AsyncApp").addFilter(_not_token_unused)  # idempotent
        self.app = AsyncApp(
            client=self.client,
            signing_secret=signing_secret,
            request_verification_enabled=mode == "http",
            name="foundation-bot",
        )
        self._inbound = Inbound(self.client, staff_usergroups)
        self._outbound = Outbound(self.client, self._keyed_client)
        self._inbound.register(self.app)
        register_commands(self.app, self._inbound, staff_users)
        self._socket: AsyncSocketModeHandler | None = None
        self._session: aiohttp.ClientSession | None = None
        self._connected = False

    # --- contract ------------------------------------------------------------------------

    def is_connected(self) -> bool:
        return self._connected

    def offers_choices(self) -> bool:
        """Suggestions are Block Kit buttons, shown everywhere the bot posts."""
        return True

    async def start(self, sink: EventSink) -> None:
        self._inbound.sink = sink
        _pin_sdk_log_levels()
        # One pooled HTTP session for every Web API call (Bolt's per-request clients share
        # it too): keep-alive connections instead of a new session, TCP (and TLS) handshake
        # per call, which is slack-sdk's default when no session is given.
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self._timeout)
            )
            self.client.session = self._keyed_client.session = self._session
        try:
            await self._check_bot_token()
            if self._mode == "socket":
                await self._connect_socket()
        except BaseException:
            # The runtime stops only adapters that started: close what is open here.
            await self.stop()
            raise
        self._connected = True

    async def _connect_socket(self) -> None:
        # slack-sdk retries a failed connect forever (a rejected app token included), which
        # would hold up the whole start-up: open the connection URL here once, so a bad token
        # fails now with a message, and hand that URL to the SDK (the method is rate limited
        # to about one call a minute: no second call for the same connection).
        url = await self._open_socket_url()
        self._socket = AsyncSocketModeHandler(
            self.app, app_token=self._app_token, web_client=self.client
        )
        self._socket.client.wss_uri = url
        with slack_errors():
            await self._socket.connect_async()  # type: ignore[no-untyped-call]

    async def _check_bot_token(self) -> None:
        """``auth.test`` with the bot token; a rejected token fails the start in one line."""
        await self._token_check(
            self.client.auth_test(),
            "Slack rejected the bot token ({code}): check SLACK_BOT_TOKEN, the app's xoxb- Bot "
            "User OAuth Token",
        )

    async def _open_socket_url(self) -> str:
        """A Socket Mode websocket URL from ``apps.connections.open`` with the app token."""
        response = await self._token_check(
            self.client.apps_connections_open(app_token=self._app_token or ""),
            "Slack rejected the app-level token ({code}): check SLACK_APP_TOKEN, an xapp- token "
            "with the connections:write scope",
        )
        return str(response["url"])

    @staticmethod
    async def _token_check(call: Awaitable[AsyncSlackResponse], refused: str) -> AsyncSlackResponse:
        """Await a start-up call; a refusal Slack means for good becomes ``refused`` (with
        Slack's error code in ``{code}``), anything else the usual platform error."""
        try:
            with slack_errors():
                return await call
        except PermanentPlatformError as error:
            cause = error.__cause__
            code = describe(cause) if isinstance(cause, SlackApiError) else error.reason
            raise PermanentPlatformError(PLATFORM, refused.format(code=code)) from cause

    async def stop(self) -> None:
        self._connected = False
        if self._socket is not None:
            await self._socket.close_async()  # type: ignore[no-untyped-call]
            self._socket = None
        if self._session is not None:
            self.client.session = self._keyed_client.session = None
            await self._session.close()
            self._session = None

    def web_routes(self) -> list[web.RouteDef]:
        """Routes the bot's web server mounts (HTTP mode only)."""
        if self._mode != "http":
            return []

        async def events(request: web.Request) -> web.Response:
            bolt_response = await self.app.async_dispatch(await to_bolt_request(request))
            return await to_aiohttp_response(bolt_response)

        return [web.post(EVENTS_PATH, events)]

    async def send(self, message: OutgoingMessage) -> SentMessage:
        return await self._outbound.send(message)

    async def delete(self, sent: SentMessage) -> None:
        await self._outbound.delete(sent)

    async def find_posted(
        self, message: OutgoingMessage, key: str, since: datetime
    ) -> SentMessage | None:
        """The bot's message carrying ``key`` in its metadata, posted since ``since``."""
        return await self._outbound.find_posted(message, key, since)
