"""The states an announcement and its deliveries move through, and what became of a reply the
bot meant to post, as the database stores them.

Typed like discord.py's ``enums.py``: every state the code uses is a member here, and nothing
else (a bare ``"sending"`` in code is a typo waiting to happen). The values are the strings in
the database, so rows written by earlier versions read back unchanged.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Generic, TypeVar

from sqlalchemy import Dialect, String, TypeDecorator


class AnnouncementStatus(StrEnum):
    """Where an announcement as a whole stands."""

    #: Queued; its timer is armed (a recurring one stays here between occurrences).
    SCHEDULED = "scheduled"
    #: ``announcements.require_approval``: waits for a second staff member.
    AWAITING_APPROVAL = "awaiting_approval"
    #: Every delivery ended (sent, or left to a person as failed/unknown).
    DONE = "done"
    CANCELLED = "cancelled"
    #: Fell due while the bot was down, beyond the grace period.
    MISSED = "missed"
    #: Deleted from the platforms after it was posted.
    RETRACTED = "retracted"


class DeliveryState(StrEnum):
    """Where one announcement stands on one platform."""

    #: Waiting for its time (or its retry time, ``next_attempt_at``).
    PENDING = "pending"
    #: Claimed by one process (``claimed_by`` until ``claimed_until``) and being posted.
    SENDING = "sending"
    SENT = "sent"
    #: The platform refused it: a person fixes the cause and retries.
    FAILED = "failed"
    #: It may or may not be up and the platform cannot tell: a person checks.
    UNKNOWN = "unknown"
    RETRACTED = "retracted"
    CANCELLED = "cancelled"
    #: A pending row of an announcement that was missed (see AnnouncementStatus.MISSED).
    MISSED = "missed"


class ReplyDelivery(StrEnum):
    """Why a reply to a question is not up, as its logged answer or decline says (``detail``
    key ``delivery``); a reply that was posted has none."""

    #: The platform refused or failed it.
    FAILED = "failed"
    #: It may or may not be up (the request timed out after it was sent): never posted again.
    UNKNOWN = "unknown"
    #: A decline the platform's policy keeps quiet (public timelines, unless configured).
    SILENT = "silent"
    #: The author had the hour's replies on that platform.
    CAPPED = "capped"


#: Announcement statuses that still have work ahead.
ACTIVE = (AnnouncementStatus.SCHEDULED, AnnouncementStatus.AWAITING_APPROVAL)
#: Delivery states a person must act on.
NEEDS_PERSON = (DeliveryState.FAILED, DeliveryState.UNKNOWN)
#: Delivery states with work in progress or ahead.
IN_PROGRESS = (DeliveryState.PENDING, DeliveryState.SENDING)
#: Delivery states that are not (or no longer) posts.
WITHDRAWN = (DeliveryState.CANCELLED, DeliveryState.RETRACTED)


E = TypeVar("E", bound=StrEnum)


class StateColumn(TypeDecorator[E], Generic[E]):
    """A ``StrEnum`` stored as its value in a VARCHAR: the schema stays a plain string (no
    native enum type to migrate), and rows read back as members."""

    impl = String
    cache_ok = True

    def __init__(self, enum: type[E], length: int) -> None:
        super().__init__(length)
        self._enum = enum

    @property
    def python_type(self) -> type[E]:
        return self._enum

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        return None if value is None else self._enum(value).value

    def process_result_value(self, value: Any, dialect: Dialect) -> E | None:
        return None if value is None else self._enum(value)
