"""Announcements and their deliveries in the database.

A delivery moves pending -> sending -> sent | failed | unknown (and pending again for a
scheduled retry). The move to ``sending`` is a conditional UPDATE committed *before* the
platform is called, so two workers can never both post the same row; before each platform call
the part is marked in ``progress`` (``announcements/progress.py``), so a row a dead process
left ``sending`` tells whether a call may have happened (see ``announcements/engine.py``).

Every write made under a claim names it (``claimed_by = :owner AND state = 'sending'``): a
process whose lease ran out (it stalled, or lost the database for longer than the lease) may
meanwhile have had its row marked ``unknown`` by another instance, and must not overwrite that.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import ColumnElement, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_delay,
    wait_random_exponential,
)

from announcements.progress import posted_entries
from bot.errors import StoreError
from bot.events import utcnow
from bot.store.db import Database
from bot.store.models import Announcement, BotState, Delivery, EngagementEvent
from bot.store.states import (
    ACTIVE,
    IN_PROGRESS,
    NEEDS_PERSON,
    WITHDRAWN,
    AnnouncementStatus,
    DeliveryState,
)

log = logging.getLogger(__name__)

HOLD_KEY = "announcements.hold"
#: What :meth:`AnnouncementStore.record_sent` did: recorded under the claim; recorded after
#: the claim had run out (the row was ``unknown`` from that very claim, untouched since); or
#: nothing, the row having been taken over (a retry, a person).
Recorded = Literal["recorded", "late", "lost"]
#: How long a write that records a finished post keeps retrying while the database is away
#: (a restart, a failover): the post is up, so losing the record would make it ``unknown``.
PERSIST_SECONDS = 30.0


def _persisting() -> AsyncRetrying:
    """tenacity: retry StoreError (database unreachable) with jittered exponential waits."""
    return AsyncRetrying(
        retry=retry_if_exception_type(StoreError),
        stop=stop_after_delay(PERSIST_SECONDS),
        wait=wait_random_exponential(multiplier=0.2, max=3.0),
        reraise=True,
    )


def claim_token(owner: str) -> str:
    """A fresh ``claimed_by`` value: the instance plus a nonce naming this one claim, so a
    write under an old claim never matches a later claim of the same row by the same
    process (``/announce retry`` after the first claim was given up for lost)."""
    return f"{owner[:90]}#{secrets.token_hex(4)}"


def claim_owner(claim: str | None) -> str:
    """The instance named in a ``claimed_by`` value."""
    owner, _, _ = (claim or "").rpartition("#")
    return owner or claim or "an unknown instance"


def content_hash(text: str) -> str:
    """Hash of the text with case and whitespace normalized, for duplicate detection."""
    normalized = " ".join(text.lower().split())
    return hashlib.sha256(normalized.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class NewAnnouncement:
    """What ``/announce schedule`` or ``now`` asks to create."""

    author: str
    text: str
    targets: tuple[str, ...]
    due_at: datetime
    timezone: str
    overrides: dict[str, str]
    recurrence: str | None = None
    recur_until: datetime | None = None
    status: AnnouncementStatus = AnnouncementStatus.SCHEDULED
    origin_platform: str | None = None
    origin_channel: str | None = None


class AnnouncementStore:
    """Reads and writes announcements and deliveries."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def create(self, new: NewAnnouncement) -> Announcement:
        """Store an announcement; one-off ones get their pending delivery rows now."""
        async with self._db.session() as session:
            announcement = Announcement(
                author=new.author,
                text=new.text,
                targets=list(new.targets),
                overrides=new.overrides,
                status=new.status,
                due_at=new.due_at,
                timezone=new.timezone,
                recurrence=new.recurrence,
                recur_until=new.recur_until,
                content_hash=content_hash(new.text),
                origin_platform=new.origin_platform,
                origin_channel=new.origin_channel,
            )
            if new.recurrence is None:
                announcement.deliveries = [Delivery(platform=p) for p in new.targets]
            session.add(announcement)
        return await self.require(announcement.id)

    async def get(self, announcement_id: int) -> Announcement | None:
        """One announcement with its deliveries."""
        async with self._db.session() as session:
            stmt = (
                select(Announcement)
                .where(Announcement.id == announcement_id)
                .options(selectinload(Announcement.deliveries))
            )
            return (await session.scalars(stmt)).first()

    async def require(self, announcement_id: int) -> Announcement:
        """Like :meth:`get` but the row must exist."""
        found = await self.get(announcement_id)
        if found is None:
            raise LookupError(announcement_id)
        return found

    async def active(self) -> Sequence[Announcement]:
        """Scheduled and awaiting-approval announcements, soonest first."""
        async with self._db.session() as session:
            stmt = (
                select(Announcement)
                .where(Announcement.status.in_(ACTIVE))
                .order_by(Announcement.due_at, Announcement.id)
                .options(selectinload(Announcement.deliveries))
            )
            return (await session.scalars(stmt)).all()

    async def scheduled_times(self) -> Sequence[tuple[int, datetime, bool]]:
        """``(id, due_at, recurring)`` of every scheduled announcement: what its timer needs,
        without loading rows (a restart with thousands queued)."""
        async with self._db.session() as session:
            stmt = (
                select(Announcement.id, Announcement.due_at, Announcement.recurrence)
                .where(
                    Announcement.status == AnnouncementStatus.SCHEDULED,
                    Announcement.due_at.is_not(None),
                )
                .order_by(Announcement.due_at, Announcement.id)
            )
            rows = (await session.execute(stmt)).all()
            return [(int(i), due, bool(rule)) for i, due, rule in rows if due is not None]

    async def due_by(self, horizon: datetime) -> Sequence[tuple[int, datetime]]:
        """``(id, due_at)`` of scheduled announcements with pending work due by ``horizon``."""
        async with self._db.session() as session:
            open_rows = select(Delivery.announcement_id).where(
                Delivery.state == DeliveryState.PENDING
            )
            stmt = select(Announcement.id, Announcement.due_at).where(
                Announcement.status == AnnouncementStatus.SCHEDULED,
                Announcement.due_at <= horizon,
                Announcement.id.in_(open_rows) | Announcement.recurrence.is_not(None),
            )
            rows = (await session.execute(stmt)).all()
            return [(int(i), due) for i, due in rows if due is not None]

    async def with_open_deliveries(self) -> Sequence[Announcement]:
        """Announcements that still have deliveries not sent (for ``list``)."""
        async with self._db.session() as session:
            has_open = (
                select(Delivery.announcement_id)
                .where(Delivery.state.in_((*IN_PROGRESS, *NEEDS_PERSON)))
                .distinct()
            )
            stmt = (
                select(Announcement)
                .where(
                    (Announcement.status.in_(ACTIVE))
                    | (
                        Announcement.id.in_(has_open)
                        & Announcement.status.not_in(
                            (AnnouncementStatus.CANCELLED, AnnouncementStatus.RETRACTED)
                        )
                    )
                )
                .order_by(Announcement.due_at, Announcement.id)
                .options(selectinload(Announcement.deliveries))
            )
            return (await session.scalars(stmt)).all()

    async def history(self, limit: int = 20) -> Sequence[Announcement]:
        """Finished announcements, newest first."""
        async with self._db.session() as session:
            stmt = (
                select(Announcement)
                .where(Announcement.status.not_in(ACTIVE))
                .order_by(Announcement.updated_at.desc(), Announcement.id.desc())
                .limit(limit)
                .options(selectinload(Announcement.deliveries))
            )
            return (await session.scalars(stmt)).all()

    async def find_duplicate(self, text: str, window: timedelta, now: datetime) -> int | None:
        """Id of an announcement with the same text queued, or sent within ``window``."""
        digest = content_hash(text)
        async with self._db.session() as session:
            queued = select(Announcement.id).where(
                Announcement.content_hash == digest, Announcement.status.in_(ACTIVE)
            )
            recent = (
                select(Announcement.id)
                .join(Delivery)
                .where(
                    Announcement.content_hash == digest,
                    Delivery.state == DeliveryState.SENT,
                    Delivery.sent_at >= now - window,
                )
            )
            found = (await session.execute(queued.union(recent).limit(1))).first()
            return int(found[0]) if found else None

    async def posts_between(self, platform: str, start: datetime, end: datetime) -> int:
        """Deliveries to ``platform`` due (or sent) in [start, end), cancelled ones excluded."""
        async with self._db.session() as session:
            stmt = (
                select(func.count(Delivery.id))
                .join(Announcement)
                .where(
                    Delivery.platform == platform,
                    Delivery.state.not_in(WITHDRAWN),
                    func.coalesce(Delivery.sent_at, Announcement.due_at) >= start,
                    func.coalesce(Delivery.sent_at, Announcement.due_at) < end,
                )
            )
            return int(await session.scalar(stmt) or 0)

    async def update(self, announcement_id: int, **fields: object) -> None:
        """Set columns of an announcement."""
        async with self._db.session() as session:
            await session.execute(
                update(Announcement).where(Announcement.id == announcement_id).values(**fields)
            )

    async def ensure_occurrence(
        self, announcement: Announcement, occurrence: str
    ) -> Sequence[Delivery]:
        """Create the pending rows of one occurrence of a recurring announcement and return
        the occurrence's rows.

        Idempotent, also when several instances fire the same occurrence at once: the rows
        are inserted with ``ON CONFLICT DO NOTHING`` on the (announcement, platform,
        occurrence) key, so the instance that loses the race finds the winner's rows instead
        of failing on the unique constraint (the claims then decide who posts).
        """
        insert = pg_insert if self._db.dialect == "postgresql" else sqlite_insert
        now = utcnow()
        rows = [
            {
                "announcement_id": announcement.id,
                "platform": platform,
                "occurrence": occurrence,
                "state": DeliveryState.PENDING,
                "progress": [],
                "attempts": 0,
                "updated_at": now,
            }
            for platform in dict.fromkeys(announcement.targets)
        ]
        async with self._db.session() as session:
            if rows:
                await session.execute(
                    insert(Delivery)
                    .values(rows)
                    .on_conflict_do_nothing(
                        index_elements=["announcement_id", "platform", "occurrence"]
                    )
                )
            stmt = select(Delivery).where(
                Delivery.announcement_id == announcement.id, Delivery.occurrence == occurrence
            )
            return (await session.scalars(stmt.order_by(Delivery.id))).all()

    async def deliveries(
        self, announcement_id: int, occurrence: str | None = None
    ) -> Sequence[Delivery]:
        """The delivery rows of an announcement (optionally of one occurrence)."""
        async with self._db.session() as session:
            stmt = select(Delivery).where(Delivery.announcement_id == announcement_id)
            if occurrence is not None:
                stmt = stmt.where(Delivery.occurrence == occurrence)
            return (await session.scalars(stmt.order_by(Delivery.id))).all()

    async def delivery(self, delivery_id: int) -> Delivery | None:
        """One delivery row."""
        async with self._db.session() as session:
            return await session.get(Delivery, delivery_id)

    async def get_many_for_delivery(
        self, announcement_ids: Sequence[int]
    ) -> tuple[Sequence[Announcement], bool]:
        """Announcements with their deliveries, and whether the embargo is on: one session."""
        async with self._db.session() as session:
            stmt = (
                select(Announcement)
                .where(Announcement.id.in_(announcement_ids))
                .options(selectinload(Announcement.deliveries))
            )
            announcements = (await session.scalars(stmt)).all()
            state = await session.get(BotState, HOLD_KEY)
            return announcements, state is not None and state.value == "on"

    async def claim_many(
        self,
        delivery_ids: Sequence[int],
        owner: str,
        lease: timedelta,
        *,
        due_only: bool = False,
    ) -> dict[int, Delivery]:
        """pending -> sending for these rows in one atomic UPDATE; returns the rows won, as
        the database has them now (progress, attempts …): whatever was read before the claim
        may be stale, since another instance may have worked on the row in between.

        ``due_only`` leaves rows whose retry is scheduled for later (timer paths); an explicit
        retry claims them anyway.

        A row another worker claimed first (or that is no longer pending) is not returned, so
        no row is ever posted by two workers. On PostgreSQL the rows are picked with
        ``SELECT … FOR UPDATE SKIP LOCKED``; the lease (``claimed_until``) tells the other
        instances when a claim is stale (see ``AnnouncementScheduler.recover_interrupted``).

        ``claimed_by`` of the rows won is ``owner`` plus a nonce (:func:`claim_token`): every
        later write about the attempt passes it as ``owner``.
        """
        if not delivery_ids:
            return {}
        now = utcnow()
        candidates: ColumnElement[bool] = Delivery.id.in_(delivery_ids)
        if due_only:
            candidates = candidates & (
                Delivery.next_attempt_at.is_(None) | (Delivery.next_attempt_at <= now)
            )
        if self._db.dialect == "postgresql":
            # Several bot processes fire the same timers: rows another process is claiming
            # right now are skipped instead of waited for (its claim wins; this one moves on).
            candidates = Delivery.id.in_(
                select(Delivery.id)
                .where(candidates, Delivery.state == DeliveryState.PENDING)
                .with_for_update(skip_locked=True)
            )
        async with self._db.session() as session:
            result = await session.execute(
                update(Delivery)
                .where(candidates, Delivery.state == DeliveryState.PENDING)
                .values(
                    state=DeliveryState.SENDING,
                    claimed_by=claim_token(owner),
                    claimed_until=now + lease,
                    attempts=Delivery.attempts + 1,
                    updated_at=now,
                )
                .returning(Delivery)
            )
            return {row.id: row for row in result.scalars().all()}

    async def claim(self, delivery_id: int, owner: str, lease: timedelta) -> bool:
        """Claim one row (see :meth:`claim_many`)."""
        return delivery_id in await self.claim_many([delivery_id], owner, lease)

    async def renew_claim(self, delivery_id: int, owner: str, until: datetime) -> bool:
        """Extend a claim still held (``owner``: the row's ``claimed_by`` as claimed); False
        if the row is no longer under that claim."""
        return delivery_id in await self.renew_claims({delivery_id: owner}, until)

    async def renew_claims(self, held: Mapping[int, str], until: datetime) -> set[int]:
        """Extend every claim in ``held`` (delivery id -> ``claimed_by`` as claimed) in one
        statement; returns the ids still under their claim (the others were taken over)."""
        if not held:
            return set()
        async with self._db.session() as session:
            rows = await session.execute(
                update(Delivery)
                .where(
                    Delivery.id.in_(list(held)),
                    Delivery.state == DeliveryState.SENDING,
                    Delivery.claimed_by.in_(set(held.values())),
                )
                .values(claimed_until=until)
                .returning(Delivery.id, Delivery.claimed_by)
            )
            return {ident for ident, owner in rows.all() if held.get(ident) == owner}

    async def record_sent(
        self,
        delivery_id: int,
        *,
        owner: str,
        progress: list[str],
        external_id: str | None,
        url: str | None,
        event: EngagementEvent,
    ) -> Recorded:
        """Mark a delivery sent, log it and close the announcement if it was the last: one
        transaction, retried while the database is unreachable.

        Only while the row is still ``sending`` under the claim ``owner`` (``recorded``), or
        ``unknown``/``pending`` from that same claim and untouched since: its lease ran out
        mid-post and another instance took it over, but no person or other attempt has acted
        on it, so the post that is up is recorded (``late``; the caller tells staff).
        Otherwise nothing is written (``lost``; see :meth:`note_lost_claim`).
        """
        async for attempt in _persisting():
            with attempt:
                return await self._record_sent(
                    delivery_id,
                    owner=owner,
                    progress=progress,
                    external_id=external_id,
                    url=url,
                    event=event,
                )
        raise AssertionError("unreachable: tenacity reraises")  # pragma: no cover

    async def _record_sent(
        self,
        delivery_id: int,
        *,
        owner: str,
        progress: list[str],
        external_id: str | None,
        url: str | None,
        event: EngagementEvent,
    ) -> Recorded:
        now = utcnow()
        sent = {
            "state": DeliveryState.SENT,
            "sent_at": now,
            "claimed_until": None,
            "next_attempt_at": None,
            "progress": progress,
            "external_id": external_id,
            "url": url,
            "updated_at": now,
        }
        late_note = (
            f"its claim ran out mid-post and it was taken over; instance "
            f"{claim_owner(owner)} finished the post after all"
        )
        async with self._db.session() as session:
            # A post that is up is recorded also over a takeover's pending row: the retry it
            # waits for would only look the post up and find it.
            outcome = await _write_own(
                session,
                delivery_id,
                owner,
                {"error": None, **sent},
                {"error": late_note, **sent},
                (DeliveryState.UNKNOWN, DeliveryState.PENDING),
            )
            if outcome is not None:
                session.add(event)
                await self._finish_if_done(session, event.announcement_id)
                if outcome == "late":
                    log.warning(
                        "delivery claim had run out, post recorded sent after all id=%s claim=%s",
                        delivery_id,
                        owner,
                    )
                return outcome
            # A retry after a commit whose acknowledgement was lost finds its own write (or a
            # person confirmed this very post with mark-sent, which keeps the claim).
            row = await session.get(Delivery, delivery_id)
            if row is not None and row.state == DeliveryState.SENT and row.claimed_by == owner:
                # Our own earlier write: late as well if that one was (staff must hear of it).
                return "late" if row.error == late_note else "recorded"
            _warn_lost(delivery_id, owner, row, "record it sent")
            return "lost"

    async def settle(
        self, delivery_id: int, announcement_id: int, *, owner: str, **fields: object
    ) -> Recorded:
        """Set a final (or retry) state and close the announcement if nothing is left.

        While the row is still ``sending`` under the claim ``owner`` (``recorded``); or, like
        :meth:`record_sent`, while it is ``unknown`` from that same claim and untouched since
        (``late``): the lease ran out mid-attempt and the recovery marked it, but the attempt
        has now ended and knows the outcome better (not posted, so retry; or failed), and no
        person or other attempt has acted on the row. Otherwise nothing is written (``lost``).
        """
        async with self._db.session() as session:
            values = {"updated_at": utcnow(), **fields}
            outcome = await _write_own(session, delivery_id, owner, values, values)
            if outcome is None:
                _warn_lost(delivery_id, owner, await session.get(Delivery, delivery_id), "settle")
                return "lost"
            await self._finish_if_done(session, announcement_id)
            return outcome

    async def set_delivery(self, delivery_id: int, *, owner: str | None, **fields: object) -> bool:
        """Set columns of a delivery (retried while the database is unreachable).

        ``owner``: the claim the write is made under (the row must still be ``sending``
        under it, else nothing is written and False is returned); None for a row no claim
        covers (a pending row marked ``missed``, a sent one ``retracted``).
        """
        where = _under_claim(delivery_id, owner) if owner else (Delivery.id == delivery_id,)
        async for attempt in _persisting():
            with attempt:
                async with self._db.session() as session:
                    result = await session.execute(
                        update(Delivery).where(*where).values(updated_at=utcnow(), **fields)
                    )
                    if owner is None or _rowcount(result) == 1:
                        return True
                    row = await session.get(Delivery, delivery_id)
                    _warn_lost(delivery_id, owner, row, "update it")
                    return False
        raise AssertionError("unreachable: tenacity reraises")  # pragma: no cover

    async def note_lost_claim(
        self,
        delivery_id: int,
        *,
        progress: list[str],
        external_id: str | None,
        url: str | None,
        note: str,
    ) -> Delivery | None:
        """Record posts made under a claim that was lost, for the person deciding the row.

        A row a person must decide (``unknown``, ``failed``) keeps its state, gets ``note``
        appended to its error, and takes ``progress`` (the posted parts) if it extends what
        the row knows: ``/announce retry`` then continues after them instead of posting them
        again, and ``mark-sent``/``retract`` know the post. A row taken over since (pending
        again, another claim, sent) is left alone. Returns the row as it is now.
        """
        async for attempt in _persisting():
            with attempt:
                async with self._db.session() as session:
                    stmt = select(Delivery).where(Delivery.id == delivery_id).with_for_update()
                    row = (await session.scalars(stmt)).first()
                    if row is None or row.state not in NEEDS_PERSON:
                        return row
                    known = posted_entries(row.progress)
                    if len(progress) > len(known) and progress[: len(known)] == known:
                        row.progress = list(progress)
                        if row.external_id is None:
                            row.external_id, row.url = external_id, url
                    row.error = f"{row.error}; {note}" if row.error else note
                    row.updated_at = utcnow()
                    return row
        raise AssertionError("unreachable: tenacity reraises")  # pragma: no cover

    async def set_delivery_if(
        self, delivery_id: int, states: Sequence[DeliveryState], **fields: object
    ) -> bool:
        """Set columns only if the delivery is in one of ``states``; True if it was."""
        async with self._db.session() as session:
            result = await session.execute(
                update(Delivery)
                .where(Delivery.id == delivery_id, Delivery.state.in_(states))
                .values(updated_at=utcnow(), **fields)
            )
            return bool(getattr(result, "rowcount", 0) == 1)

    async def take_over(self, delivery_id: int, claim: str | None, **fields: object) -> bool:
        """Set ``fields`` on a row left ``sending`` by a claim whose process no longer holds
        it (its lease ran out), if it still is; False if another instance got there first."""
        async with self._db.session() as session:
            claimed = (
                Delivery.claimed_by.is_(None) if claim is None else Delivery.claimed_by == claim
            )
            result = await session.execute(
                update(Delivery)
                .where(Delivery.id == delivery_id, Delivery.state == DeliveryState.SENDING, claimed)
                .values(updated_at=utcnow(), **fields)
            )
            return _rowcount(result) == 1

    async def interrupted(self, *, include_live_claims: bool = False) -> Sequence[Delivery]:
        """Rows left ``sending`` whose claim has expired: their outcome is unknown.

        Args:
            include_live_claims: also rows whose claim has not expired yet — right for a
                single-process deployment (SQLite) at start, where no other process can own one.
        """
        async with self._db.session() as session:
            stmt = select(Delivery).where(Delivery.state == DeliveryState.SENDING)
            if not include_live_claims:
                stmt = stmt.where(
                    (Delivery.claimed_until.is_(None)) | (Delivery.claimed_until < utcnow())
                )
            return (await session.scalars(stmt)).all()

    async def retry_pending(self) -> Sequence[Delivery]:
        """Pending rows with a retry time (re-armed at start)."""
        async with self._db.session() as session:
            stmt = select(Delivery).where(
                Delivery.state == DeliveryState.PENDING, Delivery.next_attempt_at.is_not(None)
            )
            return (await session.scalars(stmt)).all()

    async def finish_if_done(self, announcement_id: int) -> bool:
        """Mark a one-off announcement ``done`` once no delivery is pending or sending."""
        async with self._db.session() as session:
            return await self._finish_if_done(session, announcement_id)

    @staticmethod
    async def _finish_if_done(session: AsyncSession, announcement_id: int | None) -> bool:
        if announcement_id is None:
            return False
        announcement = await session.get(Announcement, announcement_id)
        if (
            announcement is None
            or announcement.recurrence
            or announcement.status != AnnouncementStatus.SCHEDULED
        ):
            return False
        busy = await session.scalar(
            select(func.count(Delivery.id)).where(
                Delivery.announcement_id == announcement_id,
                Delivery.state.in_(IN_PROGRESS),
            )
        )
        if busy:
            return False
        announcement.status = AnnouncementStatus.DONE
        return True

    async def held(self) -> bool:
        """Whether the embargo (``/announce hold``) is on."""
        async with self._db.session() as session:
            state = await session.get(BotState, HOLD_KEY)
            return state is not None and state.value == "on"

    async def set_held(self, on: bool) -> None:
        """Turn the embargo on or off (shared by every process through the database)."""
        async with self._db.session() as session:
            state = await session.get(BotState, HOLD_KEY)
            if state is None:
                session.add(BotState(key=HOLD_KEY, value="on" if on else "off"))
            else:
                state.value = "on" if on else "off"


