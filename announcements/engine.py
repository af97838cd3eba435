"""Delivering announcements: fan-out to every target at once, exactly once per platform.

Per delivery row: claim it (``announcements/claims.py``), render, then for each part: mark it
in ``progress`` as about to be posted (``announcements/progress.py``), call the platform, and
record the id it answers with. The attempt ends in one of the outcomes of
``announcements/outcomes.py`` (sent, retry, in doubt, failed, unknown).

What a crash costs: a row whose process died is found ``sending`` once its lease runs out
(:meth:`DeliveryEngine.recover`, at start and on an interval). Without a part marked, no call
was under way: it goes back to ``pending`` and whoever is alive posts it. With one, the call
may have happened: the part is looked up on the platform (:class:`~adapters.base.Reconciler`:
Slack by its metadata key, X on the account's timeline, Discord in the channel's recent
messages) and posted only if it is not there. Only a platform that cannot be asked leaves the
row ``unknown`` for a person — whose ``/announce retry`` also looks first (:meth:`retry`).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta

from adapters.base import Adapter, PlatformRules, Reconciler
from announcements.claims import ClaimLost, DeliveryClaims
from announcements.outcomes import Notify, Outcomes, PartInDoubt
from announcements.progress import (
    Doubt,
    in_doubt,
    posted_entries,
    posted_entry,
    split_entry,
    with_doubt,
)
from announcements.render import Rendered, RenderError, render_for
from announcements.retries import RetryTimers
from announcements.store import AnnouncementStore
from bot.config import AnnouncementsSection
from bot.errors import (
    DuplicatePostError,
    PermanentPlatformError,
    PlatformError,
    StoreError,
    TransientPlatformError,
)
from bot.events import Conversation, OutgoingMessage, SentMessage, utcnow
from bot.store.engagement import EngagementLog
from bot.store.models import Announcement, Delivery
from bot.store.states import NEEDS_PERSON, AnnouncementStatus, DeliveryState
from bot.telemetry import Metrics

log = logging.getLogger(__name__)

DISCUSSION_OPENER = "Questions about this announcement? Reply in this thread and I'll answer."

#: Looked-up posts may be stamped by a platform clock a little behind ours.
CLOCK_SKEW = timedelta(minutes=2)

#: Announcements due together, each with the occurrence due ("" for a one-off).
Batch = Sequence[tuple[Announcement, str]]


def post_key(delivery: Delivery, channel: str, part: int) -> str:
    """The idempotency key of one post of a delivery (Slack keeps it in the message metadata;
    Discord derives its nonce from it)."""
    return f"fb-delivery:{delivery.id}:{channel}:{part}"


def _due(announcement: Announcement, delivery: Delivery) -> datetime:
    """When this row fell due: nothing of it can have been posted before."""
    if delivery.occurrence:
        return datetime.fromisoformat(delivery.occurrence)
    return announcement.due_at or delivery.updated_at


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
        retries: RetryTimers,
        on_news_changed: Callable[[], None] = lambda: None,
        owner: str = "bot",
        rng: random.Random | None = None,
        metrics: Metrics | None = None,
        platforms: Mapping[str, PlatformRules] | None = None,
        max_parts: Mapping[str, int] | None = None,
    ) -> None:
        """``platforms``: every platform's rules (the adapter registry's table: rendering,
        whether a long post is a thread); ``max_parts``: the most posts or messages one
        announcement may take per platform (default 25)."""
        if platforms is None:
            from adapters.registry import SUPPORTED

            platforms = SUPPORTED
        self._platforms = platforms
        self._max_parts = dict(max_parts or {})
        self._store = store
        self._adapters = adapters
        self._channels = channels
        self._settings = settings
        self._engagement = engagement
        self._notify = notify
        self._retries = retries
        #: Published news changed (a delivery sent, a retraction): the answers re-index.
        self.news_changed = on_news_changed
        self._claims = DeliveryClaims(store=store, owner=owner, settings=settings)
        self._outcomes = Outcomes(
            store=store,
            claims=self._claims,
            settings=settings,
            notify=notify,
            retry_at=self.retry_at,
            rng=rng or random.Random(),
            metrics=metrics,
            looks_up=lambda platform: isinstance(self._adapters.get(platform), Reconciler),
        )
        self._metrics = metrics
        self._tasks: set[asyncio.Task[None]] = set()
        #: Per platform: how many posts this process may have claimed and in flight at once.
        self._posting: dict[str, asyncio.Semaphore] = {}

    def platforms(self) -> list[str]:
        """Platforms announcements can go to right now."""
        return [p for p in self._adapters if self._channels.get(p)]

    def preview(self, announcement: Announcement, platform: str) -> Rendered:
        """Exactly what ``platform`` will get (raises RenderError if it cannot be sent)."""
        return render_for(
            self._platforms.get(platform),
            platform,
            announcement.text,
            override=announcement.overrides.get(platform),
            max_parts=self._max_parts.get(platform, 25),
        )

    def _threads(self, platform: str) -> bool:
        """Whether a long announcement on ``platform`` is a thread of replies."""
        rules = self._platforms.get(platform)
        return rules is not None and rules.limits.threads_long_posts

    # --- retries ---------------------------------------------------------------------------

    def retry_at(self, delivery_id: int, when: datetime) -> None:
        """Arm a retry of one delivery at ``when``."""
        self._retries.arm(delivery_id, when, self.deliver)

    def retry_idle(self, delivery_id: int) -> bool:
        """No retry of this delivery is armed or running in this process."""
        return self._retries.idle(delivery_id)

    # --- firing ----------------------------------------------------------------------------

    async def fire(self, announcement_id: int, occurrence: str = "") -> None:
        """Deliver an announcement (one occurrence of a recurring one) to all its targets."""
        await self.fire_ids([(announcement_id, occurrence)])

    async def fire_ids(self, due: Sequence[tuple[int, str]]) -> None:
        """Like :meth:`fire_many` for announcements not read yet (one read for all)."""
        occurrences = dict(due)
        announcements, held = await self._store.get_many_for_delivery(list(occurrences))
        if held:
            log.info("announcements held by embargo ids=%s", sorted(occurrences))
            return
        await self.fire_many([(a, occurrences[a.id]) for a in announcements])

    async def fire_many(self, batch: Batch) -> None:
        """Deliver announcements that fell due together, as read by the caller (with their
        deliveries): the batch is not read again.

        Each platform's rows are claimed and posted in parallel (up to
        ``max_parallel_posts`` per platform): a fan-out takes about as long as the slowest
        platform, not the sum. A recurring occurrence gets its rows first.
        """
        now = utcnow()
        by_platform: dict[str, list[tuple[Announcement, Delivery]]] = {}
        for announcement, occurrence in batch:
            if announcement.status != AnnouncementStatus.SCHEDULED:
                continue
            rows: Sequence[Delivery] = announcement.deliveries
            if occurrence:
                rows = await self._store.ensure_occurrence(announcement, occurrence)
            for delivery in rows:
                if (
                    delivery.occurrence == occurrence
                    and delivery.state == DeliveryState.PENDING
                    and (delivery.next_attempt_at is None or delivery.next_attempt_at <= now)
                ):
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
        hundreds of claims that a crash would leave to be recovered.
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
                claimed = await self._claims.claim([d.id for _, d in chunk], due_only=True)
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
            fresh = (await self._claims.claim([delivery_id])).get(delivery_id)
            if fresh is None:
                return
            announcement = await self._store.require(fresh.announcement_id)
            await self._shielded(announcement, fresh)
        finally:
            slots.release()

    async def retry(self, announcement: Announcement, deliveries: Sequence[Delivery]) -> None:
        """``/announce retry``: post these failed/unknown rows again, looking first.

        A row left ``unknown`` may be up even when nothing marks a part in doubt (it was left
        by an earlier version, or a crash inside the bot): it gets a marker from its due time,
        so the retry looks the post up before posting it — a person's retry never posts blind
        where the platform can be asked. ``mark-sent`` stays the person's override.
        """
        for delivery in deliveries:
            progress = list(delivery.progress)
            if delivery.state == DeliveryState.UNKNOWN and in_doubt(progress) is None:
                since = _due(announcement, delivery)
                progress = with_doubt(progress, Doubt("", since, delivery.updated_at))
            await self._store.set_delivery_if(
                delivery.id,
                NEEDS_PERSON,
                state=DeliveryState.PENDING,
                attempts=0,
                error=None,
                next_attempt_at=None,
                progress=progress,
            )
        await asyncio.gather(*(self.deliver(d.id) for d in deliveries))

    # --- after a crash ---------------------------------------------------------------------

    async def recover(self, *, include_live_claims: bool = False) -> int:
        """Take over rows whose claim ran out mid-attempt; returns how many were taken.

        A lease runs out when its process died, but also when it stalled or lost the
        database for longer than the lease; such a process finds its claim gone when it
        writes again and stops (its post, if one went out, is found by the lookup).

        Args:
            include_live_claims: also rows whose claim has not expired yet — right for a
                single-process deployment (SQLite) at start, where no other process can own one.
        """
        taken = 0
        now = utcnow()
        settle = timedelta(seconds=self._settings.reconcile_after_seconds)
        for row in await self._store.interrupted(include_live_claims=include_live_claims):
            doubt = in_doubt(row.progress)
            if doubt is None:
                # No call was under way: nothing can be up, so it simply goes out again.
                when, error = now, None
            elif isinstance(self._adapters.get(row.platform), Reconciler):
                # A call may have happened: the next attempt looks it up first, once a post
                # still on its way has had time to show.
                when = max(now, doubt.last + settle)
                error = "interrupted mid-post; it is looked up on the platform before any repost"
            else:
                if await self._give_up_interrupted(row):
                    taken += 1
                continue
            if await self._store.take_over(
                row.id,
                row.claimed_by,
                state=DeliveryState.PENDING,
                claimed_until=None,
                next_attempt_at=when,
                error=error,
            ):
                taken += 1
                log.info(
                    "delivery taken over id=%s platform=%s claim=%s in_doubt=%s",
                    row.id,
                    row.platform,
                    row.claimed_by,
                    doubt is not None,
                )
                self.retry_at(row.id, when)
        return taken

    async def _give_up_interrupted(self, row: Delivery) -> bool:
        """A row whose call may have happened on a platform that cannot be asked: a person's."""
        reason = (
            "interrupted while posting (its bot instance stopped, stalled or lost the "
            "database mid-send)"
        )
        if not await self._store.take_over(
            row.id, row.claimed_by, state=DeliveryState.UNKNOWN, claimed_until=None, error=reason
        ):
            return False
        announcement = await self._store.get(row.announcement_id)
        if announcement is not None:
            if self._metrics is not None:
                self._metrics.delivery(row.platform, DeliveryState.UNKNOWN)
            ident, platform = announcement.id, row.platform
            await self._notify(
                announcement,
                f"Announcement #{ident} was being posted to {platform} when the bot stopped "
                f"(or lost its database), and {platform} cannot be asked whether it went out: "
                f"it may or may not be there. Check, then /announce mark-sent {ident} --to "
                f"{platform} or /announce retry {ident} --to {platform}.",
            )
        return True

    # --- one attempt -----------------------------------------------------------------------

    async def _shielded(self, announcement: Announcement, delivery: Delivery) -> None:
        """Run a claimed delivery in its own task so a shutdown cannot cut a post in half."""
        task = asyncio.create_task(
            self._run(announcement, delivery), name=f"delivery-{delivery.id}"
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        self._claims.hold(delivery, task)
        await asyncio.shield(task)

    async def drain(self, grace: float) -> int:
        """Stop claiming, wait for in-flight deliveries; returns how many did not finish in time.

        Their claims are no longer renewed after that: the process is going away, and their
        leases running out is what lets another instance (or the next start) take them up.
        """
        self._claims.stop_claiming()
        pending: set[asyncio.Task[None]] = set()
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=grace)
        await self._claims.stop_renewing()
        return len(pending)

    async def _run(self, announcement: Announcement, delivery: Delivery) -> None:
        platform = delivery.platform
        adapter = self._adapters.get(platform)
        channels = list(self._channels.get(platform, ()))
        known = len(posted_entries(delivery.progress))
        outcomes = self._outcomes
        try:
            if adapter is None or not channels:
                raise PermanentPlatformError(
                    platform, f"no {platform} adapter with announcement channels is running"
                )
            rendered = self.preview(announcement, platform)
            first_url = await self._post(announcement, delivery, adapter, channels, rendered)
        except RenderError as exc:
            await outcomes.failed(announcement, delivery, str(exc))
        except ClaimLost:
            await outcomes.claim_lost(announcement, delivery, known)
        except PartInDoubt as lost:
            await outcomes.in_doubt(announcement, delivery, lost, known)
        except PlatformError as exc:
            if self._metrics is not None:
                self._metrics.platform_error(platform, isinstance(exc, TransientPlatformError))
            if exc.ambiguous:  # and the adapter cannot look its posts up
                await outcomes.unknown(announcement, delivery, exc.reason, known)
            elif isinstance(exc, TransientPlatformError):
                await outcomes.retry(announcement, delivery, exc, known)
            else:
                await outcomes.failed(announcement, delivery, exc.reason, known)
        except StoreError as exc:
            # The database stayed away (for longer than a write's retries) before the next
            # platform call was marked or made: nothing more was posted. Left as a crash
            # leaves it: once the lease runs out the row is taken over, looked up first if a
            # call was under way. Writing an outcome now would fail the same way.
            log.warning(
                "delivery stopped, database unreachable id=%s platform=%s: %s",
                delivery.id,
                platform,
                exc,
            )
        except Exception as exc:
            log.exception("delivery crashed id=%s platform=%s", delivery.id, platform)
            reason = f"internal error: {type(exc).__name__}"
            await outcomes.unknown(announcement, delivery, reason, known)
        else:
            if await outcomes.sent(announcement, delivery, channels[0], first_url, known):
                self.news_changed()
                first = posted_entries(delivery.progress)
                if platform in self._settings.discussion and first:
                    message_id = split_entry(first[0])[1]
                    await self._open_discussion(announcement, platform, channels[0], message_id)

    async def _post(
        self,
        announcement: Announcement,
        delivery: Delivery,
        adapter: Adapter,
        channels: list[str],
        rendered: Rendered,
    ) -> str | None:
        """Post every (channel, part) not yet in ``progress``; returns the first post's URL.

        Before each call the part is marked in ``progress`` (with the posts so far), under
        the claim; the last post is recorded together with ``sent``. A part in doubt is
        looked up first and posted only if it is not there; an ambiguous post (or a repeat X
        refuses as a duplicate) raises :class:`PartInDoubt` where the adapter can look up.
        """
        posts = [(channel, i) for channel in channels for i in range(len(rendered.parts))]
        progress = posted_entries(delivery.progress)
        doubt = in_doubt(delivery.progress)
        reconciler = adapter if isinstance(adapter, Reconciler) else None
        if doubt is not None and reconciler is None:
            # Only a person's retry gets here (recovery leaves such rows unknown): their call.
            log.warning("part in doubt but the adapter cannot look it up id=%s", delivery.id)
            doubt = None
        parts = len(rendered.parts)
        first_url = delivery.url
        for index in range(len(progress), len(posts)):
            channel, part = posts[index]
            threaded = part > 0 and self._threads(rendered.platform)
            message = OutgoingMessage(
                where=Conversation(rendered.platform, channel),
                text=rendered.parts[part],
                reply_to=split_entry(progress[index - 1])[1] if threaded else None,
                blocks=rendered.blocks if part == 0 else (),
                idempotency_key=post_key(delivery, channel, part),
            )
            # Only the first part of this attempt can be in doubt: the one a call was under
            # way for when the last attempt ended.
            earlier, doubt = doubt, None
            sent: SentMessage | None = None
            if earlier is not None and reconciler is not None:
                sent = await self._look_up(reconciler, delivery, message, part, parts, earlier)
            if sent is None:
                attempted = utcnow()
                since = earlier.since if earlier is not None else attempted
                marker = Doubt(channel, since, attempted)
                await self._mark(delivery, [*progress, marker.entry()])
                try:
                    sent = await adapter.send(message)
                except PlatformError as exc:
                    # X refuses a text it already has: after an attempt that may have posted
                    # it, that is the lost post showing up, so it is looked up again (after
                    # the settling delay) rather than failed. Without one, the text is another
                    # announcement's post, and the refusal stands.
                    duplicate = earlier is not None and isinstance(exc, DuplicatePostError)
                    if reconciler is None or not (exc.ambiguous or duplicate):
                        raise
                    # The settling delay counts from when the client gave up, not from when
                    # it called: a slow platform can still be posting it after a timeout.
                    gave_up = marker.again(utcnow())
                    raise PartInDoubt(gave_up, part, parts, exc.reason, exc.retry_after) from exc
            progress.append(posted_entry(channel, sent.message_id))
            delivery.progress = list(progress)
            if index == 0:
                first_url = sent.url
                delivery.url = sent.url
                delivery.external_id = sent.message_id
        return first_url

    async def _mark(self, delivery: Delivery, progress: list[str]) -> None:
        """Write the posts so far and the part about to be posted, before the call: a crash
        from here on leaves a row that says a call may have happened. Renews the claim too,
        so a long thread does not look abandoned; a claim lost meanwhile stops it here."""
        delivery.progress = progress
        held = await self._store.set_delivery(
            delivery.id,
            owner=self._claims.of(delivery),
            progress=progress,
            external_id=delivery.external_id,
            url=delivery.url,
            claimed_until=utcnow() + self._claims.lease(),
        )
        if not held:
            raise ClaimLost(f"claim of delivery {delivery.id} lost")

    async def _look_up(
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
                delivery.id,
                owner=self._claims.of(delivery),
                claimed_until=ready + self._claims.lease(),
            ):
                raise ClaimLost(f"claim of delivery {delivery.id} lost")
            await asyncio.sleep(wait)
        try:
            found = await reconciler.find_posted(message, key, doubt.since - CLOCK_SKEW)
        except PlatformError as exc:
            raise PartInDoubt(
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
