"""What the core polls from platforms that have no push events for it: mentions of the bot and
engagement counts of posted announcements.

X delivers neither mentions nor metrics as events a bot could subscribe to at the access
levels this project targets, so the core asks for them on a schedule (:mod:`bot.mentions`,
:mod:`bot.metrics`). Adapters that can answer implement ``adapters.base.MentionSource`` /
``MetricsSource`` and return the small frozen types below; the core never sees a platform
object. The adapter registry says per platform what to poll and how often (:class:`PollingPlan`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

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
    #: Where the cursor may move once each mention is done, aligned with ``mentions``, for
    #: platforms whose cursor is not the post id (a notification id, a time); empty = the
    #: mentions' own ids.
    positions: tuple[str, ...] = ()

    def position(self, index: int) -> str:
        """The cursor value just past mention ``index``."""
        if self.positions:
            return self.positions[index]
        return self.mentions[index].message_id


@dataclass(frozen=True, slots=True)
class PollingPlan:
    """What the core polls on one platform, and how often (from that platform's config)."""

    #: Take engagement snapshots of posted announcements (the adapter must be a MetricsSource).
    metrics: bool = False
    #: When after posting a snapshot is taken, increasing.
    metrics_schedule: tuple[timedelta, ...] = ()
    metrics_poll_seconds: float = 60.0
    #: Answer polled mentions (the adapter must be a MentionSource).
    mentions: bool = False
    mentions_poll_seconds: float = 120.0
    #: Replies to one author per rolling hour (0 = never reply).
    replies_per_author_per_hour: int = 3
    #: Reply with the fallback text when there is no answer (else stay silent).
    decline_reply: bool = False
    #: With no cursor yet, mentions at most this old are answered.
    mentions_backlog: timedelta = timedelta(hours=1)