def _under_claim(delivery_id: int, owner: str) -> tuple[ColumnElement[bool], ...]:
    """The row, only while it is still being posted under the claim ``owner``."""
    return (
        Delivery.id == delivery_id,
        Delivery.state == DeliveryState.SENDING,
        Delivery.claimed_by == owner,
    )


def _rowcount(result: object) -> int:
    return int(getattr(result, "rowcount", 0) or 0)


async def _write_own(
    session: AsyncSession,
    delivery_id: int,
    owner: str,
    values: Mapping[str, object],
    late_values: Mapping[str, object],
    late_states: Sequence[DeliveryState] = (DeliveryState.UNKNOWN,),
) -> Literal["recorded", "late"] | None:
    """Write ``values`` to the row still being posted under the claim ``owner``; else
    ``late_values`` to the row if it is what that claim's takeover left (in one of
    ``late_states``) and nobody has touched since (the takeover keeps ``claimed_by``); None
    if neither."""
    result = await session.execute(
        update(Delivery).where(*_under_claim(delivery_id, owner)).values(**values)
    )
    if _rowcount(result) == 1:
        return "recorded"
    result = await session.execute(
        update(Delivery)
        .where(
            Delivery.id == delivery_id,
            Delivery.state.in_(late_states),
            Delivery.claimed_by == owner,
        )
        .values(**late_values)
    )
    return "late" if _rowcount(result) == 1 else None


def _warn_lost(delivery_id: int, owner: str, row: Delivery | None, what: str) -> None:
    log.warning(
        "delivery claim lost, did not %s id=%s claim=%s: the row is %s%s now (the lease ran "
        "out: a stall or a database outage longer than claim_lease_seconds); left as it is",
        what,
        delivery_id,
        owner,
        row.state if row is not None else "gone",
        f" under {row.claimed_by}" if row is not None and row.claimed_by else "",
    )
