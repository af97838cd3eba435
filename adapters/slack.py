"""Slack on slack-bolt: questions in threads, feedback buttons, ``/announce``, announcements.

Two connection modes: Socket Mode (app-level token, no public URL; the default) and HTTP mode
(events and commands posted to the bot's own web server at ``/slack/events``, signatures
verified by Bolt, so a bad or stale signature gets 401 and nothing else happens).

Everything Slack-shaped stays in this module: payloads become the core's events on the way in,
``OutgoingMessage`` becomes ``chat.postMessage`` (with Block Kit) on the way out, and
``SlackApiError`` and network errors become the core's transient or permanent platform errors.
Announcement posts carry their idempotency key in the message metadata, so a post whose answer
was lost (a timeout) can be found in the channel history (:meth:`SlackAdapter.find_posted`).
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

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
from slack_sdk.webhook.async_client import AsyncWebhookClient

from adapters.base import EventSink
from bot.commands import FAILURE
from bot.errors import PermanentPlatformError, PlatformError, TransientPlatformError
from bot.events import (
    Author,
    Conversation,
    Feedback,
    IncomingMessage,
    OutgoingMessage,
    Reaction,
    SentMessage,
    SlashCommand,
)

log = logging.getLogger(__name__)

PLATFORM = "slack"
EVENTS_PATH = "/slack/events"
DEFAULT_API_URL = "https://slack.com/api/"
GROUP_CACHE_SECONDS = 300
MODAL_CALLBACK = "announce_schedule"
#: The message metadata event type carrying an announcement post's idempotency key.
POST_METADATA_EVENT = "foundation_bot_post"
#: Pages of channel history read when looking for a post whose answer was lost.
HISTORY_PAGES = 5
#: The Events API events the adapter listens to; slack-app-manifest.yml must subscribe to
#: each (``message`` as message.channels, message.groups and message.im).
BOT_EVENTS = ("app_mention", "message", "reaction_added", "reaction_removed")

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


@dataclass(frozen=True, slots=True)
class _Reply:
    """The handle of an interaction: where an ephemeral answer goes."""

    response_url: str | None
    channel: str
    user: str


def translate(exc: BaseException, *, write: bool = False) -> PlatformError:
    """A Slack SDK or network error as the core's platform error.

    Args:
        exc: What slack-sdk or aiohttp raised.
        write: The request posts something: a connection lost after it was sent may mean
            Slack posted it, so that is ambiguous (a failed connect is not).
    """
    if isinstance(exc, SlackApiError):
        response = exc.response
        code = str(response.get("error", "")) if response is not None else ""
        status = getattr(response, "status_code", 0)
        if status == 429 or code == "ratelimited":
            headers = getattr(response, "headers", {}) or {}
            retry_after = headers.get("Retry-After") or headers.get("retry-after")
            return TransientPlatformError(
                PLATFORM,
                "rate limited (HTTP 429)",
                retry_after=float(retry_after) if retry_after else None,
            )
        if status >= 500 or code in ("internal_error", "fatal_error", "service_unavailable"):
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


def _code(exc: SlackApiError) -> str:
    """Slack's error code (``invalid_auth``), or the HTTP status."""
    response = exc.response
    code = str(response.get("error", "")) if response is not None else ""
    return code or str(getattr(response, "status_code", "") or "no answer")


def feedback_blocks(text: str, token: str) -> list[dict[str, Any]]:
    """The answer as a section plus 👍/👎 buttons carrying the feedback token."""
    return [
        {"type": "section", "text": {"type": "mrkdwn", "text": text[:3000]}},
        {
            "type": "actions",
            "block_id": "feedback",
            "elements": [
                {
                    "type": "button",
                    "action_id": "feedback_up",
                    "value": token,
                    "text": {"type": "plain_text", "text": "👍 Helpful", "emoji": True},
                },
                {
                    "type": "button",
                    "action_id": "feedback_down",
                    "value": token,
                    "text": {"type": "plain_text", "text": "👎 Not helpful", "emoji": True},
                },
            ],
        },
    ]


