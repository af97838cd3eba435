"""Bluesky on the AT Protocol SDK (``atproto``, its async client): announcements as posts and
threads, answers to mentions, engagement metrics, retraction.

* :mod:`~adapters.bluesky.rules` — pure: rendering (300-grapheme threads), links;
* :mod:`~adapters.bluesky.errors` — atproto errors to the core's;
* :mod:`~adapters.bluesky.adapter` — the connection (login with an app password).

The SDK-backed names are loaded on first use, so the core can read the rules without loading
atproto.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from adapters.bluesky.adapter import FEED, BlueskyAdapter, record_key
    from adapters.bluesky.errors import translate

_LAZY = {
    "BlueskyAdapter": "adapters.bluesky.adapter",
    "FEED": "adapters.bluesky.adapter",
    "record_key": "adapters.bluesky.adapter",
    "translate": "adapters.bluesky.errors",
}

__all__ = ["FEED", "BlueskyAdapter", "record_key", "translate"]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
