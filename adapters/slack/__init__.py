"""Slack on slack-bolt: questions in threads, feedback and suggestion buttons, ``/announce``,
announcements.

Two connection modes: Socket Mode (app-level token, no public URL; the default) and HTTP mode
(events and commands posted to the bot's own web server at ``/slack/events``, signatures
verified by Bolt, so a bad or stale signature gets 401 and nothing else happens).

Everything Slack-shaped stays in this package, split by job:

* :mod:`~adapters.slack.errors` — the error table and the one funnel, :func:`slack_errors`;
* :mod:`~adapters.slack.outbound` — ``OutgoingMessage`` to ``chat.postMessage`` (Block Kit),
  ephemeral replies, deletions, and :meth:`find_posted` (announcement posts carry their
  idempotency key in the message metadata, so a post whose answer was lost can be found);
* :mod:`~adapters.slack.inbound` — events and button clicks to the core's events;
* :mod:`~adapters.slack.ui` — Block Kit layouts (pure functions);
* :mod:`~adapters.slack.commands` — ``/announce`` and its form;
* :mod:`~adapters.slack.adapter` — the connection that composes them.

The SDK-backed names are loaded on first use, so importing this package's SDK-free parts
(the platform's rules) loads no Slack SDK.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from adapters.slack.adapter import DEFAULT_API_URL, EVENTS_PATH, SDK_LOGGERS, SlackAdapter
    from adapters.slack.errors import translate
    from adapters.slack.inbound import BOT_EVENTS

_LAZY = {
    "SlackAdapter": "adapters.slack.adapter",
    "DEFAULT_API_URL": "adapters.slack.adapter",
    "EVENTS_PATH": "adapters.slack.adapter",
    "SDK_LOGGERS": "adapters.slack.adapter",
    "translate": "adapters.slack.errors",
    "BOT_EVENTS": "adapters.slack.inbound",
}

__all__ = [
    "BOT_EVENTS",
    "DEFAULT_API_URL",
    "EVENTS_PATH",
    "SDK_LOGGERS",
    "SlackAdapter",
    "translate",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
