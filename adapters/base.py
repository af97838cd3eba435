"""The Adapter contract every platform implements, whole.

Data flows one way: platform event -> adapter (normalize) -> core (decide, answer, log) ->
adapter (send). Adapters never touch the database and the core never imports a platform SDK.
Errors from a platform are raised as :class:`bot.errors.TransientPlatformError` (worth a retry)
or :class:`bot.errors.PermanentPlatformError` (a person must act).

Three parts:

* :class:`Adapter` — the connection every platform has (start, stop, send, delete).
* Optional capabilities, each a small ``runtime_checkable`` Protocol the core tests with
  ``isinstance`` (never a platform name): :class:`WebRoutes`, :class:`MentionSource` (polled
  mentions), :class:`MetricsSource`, :class:`CommandSync`, :class:`Reconciler`,
  :class:`OffersChoices`.
* :class:`PlatformRules` — what the core needs to know about a platform even when it is not
  connected: its limits and how it counts text, whether a long post becomes a thread, how it
  renders an announcement, how a message link is built, who its staff are. Each platform
  declares them as pure functions in its own folder; ``adapters/registry.py`` lists them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from bot.events import Author, InboundEvent, OutgoingMessage, SentMessage
from bot.timeline import MentionBatch, PostMetrics

if TYPE_CHECKING:
    from aiohttp import web

    from announcements.render import Rendered
    from bot.config import StaffSection

#: The core's entry point for normalized events. It never raises: errors are handled inside.
EventSink = Callable[[InboundEvent], Awaitable[None]]


@runtime_checkable
class Adapter(Protocol):
    """One platform connection."""

    #: ``"console"``, ``"slack"``, ``"discord"``, ``"x"`` ... (also the ``--to`` name).
    platform: str
    #: Where announcements go on this platform (channel ids; X: the account timeline).
    #: Empty = this adapter does not post announcements.
    announce_channels: tuple[str, ...]

    async def start(self, sink: EventSink) -> None:
        """Connect and begin delivering events to ``sink``; return once connected."""

    async def stop(self) -> None:
        """Stop receiving events and close connections. Idempotent."""

    def is_connected(self) -> bool:
        """Whether the platform connection is up (used by ``/readyz``)."""

    async def send(self, message: OutgoingMessage) -> SentMessage:
        """Post ``message`` and return the platform's id and URL for it."""

    async def delete(self, sent: SentMessage) -> None:
        """Delete a message the bot posted (announcement retraction).

        Raises:
            PermanentPlatformError: if the platform does not allow it.
        """


@runtime_checkable
class Reconciler(Protocol):
    """Optional capability: find out whether a post whose answer was lost went out.

    A post that times out may or may not have reached the platform. Adapters that can look
    their own recent posts up implement this, and the delivery engine then retries such a
    post safely: it looks first and posts again only if nothing is there. Adapters without it
    leave an ambiguous post ``unknown`` for a person to check.
    """

    async def find_posted(
        self, message: OutgoingMessage, key: str, since: datetime
    ) -> SentMessage | None:
        """The bot's post of ``message`` made since ``since``, or None if there is none.

        Args:
            message: What was sent (the same text, channel and ``reply_to`` as the lost post).
            key: Its ``idempotency_key``, for platforms that keep one with the post.
            since: A time before the lost attempt (already allowing for clock differences).

        Raises:
            PlatformError: the platform could not be asked; the post stays in doubt.
        """


@runtime_checkable
class OffersChoices(Protocol):
    """Optional capability: show a clarification's suggestions and report which was picked.

    Adapters with it render :attr:`bot.events.OutgoingMessage.choices` (one button per choice
    on Slack and Discord, numbered lines in the console) and deliver a
    :class:`bot.events.ChoicePicked` to the sink when one is used. The core sends
    clarifications only to such adapters; elsewhere an unsure question is declined (or, on a
    public timeline, left unanswered).
    """

    def offers_choices(self) -> bool:
        """Whether suggestions can be shown right now (always True for most adapters)."""


@runtime_checkable
class WebRoutes(Protocol):
    """Optional capability: the platform posts to the bot (webhooks, Slack's HTTP mode); the
    bot's web server mounts these routes."""

    def web_routes(self) -> list[web.RouteDef]:
        """The routes to mount (may be empty, e.g. Slack in Socket Mode)."""


@runtime_checkable
class MetricsSource(Protocol):
    """Optional capability: the platform reports engagement counts of posts (polled)."""

    platform: str

    async def fetch_metrics(self, post_ids: Sequence[str]) -> Mapping[str, PostMetrics]:
        """Counts of each post that still exists (deleted posts are left out).

        Raises:
            TransientPlatformError: worth retrying later (rate limit, 5xx, network).
            PermanentPlatformError: the access level or credentials do not allow it.
        """


@runtime_checkable
class MentionSource(Protocol):
    """Optional capability: mentions of the bot are polled rather than pushed."""

    platform: str

    async def fetch_mentions(
        self, since_id: str | None, *, start_time: datetime | None = None
    ) -> MentionBatch:
        """Mentions newer than ``since_id`` (or, without one, created after ``start_time``).

        Raises:
            TransientPlatformError: worth retrying later (rate limit, 5xx, network).
            PermanentPlatformError: the access level or credentials do not allow it.
        """


@runtime_checkable
class CommandSync(Protocol):
    """Optional capability: the platform's slash commands must be registered with it
    (``foundation-bot sync-commands``)."""

    platform: str

    async def sync_commands(self, scopes: Sequence[int] = ()) -> list[str]:
        """Register the commands in ``scopes`` (e.g. Discord guilds) or everywhere; returns
        a line per registration for the operator."""


@dataclass(frozen=True, slots=True)
class Limits:
    """How long a post may be on a platform and how it is counted."""

    #: The most a message or post may count (per Block Kit section where there are blocks).
    post_length: int
    #: How the platform counts a text against ``post_length`` (code points, UTF-16 units,
    #: X's weighting, graphemes).
    count: Callable[[str], int]
    #: A text too long for one post becomes a thread, each part replying to the one before
    #: (X, Mastodon, Bluesky); otherwise the parts are separate messages in the channel.
    threads_long_posts: bool = False
    #: What one part is called in replies to staff ("post", "message").
    unit: str = "message"


class PlatformRules(Protocol):
    """What the core knows about a platform without a connection to it: pure functions."""

    #: The platform's name (``--to`` name, ``Conversation.platform``).
    name: str
    limits: Limits
    #: Whether the bot can answer in a thread under a question there.
    has_threads: bool
    #: Whether its users' questions count against the per-user rate limit (not the terminal).
    rate_limited: bool

    def render(self, markdown: str, *, max_parts: int) -> Rendered:
        """The announcement as this platform posts it.

        Raises:
            RenderError: empty, or needs more than ``max_parts`` parts.
        """
        ...

    def message_link(self, channel: str, message_id: str) -> str | None:
        """A public link to a message, where one can be built from its ids."""
        ...

    def is_staff(self, author: Author, staff: StaffSection) -> bool:
        """Whether ``author`` is comms staff on this platform by the config."""
        ...
