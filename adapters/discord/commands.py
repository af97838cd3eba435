"""``/announce`` as a Discord app command: its definition (options, choices, the text form),
the grammar text its options stand for, and registering it (``sync-commands``)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import discord
from discord import app_commands

from adapters.discord.errors import discord_errors
from adapters.discord.inbound import acknowledge
from adapters.discord.ui import AnnounceModal
from bot.errors import COMMAND_FAILED, PlatformError

log = logging.getLogger(__name__)

ANNOUNCE_ACTIONS = (
    "schedule",
    "now",
    "preview",
    "list",
    "show",
    "edit",
    "cancel",
    "history",
    "retract",
    "hold",
    "resume",
    "approve",
    "retry",
    "mark-sent",
    "help",
)
#: Permissions the invite URL asks for (see README), no more: read and post, post in and open
#: threads, link previews, and message history (needed to reply to a message). Publishing
#: the bot's own posts in an announcement channel needs only Send Messages.
INVITE_PERMISSIONS = discord.Permissions(
    view_channel=True,
    send_messages=True,
    send_messages_in_threads=True,
    create_public_threads=True,
    embed_links=True,
    read_message_history=True,
)

Announce = Callable[[discord.Interaction[discord.Client], str], Awaitable[None]]


def invite_url(application_id: int | str) -> str:
    """The OAuth2 URL that adds the bot with the permissions and scopes it needs."""
    return discord.utils.oauth_url(
        int(application_id),
        permissions=INVITE_PERMISSIONS,
        scopes=("bot", "applications.commands"),
    )


def _quote(value: str) -> str:
    return f'"{value.replace(chr(34), "").strip()}"'


def command_text(
    action: str,
    *,
    ident: int | None = None,
    at: str | None = None,
    tz: str | None = None,
    to: str | None = None,
    every: str | None = None,
    until: str | None = None,
    force: bool = False,
    text: str | None = None,
) -> str:
    """The ``/announce`` grammar text that app command options (and the modal) stand for."""
    parts = [action]
    if ident is not None:
        parts.append(str(ident))
    for option, value in (
        ("--at", at),
        ("--tz", tz),
        ("--to", to.replace(" ", "") if to else to),
        ("--every", every),
        ("--until", until),
    ):
        if value and value.strip():
            parts += [option, _quote(value)]
    if force:
        parts.append("--force")
    if text and text.strip():
        parts.append(text.strip())
    return " ".join(parts)


def build_commands(client: discord.Client, on_announce: Announce) -> app_commands.CommandTree[Any]:
    """The app command tree: ``/announce`` with the grammar's options, text in a modal."""
    tree: app_commands.CommandTree[Any] = app_commands.CommandTree(client)

    @app_commands.command(name="announce", description="Queue and manage announcements")
    @app_commands.describe(
        action="What to do (help lists them)",
        id="Announcement number (show, edit, cancel, retract, approve, retry, mark-sent)",
        text="Markdown text; leave empty for schedule/now to type it in a form",
        at='When: ISO or "tomorrow 9am", "in 2 hours"',
        tz="IANA time zone for --at, e.g. Europe/Berlin",
        to="Platforms, e.g. slack,discord,x",
        every='Repeat, e.g. "monday 17:00"',
        until="Last date of a repetition",
        force="Queue even if the same text went out recently",
    )
    @app_commands.choices(action=[app_commands.Choice(name=a, value=a) for a in ANNOUNCE_ACTIONS])
    async def announce(
        interaction: discord.Interaction[discord.Client],
        action: str,
        id: app_commands.Range[int, 1] | None = None,
        text: app_commands.Range[str, 1, 4000] | None = None,
        at: str | None = None,
        tz: str | None = None,
        to: str | None = None,
        every: str | None = None,
        until: str | None = None,
        force: bool = False,
    ) -> None:
        def grammar(body: str | None) -> str:
            return command_text(
                action,
                ident=id,
                at=at,
                tz=tz,
                to=to,
                every=every,
                until=until,
                force=force,
                text=body,
            )

        if action in ("schedule", "now", "preview") and not text:

            async def submitted(
                modal_interaction: discord.Interaction[discord.Client], body: str
            ) -> None:
                if await acknowledge(modal_interaction):
                    await on_announce(modal_interaction, grammar(body))

            try:
                with discord_errors():
                    await interaction.response.send_modal(AnnounceModal(submitted))
            except PlatformError as exc:
                log.warning("announce modal not opened: %s", exc.reason)
            return
        if await acknowledge(interaction):
            await on_announce(interaction, grammar(text))

    tree.add_command(announce)

    @tree.error
    async def on_error(
        interaction: discord.Interaction[Any], error: app_commands.AppCommandError
    ) -> None:
        # The traceback is for the operator's log; the user gets one line instead of a
        # "thinking…" that never ends.
        log.error("discord app command failed: %s", type(error).__name__, exc_info=error)
        try:
            with discord_errors():
                if interaction.response.is_done():
                    await interaction.followup.send(COMMAND_FAILED, ephemeral=True)
                else:
                    await interaction.response.send_message(COMMAND_FAILED, ephemeral=True)
        except PlatformError as exc:
            log.warning("discord apology not sent: %s", exc.reason)

    return tree


async def sync_commands(
    client: discord.Client, on_announce: Announce, token: str, guild_ids: Iterable[int]
) -> list[str]:
    """Log ``client`` in over REST and register the app commands in ``guild_ids`` (instant)
    or globally (none given). Returns a line per registration, then the invite URL."""
    tree = build_commands(client, on_announce)
    with discord_errors():
        await client.login(token)
        done: list[str] = []
        guilds = list(guild_ids)
        for guild_id in guilds:
            guild = discord.Object(id=guild_id)
            tree.copy_global_to(guild=guild)
            commands = await tree.sync(guild=guild)
            names = ", ".join("/" + c.name for c in commands)
            done.append(f"registered guild {guild_id}: {names}")
        if not guilds:
            commands = await tree.sync()
            names = ", ".join("/" + c.name for c in commands)
            done.append(f"registered global: {names}")
    if client.application_id is not None:
        done.append(f"invite URL: {invite_url(client.application_id)}")
    return done
