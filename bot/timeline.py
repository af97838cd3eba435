"""Public timelines (X, Mastodon, Bluesky): what the core polls there, and how it replies.

X delivers neither mentions nor metrics as events a bot could subscribe to at the access
levels this project targets, so the core asks for them on a schedule (:mod:`bot.mentions`,
:mod:`bot.metrics`). Adapters that can answer implement ``adapters.base.MentionSource`` /
``MetricsSource`` and return the small frozen types below; the core never sees a platform
object. The adapter registry says per platform what to poll and how often (:class:`PollingPlan`)
and how the bot replies there (:class:`ReplyPolicy`).
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
    #: With no cursor yet, mentions at most this old are answered.
    mentions_backlog: timedelta = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class ReplyPolicy:
    """How the bot replies to questions on one platform.

    The defaults are chat's (Slack, Discord, the terminal); a public timeline gets its policy
    from its config section (``adapters.registry.reply_policies``). The dispatcher reads it
    for every message, pushed or polled, so no platform is named where it is applied.
    """

    #: Replies are public posts under the question (X, Mastodon, Bluesky): each one replies
    #: to the question's post whatever ``answering.reply_in_thread`` says (a post replying to
    #: nothing reaches nobody), and the bot posts only answers and declines there: no
    #: slow-down notice, no hint about commands (there are none), no word about the review
    #: queue (everyone reads it, and a short post has no room for it).
    public: bool = False
    #: Post the decline when there is no answer; else it is only logged (``silent``).
    decline_reply: bool = True
    #: Replies one author may get per rolling hour (0 = never reply); None = no such cap.
    #: The rest are logged (``capped``), not posted.
    replies_per_author_per_hour: int | None = None
