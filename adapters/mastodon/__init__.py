"""Mastodon on Mastodon.py: announcements as statuses and threads, answers to mentions,
engagement metrics, retraction.

Why Mastodon.py: it is the maintained client of the Mastodon API (releases through 2026,
typed, covering ``Idempotency-Key``, notifications filtering and rate-limit headers); the
async clients on PyPI (asynctodon, aiomast, atoot) are small and little maintained. It is
synchronous, so the adapter runs it on a worker thread of its own (see
:mod:`~adapters.mastodon.adapter`).

* :mod:`~adapters.mastodon.rules` — pure: rendering (500-character threads), counting;
* :mod:`~adapters.mastodon.errors` — Mastodon.py errors to the core's;
* :mod:`~adapters.mastodon.adapter` — the connection.

The SDK-backed names are loaded on first use, so the core can read the rules without
loading Mastodon.py.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from adapters.mastodon.adapter import TIMELINE, MastodonAdapter
    from adapters.mastodon.errors import translate

_LAZY = {
    "MastodonAdapter": "adapters.mastodon.adapter",
    "TIMELINE": "adapters.mastodon.adapter",
    "translate": "adapters.mastodon.errors",
}

__all__ = ["TIMELINE", "MastodonAdapter", "translate"]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
