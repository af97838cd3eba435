"""The one asyncio runtime: owns the store, the matcher, the command router, the scheduler and
the web server, and starts and stops the adapters.

Shutdown order (SIGTERM/SIGINT or the console closing): stop accepting events, let in-flight
replies finish (up to ``bot.shutdown_grace_seconds``), stop the adapters, the scheduler and the
web server, then close the database. Every database write is one transaction, so nothing is
left half-written.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import secrets
import signal
import socket
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from aiohttp import web
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from adapters import registry
from adapters.base import Adapter, PlatformRules
from announcements.commands import AnnounceCommands
from announcements.engine import DeliveryEngine
from announcements.news import AnnouncementNews
from announcements.retries import RetryTimers
from announcements.schedule import AnnouncementScheduler
from announcements.store import AnnouncementStore
from bot.answering import Knowledge
from bot.chain import DropDuplicates, IgnoreOwnMessages, RateLimitQuestions, build_chain
from bot.commands import CommandRouter
from bot.config import Config, Settings
from bot.dispatch import Dispatcher, Outbox
from bot.errors import StartError, StoreError
from bot.events import Conversation, InboundEvent, OutgoingMessage, utcnow
from bot.faqfile import FaqRecord, builtin_pack, read_file
from bot.polling import polling_jobs
from bot.privacy import pseudonymizer_for, purge_engagement
from bot.store.claims import EVENT_CLAIM_HOURS, EVENT_PREFIX, Claims
from bot.store.db import Database
from bot.store.engagement import AuditTrail, EngagementLog
from bot.store.faq import FaqStore
from bot.store.locks import START_LOCK, InstanceLock, Leadership, exclusive
from bot.store.models import Announcement
from bot.telemetry import Metrics
from bot.web import WebServer, build_app

log = logging.getLogger(__name__)

#: How often each instance checks whether the FAQ or the published news changed.
KNOWLEDGE_REFRESH_SECONDS = 2.0


def _pack(settings: Settings) -> list[FaqRecord]:
    if settings.knowledge.pack == "builtin":
        return builtin_pack()
    return read_file(Path(settings.knowledge.pack))


async def prepare_database(db: Database, settings: Settings) -> None:
    """Check the database, apply migrations and load the knowledge pack on first start.

    Raises:
        StoreError: unreachable database, or a schema older than the code with migrations off.
    """
    await db.check()
    # Several instances starting together on PostgreSQL: one migrates and loads the pack,
    # the others wait, then find nothing left to do.
    async with exclusive(db, START_LOCK):
        if settings.database.migrate_on_start:
            await db.upgrade()
        else:
            current, head = await db.current_revision(), Database.head_revision()
            if current != head:
                raise StoreError(
                    f"database schema is at {current or 'empty'} but this version needs "
                    f"{head}: run `foundation-bot db upgrade`"
                )
        faq = FaqStore(db)
        if settings.knowledge.load_on_first_start and await faq.count() == 0:
            created, _, _ = await faq.upsert(_pack(settings))
            log.info("knowledge pack loaded entries=%d", created)


class Runtime:
    """Everything the running bot owns, wired explicitly."""

    def __init__(
        self,
        config: Config,
        adapters: Sequence[Adapter],
        *,
        database: Database | None = None,
        clock: Callable[[], datetime] = utcnow,
        require_web: bool = True,
        platforms: Mapping[str, PlatformRules] = registry.SUPPORTED,
    ) -> None:
        """Args:
        config: The settings and secrets.
        adapters: The platform connections to run.
        database: An open database (default: one from ``database.url``).
        clock: Now, in UTC (tests move it).
        require_web: With ``web.enabled``, fail the start when the web server cannot listen
            (Slack's HTTP mode, the dashboard and the health checks live there). Only a
            terminal chat on its own runs on without it, with an error line.
        platforms: Every supported platform's rules (the adapter registry's table).
        """
        settings = config.settings
        self.config = config
        self._require_web = require_web
        self.db = database or Database(settings.database.url, echo=settings.database.echo)
        #: Names this process in delivery claims (``claimed_by``) and logs.
        self.instance_id = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self._instance_lock = InstanceLock(self.db.url)
        self.leadership = Leadership(self.db)
        self.faq = FaqStore(self.db)
        self.metrics = Metrics()
        self.engagement = EngagementLog(self.db, pseudonymizer_for(config))
        self.audit = AuditTrail(self.db)
        self.announcements = AnnouncementStore(self.db)
        self.knowledge = Knowledge(
            self.faq,
            threshold=settings.answering.threshold,
            more_info_url=settings.answering.more_info_url,
            max_question_chars=settings.answering.max_question_chars,
            semantic=settings.answering.semantic,
            news=AnnouncementNews(self.db, self.announcements),
        )
        self.platforms = platforms
        self.router = CommandRouter(settings.staff, self.audit, platforms)
        self.scheduler = AsyncIOScheduler(timezone=UTC)
        self.adapters = {a.platform: a for a in adapters}
        self.outbox = Outbox(self.adapters, self.metrics)
        moderators = registry.moderator_channels(settings)
        self._claims = Claims(self.db)
        self.dispatcher = Dispatcher(
            knowledge=self.knowledge,
            engagement=self.engagement,
            router=self.router,
            outbox=self.outbox,
            claims=self._claims,
            reply_in_thread=settings.answering.reply_in_thread,
            moderator_channels=moderators,
            metrics=self.metrics,
            replies=registry.reply_policies(settings),
            threadless=frozenset(n for n, r in platforms.items() if not r.has_threads),
        )
        self.router.register(
            "why",
            self.dispatcher.why,
            staff_only=False,
            summary="how I read, ranked and decided your last question",
        )
        self._shared_db = self.db.dialect == "postgresql"
        self._chain = build_chain(
            [
                IgnoreOwnMessages(),
                # One process remembers retried deliveries in memory; several instances on
                # PostgreSQL also claim each delivery id in the database (a load balancer can
                # send Slack's retry to another instance).
                DropDuplicates(shared=self._claims.first_delivery if self._shared_db else None),
                RateLimitQuestions(
                    settings.answering.per_user_per_minute,
                    self.dispatcher.slow_down,
                    exempt=frozenset(n for n, r in platforms.items() if not r.rate_limited),
                ),
            ],
            self.dispatcher,
        )
        self.delivery = DeliveryEngine(
            platforms=platforms,
            max_parts=registry.max_parts(settings),
            store=self.announcements,
            adapters=self.adapters,
            channels={p: a.announce_channels for p, a in self.adapters.items()},
            settings=settings.announcements,
            engagement=self.engagement,
            notify=self.notify_staff,
            retries=RetryTimers(self.scheduler),
            on_news_changed=self.knowledge.reload_soon,
            owner=self.instance_id,
            metrics=self.metrics,
        )
        self.announcement_timers = AnnouncementScheduler(
            scheduler=self.scheduler,
            store=self.announcements,
            engine=self.delivery,
            settings=settings.announcements,
            notify=self.notify_staff,
            clock=clock,
        )
        self.announce_commands = AnnounceCommands(
            settings=settings,
            store=self.announcements,
            engine=self.delivery,
            scheduler=self.announcement_timers,
            adapters=self.adapters,
            clock=clock,
            platforms=platforms,
        )
        self.router.register(
            "announce",
            self.announce_commands,
            staff_only=True,
            summary="queue and manage announcements (/announce help)",
        )
        # Metrics snapshots and mentions: one coroutine per tick each (bot/polling.py). Polled
        # mentions go through the chain like pushed events, but not through handle(): a tick
        # runs in a shielded task of its own, and must finish every mention it claimed even
        # while the runtime stops accepting new events.
        self.polling = polling_jobs(
            registry.polling_plans(settings),
            self.adapters,
            comms_channel=settings.announcements.comms_channel,
            db=self.db,
            deliver=self._chain,
            outbox=self.outbox,
            clock=clock,
        )
        self.web: WebServer | None = None
        self._inflight: set[asyncio.Task[None]] = set()
        self._accepting = False
        self._stop_requested: asyncio.Event | None = None
        self._started: list[Adapter] = []
        self._refresher: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Prepare the store, then start the scheduler, the web server and the adapters."""
        settings = self.config.settings
        self._instance_lock.acquire()
        await prepare_database(self.db, settings)
        await self.knowledge.reload()
        # Paused while the timers are rebuilt from the database, so none fires half-armed.
        self.scheduler.start(paused=True)
        await self.announcement_timers.start(single_process=self.db.dialect == "sqlite")
        for job in self.polling.jobs:
            # One instance at a time polls X (the leader, on PostgreSQL); the claims in
            # bot/store/claims.py keep a tick that overlaps a leadership move harmless.
            self.add_singleton_job(job.run, job.seconds, name=job.name)
        # Every instance (not only the leader) picks up FAQ and news changes made elsewhere.
        # A task of its own rather than a scheduler job, so stop() can cancel it before the
        # database closes (a job still running then would open a new connection).
        self._refresher = asyncio.get_running_loop().create_task(
            self._refresh_knowledge_forever(), name="knowledge-refresh"
        )
        if self._shared_db:
            self.add_singleton_job(
                self._prune_event_claims, 600, name="event-claims-prune", first_run=utcnow()
            )
        retention = settings.privacy.retention_days
        if retention is not None:
            self.add_singleton_job(
                functools.partial(purge_engagement, self.db, retention),
                settings.privacy.purge_interval_hours * 3600,
                name="privacy-retention-purge",
                first_run=datetime.now(UTC),
            )
        self.scheduler.resume()
        if settings.web.enabled:
            dashboard = self._dashboard() if settings.dashboard.enabled else None
            server = WebServer(
                build_app(self.db.check, self.adapters, metrics=self.metrics, dashboard=dashboard),
                settings.web.host,
                settings.web.port,
            )
            try:
                await server.start()
                self.web = server
            except OSError as exc:
                await server.stop()
                reason = os.strerror(exc.errno) if exc.errno else str(exc)
                where = f"{settings.web.host}:{settings.web.port} ({reason})"
                if self._require_web:
                    raise StartError(
                        f"cannot listen on {where}: the web server carries Slack's HTTP mode, "
                        "the dashboard and the health checks; free the port or set web.port "
                        "(web.enabled = false turns it off)"
                    ) from exc
                log.error("web server not started: cannot listen on %s", where)
        self._accepting = True
        for adapter in self.adapters.values():
            await adapter.start(self.handle)
            self._started.append(adapter)
            log.info("adapter started platform=%s", adapter.platform)

    async def _refresh_knowledge_forever(self) -> None:
        while True:
            await asyncio.sleep(KNOWLEDGE_REFRESH_SECONDS)
            try:
                await self.knowledge.refresh()
            except Exception as exc:  # the next tick tries again; answering goes on meanwhile
                log.warning("knowledge refresh failed; answering from the loaded index: %s", exc)

    async def _prune_event_claims(self) -> int:
        older_than = utcnow() - timedelta(hours=EVENT_CLAIM_HOURS)
        return await self._claims.prune(EVENT_PREFIX, older_than)

    def add_singleton_job(
        self,
        job: Callable[[], Awaitable[object]],
        seconds: float,
        *,
        name: str | None = None,
        first_run: datetime | None = None,
    ) -> None:
        """Run ``job`` every ``seconds`` on one instance at a time (the leader).

        With several processes on PostgreSQL the leader is whoever holds the advisory lock;
        when it dies another instance takes over on its next tick. Jobs must be idempotent:
        a tick can overlap the moment leadership moves.
        """
        name = name or getattr(job, "__qualname__", repr(job))

        async def tick() -> object:
            if await self.leadership.held():
                return await job()
            return None

        self.scheduler.add_job(
            tick,
            trigger="interval",
            seconds=seconds,
            id=name,
            name=f"singleton {name}",
            next_run_time=first_run or datetime.now(UTC) + timedelta(seconds=seconds),
            replace_existing=True,
            coalesce=True,
            max_instances=1,
        )

    def _dashboard(self) -> web.Application:
        from bot.dashboard import DashboardDeps, build_dashboard

        return build_dashboard(
            DashboardDeps(
                db=self.db,
                settings=self.config.settings.dashboard,
                engagement=self.engagement,
                audit=self.audit,
                faq=self.faq,
                knowledge=self.knowledge,
                announcements=self.announcements,
                announce=self.announce_commands,
                pseudonymized=self.config.settings.privacy.pseudonymize_users,
                trusted_proxies=self.config.settings.web.trusted_proxies,
                links=registry.message_link,
                platforms=tuple(self.platforms),
            )
        )

    async def handle(self, event: InboundEvent) -> None:
        """The sink adapters deliver events to. Never raises.

        The work runs in its own task, shielded from the adapter's cancellation, so a reply that
        has started is finished during a graceful shutdown.
        """
        if not self._accepting:
            return
        task = asyncio.create_task(self._process(event))
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)
        await asyncio.shield(task)

    async def _process(self, event: InboundEvent) -> None:
        try:
            await self._chain(event)
        except StoreError as exc:
            log.error("event dropped: %s", exc)
        except Exception:
            log.exception("event handling failed platform=%s", event.where.platform)

    async def notify_staff(self, announcement: Announcement, text: str) -> None:
        """Report an announcement problem where its command came from and to comms."""
        targets: list[Conversation] = []
        if announcement.origin_platform and announcement.origin_channel:
            targets.append(Conversation(announcement.origin_platform, announcement.origin_channel))
        comms = self.config.settings.announcements.comms_channel
        if comms and ":" in comms:
            platform, channel = comms.split(":", 1)
            if Conversation(platform, channel) not in targets:
                targets.append(Conversation(platform, channel))
        for where in targets:
            await self.outbox.send(OutgoingMessage(where=where, text=text))

    def request_stop(self) -> None:
        """Ask :meth:`run` to shut down (signal handlers and the console call this)."""
        if self._stop_requested is not None:
            self._stop_requested.set()

    async def run(self, on_started: Callable[[], None] | None = None) -> None:
        """Start, serve until SIGTERM/SIGINT or :meth:`request_stop`, then stop gracefully.

        ``on_started`` is called once everything is up (process supervisors, tests).
        """
        self._stop_requested = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop)
        try:
            await self.start()
            if on_started is not None:
                on_started()
            await self._stop_requested.wait()
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
            await self.stop()

    async def stop(self) -> None:
        """Graceful shutdown; safe to call more than once."""
        self._accepting = False
        if self._inflight:
            grace = self.config.settings.bot.shutdown_grace_seconds
            _, pending = await asyncio.wait(set(self._inflight), timeout=grace)
            if pending:
                log.warning("shutdown: %d replies did not finish in %ss", len(pending), grace)
        await self.polling.stop(self.config.settings.bot.shutdown_grace_seconds)
        unfinished = await self.delivery.drain(self.config.settings.bot.shutdown_grace_seconds)
        if unfinished:
            log.warning("shutdown: %d deliveries still posting; they become unknown", unfinished)
        for adapter in reversed(self._started):
            try:
                await adapter.stop()
            except Exception:
                log.exception("adapter stop failed platform=%s", adapter.platform)
        self._started.clear()
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        await self.leadership.release()
        await self._claims.close()
        if self.web is not None:
            await self.web.stop()
            self.web = None
        refresher, self._refresher = self._refresher, None
        if refresher is not None:
            refresher.cancel()
            await asyncio.wait({refresher})
        await self.knowledge.cancel_reload()  # else it may open a connection as the loop ends
        await self.db.close()
        self._instance_lock.release()
