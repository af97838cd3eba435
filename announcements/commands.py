"""``/announce``: what comms staff type on any platform with commands (and the dashboard).

Each action validates everything before it changes anything, so bad input gets a one-line
reason plus the usage and leaves the store untouched.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from adapters.base import Adapter, PlatformRules
from announcements import grammar
from announcements.engine import DeliveryEngine
from announcements.progress import posted_entries, split_entry
from announcements.render import Rendered, RenderError
from announcements.schedule import AnnouncementScheduler
from announcements.store import AnnouncementStore, NewAnnouncement, content_hash
from announcements.when import (
    check_window,
    format_local,
    next_occurrence,
    parse_recurrence,
    parse_when,
    zone,
)
from bot.config import Settings
from bot.errors import CommandError, PlatformError
from bot.events import SentMessage, SlashCommand, utcnow
from bot.store.models import Announcement, Delivery
from bot.store.states import ACTIVE, NEEDS_PERSON, AnnouncementStatus, DeliveryState

log = logging.getLogger(__name__)

#: How long ``/announce now`` waits to report results before answering "still posting".
NOW_REPORT_SECONDS = 15.0
PREVIEW_CHARS = 60


def _actor(cmd: SlashCommand) -> str:
    return f"{cmd.where.platform}:{cmd.author.id}"


def _snippet(text: str) -> str:
    one_line = " ".join(text.split())
    return one_line if len(one_line) <= PREVIEW_CHARS else one_line[: PREVIEW_CHARS - 1] + "…"


def _states(deliveries: Sequence[Delivery]) -> str:
    latest: dict[str, Delivery] = {}
    for delivery in deliveries:  # recurring: show the newest occurrence per platform
        if delivery.platform not in latest or delivery.id > latest[delivery.platform].id:
            latest[delivery.platform] = delivery
    parts = []
    for platform, delivery in sorted(latest.items()):
        text = f"{platform}: {delivery.state}"
        if delivery.state in NEEDS_PERSON and delivery.error:
            text += f" ({_snippet(delivery.error)})"
        parts.append(text)
    return ", ".join(parts) or "no deliveries yet"


class AnnounceCommands:
    """The ``/announce`` handler."""

    def __init__(
        self,
        *,
        settings: Settings,
        store: AnnouncementStore,
        engine: DeliveryEngine,
        scheduler: AnnouncementScheduler,
        adapters: dict[str, Adapter],
        clock: Callable[[], datetime] = utcnow,
        platforms: Mapping[str, PlatformRules] | None = None,
    ) -> None:
        """``platforms``: every supported platform's rules (the adapter registry's table),
        the platforms ``--to`` may name; previews are the engine's own rendering
        (:meth:`DeliveryEngine.preview`), whether or not a platform is connected."""
        if platforms is None:
            from adapters.registry import SUPPORTED

            platforms = SUPPORTED
        self._platforms = platforms
        self._settings = settings
        self._config = settings.announcements
        self._store = store
        self._engine = engine
        self._scheduler = scheduler
        self._adapters = adapters
        self._clock = clock

    # --- helpers ---------------------------------------------------------------------------

    def _zone_for(self, cmd: SlashCommand, explicit: str | None) -> ZoneInfo:
        if explicit:
            return zone(explicit)
        name = self._settings.staff.timezones.get(cmd.author.id) or self._settings.bot.timezone
        return zone(name)

    def _is_time(self, tz: ZoneInfo, now: datetime) -> Callable[[str], bool]:
        def accepts(text: str) -> bool:
            try:
                parse_when(text, tz, now)
            except CommandError:
                return False
            return True

        return accepts

    @staticmethod
    def _is_rule(text: str) -> bool:
        try:
            parse_recurrence(text)
        except CommandError:
            return False
        return True

    def _targets(self, requested: tuple[str, ...] | None, usage: str) -> tuple[str, ...]:
        available = self._engine.platforms()
        if requested is None:
            configured = self._config.default_targets
            targets = (
                tuple(p for p in configured if p in available) if configured else tuple(available)
            )
            if not targets:
                raise CommandError(
                    "No platform is set up for announcements (no adapter with announce "
                    "channels is running).",
                    usage,
                )
            return targets
        missing = [p for p in requested if p not in available]
        if missing:
            raise CommandError(
                f"{', '.join(missing)} is not connected for announcements; available: "
                f"{', '.join(available) or 'none'}.",
                usage,
            )
        return requested

    def _names(self) -> tuple[str, ...]:
        """Every platform ``--to`` may name: the supported ones and any running adapter."""
        return tuple(dict.fromkeys([*self._platforms, *self._adapters]))

    def _render(self, announcement: Announcement, platform: str) -> Rendered:
        """Exactly what ``platform`` gets, by its own rules (connected or not)."""
        return self._engine.preview(announcement, platform)

    def _unit(self, platform: str, count: int) -> str:
        rules = self._platforms.get(platform)
        unit = rules.limits.unit if rules is not None else "message"
        return f"{count} {unit}{'s' if count != 1 else ''}"

    def _rendered_lines(self, announcement: Announcement, platforms: Sequence[str]) -> list[str]:
        """Each platform's rendering, numbered when it takes several parts."""
        lines: list[str] = []
        for platform in platforms:
            try:
                rendered = self._render(announcement, platform)
            except RenderError as exc:
                lines.append(f"--- {platform}: cannot be sent: {exc}")
                continue
            count = len(rendered.parts)
            lines.append(f"--- {platform} ({self._unit(platform, count)}) ---")
            lines.extend(
                rendered.parts
                if count == 1
                else [f"[{i}] {part}" for i, part in enumerate(rendered.parts, start=1)]
            )
        return lines

    def _check_renders(
        self, text: str, overrides: dict[str, str], targets: Sequence[str], usage: str
    ) -> None:
        if len(text) > self._config.max_chars:
            raise CommandError(
                f"The text is {len(text)} characters; the limit is {self._config.max_chars}.",
                usage,
            )
        probe = Announcement(text=text, overrides=overrides)
        for platform in targets:
            try:
                self._render(probe, platform)
            except RenderError as exc:
                raise CommandError(str(exc), usage) from None

    async def _get(self, ident: int | None, usage: str) -> Announcement:
        announcement = await self._store.get(ident or 0)
        if announcement is None:
            raise CommandError(f"There is no announcement #{ident}.", usage)
        return announcement

    async def _duplicate_check(self, text: str, force: bool, usage: str) -> None:
        if force:
            return
        window = timedelta(days=self._config.duplicate_window_days)
        duplicate = await self._store.find_duplicate(text, window, self._clock())
        if duplicate is not None:
            raise CommandError(
                f"Announcement #{duplicate} has the same text (queued, or sent in the last "
                f"{self._config.duplicate_window_days:g} days). Add --force to queue it anyway.",
                usage,
            )

    async def _quota_warnings(self, targets: Sequence[str], when: datetime) -> list[str]:
        warnings = []
        tz = zone(self._settings.bot.timezone)
        day = when.astimezone(tz).date()
        start = datetime.combine(day, time(0), tzinfo=tz)
        end = start + timedelta(days=1)
        for platform in targets:
            quota = self._config.daily_quota.get(platform)
            if quota is None:
                continue
            count = await self._store.posts_between(platform, start, end) + 1
            if count > quota:
                warnings.append(
                    f"Warning: this makes {count} posts to {platform} on {day:%Y-%m-%d}; "
                    f"the daily quota is {quota}."
                )
        return warnings

    # --- entry point -------------------------------------------------------------------------

    async def __call__(self, cmd: SlashCommand) -> str:
        """Handle ``/announce …`` and return the reply."""
        now = self._clock()
        tz = self._zone_for(cmd, None)
        args = grammar.parse(
            cmd.text,
            is_time=self._is_time(tz, now),
            is_rule=self._is_rule,
            platforms=self._names(),
        )
        usage = "Usage: " + grammar.USAGE[args.action]
        handler = getattr(self, "_" + args.action.replace("-", "_"))
        try:
            reply: str = await handler(cmd, args, usage, now)
        except CommandError as exc:
            if exc.usage:
                raise
            raise CommandError(str(exc), usage) from None
        return reply

    async def _help(
        self, cmd: SlashCommand, args: grammar.AnnounceArgs, usage: str, now: datetime
    ) -> str:
        return grammar.help_text(self._names())

    async def _preview(
        self, cmd: SlashCommand, args: grammar.AnnounceArgs, usage: str, now: datetime
    ) -> str:
        """What each platform would get, connected or not; nothing is stored."""
        if len(args.text) > self._config.max_chars:
            raise CommandError(
                f"The text is {len(args.text)} characters; the limit is {self._config.max_chars}.",
                usage,
            )
        platforms = args.to or tuple(self._platforms)
        probe = Announcement(text=args.text, overrides=args.overrides)
        return "\n".join(["Preview (nothing is queued):", *self._rendered_lines(probe, platforms)])

    async def _schedule(
        self, cmd: SlashCommand, args: grammar.AnnounceArgs, usage: str, now: datetime
    ) -> str:
        tz = self._zone_for(cmd, args.tz)
        when = parse_when(args.at or "", tz, now)
        recurrence = until = None
        if args.every:
            rule = parse_recurrence(args.every)
            recurrence = rule.describe()
            when = next_occurrence(rule, when - timedelta(seconds=1), tz)
            if args.until:
                until = parse_when(args.until, tz, now)
                if len(args.until.strip()) <= 10:  # a bare date: include the whole day
                    until = datetime.combine(
                        until.astimezone(tz).date(), time(23, 59, 59), tzinfo=tz
                    )
                if until < when:
                    raise CommandError("--until is before the first occurrence.", usage)
        check_window(when, now)
        targets = self._targets(args.to, usage)
        self._check_renders(args.text, args.overrides, targets, usage)
        await self._duplicate_check(args.text, args.force, usage)
        warnings = await self._quota_warnings(targets, when)
        approval = self._config.require_approval
        announcement = await self._store.create(
            NewAnnouncement(
                author=_actor(cmd),
                text=args.text,
                targets=targets,
                due_at=when,
                timezone=tz.key,
                overrides=args.overrides,
                recurrence=recurrence,
                recur_until=until,
                status=(
                    AnnouncementStatus.AWAITING_APPROVAL
                    if approval
                    else AnnouncementStatus.SCHEDULED
                ),
                origin_platform=cmd.where.platform,
                origin_channel=cmd.where.channel_id,
            )
        )
        if not approval:
            self._scheduler.arm(announcement.id, when)
        lines = [
            f"Scheduled announcement #{announcement.id} for {format_local(when, tz)} "
            f"to {', '.join(targets)}."
        ]
        if recurrence:
            ending = f" until {format_local(until, tz)}" if until else ""
            lines.append(f"Repeats {recurrence} ({tz.key} wall-clock time){ending}.")
        if approval:
            lines.append(f"It needs /announce approve {announcement.id} from another staff member.")
        return "\n".join(lines + warnings)

    async def _now(
        self, cmd: SlashCommand, args: grammar.AnnounceArgs, usage: str, now: datetime
    ) -> str:
        targets = self._targets(args.to, usage)
        self._check_renders(args.text, args.overrides, targets, usage)
        await self._duplicate_check(args.text, args.force, usage)
        warnings = await self._quota_warnings(targets, now)
        approval = self._config.require_approval
        tz = self._zone_for(cmd, None)
        announcement = await self._store.create(
            NewAnnouncement(
                author=_actor(cmd),
                text=args.text,
                targets=targets,
                due_at=now,
                timezone=tz.key,
                overrides=args.overrides,
                status=(
                    AnnouncementStatus.AWAITING_APPROVAL
                    if approval
                    else AnnouncementStatus.SCHEDULED
                ),
                origin_platform=cmd.where.platform,
                origin_channel=cmd.where.channel_id,
            )
        )
        if approval:
            waiting = (
                f"Announcement #{announcement.id} is waiting for /announce approve "
                f"{announcement.id} from another staff member; it goes out once approved."
            )
            return "\n".join([waiting, *warnings])
        if await self._store.held():
            held = (
                f"Announcement #{announcement.id} is queued, but the embargo is on: it goes out "
                f"to {', '.join(targets)} when /announce resume lifts it."
            )
            return "\n".join([held, *warnings])
        return "\n".join([await self._send_and_report(announcement.id), *warnings])

    async def _send_and_report(self, announcement_id: int) -> str:
        fire = asyncio.ensure_future(self._scheduler.fire_now(announcement_id))
        done, _ = await asyncio.wait({fire}, timeout=NOW_REPORT_SECONDS)
        deliveries = await self._store.deliveries(announcement_id)
        lines = [f"Announcement #{announcement_id}:"]
        for delivery in deliveries:
            if delivery.state == DeliveryState.SENT:
                lines.append(
                    f"  {delivery.platform}: posted {delivery.url or delivery.external_id}"
                )
            elif delivery.state == DeliveryState.PENDING and delivery.next_attempt_at is not None:
                lines.append(
                    f"  {delivery.platform}: will retry at {delivery.next_attempt_at:%H:%M:%S} UTC"
                    f" ({delivery.error})"
                )
            else:
                detail = f" ({delivery.error})" if delivery.error else ""
                lines.append(f"  {delivery.platform}: {delivery.state}{detail}")
        if not done:
            lines.append("Still posting; I'll report any failure here.")
        return "\n".join(lines)

    async def _list(
        self, cmd: SlashCommand, args: grammar.AnnounceArgs, usage: str, now: datetime
    ) -> str:
        tz = self._zone_for(cmd, None)
        rows = await self._store.with_open_deliveries()
        lines = []
        if await self._store.held():
            lines.append("Embargo on: nothing is posted until /announce resume.")
        if not rows:
            lines.append("Nothing queued.")
        for a in rows:
            due = format_local(a.due_at, tz) if a.due_at else "—"
            repeat = f" · {a.recurrence}" if a.recurrence else ""
            lines.append(
                f"#{a.id} · {due}{repeat} · {a.status.replace('_', ' ')} · "
                f"{_states(a.deliveries) if a.deliveries else ', '.join(a.targets)} · "
                f"{_snippet(a.text)}"
            )
        return "\n".join(lines)

    async def _history(
        self, cmd: SlashCommand, args: grammar.AnnounceArgs, usage: str, now: datetime
    ) -> str:
        tz = self._zone_for(cmd, None)
        rows = await self._store.history()
        if not rows:
            return "No announcements have been sent, cancelled or missed yet."
        return "\n".join(
            f"#{a.id} · {format_local(a.due_at, tz) if a.due_at else '—'} · {a.status} · "
            f"{_states(a.deliveries)} · {_snippet(a.text)}"
            for a in rows
        )

    async def _show(
        self, cmd: SlashCommand, args: grammar.AnnounceArgs, usage: str, now: datetime
    ) -> str:
        announcement = await self._get(args.ident, usage)
        tz = self._zone_for(cmd, None)
        due = format_local(announcement.due_at, tz) if announcement.due_at else "—"
        lines = [
            f"#{announcement.id} · {announcement.status.replace('_', ' ')} · due {due}"
            + (f" · {announcement.recurrence}" if announcement.recurrence else "")
            + f" · by {announcement.author}"
        ]
        if announcement.deliveries:
            lines.append(_states(announcement.deliveries))
        lines.extend(self._rendered_lines(announcement, announcement.targets))
        return "\n".join(lines)

    def _editable(self, announcement: Announcement, usage: str) -> None:
        if announcement.status not in ACTIVE:
            raise CommandError(
                f"Announcement #{announcement.id} is {announcement.status}; only queued "
                "announcements can be changed.",
                usage,
            )
        busy = [
            d.platform
            for d in announcement.deliveries
            if d.state in (DeliveryState.SENDING, DeliveryState.SENT)
            and not announcement.recurrence
        ]
        if busy:
            raise CommandError(
                f"Announcement #{announcement.id} is already being sent ({', '.join(busy)}); "
                "it can no longer be edited.",
                usage,
            )

    async def _edit(
        self, cmd: SlashCommand, args: grammar.AnnounceArgs, usage: str, now: datetime
    ) -> str:
        announcement = await self._get(args.ident, usage)
        self._editable(announcement, usage)
        fields: dict[str, object] = {}
        tz = self._zone_for(cmd, args.tz) if args.tz else zone(announcement.timezone)
        when = announcement.due_at
        if args.at:
            when = parse_when(args.at, tz, now)
            if announcement.recurrence:
                when = next_occurrence(
                    parse_recurrence(announcement.recurrence), when - timedelta(seconds=1), tz
                )
            check_window(when, now)
            fields |= {"due_at": when, "timezone": tz.key}
        if args.text:
            self._check_renders(args.text, announcement.overrides, announcement.targets, usage)
            fields |= {"text": args.text, "content_hash": content_hash(args.text)}
            if (
                self._config.require_approval
                and announcement.status == AnnouncementStatus.SCHEDULED
            ):
                fields |= {"status": AnnouncementStatus.AWAITING_APPROVAL, "approved_by": None}
        await self._store.update(announcement.id, **fields)
        status = fields.get("status", announcement.status)
        if status == AnnouncementStatus.SCHEDULED and when is not None:
            self._scheduler.arm(announcement.id, when)
        else:
            self._scheduler.disarm(announcement.id)
        changed = " and ".join(k for k, v in (("text", args.text), ("time", args.at)) if v)
        reply = f"Updated the {changed} of announcement #{announcement.id}"
        if when is not None:
            reply += f"; due {format_local(when, tz)}"
        if status == AnnouncementStatus.AWAITING_APPROVAL:
            reply += f". It needs /announce approve {announcement.id} again"
        return reply + "."

    async def _cancel(
        self, cmd: SlashCommand, args: grammar.AnnounceArgs, usage: str, now: datetime
    ) -> str:
        announcement = await self._get(args.ident, usage)
        if announcement.status == AnnouncementStatus.CANCELLED:
            raise CommandError(f"Announcement #{announcement.id} is already cancelled.", usage)
        if announcement.status not in ACTIVE:
            raise CommandError(
                f"Announcement #{announcement.id} is {announcement.status}; use /announce "
                f"retract {announcement.id} to delete what was posted.",
                usage,
            )
        self._editable(announcement, usage)
        self._scheduler.disarm(announcement.id)
        await self._store.update(announcement.id, status=AnnouncementStatus.CANCELLED)
        for delivery in announcement.deliveries:
            await self._store.set_delivery_if(
                delivery.id, (DeliveryState.PENDING,), state=DeliveryState.CANCELLED
            )
        return f"Cancelled announcement #{announcement.id}."

    async def _retract(
        self, cmd: SlashCommand, args: grammar.AnnounceArgs, usage: str, now: datetime
    ) -> str:
        announcement = await self._get(args.ident, usage)
        posted = [
            d for d in announcement.deliveries if d.state == DeliveryState.SENT and d.progress
        ]
        if not posted:
            raise CommandError(
                f"Announcement #{announcement.id} has nothing posted to retract"
                + (
                    f"; use /announce cancel {announcement.id}"
                    if announcement.status in ACTIVE
                    else ""
                )
                + ".",
                usage,
            )
        self._scheduler.disarm(announcement.id)
        lines = []
        for delivery in posted:
            adapter = self._adapters.get(delivery.platform)
            problem = None
            # Thread replies first, then the root.
            for entry in reversed(posted_entries(delivery.progress)):
                channel, message_id = split_entry(entry)
                if adapter is None:
                    problem = "the adapter is not running"
                    break
                try:
                    await adapter.delete(SentMessage(delivery.platform, channel, message_id))
                except PlatformError as exc:
                    problem = exc.reason
                    break
            if problem is None:
                await self._store.set_delivery(
                    delivery.id, owner=None, state=DeliveryState.RETRACTED
                )
                lines.append(f"  {delivery.platform}: deleted")
            else:
                lines.append(f"  {delivery.platform}: not deleted ({problem}); delete it by hand")
        await self._store.update(announcement.id, status=AnnouncementStatus.RETRACTED)
        self._engine.news_changed()
        for delivery in announcement.deliveries:
            await self._store.set_delivery_if(
                delivery.id, (DeliveryState.PENDING,), state=DeliveryState.CANCELLED
            )
        return "\n".join([f"Retracted announcement #{announcement.id}:", *lines])

    async def _hold(
        self, cmd: SlashCommand, args: grammar.AnnounceArgs, usage: str, now: datetime
    ) -> str:
        if await self._store.held():
            return "The embargo is already on."
        await self._store.set_held(True)
        return "Embargo on: nothing queued will be posted until /announce resume."

    async def _resume(
        self, cmd: SlashCommand, args: grammar.AnnounceArgs, usage: str, now: datetime
    ) -> str:
        if not await self._store.held():
            return "There is no embargo to lift."
        await self._store.set_held(False)
        released = await self._scheduler.release()
        return f"Embargo lifted; {released} announcement(s) that fell due meanwhile go out now."

    async def _approve(
        self, cmd: SlashCommand, args: grammar.AnnounceArgs, usage: str, now: datetime
    ) -> str:
        announcement = await self._get(args.ident, usage)
        if announcement.status != AnnouncementStatus.AWAITING_APPROVAL:
            raise CommandError(
                f"Announcement #{announcement.id} is {announcement.status.replace('_', ' ')}, "
                "not waiting for approval.",
                usage,
            )
        if announcement.author == _actor(cmd):
            raise CommandError(
                "You wrote this announcement; another staff member must approve it.", usage
            )
        await self._store.update(
            announcement.id, status=AnnouncementStatus.SCHEDULED, approved_by=_actor(cmd)
        )
        due = announcement.due_at or now
        self._scheduler.arm(announcement.id, max(due, now))
        tz = self._zone_for(cmd, None)
        when = "now" if due <= now else format_local(due, tz)
        if await self._store.held():
            return (
                f"Approved announcement #{announcement.id}; the embargo is on, so it goes out "
                f"{'' if due <= now else 'at ' + when + ' or '}once /announce resume lifts it."
            )
        return f"Approved announcement #{announcement.id}; it goes out {when}."

    def _pick(
        self, announcement: Announcement, platforms: tuple[str, ...] | None, usage: str
    ) -> list[Delivery]:
        chosen = [
            d
            for d in announcement.deliveries
            if d.state in NEEDS_PERSON and (platforms is None or d.platform in platforms)
        ]
        if not chosen:
            raise CommandError(
                f"Announcement #{announcement.id} has no failed or unknown deliveries"
                + (f" for {', '.join(platforms)}" if platforms else "")
                + ".",
                usage,
            )
        return chosen

    async def _retry(
        self, cmd: SlashCommand, args: grammar.AnnounceArgs, usage: str, now: datetime
    ) -> str:
        announcement = await self._get(args.ident, usage)
        chosen = self._pick(announcement, args.to, usage)
        await asyncio.wait(
            {asyncio.ensure_future(self._engine.retry(announcement, chosen))},
            timeout=NOW_REPORT_SECONDS,
        )
        refreshed = await self._store.deliveries(announcement.id)
        ids = {d.id for d in chosen}
        return f"Retried announcement #{announcement.id}: " + _states(
            [d for d in refreshed if d.id in ids]
        )

    async def _mark_sent(
        self, cmd: SlashCommand, args: grammar.AnnounceArgs, usage: str, now: datetime
    ) -> str:
        announcement = await self._get(args.ident, usage)
        chosen = self._pick(announcement, args.to, usage)
        for delivery in chosen:
            await self._store.set_delivery_if(
                delivery.id,
                NEEDS_PERSON,
                state=DeliveryState.SENT,
                sent_at=now,
                error=f"marked sent by {_actor(cmd)}",
                # A part left in doubt is the person's call now: not a post id to retract.
                progress=posted_entries(delivery.progress),
            )
        await self._store.finish_if_done(announcement.id)
        return (
            f"Marked announcement #{announcement.id} as sent on "
            f"{', '.join(d.platform for d in chosen)}."
        )
