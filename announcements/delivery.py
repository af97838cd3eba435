"""Delivering announcements: fan-out to every target at once, exactly once per platform.

Per delivery row: claim (pending -> sending, committed before any platform call), render,
post each part (X thread posts reply to the previous one) and record progress after every
post, so a retry continues where the last attempt stopped and nothing is posted twice.
Transient errors retry with exponential backoff and full jitter (honouring the platform's
Retry-After); permanent errors fail at once; an ambiguous outcome (the request may have gone
through) becomes ``unknown`` for a person to decide. Failures are reported to staff.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime, timedelta

from adapters.base import Adapter
from announcements.render import Rendered, RenderError, render
from announcements.store import AnnouncementStore
from bot.config import AnnouncementsSection
from bot.errors import PermanentPlatformError, PlatformError, TransientPlatformError
from bot.events import Conversation, OutgoingMessage, utcnow
from bot.store.engagement import EngagementLog, Event
from bot.store.models import Announcement, Delivery

log = logging.getLogger(__name__)

DISCUSSION_OPENER = "Questions about this announcement? Reply in this thread and I'll answer."

Notify = Callable[[Announcement, str], Awaitable[None]]
RetryHook = Callable[[int, datetime], None]


def progress_entry(channel: str, message_id: str) -> str:
    """One posted part as kept in ``Delivery.progress``: ``channel|message_id``."""
    return f"{channel}|{message_id}"


def split_entry(entry: str) -> tuple[str, str]:
    """(channel, message_id) of a progress entry."""
    channel, _, message_id = entry.rpartition("|")
    return channel, message_id


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
    ) -> None:
        self._store = store
        self._adapters = adapters
        self._channels = channels
        self._settings = settings
        self._engagement = engagement
        self._notify = notify
        self._owner = owner
        self._rng = rng or random.Random()
        self._tasks: set[asyncio.Task[None]] = set()
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

        One read and one claim for the whole batch, then every post in parallel: a fan-out
        takes about as long as the slowest platform, not the sum, and a hundred announcements
        due in the same second do not queue behind each other's database writes.
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
        claimed = await self._store.claim_many([d.id for _, d in work], self._owner, self._lease())
        for _, delivery in work:
            delivery.attempts += 1  # what the claim just wrote
        await asyncio.gather(*(self._shielded(a, d) for a, d in work if d.id in claimed))

    async def deliver(self, delivery_id: int) -> None:
        """Deliver one row (retries, ``/announce retry``) if it is still pending."""
        delivery = await self._store.delivery(delivery_id)
        if delivery is None:
            return
        if not await self._store.claim_many([delivery_id], self._owner, self._lease()):
            return
        announcement = await self._store.require(delivery.announcement_id)
        delivery.attempts += 1
        await self._shielded(announcement, delivery)

    def _lease(self) -> timedelta:
        return timedelta(seconds=self._settings.claim_lease_seconds)

    async def _shielded(self, announcement: Announcement, delivery: Delivery) -> None:
        """Run a claimed delivery in its own task so a shutdown cannot cut a post in half."""
        task = asyncio.create_task(
            self._run(announcement, delivery), name=f"delivery-{delivery.id}"
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        await asyncio.shield(task)

    async def drain(self, grace: float) -> int:
        """Wait for in-flight deliveries; returns how many did not finish in time."""
        if not self._tasks:
            return 0
        _, pending = await asyncio.wait(set(self._tasks), timeout=grace)
        return len(pending)

    async def _run(self, announcement: Announcement, delivery: Delivery) -> None:
        platform = delivery.platform
        adapter = self._adapters.get(platform)
        channels = list(self._channels.get(platform, ()))
        try:
            if adapter is None or not channels:
                raise PermanentPlatformError(
                    platform, f"no {platform} adapter with announcement channels is running"
                )
            rendered = self.preview(announcement, platform)
            first_url = await self._post(delivery, adapter, channels, rendered)
        except RenderError as exc:
            await self._fail(announcement, delivery, str(exc))
        except PlatformError as exc:
            if exc.ambiguous:
                await self._unknown(announcement, delivery, exc.reason)
            elif isinstance(exc, TransientPlatformError):
                await self._transient(announcement, delivery, exc)
            else:
                await self._fail(announcement, delivery, exc.reason)
        except Exception as exc:
            log.exception("delivery crashed id=%s platform=%s", delivery.id, platform)
            await self._unknown(announcement, delivery, f"internal error: {type(exc).__name__}")
        else:
            await self._sent(announcement, delivery, channels, first_url)

    async def _post(
        self, delivery: Delivery, adapter: Adapter, channels: list[str], rendered: Rendered
    ) -> str | None:
        """Post every (channel, part) not yet in ``progress``; returns the first post's URL.

        Progress is written after every post but the last (the last is written together with
        ``sent``): a crash in between leaves ``sending`` rows that become ``unknown``.
        """
        posts = [(channel, i) for channel in channels for i in range(len(rendered.parts))]
        progress = list(delivery.progress)
        first_url = delivery.url
        for index in range(len(progress), len(posts)):
            channel, part = posts[index]
            threaded = rendered.platform == "x" and part > 0
            message = OutgoingMessage(
                where=Conversation(rendered.platform, channel),
                text=rendered.parts[part],
                reply_to=split_entry(progress[index - 1])[1] if threaded else None,
                blocks=rendered.blocks if part == 0 else (),
            )
            sent = await adapter.send(message)
            progress.append(progress_entry(channel, sent.message_id))
            delivery.progress = list(progress)
            if index == 0:
                first_url = sent.url
                delivery.url = sent.url
                delivery.external_id = sent.message_id
            if index < len(posts) - 1:
                # Renewing the claim with each post keeps a long thread from looking abandoned.
                await self._store.set_delivery(
                    delivery.id,
                    progress=list(progress),
                    external_id=delivery.external_id,
                    url=delivery.url,
                    claimed_until=utcnow() + self._lease(),
                )
        return first_url

    async def _sent(
        self,
        announcement: Announcement,
        delivery: Delivery,
        channels: list[str],
        url: str | None,
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
        await self._store.record_sent(
            delivery.id,
            progress=list(delivery.progress),
            external_id=first,
            url=url,
            event=event.row(),
        )
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
        self, announcement: Announcement, delivery: Delivery, exc: TransientPlatformError
    ) -> None:
        attempts = delivery.attempts
        if attempts >= self._settings.max_attempts:
            await self._fail(
                announcement, delivery, f"gave up after {attempts} attempts: {exc.reason}"
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
        await self._store.settle(
            delivery.id,
            announcement.id,
            state="pending",
            next_attempt_at=when,
            error=exc.reason,
            claimed_until=None,
        )
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

    async def _fail(self, announcement: Announcement, delivery: Delivery, reason: str) -> None:
        await self._store.settle(
            delivery.id,
            announcement.id,
            state="failed",
            error=reason,
            claimed_until=None,
            next_attempt_at=None,
        )
        log.warning(
            "delivery failed id=%s platform=%s reason=%s", delivery.id, delivery.platform, reason
        )
        await self._notify(
            announcement,
            f"Announcement #{announcement.id} failed on {delivery.platform}: {reason}. "
            f"Fix the cause, then /announce retry {announcement.id} --to {delivery.platform}.",
        )

    async def _unknown(self, announcement: Announcement, delivery: Delivery, reason: str) -> None:
        await self._store.settle(
            delivery.id,
            announcement.id,
            state="unknown",
            error=reason,
            claimed_until=None,
            next_attempt_at=None,
        )
        await self._notify(
            announcement,
            f"Announcement #{announcement.id} may or may not have reached {delivery.platform} "
            f"({reason}). Check the channel, then /announce mark-sent {announcement.id} "
            f"--to {delivery.platform} or /announce retry {announcement.id} "
            f"--to {delivery.platform}.",
        )
