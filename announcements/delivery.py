"""Delivering announcements: fan-out to every target at once, exactly once per platform.

Per delivery row: claim (pending -> sending, committed before any platform call), render,
post each part (X thread posts reply to the previous one) and record progress after every
post, so a retry continues where the last attempt stopped and nothing is posted twice.
Transient errors retry with exponential backoff and full jitter (honouring the platform's
Retry-After); permanent errors fail at once. An ambiguous outcome (the request may have gone
through, e.g. a timeout) puts the part *in doubt* when the adapter can look its posts up
(:class:`~adapters.base.Reconciler`): the retry first asks the platform whether the post is
there, and records it or posts it again accordingly. Elsewhere, and when the attempts run out,
it becomes ``unknown`` for a person to decide. Failures are reported to staff.

Every write after the claim is made under it (the claim's ``claimed_by``). If the lease ran out
meanwhile (a stall, or the database away for longer than the lease) another instance has
marked the row ``unknown`` and told staff. A post that finished anyway is then recorded sent
if nobody has acted on the row since (staff are told it is up after all); any other write
changes nothing, and whatever this attempt did post is reported (:meth:`_claim_lost`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from adapters.base import Adapter, Reconciler
from announcements.render import Rendered, RenderError, render
from announcements.store import (
    DOUBT,
    NEEDS_PERSON,
    AnnouncementStore,
    Recorded,
    claim_owner,
    posted_entries,
)
from bot.config import AnnouncementsSection
from bot.errors import (
    DuplicatePostError,
    FoundationBotError,
    PermanentPlatformError,
    PlatformError,
    StoreError,
    TransientPlatformError,
)
from bot.events import Conversation, OutgoingMessage, SentMessage, utcnow
from bot.store.engagement import EngagementLog, Event
from bot.store.models import Announcement, Delivery
from bot.telemetry import Metrics

log = logging.getLogger(__name__)

DISCUSSION_OPENER = "Questions about this announcement? Reply in this thread and I'll answer."

Notify = Callable[[Announcement, str], Awaitable[None]]
RetryHook = Callable[[int, datetime], None]

# DOUBT marks the last ``progress`` entry as a part in doubt: ``?channel|since|last`` (ISO
# times of the first and the latest attempt that may have posted it). It stays until the part
# is found on the platform or posted.
#: Looked-up posts may be stamped by a platform clock a little behind ours.
CLOCK_SKEW = timedelta(minutes=2)


def progress_entry(channel: str, message_id: str) -> str:
    """One posted part as kept in ``Delivery.progress``: ``channel|message_id``."""
    return f"{channel}|{message_id}"


def split_entry(entry: str) -> tuple[str, str]:
    """(channel, message_id) of a progress entry."""
    channel, _, message_id = entry.rpartition("|")
    return channel, message_id


@dataclass(frozen=True, slots=True)
class Doubt:
    """A part whose post may or may not be up."""

    channel: str
    #: When the first attempt that may have posted it started: the lookup starts there.
    since: datetime
    #: When the latest such attempt started: the lookup waits ``reconcile_after`` after it.
    last: datetime

    def entry(self) -> str:
        """The ``progress`` marker."""
        return f"{DOUBT}{self.channel}|{self.since.isoformat()}|{self.last.isoformat()}"


def in_doubt(progress: Sequence[str]) -> Doubt | None:
    """The part in doubt, if the last ``progress`` entry is one."""
    if not progress or not progress[-1].startswith(DOUBT):
        return None
    channel, _, times = progress[-1].removeprefix(DOUBT).partition("|")
    since, _, last = times.partition("|")
    try:
        first = datetime.fromisoformat(since)
        return Doubt(channel, first, datetime.fromisoformat(last) if last else first)
    except ValueError:
        now = utcnow()  # unreadable: look from a while back, and wait the full delay
        return Doubt(channel, now - timedelta(days=1), now)


def post_key(delivery: Delivery, channel: str, part: int) -> str:
    """The idempotency key of one post of a delivery (also in the Slack message metadata)."""
    return f"fb-delivery:{delivery.id}:{channel}:{part}"


def _partial(delivery: Delivery) -> str:
    """For a delivery that stopped half-way (an X thread at part 2): what is up already, so
    no post is left orphaned without staff knowing. A retry continues after it."""
    posted = len(posted_entries(delivery.progress))
    doubt = in_doubt(delivery.progress)
    text = ""
    if posted:
        text = ("1 post is" if posted == 1 else f"{posted} posts are") + " already up; "
    if doubt is not None:
        return (
            f"{text}the next one may be up too (its post on {doubt.channel} timed out): a retry "
            "looks for it first and posts it only if it is not there. "
        )
    return f"{text}a retry continues after it. " if text else ""


class _ClaimLost(FoundationBotError):
    """The claim's lease ran out and the row was taken over: stop posting, touch nothing."""