def escalation_blocks(text: str, token: str) -> list[dict[str, Any]]:
    """The thumbs-down acknowledgement with an "ask a moderator" button."""
    return [
        {"type": "section", "text": {"type": "mrkdwn", "text": text[:3000]}},
        {
            "type": "actions",
            "block_id": "escalate",
            "elements": [
                {
                    "type": "button",
                    "action_id": "feedback_escalate",
                    "value": token,
                    "text": {"type": "plain_text", "text": "Ask a moderator"},
                },
            ],
        },
    ]


def announce_modal(channel: str, response_url: str | None = None) -> dict[str, Any]:
    """The ``/announce schedule`` form: text, time, zone and platforms.

    The command's channel and response URL ride along in ``private_metadata``: the
    confirmation goes back through the response URL, which works in channels the bot is not
    a member of (``chat.postEphemeral`` does not).
    """

    def field(
        block_id: str,
        label: str,
        placeholder: str,
        *,
        multiline: bool = False,
        optional: bool = False,
    ) -> dict[str, Any]:
        return {
            "type": "input",
            "block_id": block_id,
            "optional": optional,
            "label": {"type": "plain_text", "text": label},
            "element": {
                "type": "plain_text_input",
                "action_id": "value",
                "multiline": multiline,
                "placeholder": {"type": "plain_text", "text": placeholder},
            },
        }

    return {
        "type": "modal",
        "callback_id": MODAL_CALLBACK,
        "private_metadata": json.dumps({"channel": channel, "response_url": response_url}),
        "title": {"type": "plain_text", "text": "Schedule announcement"},
        "submit": {"type": "plain_text", "text": "Schedule"},
        "blocks": [
            field(
                "text", "Announcement (Markdown)", "The PyTorch Foundation is live!", multiline=True
            ),
            field("at", "When", "tomorrow 9am, in 2 hours, 2026-12-01T09:00"),
            field("tz", "Time zone", "Europe/Berlin (default: yours)", optional=True),
            field("to", "Platforms", "slack,discord,x (default: all)", optional=True),
        ],
    }


def modal_origin(private_metadata: str) -> tuple[str, str | None]:
    """The command's channel and response URL a submitted modal carries.

    A bare channel id (modals opened before the response URL was kept) has no response URL.
    """
    try:
        data = json.loads(private_metadata)
    except ValueError:
        return private_metadata, None
    if not isinstance(data, dict):
        return private_metadata, None
    return str(data.get("channel") or ""), (str(data.get("response_url") or "") or None)


