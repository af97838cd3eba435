"""Privacy: pseudonymous user ids in the engagement log, and purging old engagement.

With ``privacy.pseudonymize_users`` the log never holds a platform user id: the
:class:`Pseudonymizer` turns it into a keyed hash (HMAC-SHA256) where events are written. The
same user always gets the same pseudonym, so moderators can still follow one person's
questions, but without the key nobody can tell who it was (and a plain hash of the id would be
reversible by hashing every known id).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from datetime import datetime, timedelta

from sqlalchemy import delete

from bot.config import Config
from bot.events import utcnow
from bot.store.db import Database
from bot.store.models import EngagementEvent, ReviewItem

log = logging.getLogger(__name__)

PSEUDONYM_PREFIX = "anon-"


class Pseudonymizer:
    """Keyed hash of platform user ids."""

    __slots__ = ("_key",)

    def __init__(self, key: str) -> None:
        if not key:
            raise ValueError("the pseudonym key is empty")
        self._key = key.encode("utf-8")

    def __call__(self, user: str) -> str:
        """``anon-`` + 16 hex digits; already pseudonymous ids are returned unchanged."""
        if user.startswith(PSEUDONYM_PREFIX):
            return user
        digest = hmac.new(self._key, user.encode("utf-8"), hashlib.sha256).hexdigest()
        return PSEUDONYM_PREFIX + digest[:16]

    def __repr__(self) -> str:
        return "Pseudonymizer(key=***)"


def pseudonymizer_for(config: Config) -> Pseudonymizer | None:
    """The configured pseudonymizer, or None when user ids are stored as they are."""
    if not config.settings.privacy.pseudonymize_users:
        return None
    return Pseudonymizer(config.secret("privacy", "pseudonym_key"))


async def purge_engagement(db: Database, retention_days: int, now: datetime | None = None) -> int:
    """Delete engagement events older than ``retention_days`` and closed review items as old.

    Open review items stay (a moderator has not seen them yet); their link to the deleted
    event is cleared by the foreign key. Idempotent: running it twice deletes nothing more.

    Returns:
        How many engagement events were deleted.
    """
    cutoff = (now or utcnow()) - timedelta(days=retention_days)
    async with db.session() as session:
        result = await session.execute(
            delete(EngagementEvent).where(EngagementEvent.created_at < cutoff)
        )
        await session.execute(
            delete(ReviewItem).where(ReviewItem.status != "open", ReviewItem.created_at < cutoff)
        )
        deleted = int(getattr(result, "rowcount", 0) or 0)
    log.info("retention purge deleted=%d older_than=%s", deleted, cutoff.isoformat())
    return deleted
