"""The database schema as SQLAlchemy 2 typed ORM classes.

Times are stored as timezone-aware UTC (``DateTime(timezone=True)``); SQLite drops the zone, so
:class:`UTCDateTime` puts it back on the way out. Lists (phrasings, tags) are JSON columns so an
FAQ entry round-trips exactly through export and import.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from bot.events import utcnow
from bot.store.states import AnnouncementStatus, DeliveryState, StateColumn

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime(), date: Date()}


class FaqEntry(Base):
    """One question the bot can answer."""

    __tablename__ = "faq_entries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    slug: Mapped[str] = mapped_column(String(200), unique=True)
    question: Mapped[str] = mapped_column(Text)
    phrasings: Mapped[list[str]] = mapped_column(JSON, default=list)
    answer: Mapped[str] = mapped_column(Text)
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    source_url: Mapped[str | None] = mapped_column(Text, default=None)
    as_of: Mapped[date | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Announcement(Base):
    """Something comms staff want posted; one :class:`Delivery` per target platform."""

    __tablename__ = "announcements"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    author: Mapped[str] = mapped_column(String(200))
    #: Markdown source.
    text: Mapped[str] = mapped_column(Text)
    #: Target platforms, in the order given.
    targets: Mapped[list[str]] = mapped_column(JSON, default=list)
    #: platform -> override text.
    overrides: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    status: Mapped[AnnouncementStatus] = mapped_column(
        StateColumn(AnnouncementStatus, 32), default=AnnouncementStatus.SCHEDULED, index=True
    )
    due_at: Mapped[datetime | None] = mapped_column(default=None, index=True)
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    #: Recurrence rule in local wall-clock time (e.g. "every monday 17:00"), or None.
    recurrence: Mapped[str | None] = mapped_column(Text, default=None)
    recur_until: Mapped[datetime | None] = mapped_column(default=None)
    approved_by: Mapped[str | None] = mapped_column(String(200), default=None)
    #: Where the command came from, so failures are reported back there.
    origin_platform: Mapped[str | None] = mapped_column(String(32), default=None)
    origin_channel: Mapped[str | None] = mapped_column(String(200), default=None)
    content_hash: Mapped[str] = mapped_column(String(64), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    deliveries: Mapped[list[Delivery]] = relationship(
        back_populates="announcement", cascade="all, delete-orphan", order_by="Delivery.platform"
    )


class Delivery(Base):
    """The state of one announcement on one platform."""

    __tablename__ = "deliveries"
    __table_args__ = (UniqueConstraint("announcement_id", "platform", "occurrence"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    announcement_id: Mapped[int] = mapped_column(
        ForeignKey("announcements.id", ondelete="CASCADE"), index=True
    )
    platform: Mapped[str] = mapped_column(String(32))
    #: For recurring announcements: the due time of this occurrence (UTC ISO), else "".
    occurrence: Mapped[str] = mapped_column(String(40), default="")
    state: Mapped[DeliveryState] = mapped_column(
        StateColumn(DeliveryState, 16), default=DeliveryState.PENDING, index=True
    )
    external_id: Mapped[str | None] = mapped_column(Text, default=None)
    url: Mapped[str | None] = mapped_column(Text, default=None)
    #: Parts posted so far, and the one whose call may have been made, in the format of
    #: ``announcements/progress.py`` (X threads resume from here after a failure).
    progress: Mapped[list[str]] = mapped_column(JSON, default=list)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(default=None)
    claimed_by: Mapped[str | None] = mapped_column(String(100), default=None)
    claimed_until: Mapped[datetime | None] = mapped_column(default=None)
    sent_at: Mapped[datetime | None] = mapped_column(default=None)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    announcement: Mapped[Announcement] = relationship(back_populates="deliveries")


class EngagementEvent(Base):
    """Everything the bot said and how people engaged, for moderators."""

    __tablename__ = "engagement_events"
    __table_args__ = (Index("ix_engagement_events_kind_created", "kind", "created_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    platform: Mapped[str] = mapped_column(String(32), index=True)
    channel: Mapped[str | None] = mapped_column(String(200), default=None)
    user: Mapped[str | None] = mapped_column(String(200), default=None, index=True)
    #: question, answer, declined, reaction, feedback, announcement_posted, command, ...
    kind: Mapped[str] = mapped_column(String(32))
    text: Mapped[str | None] = mapped_column(Text, default=None)
    faq_entry_id: Mapped[int | None] = mapped_column(
        ForeignKey("faq_entries.id", ondelete="SET NULL"), default=None, index=True
    )
    announcement_id: Mapped[int | None] = mapped_column(
        ForeignKey("announcements.id", ondelete="SET NULL"), default=None, index=True
    )
    score: Mapped[float | None] = mapped_column(Float, default=None)
    message_id: Mapped[str | None] = mapped_column(String(200), default=None)
    thread_id: Mapped[str | None] = mapped_column(String(200), default=None)
    url: Mapped[str | None] = mapped_column(Text, default=None)
    #: Correlates a question, its answer and the feedback on it (the answer's feedback token).
    ref: Mapped[str | None] = mapped_column(String(64), default=None, index=True)
    #: Free-form extra fields (reaction emoji, metrics snapshot, decline reason).
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class ReviewItem(Base):
    """A declined, low-confidence or thumbs-down question waiting for a moderator."""

    __tablename__ = "review_items"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    engagement_id: Mapped[int | None] = mapped_column(
        ForeignKey("engagement_events.id", ondelete="SET NULL"), default=None
    )
    platform: Mapped[str] = mapped_column(String(32))
    question: Mapped[str] = mapped_column(Text)
    #: declined, low_confidence, thumbs_down, escalated
    reason: Mapped[str] = mapped_column(String(32))
    best_entry_id: Mapped[int | None] = mapped_column(
        ForeignKey("faq_entries.id", ondelete="SET NULL"), default=None
    )
    score: Mapped[float | None] = mapped_column(Float, default=None)
    #: open, resolved, dismissed
    status: Mapped[str] = mapped_column(String(16), default="open", index=True)
    resolved_by: Mapped[str | None] = mapped_column(String(200), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    resolved_at: Mapped[datetime | None] = mapped_column(default=None)


class BotThread(Base):
    """A thread the bot started or answered in: follow-ups there need no mention."""

    __tablename__ = "bot_threads"
    __table_args__ = (UniqueConstraint("platform", "channel", "thread_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    platform: Mapped[str] = mapped_column(String(32))
    channel: Mapped[str] = mapped_column(String(200))
    thread_id: Mapped[str] = mapped_column(String(200))
    announcement_id: Mapped[int | None] = mapped_column(
        ForeignKey("announcements.id", ondelete="CASCADE"), default=None
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class BotState(Base):
    """Small durable flags shared by every process (e.g. the announcement embargo)."""

    __tablename__ = "bot_state"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class AuditLog(Base):
    """Who did what: commands (allowed or refused), FAQ edits, dashboard actions."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    actor: Mapped[str] = mapped_column(String(200), index=True)
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str | None] = mapped_column(Text, default=None)
    allowed: Mapped[bool] = mapped_column(Boolean, default=True)
    detail: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class DashboardUser(Base):
    """A person who may log in to the dashboard (created with ``foundation-bot users add``)."""

    __tablename__ = "dashboard_users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    #: argon2id hash (argon2-cffi's encoded form, parameters included).
    password_hash: Mapped[str] = mapped_column(String(200))
    #: moderator, comms or admin
    role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(default=None)


class LoginFailure(Base):
    """A failed dashboard login, counted by the login rate limit.

    In the database so every instance behind a load balancer sees the same count. Only a
    hash of the key is stored: a password typed into the name field is never kept.
    """

    __tablename__ = "login_failures"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: SHA-256 of ``ip:<address>`` or ``name:<name as typed, lower case>``.
    key: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (Index("ix_login_failures_key_at", "key", "at"),)


class DashboardSession(Base):
    """A logged-in browser. Only a hash of the cookie value is stored."""

    __tablename__ = "dashboard_sessions"

    #: SHA-256 of the session cookie value.
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(
        ForeignKey("dashboard_users.id", ondelete="CASCADE"), index=True
    )
    #: The CSRF token every form of this session must carry.
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(index=True)
