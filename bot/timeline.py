"""What the core polls from platforms that have no push events for it: mentions of the bot and
engagement counts of posted announcements.

X delivers neither mentions nor metrics as events a bot could subscribe to at the access
levels this project targets, so the core asks for them on a schedule (:mod:`bot.mentions`,
:mod:`bot.metrics`). Adapters that can answer implement these protocols and return the small
frozen types below; the core never sees a platform object.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable

from bot.events import IncomingMessage


@dataclass(frozen=True, slots=True)
class PostMetrics:
    """Engagement counts of one post at one moment."""

    post_id: str
    likes: int
    reposts: int
    replies: int
    quotes: int
    bookmarks: int | None = None
    #: ``None`` where the platform or the access level does not report views.
    impressions: int | None = None

    def counts(self) -> dict[str, int]:
        """The counts the platform reported (unreported ones left out)."""
        found = {
            "likes": self.likes,
            "reposts": self.reposts,
            "replies": self.replies,
            "quotes": self.quotes,
            "bookmarks": self.bookmarks,
            "impressions": self.impressions,
        }
        return {name: value for name, value in found.items() if value is not None}


@dataclass(frozen=True, slots=True)
class MentionBatch:
    """Posts mentioning the bot, oldest first, and where the next poll continues."""

    mentions: tuple[IncomingMessage, ...]
    #: The newest post id the platform considered (may be newer than every mention returned,
    #: e.g. when the newest mentions were the bot's own); ``None`` if there were none.
    newest_id: str | None = None
    #: The platform had more than one poll may fetch; older ones in between were skipped.
    truncated: bool = False


@runtime_checkable
class MetricsSource(Protocol):
    """A platform that reports engagement counts of posts."""

    platform: str

    async def fetch_metrics(self, post_ids: Sequence[str]) -> Mapping[str, PostMetrics]:
        """Counts of each post that still exists (deleted posts are left out).

        Raises:
            TransientPlatformError: worth retrying later (rate limit, 5xx, network).
            PermanentPlatformError: the access level or credentials do not allow it.
        """


@runtime_checkable
class MentionSource(Protocol):
    """A platform whose mentions of the bot are polled rather than pushed."""

    platform: str

    async def fetch_mentions(
        self, since_id: str | None, *, start_time: datetime | None = None
    ) -> MentionBatch:
        """Mentions newer than ``since_id`` (or, without one, created after ``start_time``).

        Raises:
            TransientPlatformError: worth retrying later (rate limit, 5xx, network).
            PermanentPlatformError: the access level or credentials do not allow it.
        """