def modal_command(values: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> str:
    """The ``/announce`` text a submitted modal stands for."""

    def value(block: str) -> str:
        return str((values.get(block, {}).get("value", {}) or {}).get("value") or "").strip()

    parts = ["schedule", "--at", _quote(value("at"))]
    if value("tz"):
        parts += ["--tz", value("tz").split()[0]]
    if value("to"):
        parts += ["--to", value("to").replace(" ", "")]
    parts.append(value("text"))
    return " ".join(parts)


def _describe(body: Mapping[str, Any]) -> str:
    """What a failed request was, as key=value fields: kinds, names and ids, never tokens."""
    if not isinstance(body, Mapping):
        return "request=unknown"

    def inner(key: str) -> Mapping[str, Any]:
        value = body.get(key)
        return value if isinstance(value, Mapping) else {}

    actions = body.get("actions")
    action = actions[0] if isinstance(actions, list) and actions else {}
    fields = {
        "type": body.get("type") or ("slash_command" if body.get("command") else None),
        "event": inner("event").get("type"),
        "event_id": body.get("event_id"),
        "command": body.get("command"),
        "action": action.get("action_id") if isinstance(action, Mapping) else None,
        "callback": inner("view").get("callback_id"),
        "user": body.get("user_id") or inner("user").get("id") or inner("event").get("user"),
        "channel": body.get("channel_id") or inner("channel").get("id"),
    }
    return " ".join(f"{k}={v}" for k, v in fields.items() if v) or "request=unknown"


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


def _quote(text: str) -> str:
    return f'"{text.replace(chr(34), "")}"'


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
        self._staff_users = staff_users
        self._staff_groups = staff_usergroups
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
        # Announcement posts (they carry an idempotency key) are not re-sent by slack-sdk when
        # the connection drops: Slack may have posted them already. The delivery engine looks
        # them up instead (find_posted) and posts again only if they are not there.
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
        self._sink: EventSink | None = None
        self._socket: AsyncSocketModeHandler | None = None
        self._session: aiohttp.ClientSession | None = None
        self._connected = False
        self._groups: dict[str, frozenset[str]] = {}
        self._groups_at = 0.0
        self._register()

    # --- contract ------------------------------------------------------------------------

    def is_connected(self) -> bool:
        return self._connected

    async def start(self, sink: EventSink) -> None:
        self._sink = sink
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
            return await call
        except SlackApiError as exc:
            error = translate(exc)
            if isinstance(error, PermanentPlatformError):
                raise PermanentPlatformError(PLATFORM, refused.format(code=_code(exc))) from exc
            raise error from exc
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise translate(exc) from exc

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
        channel = message.where.channel_id
        keyed = bool(message.idempotency_key)
        try:
            handle = message.handle if isinstance(message.handle, _Reply) else None
            if message.ephemeral_to and handle is not None and handle.response_url:
                webhook = AsyncWebhookClient(handle.response_url)
                extra: dict[str, Any] = {}
                if message.escalation_token:
                    extra["blocks"] = escalation_blocks(message.text, message.escalation_token)
                answer = await webhook.send(
                    text=message.text, response_type="ephemeral", replace_original=False, **extra
                )
                if 200 <= answer.status_code < 300:
                    return SentMessage(PLATFORM, channel, "", None)
                # Refused, so not shown: a response URL lasts 30 minutes and 5 uses (a modal
                # can be submitted later than that). Never log the URL: it can post.
                log.warning(
                    "response_url refused status=%s; answering with chat.postEphemeral",
                    answer.status_code,
                )
            if message.ephemeral_to:
                response = await self.client.chat_postEphemeral(
                    channel=channel, user=message.ephemeral_to, text=message.text
                )
                return SentMessage(PLATFORM, channel, str(response.get("message_ts", "")))
            thread = message.where.thread_id or message.reply_to
            kwargs: dict[str, Any] = {"channel": channel, "text": message.text}
            if thread:
                kwargs["thread_ts"] = thread
            if message.feedback_token:
                kwargs["blocks"] = feedback_blocks(message.text, message.feedback_token)
            elif message.blocks:
                kwargs["blocks"] = list(message.blocks)
            if message.idempotency_key:
                kwargs["metadata"] = {
                    "event_type": POST_METADATA_EVENT,
                    "event_payload": {"key": message.idempotency_key},
                }
            client = self._keyed_client if keyed else self.client
            response = await client.chat_postMessage(**kwargs)
        except (SlackApiError, aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise translate(exc, write=keyed) from exc
        ts = str(response["ts"])
        url = None
        if not thread:  # top-level posts (announcements) get a permalink for the log
            url = await self._permalink(channel, ts)
        return SentMessage(
            PLATFORM, str(response.get("channel", channel)), ts, url, thread_id=thread or None
        )

    async def _permalink(self, channel: str, ts: str) -> str | None:
        """The message's link, or None: the message is up, so a failure here is no failure."""
        try:
            link = await self.client.chat_getPermalink(channel=channel, message_ts=ts)
        except (SlackApiError, aiohttp.ClientError, OSError, TimeoutError) as exc:
            log.warning("no permalink for a posted message ts=%s: %s", ts, translate(exc).reason)
            return None
        return str(link.get("permalink") or "") or None

    async def delete(self, sent: SentMessage) -> None:
        try:
            await self.client.chat_delete(channel=sent.channel_id, ts=sent.message_id)
        except (SlackApiError, aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise translate(exc) from exc

    async def find_posted(
        self, message: OutgoingMessage, key: str, since: datetime
    ) -> SentMessage | None:
        """The bot's message carrying ``key`` in its metadata, posted since ``since``.

        Reads the channel history (``conversations.history``; a thread reply:
        ``conversations.replies``) with every message's metadata, newest first.
        """
        channel = message.where.channel_id
        thread = message.where.thread_id or message.reply_to
        args: dict[str, Any] = {
            "channel": channel,
            "oldest": f"{since.timestamp():.6f}",
            "include_all_metadata": True,
            "limit": 200,
        }
        cursor: str | None = None
        try:
            for _ in range(HISTORY_PAGES):
                if cursor:
                    args["cursor"] = cursor
                if thread:
                    response = await self.client.conversations_replies(ts=thread, **args)
                else:
                    response = await self.client.conversations_history(**args)
                found: list[dict[str, Any]] = response.get("messages", []) or []
                for item in found:
                    metadata = item.get("metadata") or {}
                    payload = metadata.get("event_payload") or {}
                    if metadata.get("event_type") == POST_METADATA_EVENT and (
                        payload.get("key") == key
                    ):
                        return await self._found(channel, str(item["ts"]), thread)
                meta = response.get("response_metadata") or {}
                cursor = str(meta.get("next_cursor") or "") or None
                if not cursor:
                    break
        except (SlackApiError, aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise translate(exc) from exc
        return None

    async def _found(self, channel: str, ts: str, thread: str | None) -> SentMessage:
        url = None if thread else await self._permalink(channel, ts)
        return SentMessage(PLATFORM, channel, ts, url, thread_id=thread or None)

    # --- inbound -------------------------------------------------------------------------

    async def _deliver(self, event: Any) -> None:
        if self._sink is not None:
            await self._sink(event)

    async def _author(self, user: str) -> Author:
        return Author(id=user, roles=await self._groups_of(user))

    async def _groups_of(self, user: str) -> frozenset[str]:
        """The configured staff user groups this user is in (cached for a few minutes)."""
        if not self._staff_groups:
            return frozenset()
        if time.monotonic() - self._groups_at > GROUP_CACHE_SECONDS:
            members: dict[str, set[str]] = {}
            try:
                response = await self.client.usergroups_list(include_users=True)
                groups: list[dict[str, Any]] = response.get("usergroups", []) or []
                for group in groups:
                    if group.get("id") in self._staff_groups:
                        for member in group.get("users", []) or []:
                            members.setdefault(member, set()).add(group["id"])
                self._groups = {u: frozenset(g) for u, g in members.items()}
                self._groups_at = time.monotonic()
            except (SlackApiError, aiohttp.ClientError, OSError, TimeoutError) as exc:
                log.warning("cannot read Slack user groups: %s", translate(exc).reason)
        return self._groups.get(user, frozenset())

    def _register(self) -> None:
        app = self.app

        async def mention(event: dict[str, Any], body: dict[str, Any]) -> None:
            await self._deliver(await self._message(event, body, mentions_bot=True))

        async def message(event: dict[str, Any], body: dict[str, Any], context: Any) -> None:
            if event.get("subtype") or event.get("bot_id"):
                return  # edits, joins, other bots: not questions
            text = str(event.get("text") or "")
            is_direct = event.get("channel_type") == "im"
            bot_user = getattr(context, "bot_user_id", None) or context.get("bot_user_id")
            if not is_direct and bot_user and f"<@{bot_user}>" in text:
                return  # app_mention delivers this one
            if not is_direct and not event.get("thread_ts"):
                return  # channel chatter outside threads is not for the bot
            await self._deliver(await self._message(event, body, mentions_bot=False))

        async def reaction_added(event: dict[str, Any], body: dict[str, Any]) -> None:
            await self._deliver(await self._reaction(event, body, added=True))

        async def reaction_removed(event: dict[str, Any], body: dict[str, Any]) -> None:
            await self._deliver(await self._reaction(event, body, added=False))

        # Events first: Bolt tries listeners in the order they were added and nearly every
        # request is an event (a question), so it should not be matched against the
        # command, view and action listeners before its own.
        handlers = {
            "app_mention": mention,
            "message": message,
            "reaction_added": reaction_added,
            "reaction_removed": reaction_removed,
        }
        for name in BOT_EVENTS:
            app.event(name)(handlers[name])

        @app.command("/announce")
        async def announce(ack: Any, command: dict[str, Any], client: Any) -> None:
            await ack()
            text = str(command.get("text") or "").strip()
            channel = str(command.get("channel_id") or "")
            user = str(command.get("user_id") or "")
            wants_form = text.lower() == "schedule" and bool(command.get("trigger_id"))
            # The form must open within Slack's 3 s trigger window: staff listed by user id
            # get it before any user-group lookup (which may call usergroups.list).
            author = Author(user) if wants_form and user in self._staff_users else None
            if author is None:
                author = await self._author(user)
            # Only staff get the form; anyone else's "schedule" goes to the core like any other
            # command, which refuses it in one line (and audits it) before they type anything.
            is_staff = user in self._staff_users or bool(author.roles)
            if wants_form and is_staff:
                view = announce_modal(channel, command.get("response_url"))
                try:
                    await client.views_open(trigger_id=command["trigger_id"], view=view)
                    return
                except SlackApiError as exc:
                    log.warning("announce modal not opened: %s", translate(exc).reason)
            await self._deliver(
                SlashCommand(
                    where=Conversation(PLATFORM, channel),
                    author=author,
                    name="announce",
                    text=text,
                    handle=_Reply(command.get("response_url"), channel, user),
                )
            )

        @app.view(MODAL_CALLBACK)
        async def modal(ack: Any, body: dict[str, Any], view: dict[str, Any]) -> None:
            await ack()
            user = str((body.get("user") or {}).get("id") or "")
            channel, response_url = modal_origin(str(view.get("private_metadata") or ""))
            channel = channel or user
            values = (view.get("state") or {}).get("values") or {}
            await self._deliver(
                SlashCommand(
                    where=Conversation(PLATFORM, channel),
                    author=await self._author(user),
                    name="announce",
                    text=modal_command(values),
                    handle=_Reply(response_url, channel, user),
                )
            )

        async def feedback(body: dict[str, Any], helpful: bool, escalate: bool) -> None:
            action = (body.get("actions") or [{}])[0]
            user = str((body.get("user") or {}).get("id") or "")
            channel = str((body.get("channel") or {}).get("id") or "")
            message = body.get("message") or {}
            await self._deliver(
                Feedback(
                    where=Conversation(PLATFORM, channel, thread_id=message.get("thread_ts")),
                    author=await self._author(user),
                    token=str(action.get("value") or ""),
                    helpful=helpful,
                    escalate=escalate,
                    event_id=f"action:{action.get('action_ts', '')}:{user}",
                    handle=_Reply(body.get("response_url"), channel, user),
                )
            )

        @app.action("feedback_up")
        async def feedback_up(ack: Any, body: dict[str, Any]) -> None:
            await ack()
            await feedback(body, helpful=True, escalate=False)

        @app.action("feedback_down")
        async def feedback_down(ack: Any, body: dict[str, Any]) -> None:
            await ack()
            await feedback(body, helpful=False, escalate=False)

        @app.action("feedback_escalate")
        async def feedback_escalate(ack: Any, body: dict[str, Any]) -> None:
            await ack()
            await feedback(body, helpful=False, escalate=True)

        @app.error
        async def on_error(error: Exception, body: dict[str, Any]) -> None:
            # The traceback goes to the server log with what the request was (ids and names
            # only: the body also carries tokens and response URLs); the user gets one line.
            log.exception("slack listener failed %s", _describe(body), exc_info=error)
            response_url = body.get("response_url") if isinstance(body, dict) else None
            if response_url:
                await self._apologize(str(response_url))

    async def _apologize(self, response_url: str) -> None:
        """The generic one-line apology, to the user only; a failure here is only logged."""
        try:
            await AsyncWebhookClient(response_url).send(
                text=FAILURE, response_type="ephemeral", replace_original=False
            )
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            log.warning("apology not sent: %s", translate(exc).reason)

    async def _message(
        self, event: dict[str, Any], body: dict[str, Any], *, mentions_bot: bool
    ) -> IncomingMessage:
        channel = str(event.get("channel") or "")
        return IncomingMessage(
            where=Conversation(
                PLATFORM,
                channel,
                thread_id=event.get("thread_ts"),
                is_direct=event.get("channel_type") == "im",
            ),
            author=await self._author(str(event.get("user") or "")),
            text=str(event.get("text") or ""),
            message_id=str(event.get("ts") or ""),
            mentions_bot=mentions_bot,
            # app_mention and message share a delivery id; keep them apart, retries equal.
            event_id=f"{body.get('event_id', '')}:{event.get('type', '')}",
        )

    async def _reaction(
        self, event: dict[str, Any], body: dict[str, Any], *, added: bool
    ) -> Reaction:
        item = event.get("item") or {}
        return Reaction(
            where=Conversation(PLATFORM, str(item.get("channel") or "")),
            author=await self._author(str(event.get("user") or "")),
            message_id=str(item.get("ts") or ""),
            emoji=str(event.get("reaction") or ""),
            added=added,
            event_id=str(body.get("event_id") or ""),
        )
