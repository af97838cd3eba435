"""The core's own event types: what adapters deliver in and what the core asks them to send.

Adapters normalize platform payloads into these small frozen dataclasses at the edge, so the
core never sees a Slack, Discord or X object. ``handle`` fields carry an opaque, adapter-owned
value (a Slack ``response_url``, a Discord interaction) that the core hands back untouched.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


def utcnow() -> datetime:
    """Timezone-aware current time in UTC."""
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Author:
    """Who sent an event."""

    id: str
    name: str = ""
    #: Platform role / user-group ids, used for staff checks (Discord roles, Slack user groups).
    roles: frozenset[str] = frozenset()
    is_bot: bool = False


@dataclass(frozen=True, slots=True)
class Conversation:
    """Where an event happened or a message goes."""

    platform: str
    channel_id: str
    #: The thread (Slack ``thread_ts``, Discord thread channel, X conversation) if any.
    thread_id: str | None = None
    is_direct: bool = False


@dataclass(frozen=True, slots=True)
class IncomingMessage:
    """A chat message the bot can see."""

    where: Conversation
    author: Author
    text: str
    message_id: str
    #: The message mentions the bot explicitly.
    mentions_bot: bool = False
    #: The message was sent by this bot (the chain drops these).
    is_own: bool = False
    #: The platform's delivery id; a retried delivery repeats it and is dropped.
    event_id: str = ""
    #: The message this one replies to, if the platform says so (X ``in_reply_to``).
    reply_to_id: str | None = None
    #: A link to the message on its platform, when the adapter knows one (Discord jump URL).
    url: str | None = None
    #: When it was posted, where the platform says (polled mentions); else when it arrived.
    received_at: datetime = field(default_factory=utcnow)
    handle: object = field(default=None, compare=False, repr=False)
    #: Read by a poller (:mod:`bot.mentions`), which claims each message before handing it
    #: on and delivers it again until it is handled: the chain leaves de-duplication to it and
    #: counts the message against the rate limit at the time it was posted, and a reply that
    #: certainly did not go out is raised back to it (``TransientPlatformError``) instead of
    #: being logged as failed.
    polled: bool = False


@dataclass(frozen=True, slots=True)
class SlashCommand:
    """A staff or user command such as ``/announce list``."""

    where: Conversation
    author: Author
    #: Command name without the slash, e.g. ``announce``.
    name: str
    #: Everything after the command name.
    text: str
    event_id: str = ""
    received_at: datetime = field(default_factory=utcnow)
    handle: object = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Reaction:
    """An emoji reaction added to or removed from a message."""

    where: Conversation
    author: Author
    message_id: str
    emoji: str
    added: bool
    event_id: str = ""
    #: A link to the reacted-to message, when the adapter knows one.
    url: str | None = None
    received_at: datetime = field(default_factory=utcnow)


@dataclass(frozen=True, slots=True)
class Feedback:
    """A click on an answer's helpful / not-helpful button."""

    where: Conversation
    author: Author
    #: The token the core put on the answer (``OutgoingMessage.feedback_token``).
    token: str
    helpful: bool
    #: The user also asked for a moderator (Slack's "ask a moderator" on a thumbs-down).
    escalate: bool = False
    event_id: str = ""
    received_at: datetime = field(default_factory=utcnow)
    handle: object = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Choice:
    """One suggestion offered when the bot is not sure which FAQ entry a question means."""

    #: Opaque, at most 100 characters: adapters put it on the button (Slack action value,
    #: Discord custom id) and hand it back unchanged in :class:`ChoicePicked`.
    token: str
    #: What the button says: the entry's canonical question (adapters shorten it to fit).
    label: str


@dataclass(frozen=True, slots=True)
class ChoicePicked:
    """A user picked one of the :class:`Choice` s offered with a clarification.

    Slack and Discord: a button click; the console: the number typed after the suggestions.
    """

    where: Conversation
    author: Author
    #: The :attr:`Choice.token` of the picked suggestion.
    token: str
    event_id: str = ""
    received_at: datetime = field(default_factory=utcnow)
    handle: object = field(default=None, compare=False, repr=False)


InboundEvent = IncomingMessage | SlashCommand | Reaction | Feedback | ChoicePicked


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    """Something the core asks an adapter to post."""

    where: Conversation
    #: Platform-ready text (adapters render Markdown to their dialect where needed).
    text: str
    #: Message id to reply to (threads the reply under it where the platform has threads).
    reply_to: str | None = None
    #: Only this user should see it (slash command replies).
    ephemeral_to: str | None = None
    #: If set, the adapter attaches helpful / not-helpful buttons carrying this token.
    feedback_token: str | None = None
    #: If set, the adapter offers an "ask a moderator" action carrying this feedback token.
    escalation_token: str | None = None
    #: The ``handle`` of the event being answered, passed back untouched.
    handle: object = field(default=None, compare=False, repr=False)
    #: Structured layout for platforms that have one (Slack Block Kit); ``text`` is the fallback.
    blocks: tuple[dict[str, Any], ...] = ()
    #: Unique per announcement post (delivery, channel, part): adapters attach it where the
    #: platform keeps it (Slack message metadata), so a post whose answer was lost can be found.
    idempotency_key: str | None = None
    #: "I'm not sure which you mean": suggestions the user can pick from. Only sent to
    #: adapters that implement :class:`adapters.base.OffersChoices`; they show one button per
    #: choice (the console numbers them) and deliver a :class:`ChoicePicked` when one is used.
    choices: tuple[Choice, ...] = ()


@dataclass(frozen=True, slots=True)
class SentMessage:
    """What a platform returned for a posted message."""

    platform: str
    channel_id: str
    message_id: str
    url: str | None = None
    thread_id: str | None = None
