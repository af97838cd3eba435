"""Bluesky's rules, as pure functions: plain-text threads of at most 300 graphemes, post links,
staff. No atproto here: the core reads these whether or not Bluesky is connected."""

from __future__ import annotations

import re
from typing import Final

import regex

from adapters.base import Limits
from announcements.render import Rendered, render_thread
from bot.config import StaffSection
from bot.events import Author

PLATFORM: Final = "bluesky"
#: Bluesky's limit: 300 graphemes (user-perceived characters) per post.
POST_LIMIT: Final = 300
COLLECTION: Final = "app.bsky.feed.post"
_GRAPHEME = regex.compile(r"\X")
_POST_URI = re.compile(rf"at://(?P<repo>[^/]+)/{re.escape(COLLECTION)}/(?P<rkey>[\w.~:-]+)")


def graphemes(text: str) -> int:
    """The length Bluesky counts: extended grapheme clusters (an emoji with its modifiers,
    a letter with its accents, a flag: one each)."""
    return len(_GRAPHEME.findall(text))


def render_bluesky_thread(markdown: str, *, max_posts: int = 25) -> Rendered:
    """An announcement as plain-text posts of at most 300 graphemes, threaded (numbered
    `` (i/n)``) when longer than one; links and @handles become rich-text facets when
    posted."""
    return render_thread(
        PLATFORM, "Bluesky", markdown, limit=POST_LIMIT, measure=graphemes, max_posts=max_posts
    )


def post_link(uri: str) -> str | None:
    """The bsky.app link of a post's at-uri."""
    found = _POST_URI.fullmatch(uri)
    if found is None:
        return None
    return f"https://bsky.app/profile/{found['repo']}/post/{found['rkey']}"


class BlueskyRules:
    """Bluesky: long announcements as a thread of replies (root and parent kept)."""

    name = PLATFORM
    limits = Limits(POST_LIMIT, graphemes, threads_long_posts=True, unit="post")
    has_threads = True
    rate_limited = True

    def render(self, markdown: str, *, max_parts: int) -> Rendered:
        return render_bluesky_thread(markdown, max_posts=max_parts)

    def message_link(self, channel: str, message_id: str) -> str | None:
        return post_link(message_id)

    def is_staff(self, author: Author, staff: StaffSection) -> bool:
        return False  # no commands on Bluesky


RULES: Final = BlueskyRules()
