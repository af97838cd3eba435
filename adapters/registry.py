"""The one registry of platforms: each platform's rules and how its adapter is built.

This is the only place outside the configuration that names platforms. The core receives
what it needs from here — the rules table, the adapters the configuration enables, the
moderator channels and polling plans — and asks adapters for capabilities with ``isinstance``.
A new platform is a folder in ``adapters/`` (its rules module SDK-free), its section in
``bot/config.py``, and its lines here.

Adapters are imported only when the configuration enables them, so reading the rules loads
no platform SDK.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Final

from adapters import console as console_rules
from adapters.base import Adapter, CommandSync, PlatformRules
from adapters.bluesky import rules as bluesky_rules
from adapters.discord import rules as discord_rules
from adapters.mastodon import rules as mastodon_rules
from adapters.slack import rules as slack_rules
from adapters.x import rules as x_rules
from bot.config import Config, Settings, TimelineSection
from bot.timeline import PollingPlan, ReplyPolicy

#: SDK loggers that log credentials or posting capabilities at DEBUG (tweepy and oauthlib the
#: X API key and access token, slack_sdk's webhook client the response_url): the CLI keeps
#: them at INFO or above, even with --verbose.
SECRET_LOGGERS: Final = ("tweepy", "oauthlib", "slack_sdk.webhook")

#: Every platform the bot supports, by name (the ``--to`` names), whether or not connected.
SUPPORTED: Final[Mapping[str, PlatformRules]] = {
    rules.name: rules
    for rules in (
        console_rules.RULES,
        slack_rules.RULES,
        discord_rules.RULES,
        x_rules.RULES,
        mastodon_rules.RULES,
        bluesky_rules.RULES,
    )
}


def message_link(platform: str, channel: str, message_id: str) -> str | None:
    """A message's public link by its platform's rule (None for unknown platforms)."""
    rules = SUPPORTED.get(platform)
    return rules.message_link(channel, message_id) if rules is not None else None


def max_parts(settings: Settings) -> dict[str, int]:
    """The most messages or posts one announcement may take, per platform (the rest: 25)."""
    section = settings.announcements
    return {
        discord_rules.PLATFORM: section.max_discord_messages,
        x_rules.PLATFORM: section.max_x_posts,
    }


def moderator_channels(settings: Settings) -> dict[str, str]:
    """Where "ask a moderator" questions go, per platform that has such a channel."""
    found = {
        slack_rules.PLATFORM: settings.slack.moderators_channel,
        discord_rules.PLATFORM: settings.discord.moderators_channel,
    }
    return {platform: channel for platform, channel in found.items() if channel}


def _plan(section: TimelineSection) -> PollingPlan:
    return PollingPlan(
        metrics=section.metrics,
        metrics_schedule=tuple(timedelta(minutes=m) for m in section.metrics_schedule_minutes),
        metrics_poll_seconds=section.metrics_poll_seconds,
        mentions=section.mentions,
        mentions_poll_seconds=section.mentions_poll_seconds,
        mentions_backlog=timedelta(minutes=section.mentions_backlog_minutes),
    )


def _timelines(settings: Settings) -> dict[str, TimelineSection]:
    """The platforms where the bot posts to a public timeline, with their config sections."""
    return {
        x_rules.PLATFORM: settings.x,
        mastodon_rules.PLATFORM: settings.mastodon,
        bluesky_rules.PLATFORM: settings.bluesky,
    }


def polling_plans(settings: Settings) -> dict[str, PollingPlan]:
    """What the core polls on each platform that pushes no events for it."""
    return {platform: _plan(section) for platform, section in _timelines(settings).items()}


def reply_policies(settings: Settings) -> dict[str, ReplyPolicy]:
    """How the bot replies on each public timeline (elsewhere: chat's defaults)."""
    return {
        platform: ReplyPolicy(
            public=True,
            decline_reply=section.decline_reply,
            replies_per_author_per_hour=section.replies_per_author_per_hour,
        )
        for platform, section in _timelines(settings).items()
    }


def _slack(config: Config) -> Adapter:
    from adapters.slack import SlackAdapter

    settings = config.settings
    slack = settings.slack
    return SlackAdapter(
        bot_token=config.secret("slack", "bot_token"),
        app_token=config.secret("slack", "app_token") if slack.mode == "socket" else None,
        signing_secret=(config.secret("slack", "signing_secret") if slack.mode == "http" else None),
        mode=slack.mode,
        api_url=slack.api_url,
        announce_channels=slack.announce_channels,
        staff_users=settings.staff.slack_users,
        staff_usergroups=settings.staff.slack_usergroups,
    )


def _discord(config: Config) -> Adapter:
    from adapters.discord import DiscordAdapter

    discord = config.settings.discord
    return DiscordAdapter(
        token=config.secret("discord", "token"),
        api_url=discord.api_url,
        gateway_url=discord.gateway_url,
        announce_channels=discord.announce_channels,
        publish_announcements=discord.publish_announcements,
        reply_in_thread=discord.reply_in_thread,
        shard_count=discord.shard_count,
        shard_ids=discord.shard_ids,
    )


def _x(config: Config) -> Adapter:
    from adapters.x import TIMELINE, XAdapter

    x = config.settings.x
    return XAdapter(
        api_key=config.secret("x", "api_key"),
        api_secret=config.secret("x", "api_secret"),
        access_token=config.secret("x", "access_token"),
        access_token_secret=config.secret("x", "access_token_secret"),
        api_url=x.api_url,
        announce_channels=(TIMELINE,) if x.announce else (),
    )


def _mastodon(config: Config) -> Adapter:
    from adapters.mastodon import MastodonAdapter

    mastodon = config.settings.mastodon
    return MastodonAdapter(
        api_url=mastodon.api_url or "",
        access_token=config.secret("mastodon", "access_token"),
        visibility=mastodon.visibility,
        announce=mastodon.announce,
        timeout=mastodon.timeout_seconds,
    )


def _bluesky(config: Config) -> Adapter:
    from adapters.bluesky import BlueskyAdapter

    bluesky = config.settings.bluesky
    return BlueskyAdapter(
        handle=bluesky.handle or "",
        app_password=config.secret("bluesky", "app_password"),
        api_url=bluesky.api_url,
        announce=bluesky.announce,
        timeout=bluesky.timeout_seconds,
    )


#: Platform -> (enabled in the settings?, build its adapter from the configuration).
_BUILDERS: Final[dict[str, tuple[Callable[[Settings], bool], Callable[[Config], Adapter]]]] = {
    slack_rules.PLATFORM: (lambda s: s.slack.enabled, _slack),
    discord_rules.PLATFORM: (lambda s: s.discord.enabled, _discord),
    x_rules.PLATFORM: (lambda s: s.x.enabled, _x),
    mastodon_rules.PLATFORM: (lambda s: s.mastodon.enabled, _mastodon),
    bluesky_rules.PLATFORM: (lambda s: s.bluesky.enabled, _bluesky),
}


def enabled_platforms(settings: Settings) -> list[str]:
    """The platforms whose adapters the configuration switches on (besides the terminal)."""
    return [name for name, (enabled, _) in _BUILDERS.items() if enabled(settings)]


def platform_names() -> list[str]:
    """The platforms an operator can enable in the configuration."""
    return list(_BUILDERS)


def build_adapters(config: Config) -> list[Adapter]:
    """Adapters for the platforms enabled in the configuration (not connected yet)."""
    return [_BUILDERS[name][1](config) for name in enabled_platforms(config.settings)]


def terminal_adapter(config: Config, banner: str) -> console_rules.ConsoleAdapter:
    """The terminal chat, as the configured console user."""
    return console_rules.ConsoleAdapter(user=config.settings.console.user, banner=banner)


def command_platforms() -> list[str]:
    """Platforms whose slash commands must be registered with them (``sync-commands``)."""
    return [discord_rules.PLATFORM]


def command_sync(config: Config, platform: str) -> CommandSync:
    """The adapter that registers ``platform``'s commands (it needs no connection)."""
    adapter = _BUILDERS[platform][1](config)
    assert isinstance(adapter, CommandSync)
    return adapter


def command_scopes(settings: Settings, platform: str) -> list[int]:
    """Where ``sync-commands`` registers ``platform``'s commands by default."""
    return list(settings.discord.command_guilds) if platform == discord_rules.PLATFORM else []