class _PartInDoubt(FoundationBotError):
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
        channel = doubt.channel
        self.what = (
            f"the post on {channel}" if parts == 1 else f"part {part + 1}/{parts} on {channel}"
        )


def backoff(attempt: int, base: float, cap: float, rng: random.Random) -> float:
    """Full-jitter exponential backoff: uniform(0, min(cap, base * 2**attempt)) seconds."""
    return rng.uniform(0, min(cap, base * 2 ** min(attempt, 30)))


class DeliveryEngine:
    """Posts announcements through the adapters and keeps the delivery rows truthful."""

    def __init__(
        self,
        *,
        store: AnnouncementStore,
        adapters: Mapping[str, Adapter],
        channels: Mapping[str, Sequence[str]],
        settings: AnnouncementsSection,
        engagement: EngagementLog,
        notify: Notify,
        owner: str = "bot",
        rng: random.Random | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self._metrics = metrics
        self._store = store
        self._adapters = adapters
        self._channels = channels
        self._settings = settings
        self._engagement = engagement
        self._notify = notify
        self._owner = owner
        self._rng = rng or random.Random()
        self._tasks: set[asyncio.Task[None]] = set()
        #: Deliveries being posted -> their claim, renewed together by ``_keep_claims``.
        self._held: dict[int, str] = {}
        self._keeper: asyncio.Task[None] | None = None
        #: Set by :meth:`drain`: no new claims (a retry timer firing during shutdown).
        self._draining = False
        #: Per platform: how many posts this process may have claimed and in flight at once.
        self._posting: dict[str, asyncio.Semaphore] = {}
        #: Set by the scheduler: arms a timer for a retry at the given time.
        self.on_retry: RetryHook | None = None
        #: Called when published news changes (a delivery sent, a retraction): re-index.
        self.on_news_changed: Callable[[], None] | None = None

    def platforms(self) -> list[str]:
        """Platforms announcements can go to right now."""
        return [p for p in self._adapters if self._channels.get(p)]

    def preview(self, announcement: Announcement, platform: str) -> Rendered:
        """Exactly what ``platform`` will get (raises RenderError if it cannot be sent)."""
        return render(
            platform,
            announcement.text,
            override=announcement.overrides.get(platform),
            max_x_posts=self._settings.max_x_posts,
            max_discord_messages=self._settings.max_discord_messages,
        )

    async def fire(self, announcement_id: int, occurrence: str = "") -> None:
        """Deliver an announcement (one occurrence of a recurring one) to all its targets."""
        await self.fire_many([(announcement_id, occurrence)])

    async def fire_many(self, due: Sequence[tuple[int, str]]) -> None:
        """Deliver several announcements that fell due together.

        One read for the whole batch, then each platform's rows are claimed and posted in
        parallel (up to ``max_parallel_posts`` per platform): a fan-out takes about as long
        as the slowest platform, not the sum.
        """
        occurrences = dict(due)
        for announcement_id, occurrence in due:
            if occurrence:
                pending = await self._store.get(announcement_id)
                if pending is not None and pending.status == "scheduled":
                    await self._store.ensure_occurrence(pending, occurrence)
        announcements, held = await self._store.get_many_for_delivery(list(occurrences))
        if held:
            log.info("announcements held by embargo ids=%s", sorted(occurrences))
            return
        now = utcnow()
        work = [
            (a, d)
            for a in announcements
            if a.status == "scheduled"
            for d in a.deliveries
            if d.occurrence == occurrences[a.id]
            and d.state == "pending"
            and (d.next_attempt_at is None or d.next_attempt_at <= now)
        ]
        by_platform: dict[str, list[tuple[Announcement, Delivery]]] = {}
        for announcement, delivery in work:
            by_platform.setdefault(delivery.platform, []).append((announcement, delivery))
        await asyncio.gather(*(self._fan_out(p, items) for p, items in by_platform.items()))

    def _slots(self, platform: str) -> asyncio.Semaphore:
        slots = self._posting.get(platform)
        if slots is None:
            slots = self._posting[platform] = asyncio.Semaphore(self._settings.max_parallel_posts)
        return slots

    async def _fan_out(self, platform: str, items: list[tuple[Announcement, Delivery]]) -> None:
        """Claim and post one platform's rows, at most ``max_parallel_posts`` at a time.

        A row is claimed only when a slot is free to post it, and as many rows as there are
        free slots are claimed in one UPDATE. So a process that falls behind (slow platform,
        busy CPU) leaves the rest ``pending`` for any instance to take, instead of holding
        hundreds of claims that would all turn ``unknown`` if it died.
        """
        slots = self._slots(platform)
        tasks: list[asyncio.Task[None]] = []
        queue = list(items)
        while queue:
            await slots.acquire()
            taken = 1
            while taken < len(queue) and not slots.locked():
                await slots.acquire()
                taken += 1
            chunk, queue = queue[:taken], queue[taken:]
            try:
                claimed = await self._claim_rows([d.id for _, d in chunk], due_only=True)
            except BaseException:
                # Nothing claimed (the database is away, or shutdown): give the slots back,
                # or this platform would stall for good; the rows stay pending for a sweep.
                for _ in chunk:
                    slots.release()
                raise
            for announcement, delivery in chunk:
                fresh = claimed.get(delivery.id)
                if fresh is None:
                    slots.release()
                    continue
                # The row as claimed: waiting for a slot, another instance may have posted a
                # part or left one in doubt since this batch was read.
                tasks.append(asyncio.create_task(self._post_in_slot(slots, announcement, fresh)))
        await asyncio.gather(*tasks)

    async def _post_in_slot(
        self, slots: asyncio.Semaphore, announcement: Announcement, delivery: Delivery
    ) -> None:
        try:
            await self._shielded(announcement, delivery)
        finally:
            slots.release()

    async def deliver(self, delivery_id: int) -> None:
        """Deliver one row (retries, ``/announce retry``) if it is still pending."""
        delivery = await self._store.delivery(delivery_id)
        if delivery is None:
            return
        slots = self._slots(delivery.platform)
        await slots.acquire()
        try:
            claimed = await self._claim_rows([delivery_id])
            fresh = claimed.get(delivery_id)
            if fresh is None:
                return
            announcement = await self._store.require(fresh.announcement_id)
            await self._shielded(announcement, fresh)
        finally:
            slots.release()

    async def _claim_rows(self, ids: list[int], *, due_only: bool = False) -> dict[int, Delivery]:
        """Claim these rows for this process; none once it is shutting down (they stay
        pending for another instance or the next start)."""
        if self._draining:
            return {}
        return await self._store.claim_many(ids, self._owner, self._lease(), due_only=due_only)

    def _lease(self) -> timedelta:
        return timedelta(seconds=self._settings.claim_lease_seconds)

    def _claim(self, delivery: Delivery) -> str:
        """The claim a delivery is posted under (``claimed_by`` as claimed)."""
        return delivery.claimed_by or self._owner

    async def _shielded(self, announcement: Announcement, delivery: Delivery) -> None:
        """Run a claimed delivery in its own task so a shutdown cannot cut a post in half."""
        task = asyncio.create_task(
            self._run(announcement, delivery), name=f"delivery-{delivery.id}"
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        claim = self._held[delivery.id] = self._claim(delivery)
        task.add_done_callback(lambda _: self._release(delivery.id, claim))
        if self._keeper is None or self._keeper.done():
            self._keeper = asyncio.create_task(self._keep_claims(), name="delivery-claims")
        await asyncio.shield(task)

    def _release(self, delivery_id: int, claim: str) -> None:
        if self._held.get(delivery_id) == claim:
            del self._held[delivery_id]

    async def _keep_claims(self) -> None:
        """Renew the leases of every claim whose post is in progress, in one statement per
        tick, for as long as there are any.

        One post can outlast the lease (an SDK sleeping out a 429, a slow platform, a busy
        CPU); another instance would then take the row for abandoned and mark it unknown.
        One batched renewal per process, rather than one per post, keeps the renewals from
        queueing for database connections behind the posts' own writes.
        """
        every = max(0.05, self._settings.claim_lease_seconds / 3)
        while self._held:
            await asyncio.sleep(every)
            held = dict(self._held)
            if not held:
                return
            try:
                kept = await self._store.renew_claims(held, utcnow() + self._lease())
            except StoreError as exc:  # the database is away; the next tick tries again
                log.warning("claims not renewed (%d): %s", len(held), exc)
                continue
            for ident in held.keys() - kept:
                if self._held.get(ident) == held[ident]:
                    # Taken over (its lease ran out while this process could not renew it):
                    # the post under way finishes, and its writes find the claim gone.
                    log.warning("claim lost id=%s claim=%s", ident, held[ident])
                    del self._held[ident]

    async def drain(self, grace: float) -> int:
        """Stop claiming, wait for in-flight deliveries; returns how many did not finish in time.

        Their claims are no longer renewed after that: the process is going away, and their
        leases running out is what lets another instance (or the next start) take them up.
        """
        self._draining = True
        pending: set[asyncio.Task[None]] = set()
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=grace)
        if self._keeper is not None:
            self._keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._keeper
            self._keeper = None
        return len(pending)

    async def _run(self, announcement: Announcement, delivery: Delivery) -> None:
        platform = delivery.platform
        adapter = self._adapters.get(platform)
        channels = list(self._channels.get(platform, ()))
        known = len(posted_entries(delivery.progress))
        try:
            if adapter is None or not channels:
                raise PermanentPlatformError(
                    platform, f"no {platform} adapter with announcement channels is running"
                )
            rendered = self.preview(announcement, platform)
            first_url = await self._post(delivery, adapter, channels, rendered)
        except RenderError as exc:
            await self._fail(announcement, delivery, str(exc))
        except _ClaimLost:
            await self._claim_lost(announcement, delivery, known)
        except _PartInDoubt as lost:
            await self._in_doubt(announcement, delivery, lost, known)
        except PlatformError as exc:
            if self._metrics is not None:
                self._metrics.platform_error(platform, isinstance(exc, TransientPlatformError))
            if exc.ambiguous:
                await self._unknown(announcement, delivery, exc.reason, known=known)
            elif isinstance(exc, TransientPlatformError):
                await self._transient(announcement, delivery, exc, known)
            else:
                await self._fail(announcement, delivery, exc.reason, known)
        except Exception as exc:
            log.exception("delivery crashed id=%s platform=%s", delivery.id, platform)
            await self._unknown(
                announcement, delivery, f"internal error: {type(exc).__name__}", known=known
            )
        else:
            await self._sent(announcement, delivery, channels, first_url, known)

    async def _post(
        self, delivery: Delivery, adapter: Adapter, channels: list[str], rendered: Rendered
    ) -> str | None:
        """Post every (channel, part) not yet in ``progress``; returns the first post's URL.

        Progress is written after every post but the last (the last is written together with
        ``sent``): a crash in between leaves ``sending`` rows that become ``unknown``. A part
        in doubt (its last post timed out) is looked up first and posted only if it is not
        there; an ambiguous post raises :class:`_PartInDoubt` where the adapter can look up.
        """
        posts = [(channel, i) for channel in channels for i in range(len(rendered.parts))]
        progress = posted_entries(delivery.progress)
        doubt = in_doubt(delivery.progress)
        reconciler = adapter if isinstance(adapter, Reconciler) else None
        if doubt is not None and reconciler is None:
            # Only adapters that can look posts up leave parts in doubt; this one was swapped.
            log.warning("part in doubt but the adapter cannot look it up id=%s", delivery.id)
            doubt = None
        first_url = delivery.url
        for index in range(len(progress), len(posts)):
            channel, part = posts[index]
            threaded = rendered.platform == "x" and part > 0
            message = OutgoingMessage(
                where=Conversation(rendered.platform, channel),
                text=rendered.parts[part],
                reply_to=split_entry(progress[index - 1])[1] if threaded else None,
                blocks=rendered.blocks if part == 0 else (),
                idempotency_key=post_key(delivery, channel, part),
            )
            # Only the first part of this attempt can be in doubt: the one that timed out.
            earlier, doubt = doubt, None
            parts = len(rendered.parts)
            sent: SentMessage | None = None
            if earlier is not None and reconciler is not None:
                sent = await self._reconcile(reconciler, delivery, message, part, parts, earlier)
            if sent is None:
                attempted = utcnow()
                try:
                    sent = await adapter.send(message)
                except PlatformError as exc:
                    # X refuses a text it already has: after a lost answer, that is the lost
                    # post showing up, so look again instead of failing for good.
                    duplicate = earlier is not None and isinstance(exc, DuplicatePostError)
                    if reconciler is None or not (exc.ambiguous or duplicate):
                        raise
                    since = earlier.since if earlier is not None else attempted
                    raise _PartInDoubt(
                        Doubt(channel, since, attempted),
                        part,
                        parts,
                        exc.reason,
                        exc.retry_after,
                    ) from exc
            progress.append(progress_entry(channel, sent.message_id))
            delivery.progress = list(progress)
            if index == 0:
                first_url = sent.url
                delivery.url = sent.url
                delivery.external_id = sent.message_id
            if index < len(posts) - 1:
                # Renewing the claim with each post keeps a long thread from looking abandoned.
                # A claim lost meanwhile stops the thread here: the row is a person's now.
                held = await self._store.set_delivery(
                    delivery.id,
                    owner=self._claim(delivery),
                    progress=list(progress),
                    external_id=delivery.external_id,
                    url=delivery.url,
                    claimed_until=utcnow() + self._lease(),
                )
                if not held:
                    raise _ClaimLost(f"claim of delivery {delivery.id} lost")
        return first_url

    async def _reconcile(
        self,
        reconciler: Reconciler,
        delivery: Delivery,
        message: OutgoingMessage,
        part: int,
        parts: int,
        doubt: Doubt,
    ) -> SentMessage | None:
        """Ask the platform whether the part in doubt went out (after the settling delay)."""
        channel = message.where.channel_id
        key = message.idempotency_key or post_key(delivery, channel, part)
        ready = doubt.last + timedelta(seconds=self._settings.reconcile_after_seconds)
        wait = (ready - utcnow()).total_seconds()
        if wait > 0:
            # A retry ordered early (/announce retry): give the lost post time to show up,
            # holding the claim for that long too so the row does not look abandoned.
            if not await self._store.set_delivery(
                delivery.id, owner=self._claim(delivery), claimed_until=ready + self._lease()
            ):
                raise _ClaimLost(f"claim of delivery {delivery.id} lost")
            await asyncio.sleep(wait)
        try:
            found = await reconciler.find_posted(message, key, doubt.since - CLOCK_SKEW)
        except PlatformError as exc:
            raise _PartInDoubt(
                Doubt(channel, doubt.since, doubt.last),
                part,
                parts,
                f"cannot check whether it went out: {exc.reason}",
                exc.retry_after,
            ) from exc
        log.info(
            "delivery part in doubt looked up id=%s platform=%s channel=%s part=%d found=%s",
            delivery.id,
            delivery.platform,
            channel,
            part + 1,
            found.message_id if found is not None else None,
        )
        return found

    async def _sent(
        self,
        announcement: Announcement,
        delivery: Delivery,
        channels: list[str],
        url: str | None,
        known: int,
    ) -> None:
        first = split_entry(delivery.progress[0])[1] if delivery.progress else None
        event = Event(
            platform=delivery.platform,
            kind="announcement_posted",
            channel=channels[0],
            text=announcement.text,
            announcement_id=announcement.id,
            message_id=first,
            url=url,
            detail={
                "posts": len(delivery.progress),
                "occurrence": delivery.occurrence,
                "attempts": delivery.attempts,
            },
        )
        outcome = await self._store.record_sent(
            delivery.id,
            owner=self._claim(delivery),
            progress=list(delivery.progress),
            external_id=first,
            url=url,
            event=event.row(),
        )
        if outcome == "lost":
            # No discussion opener either: whoever settles the row sends it with the record.
            await self._claim_lost(announcement, delivery, known)
            return
        if outcome == "late":
            # Staff were told it may or may not be up when the claim ran out: settle that.
            at = f" at {url}" if url else ""
            await self._notify(
                announcement,
                f"Update on announcement #{announcement.id} on {delivery.platform}: it is up "
                f"after all (message {first}{at}); instance {claim_owner(self._claim(delivery))} "
                "finished the post after its claim had run out. Recorded as sent: nothing to do.",
            )
        if self._metrics is not None:
            due = (
                datetime.fromisoformat(delivery.occurrence)
                if delivery.occurrence
                else announcement.due_at
            )
            self._metrics.sent_late(delivery.platform, due, utcnow())
        if self.on_news_changed is not None:
            self.on_news_changed()
        if delivery.platform in self._settings.discussion and first:
            await self._open_discussion(announcement, delivery.platform, channels[0], first)

    async def _open_discussion(
        self, announcement: Announcement, platform: str, channel: str, message_id: str
    ) -> None:
        adapter = self._adapters.get(platform)
        if adapter is None:
            return
        try:
            sent = await adapter.send(
                OutgoingMessage(
                    where=Conversation(platform, channel),
                    text=DISCUSSION_OPENER,
                    reply_to=message_id,
                )
            )
        except PlatformError as exc:
            log.warning("discussion thread not opened platform=%s: %s", platform, exc.reason)
            return
        await self._engagement.remember_thread(
            platform, channel, sent.thread_id or message_id, announcement.id
        )

    async def _transient(
        self,
        announcement: Announcement,
        delivery: Delivery,
        exc: TransientPlatformError,
        known: int,
    ) -> None:
        attempts = delivery.attempts
        if attempts >= self._settings.max_attempts:
            await self._fail(
                announcement, delivery, f"gave up after {attempts} attempts: {exc.reason}", known
            )
            return
        delay = max(
            exc.retry_after or 0.0,
            backoff(
                attempts,
                self._settings.backoff_base_seconds,
                self._settings.backoff_max_seconds,
                self._rng,
            ),
        )
        when = utcnow() + timedelta(seconds=delay)
        outcome = await self._settle(
            announcement,
            delivery,
            known,
            f"not posted ({exc.reason}); retrying",
            state="pending",
            next_attempt_at=when,
            error=exc.reason,
        )
        if outcome == "lost":
            return
        if self._metrics is not None:
            self._metrics.delivery(delivery.platform, "retrying")
        log.warning(
            "delivery will retry id=%s platform=%s attempt=%d in=%.1fs reason=%s",
            delivery.id,
            delivery.platform,
            attempts,
            delay,
            exc.reason,
        )
        if self.on_retry is not None:
            self.on_retry(delivery.id, when)

    async def _in_doubt(
        self, announcement: Announcement, delivery: Delivery, lost: _PartInDoubt, known: int
    ) -> None:
        """Keep the part in doubt and retry (looking it up first), or give up to a person."""
        progress = [*posted_entries(delivery.progress), lost.doubt.entry()]
        delivery.progress = progress
        attempts = delivery.attempts
        if attempts >= self._settings.max_attempts:
            await self._unknown(
                announcement,
                delivery,
                f"{lost.what} timed out and could not be confirmed in {attempts} attempts: "
                f"{lost.reason}",
                progress=progress,
                known=known,
            )
            return
        delay = max(
            lost.retry_after or 0.0,
            backoff(
                attempts,
                self._settings.backoff_base_seconds,
                self._settings.backoff_max_seconds,
                self._rng,
            ),
        )
        when = max(
            utcnow() + timedelta(seconds=delay),
            lost.doubt.last + timedelta(seconds=self._settings.reconcile_after_seconds),
        )
        outcome = await self._settle(
            announcement,
            delivery,
            known,
            f"{lost.what} is looked up, then posted if it is not up",
            state="pending",
            next_attempt_at=when,
            error=f"{lost.reason}; {lost.what} is looked up before it is posted again",
            progress=progress,
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
        if self.on_retry is not None:
            self.on_retry(delivery.id, when)

    async def _fail(
        self, announcement: Announcement, delivery: Delivery, reason: str, known: int = 0
    ) -> None:
        outcome = await self._settle(
            announcement, delivery, known, None, state="failed", error=reason, next_attempt_at=None
        )
        if outcome == "lost":
            return
        if self._metrics is not None:
            self._metrics.delivery(delivery.platform, "failed")
        log.warning(
            "delivery failed id=%s platform=%s reason=%s", delivery.id, delivery.platform, reason
        )
        await self._notify(
            announcement,
            f"Announcement #{announcement.id} failed on {delivery.platform}: {reason}. "
            f"{_partial(delivery)}"
            f"Fix the cause, then /announce retry {announcement.id} --to {delivery.platform}.",
        )

    async def _unknown(
        self,
        announcement: Announcement,
        delivery: Delivery,
        reason: str,
        *,
        progress: list[str] | None = None,
        known: int = 0,
    ) -> None:
        fields: dict[str, object] = {} if progress is None else {"progress": progress}
        outcome = await self._settle(
            announcement,
            delivery,
            known,
            None,
            state="unknown",
            error=reason,
            next_attempt_at=None,
            **fields,
        )
        if outcome != "recorded":
            return  # lost; or late: unknown already, and staff were told when it ran out
        if self._metrics is not None:
            self._metrics.delivery(delivery.platform, "unknown")
        await self._notify(
            announcement,
            f"Announcement #{announcement.id} may or may not have reached {delivery.platform} "
            f"({reason}). {_partial(delivery)}Check the channel, then "
            f"/announce mark-sent {announcement.id} "
            f"--to {delivery.platform} or /announce retry {announcement.id} "
            f"--to {delivery.platform}.",
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
        is reported (:meth:`_claim_lost`). ``late``: the unknown row the claim's lapse left was
        settled after all; staff hear ``late_news`` if given.
        """
        outcome = await self._store.settle(
            delivery.id,
            announcement.id,
            owner=self._claim(delivery),
            claimed_until=None,
            **fields,
        )
        if outcome == "lost":
            await self._claim_lost(announcement, delivery, known)
        elif outcome == "late" and late_news is not None:
            await self._settled_late(announcement, delivery, late_news)
        return outcome

    async def _settled_late(
        self, announcement: Announcement, delivery: Delivery, what: str
    ) -> None:
        """Staff were told "may or may not be there" when the claim ran out mid-attempt; the
        attempt has ended since, nobody had acted on the row, and it was settled: say how."""
        await self._notify(
            announcement,
            f"Update on announcement #{announcement.id} on {delivery.platform}: {what}. "
            f"Instance {claim_owner(self._claim(delivery))} finished the attempt after its "
            "claim had run out: nothing to do.",
        )

    async def _claim_lost(self, announcement: Announcement, delivery: Delivery, known: int) -> None:
        """The claim's lease ran out mid-attempt and the row was taken over (another instance
        marked it ``unknown`` and told staff, or a person already acted): nothing of the row
        is overwritten. Posts this attempt made all the same (``known``: how many were up
        when it claimed the row) are added to the row and reported, so staff know they are
        up and a retry does not post them again.
        """
        platform = delivery.platform
        posted = posted_entries(delivery.progress)
        if len(posted) <= known:
            return  # nothing went out under the lost claim: the row says all there is
        first = split_entry(posted[0])[1]
        count = "1 post" if len(posted) == 1 else f"{len(posted)} posts"
        at = f" at {delivery.url}" if delivery.url else ""
        note = (
            f"instance {claim_owner(self._claim(delivery))} posted it after its claim had run "
            f"out ({count} up; first: message {first}{at})"
        )
        row = await self._store.note_lost_claim(
            delivery.id, progress=posted, external_id=first, url=delivery.url, note=note
        )
        if row is None or (row.state == "sent" and row.external_id == first):
            return  # already recorded as this very post
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
