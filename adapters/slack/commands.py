"""``/announce`` on Slack: the slash command, its form (a modal) for staff, and the one-line
apology when a listener fails."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt.app.async_app import AsyncApp
from slack_sdk.webhook.async_client import AsyncWebhookClient

from adapters.slack.errors import PLATFORM, slack_errors
from adapters.slack.inbound import Inbound, describe_request
from adapters.slack.outbound import Reply
from adapters.slack.ui import MODAL_CALLBACK, announce_modal, modal_command, modal_origin
from bot.errors import COMMAND_FAILED, PermanentPlatformError, PlatformError
from bot.events import Author, Conversation, SlashCommand

log = logging.getLogger(__name__)


def register_commands(app: AsyncApp, inbound: Inbound, staff_users: tuple[str, ...]) -> None:
    """Add ``/announce``, its modal and the error handler to ``app``."""

    @app.command("/announce")
    async def announce(ack: Any, command: dict[str, Any], client: Any) -> None:
        await ack()
        text = str(command.get("text") or "").strip()
        channel = str(command.get("channel_id") or "")
        user = str(command.get("user_id") or "")
        wants_form = text.lower() == "schedule" and bool(command.get("trigger_id"))
        # The form must open within Slack's 3 s trigger window: staff listed by user id
        # get it before any user-group lookup (which may call usergroups.list).
        author = Author(user) if wants_form and user in staff_users else None
        if author is None:
            author = await inbound.author(user)
        # Only staff get the form; anyone else's "schedule" goes to the core like any other
        # command, which refuses it in one line (and audits it) before they type anything.
        is_staff = user in staff_users or bool(author.roles)
        if wants_form and is_staff:
            view = announce_modal(channel, command.get("response_url"))
            try:
                with slack_errors():
                    await client.views_open(trigger_id=command["trigger_id"], view=view)
                return
            except PermanentPlatformError as exc:
                # Refused for good (a scope, an expired trigger): the core answers the bare
                # command in one line. A transient failure fails the listener: one apology.
                log.warning("announce modal not opened: %s", exc.reason)
        await inbound.deliver(
            SlashCommand(
                where=Conversation(PLATFORM, channel),
                author=author,
                name="announce",
                text=text,
                handle=Reply(command.get("response_url"), channel, user),
            )
        )

    @app.view(MODAL_CALLBACK)
    async def modal(ack: Any, body: dict[str, Any], view: dict[str, Any]) -> None:
        await ack()
        user = str((body.get("user") or {}).get("id") or "")
        channel, response_url = modal_origin(str(view.get("private_metadata") or ""))
        channel = channel or user
        values = (view.get("state") or {}).get("values") or {}
        await inbound.deliver(
            SlashCommand(
                where=Conversation(PLATFORM, channel),
                author=await inbound.author(user),
                name="announce",
                text=modal_command(values),
                handle=Reply(response_url, channel, user),
            )
        )

    @app.error
    async def on_error(error: Exception, body: dict[str, Any]) -> None:
        # The traceback goes to the server log with what the request was (ids and names
        # only: the body also carries tokens and response URLs); the user gets one line.
        log.exception("slack listener failed %s", describe_request(body), exc_info=error)
        response_url = body.get("response_url") if isinstance(body, dict) else None
        if response_url:
            await apologize(str(response_url))


async def apologize(response_url: str) -> None:
    """The generic one-line apology, to the user only; a failure here is only logged."""
    try:
        with slack_errors():
            await AsyncWebhookClient(response_url).send(
                text=COMMAND_FAILED, response_type="ephemeral", replace_original=False
            )
    except PlatformError as exc:
        log.warning("apology not sent: %s", exc.reason)
