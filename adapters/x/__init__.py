"""X (Twitter) on tweepy's async client, API v2, OAuth 1.0a user context.

What the bot does on X: post announcements (threads are posted part by part by the delivery
engine, each part replying to the one before), find a post whose answer was lost on the
account's own timeline (:meth:`XAdapter.find_posted`: X has no idempotency key, so by its text
and the post it replies to), delete them on retraction, and — polled by the
core, since X pushes nothing at the access levels we target — read mentions of the account
(:meth:`XAdapter.fetch_mentions`) and the public metrics of posts
(:meth:`XAdapter.fetch_metrics`).

Everything X-shaped stays here: post JSON becomes the core's :class:`~bot.events.IncomingMessage`
and :class:`~bot.timeline.PostMetrics`, and tweepy / aiohttp errors become the core's transient
or permanent platform errors with a sentence staff can act on. tweepy hard-codes
``https://api.twitter.com``; ``x.api_url`` works through an aiohttp client middleware on the
session tweepy is given, which sends those requests to the configured base (a proxy, or the
tests' fake). The OAuth 1.0a signature still covers the api.twitter.com URL, as X expects.

The package: :mod:`~adapters.x.rules` (pure: rendering, weighting, links) and
:mod:`~adapters.x.adapter` (tweepy). The SDK-backed names are loaded on first use, so the
core can read the rules without loading tweepy.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from adapters.x.adapter import TIMELINE, XAdapter, fit_post, translate

_LAZY = {
    "TIMELINE": "adapters.x.adapter",
    "XAdapter": "adapters.x.adapter",
    "fit_post": "adapters.x.adapter",
    "translate": "adapters.x.adapter",
}

__all__ = ["TIMELINE", "XAdapter", "fit_post", "translate"]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
