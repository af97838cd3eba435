"""How a delivery attempt ends, and what staff are told.

Every outcome is written under the attempt's claim (see ``announcements/claims.py``):

- **sent**: the post (every part) is up; recorded with its ``announcement_posted`` event.
- **retry**: not posted (a 429, a 5xx): back to ``pending`` with a backoff time and a timer.
- **in doubt**: a part may be up (a timeout): back to ``pending``, the part marked in doubt, so
  the next attempt looks it up before it posts anything (``announcements/progress.py``).
- **failed**: the platform refused it; a person fixes the cause and retries.
- **unknown**: it may be up and the platform cannot tell (no lookup, or the lookups ran out);
  a person checks and marks it sent or retries (and the retry still looks first).

If the claim ran out meanwhile and the row was taken over, nothing is overwritten: what this
attempt posted anyway is reported (:meth:`Outcomes.claim_lost`).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from announcements.claims import DeliveryClaims
from announcements.progress import Doubt, in_doubt, posted_entries, posted_ids, with_doubt
from announcements.store import AnnouncementStore, Recorded, claim_owner
from bot.config import AnnouncementsSection
from bot.errors import FoundationBotError, TransientPlatformError
from bot.events import utcnow
from bot.store.engagement import Event
from bot.store.models import Announcement, Delivery
from bot.store.states import IN_PROGRESS, NEEDS_PERSON, DeliveryState
from bot.telemetry import Metrics

log = logging.getLogger(__name__)

#: Tells staff about an announcement (its command's channel and the comms channel).
Notify = Callable[[Announcement, str], Awaitable[None]]
#: Arms a retry of a delivery at a time.
RetryAt = Callable[[int, datetime], None]


class PartInDoubt(FoundationBotError):
    """A part may or may not be up: it is looked up on the platform before the next post."""

    def __init__(
        self,
        doubt: Doubt,
        part: int,
        parts: int,
        reason: str,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(reason)
        self.doubt = doubt
        self.reason = reason
        self.retry_after = retry_after
        where = doubt.channel or "the platform"
        self.what = f"the post on {where}" if parts == 1 else f"part {part + 1}/{parts} on {where}"


def backoff(attempt: int, base: float, cap: float, rng: random.Random) -> float:
    """Full-jitter exponential backoff: uniform(0, min(cap, base * 2**attempt)) seconds."""
    return rng.uniform(0, min(cap, base * 2 ** min(attempt, 30)))


def partial(delivery: Delivery) -> str:
    """For a delivery that stopped half-way (an X thread at part 2): what is up already, so
    no post is left orphaned without staff knowing. A retry continues after it."""
    posted = len(posted_entries(delivery.progress))
    doubt = in_doubt(delivery.progress)
    text = ""
    if posted:
        text = ("1 post is" if posted == 1 else f"{posted} posts are") + " already up; "
    if doubt is not None:
        where = f" on {doubt.channel}" if doubt.channel else ""
        return (
            f"{text}the next one may be up too (its post{where} was under way): a retry "
            "looks for it first and posts it only if it is not there. "
        )
    return f"{text}a retry continues after it. " if text else ""


class Outcomes:
    """Writes the end of an attempt and tells staff what they need to know."""

    def __init__(
        self,
        *,
        store: AnnouncementStore,
        claims: DeliveryClaims,
        settings: AnnouncementsSection,
        notify: Notify,
        retry_at: RetryAt,
        rng: random.Random,
        metrics: Metrics | None,
        looks_up: Callable[[str], bool],
    ) -> None:
        self._store = store
        self._claims = claims
        self._settings = settings
        self._notify = notify
        self._retry_at = retry_at
        self._rng = rng
        self._metrics = metrics
        #: Whether a platform's posts can be looked up (an attempt there looks first).
        self._looks_up = looks_up

    def _backoff(self, attempts: int, retry_after: float | None) -> float:
        base = self._settings.backoff_base_seconds
        cap = self._settings.backoff_max_seconds
        return max(retry_after or 0.0, backoff(attempts, base, cap, self._rng))

    async def sent(
        self,
        announcement: Announcement,
        delivery: Delivery,
        channel: str,
        url: str | None,
        known: int,
    ) -> bool:
        """Record every part posted; False if the row was taken over meanwhile (reported)."""
        ids = posted_ids(delivery.progress)
        first = ids[0] if ids else None
        event = Event(
            platform=delivery.platform,
            kind="announcement_posted",
            channel=channel,
            text=announcement.text,
            announcement_id=announcement.id,
            message_id=first,
            url=url,
            detail={
                "posts": len(ids),
                "occurrence": delivery.occurrence,
                "attempts": delivery.attempts,
            },
        )
        claim = self._claims.of(delivery)
        outcome = await self._store.record_sent(
            delivery.id,
            owner=claim,
            progress=posted_entries(delivery.progress),
            external_id=first,
            url=url,
            event=event.row(),
        )
        if outcome == "lost":
            await self.claim_lost(announcement, delivery, known)
            return False
        if outcome == "late":
            # Its claim ran out mid-post and it was taken over, but nobody has acted on it
            # since: staff may have been told it may or may not be up, so settle that.
            at = f" at {url}" if url else ""
            await self._notify(
                announcement,
                f"Update on announcement #{announcement.id} on {delivery.platform}: it is up "
                f"after all (message {first}{at}); instance {claim_owner(claim)} finished the "
                "post after its claim had run out. Recorded as sent: nothing to do.",
            )
        if self._metrics is not None:
            due = (
                datetime.fromisoformat(delivery.occurrence)
                if delivery.occurrence
                else announcement.due_at
            )
            self._metrics.sent_late(delivery.platform, due, utcnow())
        return True

    async def retry(
        self,
        announcement: Announcement,
        delivery: Delivery,
        exc: TransientPlatformError,
        known: int,
    ) -> None:
        """Not posted, worth another try: back to pending with a backoff (or give up)."""
        attempts = delivery.attempts
        if attempts >= self._settings.max_attempts:
            reason = f"gave up after {attempts} attempts: {exc.reason}"
            await self.failed(announcement, delivery, reason, known)
            return
        delay = self._backoff(attempts, exc.retry_after)
        when = utcnow() + timedelta(seconds=delay)
        outcome = await self._settle(
            announcement,
            delivery,
            known,
            f"not posted ({exc.reason}); retrying",
            state=DeliveryState.PENDING,
            next_attempt_at=when,
            error=exc.reason,
            progress=posted_entries(delivery.progress),
        )
        if outcome == "lost":
            return
        if self._metrics is not None:
            # Not a state: the row is pending again; the metric counts the retries.
            self._metrics.delivery(delivery.platform, "retrying")
        log.warning(
            "delivery will retry id=%s platform=%s attempt=%d in=%.1fs reason=%s",
            delivery.id,
            delivery.platform,
            attempts,
            delay,
            exc.reason,
        )
        self._retry_at(delivery.id, when)

    async def in_doubt(
        self, announcement: Announcement, delivery: Delivery, lost: PartInDoubt, known: int
    ) -> None:
        """Keep the part in doubt and retry (looking it up first), or give up to a person."""
        delivery.progress = with_doubt(delivery.progress, lost.doubt)
        attempts = delivery.attempts
        if attempts >= self._settings.max_attempts:
            await self.unknown(
                announcement,
                delivery,
                f"{lost.what} could not be confirmed in {attempts} attempts: {lost.reason}",
                known,
            )
            return
        when = max(
            utcnow() + timedelta(seconds=self._backoff(attempts, lost.retry_after)),
            lost.doubt.last + timedelta(seconds=self._settings.reconcile_after_seconds),
        )
        outcome = await self._settle(
            announcement,
            delivery,
            known,
            f"{lost.what} is looked up, then posted if it is not up",
            state=DeliveryState.PENDING,
            next_attempt_at=when,
            error=f"{lost.reason}; {lost.what} is looked up before it is posted again",
            progress=list(delivery.progress),
        )
        if outcome == "lost":
            return
        log.warning(
            "delivery part in doubt, will look it up id=%s platform=%s attempt=%d at=%s reason=%s",
            delivery.id,
            delivery.platform,
            attempts,
            when.isoformat(),
            lost.reason,
        )
        self._retry_at(delivery.id, when)

    async def failed(
        self, announcement: Announcement, delivery: Delivery, reason: str, known: int = 0
    ) -> None:
        """The platform refused it (nothing of this attempt's last call is up)."""
        delivery.progress = posted_entries(delivery.progress)
        outcome = await self._settle(
            announcement,
            delivery,
            known,
            None,
            state=DeliveryState.FAILED,
            error=reason,
            next_attempt_at=None,
            progress=list(delivery.progress),
        )
        if outcome == "lost":
            return
        if self._metrics is not None:
            self._metrics.delivery(delivery.platform, DeliveryState.FAILED)
        log.warning(
            "delivery failed id=%s platform=%s reason=%s", delivery.id, delivery.platform, reason
        )
        await self._notify(
            announcement,
            f"Announcement #{announcement.id} failed on {delivery.platform}: {reason}. "
            f"{partial(delivery)}"
            f"Fix the cause, then /announce retry {announcement.id} --to {delivery.platform}.",
        )

    async def unknown(
        self, announcement: Announcement, delivery: Delivery, reason: str, known: int = 0
    ) -> None:
        """It may be up and nothing can tell: a person checks (``progress`` keeps any part in
        doubt, so a retry looks for it first)."""
        outcome = await self._settle(
            announcement,
            delivery,
            known,
            None,
            state=DeliveryState.UNKNOWN,
            error=reason,
            next_attempt_at=None,
            progress=list(delivery.progress),
        )
        if outcome != "recorded":
            return  # lost; or late: unknown already, and staff were told when it ran out
        if self._metrics is not None:
            self._metrics.delivery(delivery.platform, DeliveryState.UNKNOWN)
        await self.tell_unknown(announcement, delivery, reason)

    async def tell_unknown(
        self, announcement: Announcement, delivery: Delivery, reason: str
    ) -> None:
        """Ask staff to check a row left ``unknown``."""
        ident, platform = announcement.id, delivery.platform
        await self._notify(
            announcement,
            f"Announcement #{ident} may or may not have reached {platform} ({reason}). "
            f"{partial(delivery)}Check the channel, then /announce mark-sent {ident} "
            f"--to {platform} or /announce retry {ident} --to {platform} (a retry looks for "
            "the post first).",
        )

    async def _settle(
        self,
        announcement: Announcement,
        delivery: Delivery,
        known: int,
        late_news: str | None,
        **fields: object,
    ) -> Recorded:
        """End this attempt's claim with ``fields`` (see :meth:`AnnouncementStore.settle`).

        ``lost``: the row was taken over and is left alone; what this attempt posted anyway
        is reported (:meth:`claim_lost`). ``late``: the unknown row the claim's lapse left was
        settled after all; staff hear ``late_news`` if given.
        """
        claim = self._claims.of(delivery)
        outcome = await self._store.settle(
            delivery.id, announcement.id, owner=claim, claimed_until=None, **fields
        )
        if outcome == "lost":
            await self.claim_lost(announcement, delivery, known)
        elif outcome == "late" and late_news is not None:
            await self._notify(
                announcement,
                f"Update on announcement #{announcement.id} on {delivery.platform}: "
                f"{late_news}. Instance {claim_owner(claim)} finished the attempt after its "
                "claim had run out: nothing to do.",
            )
        return outcome

    async def claim_lost(self, announcement: Announcement, delivery: Delivery, known: int) -> None:
        """The claim's lease ran out mid-attempt and the row was taken over (another instance
        took it up, or a person already acted): nothing of the row is overwritten. Posts this
        attempt made all the same (``known``: how many were up when it claimed the row) are
        added to the row and reported, so staff know they are up and a retry does not post
        them again.
        """
        platform = delivery.platform
        posted = posted_entries(delivery.progress)
        if len(posted) <= known:
            return  # nothing went out under the lost claim: the row says all there is
        first = posted_ids(posted)[0]
        count = "1 post" if len(posted) == 1 else f"{len(posted)} posts"
        at = f" at {delivery.url}" if delivery.url else ""
        note = (
            f"instance {claim_owner(self._claims.of(delivery))} posted it after its claim had "
            f"run out ({count} up; first: message {first}{at})"
        )
        row = await self._store.note_lost_claim(
            delivery.id, progress=posted, external_id=first, url=delivery.url, note=note
        )
        if row is None or (row.state == DeliveryState.SENT and row.external_id == first):
            return  # already recorded as this very post
        marked = in_doubt(row.progress) is not None
        if row.state in IN_PROGRESS and marked and self._looks_up(platform):
            # Taken over after a crash or stall with its part in doubt: the attempt now under
            # way looks the post up before posting anything, and will find this one.
            log.info("post under a lost claim is up; the takeover looks it up id=%s", row.id)
            return
        ident = announcement.id
        if row.state in NEEDS_PERSON:
            text = (
                f"Update on announcement #{ident} on {platform}: it is up after all — {note}. "
                f"Check, then /announce mark-sent {ident} --to {platform} (a retry would "
                "continue after these posts, not repeat them)."
            )
        else:
            text = (
                f"Announcement #{ident} went out on {platform} twice, possibly: {note}, but "
                f"the delivery had been taken over meanwhile (it is {row.state} now). Check "
                f"{platform} for a second copy and delete one."
            )
        await self._notify(announcement, text)
