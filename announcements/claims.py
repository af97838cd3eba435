"""This process's claims on delivery rows, and their leases.

A row is claimed (pending -> sending, ``claimed_by`` = this instance plus a nonce, see
:func:`~announcements.store.claim_token`) only when a post slot is free to post it, and the
claim is committed before any platform call. While its post is in progress the lease
(``claimed_until``) is renewed, for every claim of the process in one statement; once the
process is gone — killed, stalled, or cut off from the database for longer than the lease —
the lease runs out and another instance (or the next start) takes the row over
(``DeliveryEngine.recover``). Every later write of the attempt names the claim, so an
attempt that lost its claim overwrites nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from datetime import timedelta

from announcements.store import AnnouncementStore
from bot.config import AnnouncementsSection
from bot.errors import FoundationBotError, StoreError
from bot.events import utcnow
from bot.store.models import Delivery

log = logging.getLogger(__name__)


class ClaimLost(FoundationBotError):
    """The claim's lease ran out and the row was taken over: stop posting, touch nothing."""


class DeliveryClaims:
    """Takes, renews and gives up this process's claims."""

    def __init__(
        self, *, store: AnnouncementStore, owner: str, settings: AnnouncementsSection
    ) -> None:
        self._store = store
        self._owner = owner
        self._settings = settings
        #: Deliveries being posted -> their claim, renewed together by :meth:`_keep`.
        self._held: dict[int, str] = {}
        self._keeper: asyncio.Task[None] | None = None
        #: Set by :meth:`stop_claiming`: no new claims (a retry timer firing during shutdown).
        self._draining = False

    @property
    def owner(self) -> str:
        """The instance name claims are made under."""
        return self._owner

    def lease(self) -> timedelta:
        """How long a claim lasts unless renewed."""
        return timedelta(seconds=self._settings.claim_lease_seconds)

    def of(self, delivery: Delivery) -> str:
        """The claim a delivery is posted under (``claimed_by`` as claimed)."""
        return delivery.claimed_by or self._owner

    async def claim(self, ids: Sequence[int], *, due_only: bool = False) -> dict[int, Delivery]:
        """Claim these rows for this process (see :meth:`AnnouncementStore.claim_many`); none
        once it is shutting down (they stay pending for another instance or the next start)."""
        if self._draining or not ids:
            return {}
        return await self._store.claim_many(ids, self._owner, self.lease(), due_only=due_only)

    def hold(self, delivery: Delivery, task: asyncio.Task[None]) -> None:
        """Keep renewing ``delivery``'s claim until ``task`` (its post) ends."""
        claim = self._held[delivery.id] = self.of(delivery)
        task.add_done_callback(lambda _: self._release(delivery.id, claim))
        if self._keeper is None or self._keeper.done():
            self._keeper = asyncio.create_task(self._keep(), name="delivery-claims")

    def _release(self, delivery_id: int, claim: str) -> None:
        if self._held.get(delivery_id) == claim:
            del self._held[delivery_id]

    async def _keep(self) -> None:
        """Renew the leases of every claim whose post is in progress, in one statement per
        tick, for as long as there are any.

        One post can outlast the lease (an SDK sleeping out a 429, a slow platform, a busy
        CPU); another instance would then take the row for abandoned. One batched renewal per
        process, rather than one per post, keeps the renewals from queueing for database
        connections behind the posts' own writes.
        """
        every = max(0.05, self._settings.claim_lease_seconds / 3)
        while self._held:
            await asyncio.sleep(every)
            held = dict(self._held)
            if not held:
                return
            try:
                kept = await self._store.renew_claims(held, utcnow() + self.lease())
            except StoreError as exc:  # the database is away; the next tick tries again
                log.warning("claims not renewed (%d): %s", len(held), exc)
                continue
            for ident in held.keys() - kept:
                if self._held.get(ident) == held[ident]:
                    # Taken over (its lease ran out while this process could not renew it):
                    # the post under way finishes, and its writes find the claim gone.
                    log.warning("claim lost id=%s claim=%s", ident, held[ident])
                    del self._held[ident]

    def stop_claiming(self) -> None:
        """Shutdown has begun: claim nothing new."""
        self._draining = True

    async def stop_renewing(self) -> None:
        """The process is going away: let the leases of unfinished posts run out, so another
        instance (or the next start) can take them up."""
        if self._keeper is not None:
            self._keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._keeper
            self._keeper = None
