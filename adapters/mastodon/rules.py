"""Mastodon's rules, as pure functions: plain-text threads within the character limit, how
Mastodon counts (every link 23 characters, a mention by its username only), status links,
staff. No Mastodon.py here: the core reads these whether or not Mastodon is connected.

Announcements are rendered for 500 characters, Mastodon's default; the adapter checks at
start that the instance allows at least that (most allow more), and fits answers to the
instance's own limit.
"""

from __future__ import annotations

import re
from typing import Final

from adapters.base import Limits
from announcements.render import Rendered, render_thread
from bot.config import StaffSection
from bot.events import Author

PLATFORM: Final = "mastodon"
#: Mastodon's default limit; announcements are rendered for it.
STATUS_LIMIT: Final = 500
#: What every link counts, whatever its length (the instance's characters_reserved_per_url).
URL_WEIGHT: Final = 23
_URL = re.compile(r"https?://[^\s<>\"]+")
# "@user@example.social" counts as "@user": the domain part is free.
_MENTION_DOMAIN = re.compile(r"(?<![\w@])(@\w+)@[\w.-]+\w")


def status_length(text: str) -> int:
    """The length Mastodon counts against its limit."""
    text = _MENTION_DOMAIN.sub(r"\1", text)
    return len(_URL.sub("x" * URL_WEIGHT, text))


def render_mastodon_thread(markdown: str, *, max_posts: int = 25) -> Rendered:
    """An announcement as plain-text statuses of at most 500 counted characters, threaded
    (numbered `` (i/n)``) when longer than one."""
    return render_thread(
        PLATFORM,
        "Mastodon",
        markdown,
        limit=STATUS_LIMIT,
        measure=status_length,
        max_posts=max_posts,
    )


class MastodonRules:
    """Mastodon: long announcements as a thread of replies; answers under the question."""

    name = PLATFORM
    limits = Limits(STATUS_LIMIT, status_length, threads_long_posts=True, unit="post")
    has_threads = True
    rate_limited = True

    def render(self, markdown: str, *, max_parts: int) -> Rendered:
        return render_mastodon_thread(markdown, max_posts=max_parts)

    def message_link(self, channel: str, message_id: str) -> str | None:
        return None  # needs the instance and the account: the adapter stores the URL

    def is_staff(self, author: Author, staff: StaffSection) -> bool:
        return False  # no commands on Mastodon


RULES: Final = MastodonRules()
