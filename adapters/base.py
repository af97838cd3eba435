"""The Adapter contract every platform implements.

Data flows one way: platform event -> adapter (normalize) -> core (decide, answer, log) ->
adapter (send). Adapters never touch the database and the core never imports a platform SDK.
Errors from a platform are raised as :class:`bot.errors.TransientPlatformError` (worth a retry)
or :class:`bot.errors.PermanentPlatformError` (a person must act).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Protocol, runtime_checkable

from bot.events import InboundEvent, OutgoingMessage, SentMessage

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
