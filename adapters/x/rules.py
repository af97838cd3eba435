"""X's rules, as pure functions: plain-text threads measured with X's own weighting, limits,
post links. No tweepy here: the core reads these whether or not X is connected.

X counts text with twitter-text-parser's weighting (every URL counts 23, wide characters and
emoji 2); past 280 an announcement becomes a thread numbered `` (i/n)``.
"""

from __future__ import annotations

import re
from typing import Final

from twitter_text import parse_tweet

from adapters.base import Limits
from announcements.render import Rendered, render_thread
from bot.config import StaffSection
from bot.events import Author

PLATFORM: Final = "x"
X_POST_LIMIT: Final = 280
# Characters X refuses in a post (twitter-text's invalid_chars list).
X_INVALID: Final = re.compile("[\ufffe\ufeff\uffff]")
_DIGITS = re.compile(r"\d+")


def x_weighted_length(text: str) -> int:
    """X's weighted length of ``text``, by twitter-text's config v3.

    Args:
        text: A post's text.

    Returns:
        The length X counts against its 280 limit: every URL 23, CJK, emoji and other wide
        characters 2, everything else 1.
    """
    return int(parse_tweet(text).weightedLength)


def render_x_thread(markdown: str, *, max_posts: int = 25) -> Rendered:
    """Render an announcement as plain text for X, threaded when longer than one post.

    Args:
        markdown: The announcement in Markdown.
        max_posts: The most posts the thread may take.

    Returns:
        One post if the text weighs at most 280; otherwise posts ending `` (i/n)``, each at
        most 280 with its counter, split between paragraphs, lines, sentences, then words.

    Raises:
        RenderError: If the text is empty or needs more than ``max_posts`` posts.
    """
    return render_thread(
        PLATFORM,
        "X",
        markdown,
        limit=X_POST_LIMIT,
        measure=x_weighted_length,
        max_posts=max_posts,
        clean=lambda block: X_INVALID.sub("", block),
    )


class XRules:
    """X: long announcements as a thread of replies; posts linked by id."""

    name = PLATFORM
    limits = Limits(X_POST_LIMIT, x_weighted_length, threads_long_posts=True, unit="post")
    has_threads = True
    rate_limited = True

    def render(self, markdown: str, *, max_parts: int) -> Rendered:
        return render_x_thread(markdown, max_posts=max_parts)

    def message_link(self, channel: str, message_id: str) -> str | None:
        return f"https://x.com/i/web/status/{message_id}" if _DIGITS.fullmatch(message_id) else None

    def is_staff(self, author: Author, staff: StaffSection) -> bool:
        return False  # no commands on X


RULES: Final = XRules()
