"""Discord on discord.py: answers, feedback and suggestion buttons, the ``/announce`` app
command, announcements.

The bot connects through the gateway with :class:`discord.AutoShardedClient` (``shard_count``
and ``shard_ids`` let several processes split a large deployment; unset, Discord recommends the
count). Everything Discord-shaped stays in this package, split the way discord.py splits
itself:

* :mod:`~adapters.discord.errors` — the error tables and the one funnel, :func:`discord_errors`;
* :mod:`~adapters.discord.endpoints` — discord.py's process-wide REST base and gateway;
* :mod:`~adapters.discord.state` — caches shared by both directions (threads, questions);
* :mod:`~adapters.discord.outbound` — messages, threads, inline replies, interaction
  follow-ups, publishing;
* :mod:`~adapters.discord.inbound` — gateway events and clicks to the core's events;
* :mod:`~adapters.discord.ui` — buttons (persistent dynamic items) and the form;
* :mod:`~adapters.discord.commands` — the ``/announce`` app command and its registration;
* :mod:`~adapters.discord.adapter` — the connection that composes them.

Intents: guilds (channel, thread and role cache), guild and DM messages, guild reactions, and
the privileged **message content** intent, without which follow-ups in a bot thread arrive
empty (mentions and DMs carry their text either way). It must be switched on in the Developer
Portal; a bot refused it stops with a message saying so.

Rate limits: discord.py's per-route buckets wait out short 429s itself (and log them on the
``discord.http`` logger); a wait longer than ``max_ratelimit_timeout`` raises instead of
sleeping inside a send, and becomes a transient error with Retry-After so the announcement
engine reschedules.

The SDK-backed names are loaded on first use, so importing this package's SDK-free parts
(the platform's rules) loads no Discord SDK.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from adapters.discord.adapter import DiscordAdapter, intents
    from adapters.discord.commands import command_text, invite_url
    from adapters.discord.errors import translate
    from adapters.discord.outbound import chunks

_LAZY = {
    "DiscordAdapter": "adapters.discord.adapter",
    "intents": "adapters.discord.adapter",
    "command_text": "adapters.discord.commands",
    "invite_url": "adapters.discord.commands",
    "translate": "adapters.discord.errors",
    "chunks": "adapters.discord.outbound",
}

__all__ = ["DiscordAdapter", "chunks", "command_text", "intents", "invite_url", "translate"]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
