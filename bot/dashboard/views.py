"""The dashboard's pages and actions.

Reads come from the same stores the bot uses (plus :class:`DashboardQueries` for charts);
writes go through them too, and every action is written to the audit log. FAQ changes
re-index the bot's :class:`~bot.answering.Knowledge` before the response is sent, so the
next question is answered from the new FAQ. Announcement retry and mark-sent run the very
``/announce retry`` and ``/announce mark-sent`` actions staff type in chat.
"""

from __future__ import annotations

import re
import secrets
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from urllib.parse import urlencode

from aiohttp import web
from multidict import MultiDictProxy

from bot.dashboard import charts
from bot.dashboard.app import (
    DashboardDeps,
    Pages,
    set_login_csrf,
    set_session_cookie,
)
from bot.dashboard.auth import (
    COOKIE_PATH,
    CSRF_FIELD,
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    client_address,
    current_user,
    requires,
    same_token,
)
from bot.dashboard.export import csv_response
from bot.dashboard.grouping import REASON_LABELS, group_reviews
from bot.dashboard.queries import DashboardQueries
from bot.errors import CommandError, FaqImportError
from bot.events import Author, Conversation, SlashCommand, utcnow
from bot.faqfile import slugify, validate_records
from bot.store.engagement import (
    EVENT_KINDS,
    LOG_COLUMNS,
    OUTCOME_KINDS,
    LogFilter,
    log_record,
    message_link,
)
from bot.store.models import EngagementEvent, FaqEntry, ReviewItem
from bot.store.states import NEEDS_PERSON
from bot.store.users import LoginLimiter, UserStore

EXPORT_LIMIT = 100_000
_PLATFORM = re.compile(r"[a-z0-9_-]{1,32}")


def _actor(request: web.Request) -> str:
    return f"dashboard:{current_user(request).name}"


def _page(query: Mapping[str, str]) -> int:
    try:
        return min(max(1, int(query.get("page", "1"))), 1_000_000)
    except ValueError:
        return 1


def _ident(text: str) -> int | None:
    """A row id from a URL or form, or None (ids beyond 32 bits cannot exist)."""
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 9 else None


def _safe_next(value: object) -> str:
    """Only a path inside the dashboard: never an open redirect to another site."""
    if isinstance(value, str) and value.startswith("/dashboard/") and "//" not in value:
        return value
    return "/dashboard/"


def _field(form: MultiDictProxy[Any], name: str, limit: int = 10_000) -> str:
    value = form.get(name, "")
    return value.strip()[:limit] if isinstance(value, str) else ""


def _phrasing(question: str) -> str:
    """A question as asked, as an FAQ phrasing: one line, bounded."""
    return " ".join(question.split())[:500]


def _short(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def _ids(form: MultiDictProxy[Any]) -> list[int]:
    out = []
    for value in form.getall("review_id", []):
        ident = _ident(value) if isinstance(value, str) else None
        if ident is not None:
            out.append(ident)
    return out


@dataclass(frozen=True, slots=True)
class Paging:
    page: int
    pages: int
    total: int
    prev_url: str | None
    next_url: str | None


def _paging(path: str, params: Mapping[str, str], page: int, total: int, size: int) -> Paging:
    pages = max(1, -(-total // size))

    def url(n: int) -> str:
        return path + "?" + urlencode({**{k: v for k, v in params.items() if v}, "page": n})

    return Paging(
        page,
        pages,
        total,
        url(page - 1) if page > 1 else None,
        url(page + 1) if page < pages else None,
    )


#: Snapshot counts charted on an announcement's page (X public_metrics).
METRIC_NAMES = ("likes", "reposts", "replies", "quotes", "impressions", "bookmarks")


class Login:
    """The login form, logging in and out."""

    def __init__(
        self, deps: DashboardDeps, pages: Pages, users: UserStore, limiter: LoginLimiter
    ) -> None:
        self._deps = deps
        self._pages = pages
        self._users = users
        self._limiter = limiter

    def _form(
        self, request: web.Request, status: int, error: str | None, name: str, target: str
    ) -> web.Response:
        token = secrets.token_urlsafe(24)
        response = self._pages.render(
            request,
            "login.html",
            status=status,
            login_csrf=token,
            error=error,
            name=name,
            next=target,
        )
        set_login_csrf(response, token, self._deps.settings.secure_cookie)
        return response

    async def form(self, request: web.Request) -> web.Response:
        """GET /login"""
        return self._form(request, 200, None, "", _safe_next(request.query.get("next")))

    async def submit(self, request: web.Request) -> web.StreamResponse:
        """POST /login: rate-limited, CSRF-checked, audited."""
        form = await request.post()
        name = _field(form, "name", 100)
        password = form.get("password", "")
        password = password if isinstance(password, str) else ""
        target = _safe_next(form.get("next"))
        given = form.get(CSRF_FIELD)
        if not same_token(
            given if isinstance(given, str) else None, request.cookies.get(LOGIN_CSRF_COOKIE)
        ):
            return self._form(
                request, 403, "The login form expired; please try again.", name, target
            )
        address = client_address(request, self._deps.trusted_proxies)
        audit = self._deps.audit
        # Only names of real users go into the audit log or the limiter's keys: what was
        # typed could be a password. Unknown names are limited by address alone.
        known = bool(name) and await self._users.exists(name)
        actor = f"dashboard:{name}" if known else "dashboard:?"
        attempt = await self._limiter.begin(address, name.strip().lower() if known else None)
        if not attempt.allowed:
            await audit.record(
                actor,
                "dashboard.login",
                allowed=False,
                detail=f"rate limited, from {address}",
            )
            minutes = max(1, round(attempt.wait / 60))
            response = self._form(
                request,
                429,
                f"Too many failed logins; try again in {minutes} minute"
                + ("s." if minutes != 1 else "."),
                name,
                target,
            )
            response.headers["Retry-After"] = str(int(attempt.wait) + 1)
            return response
        user = await self._users.authenticate(name, password) if name and password else None
        if user is None:
            await audit.record(
                actor,
                "dashboard.login",
                allowed=False,
                detail=f"wrong name or password, from {address}",
            )
            return self._form(request, 401, "Wrong user name or password.", name, target)
        await self._limiter.succeeded(attempt)
        token, _ = await self._users.open_session(
            user.id, timedelta(hours=self._deps.settings.session_hours)
        )
        await audit.record(f"dashboard:{user.name}", "dashboard.login", detail=f"from {address}")
        response = web.Response(status=303, headers={"Location": target})
        set_session_cookie(response, token, self._deps.settings.secure_cookie)
        response.del_cookie(LOGIN_CSRF_COOKIE, path=COOKIE_PATH)
        return response

    async def logout(self, request: web.Request) -> web.StreamResponse:
        """POST /logout"""
        token = request.cookies.get(SESSION_COOKIE)
        if token:
            await self._users.close_session(token)
        await self._deps.audit.record(_actor(request), "dashboard.logout")
        response = web.Response(status=303, headers={"Location": "/dashboard/login"})
        response.del_cookie(SESSION_COOKIE, path=COOKIE_PATH)
        return response


class Views:
    """Every page behind the login."""

    def __init__(self, deps: DashboardDeps, pages: Pages) -> None:
        self._deps = deps
        self._pages = pages
        self._queries = DashboardQueries(deps.db)
        self._size = deps.settings.page_size

    # --- overview -----------------------------------------------------------------------

    @requires("view")
    async def overview(self, request: web.Request) -> web.StreamResponse:
        now = utcnow()
        days = await self._queries.questions_per_day(14, now.date())
        top = await self._queries.top_entries(now - timedelta(days=30))
        reviews = await self._queries.open_reviews()
        attention = await self._queries.needing_person()
        return self._pages.render(
            request,
            "overview.html",
            page="overview",
            daily=charts.questions_per_day([(d.day, d.answered, d.declined) for d in days]),
            top=charts.top_entries(top),
            answered=sum(d.answered for d in days),
            declined=sum(d.declined for d in days),
            open_reviews=len(reviews),
            attention=attention,
        )

    # --- engagement log -----------------------------------------------------------------

    def _log_filter(self, query: Mapping[str, str]) -> tuple[LogFilter, dict[str, str], str | None]:
        params = {
            k: query.get(k, "").strip()[:200]
            for k in ("platform", "kind", "user", "channel", "since", "until", "q")
        }
        error = None
        since = until = None
        try:
            if params["since"]:
                since = datetime.combine(date.fromisoformat(params["since"]), time(0), UTC)
            if params["until"]:
                last = date.fromisoformat(params["until"])
                # The end of the last day; none at all for the last day there is.
                if last < date.max:
                    until = datetime.combine(last + timedelta(days=1), time(0), UTC)
        except ValueError:
            error = "Cannot read the date; use YYYY-MM-DD (e.g. 2026-11-23)."
        flt = LogFilter(
            since=since,
            until=until,
            platform=params["platform"] or None,
            kind=params["kind"] or None,
            user=params["user"] or None,
            channel=params["channel"] or None,
            search=params["q"] or None,
            newest_first=True,
        )
        return flt, params, error

    @requires("view")
    async def log(self, request: web.Request) -> web.StreamResponse:
        flt, params, error = self._log_filter(request.query)
        page = _page(request.query)
        events: Sequence[EngagementEvent] = []
        total = 0
        if error is None:
            total = await self._deps.engagement.count(flt)
            events = await self._deps.engagement.list(
                replace(flt, limit=self._size, offset=(page - 1) * self._size)
            )
        # An answer or decline row shows the question it replied to; the reply is a click away.
        asked = await self._deps.engagement.questions_for(
            e.ref for e in events if e.kind in OUTCOME_KINDS and e.ref
        )
        export = "/dashboard/log.csv?" + urlencode({k: v for k, v in params.items() if v})
        return self._pages.render(
            request,
            "log.html",
            status=400 if error else 200,
            page="log",
            error=error,
            params=params,
            kinds=EVENT_KINDS,
            platform_names=self._deps.platforms,
            rows=[(e, message_link(e, self._deps.links), asked.get(e.ref or "")) for e in events],
            paging=_paging("/dashboard/log", params, page, total, self._size),
            export_url=export,
            pseudonymized=self._deps.pseudonymized,
        )

    @requires("view")
    async def log_csv(self, request: web.Request) -> web.StreamResponse:
        flt, _, error = self._log_filter(request.query)
        if error:
            raise web.HTTPBadRequest(text=error)
        events = await self._deps.engagement.list(replace(flt, limit=EXPORT_LIMIT))
        records = (log_record(e, self._deps.links) for e in events)
        rows = ([record[c] for c in LOG_COLUMNS] for record in records)
        return csv_response("engagement-log.csv", LOG_COLUMNS, rows)

    # --- announcements ------------------------------------------------------------------

    @requires("view")
    async def announcements(self, request: web.Request) -> web.StreamResponse:
        page = _page(request.query)
        total = await self._queries.announcement_count()
        items = await self._queries.announcements(self._size, (page - 1) * self._size)
        engagement = await self._queries.engagement_counts([a.id for a in items])
        return self._pages.render(
            request,
            "announcements.html",
            page="announcements",
            items=items,
            engagement=engagement,
            needs_person=NEEDS_PERSON,
            paging=_paging("/dashboard/announcements", {}, page, total, self._size),
        )

    @requires("view")
    async def announcements_csv(self, request: web.Request) -> web.StreamResponse:
        items = await self._queries.announcements(EXPORT_LIMIT, 0)
        engagement = await self._queries.engagement_counts([a.id for a in items])
        header = (
            "id",
            "created_at",
            "due_at",
            "status",
            "author",
            "platform",
            "state",
            "attempts",
            "sent_at",
            "url",
            "error",
            "engagement",
            "text",
        )
        rows = [
            (
                a.id,
                a.created_at.isoformat(timespec="seconds"),
                a.due_at.isoformat(timespec="seconds") if a.due_at else None,
                a.status,
                a.author,
                d.platform,
                d.state,
                d.attempts,
                d.sent_at.isoformat(timespec="seconds") if d.sent_at else None,
                d.url,
                d.error,
                engagement.get(a.id, 0),
                a.text,
            )
            for a in items
            for d in a.deliveries
        ] + [
            (
                a.id,
                a.created_at.isoformat(timespec="seconds"),
                a.due_at.isoformat(timespec="seconds") if a.due_at else None,
                a.status,
                a.author,
                None,
                None,
                None,
                None,
                None,
                None,
                engagement.get(a.id, 0),
                a.text,
            )
            for a in items
            if not a.deliveries
        ]
        return csv_response("announcements.csv", header, rows)

    async def _announcement_data(self, request: web.Request) -> tuple[Any, dict[str, Any]]:
        ident = request.match_info["ident"]
        announcement = await self._deps.announcements.get(_ident(ident) or 0)
        if announcement is None:
            raise web.HTTPNotFound(text=f"There is no announcement #{ident}.")
        points = await self._queries.engagement_of(announcement.id)
        platforms = sorted(
            {d.platform for d in announcement.deliveries} | {p.platform for p in points}
        )
        table: dict[str, Counter[str]] = {p: Counter() for p in platforms}
        series: dict[str, list[datetime]] = defaultdict(list)
        for point in points:
            table[point.platform][point.kind] += 1
            series[point.platform].append(point.at)
        for platform in platforms:
            series.setdefault(platform, [])
        sent = [d.sent_at for d in announcement.deliveries if d.sent_at]
        start = min(sent) if sent else None
        snapshots = await self._queries.metrics_of(announcement.id)
        values: dict[str, list[tuple[datetime, float]]] = defaultdict(list)
        for platform, at, detail in snapshots:
            for name, value in detail.items():
                if name in METRIC_NAMES and isinstance(value, int | float):
                    values[f"{platform} {name}"].append((at, float(value)))
        latest = {name: points[-1][1] for name, points in values.items()}
        return announcement, {
            "platforms": platforms,
            "table": table,
            "kinds": ("reaction", "reply", "question", "feedback"),
            "chart": charts.engagement_curves(series, start, utcnow()),
            "metrics_chart": charts.metric_curves(values, start, utcnow()) if values else None,
            "metrics_latest": latest,
        }

    @requires("view")
    async def announcement(self, request: web.Request) -> web.StreamResponse:
        announcement, data = await self._announcement_data(request)
        return self._pages.render(
            request,
            "announcement.html",
            page="announcements",
            a=announcement,
            needs_person=NEEDS_PERSON,
            **data,
        )

    @requires("view")
    async def announcement_csv(self, request: web.Request) -> web.StreamResponse:
        announcement, data = await self._announcement_data(request)
        header = ("platform", *data["kinds"], "total")
        rows = [
            (p, *(data["table"][p][k] for k in data["kinds"]), sum(data["table"][p].values()))
            for p in data["platforms"]
        ]
        return csv_response(f"announcement-{announcement.id}-engagement.csv", header, rows)

    @requires("view")
    async def metrics_csv(self, request: web.Request) -> web.StreamResponse:
        """An announcement's platform metrics: every snapshot, oldest first."""
        announcement, _ = await self._announcement_data(request)
        header = ("platform", "at", "step", *METRIC_NAMES)
        rows = [
            (
                platform,
                at.isoformat(timespec="seconds"),
                detail.get("step", ""),
                *(detail.get(name, "") for name in METRIC_NAMES),
            )
            for platform, at, detail in await self._queries.metrics_of(announcement.id)
        ]
        return csv_response(f"announcement-{announcement.id}-metrics.csv", header, rows)

    @requires("view")
    async def deliveries_csv(self, request: web.Request) -> web.StreamResponse:
        """An announcement's deliveries table."""
        announcement, _ = await self._announcement_data(request)
        header = ("platform", "occurrence", "state", "attempts", "sent_at", "error", "url")
        rows = [
            (
                d.platform,
                d.occurrence,
                d.state,
                d.attempts,
                d.sent_at.isoformat(timespec="seconds") if d.sent_at else "",
                d.error or "",
                d.url or "",
            )
            for d in announcement.deliveries
        ]
        return csv_response(f"announcement-{announcement.id}-deliveries.csv", header, rows)

    @requires("view")
    async def attention_csv(self, request: web.Request) -> web.StreamResponse:
        """The overview's table: failed and unknown deliveries."""
        header = ("announcement_id", "platform", "state", "attempts", "error", "text")
        rows = [
            (a.id, d.platform, d.state, d.attempts, d.error or "", a.text)
            for a, d in await self._queries.needing_person()
        ]
        return csv_response("deliveries-needing-a-person.csv", header, rows)

    @requires("manage_announcements")
    async def announcement_action(self, request: web.Request) -> web.StreamResponse:
        """POST retry / mark-sent: the same actions as ``/announce retry|mark-sent``."""
        ident = request.match_info["ident"]
        action = request.match_info["action"]
        form = await request.post()
        platform = _field(form, "platform", 32)
        back = f"/dashboard/announcements/{ident}"
        if _ident(ident) is None or not _PLATFORM.fullmatch(platform):
            self._pages.flash(request, "error", "Choose a platform of this announcement.")
            raise web.HTTPSeeOther(back)
        user = current_user(request)
        command = SlashCommand(
            where=Conversation("dashboard", "dashboard"),
            author=Author(id=user.name, name=user.name),
            name="announce",
            text=f"{action} {ident} --to {platform}",
        )
        try:
            reply = await self._deps.announce(command)
        except CommandError as exc:
            await self._deps.audit.record(
                _actor(request),
                f"announce.{action}",
                f"#{ident} {platform}",
                allowed=False,
                detail=str(exc),
            )
            self._pages.flash(request, "error", str(exc))
            raise web.HTTPSeeOther(back) from None
        await self._deps.audit.record(
            _actor(request), f"announce.{action}", f"#{ident} {platform}", detail=reply
        )
        self._pages.flash(request, "ok", reply)
        raise web.HTTPSeeOther(back)

    # --- review queue -------------------------------------------------------------------

    @requires("view")
    async def review(self, request: web.Request) -> web.StreamResponse:
        groups = group_reviews(await self._queries.open_reviews())
        entries = await self._deps.faq.all()
        return self._pages.render(
            request,
            "review.html",
            page="review",
            groups=groups,
            entries=entries,
            entry_names={e.id: e.question for e in entries},
            reason_labels=REASON_LABELS,
        )

    @requires("view")
    async def review_csv(self, request: web.Request) -> web.StreamResponse:
        groups = group_reviews(await self._queries.open_reviews())
        header = (
            "group",
            "review_id",
            "created_at",
            "platform",
            "reason",
            "score",
            "closest_entry_id",
            "question",
        )
        rows = [
            (
                n,
                i.id,
                i.created_at.isoformat(timespec="seconds"),
                i.platform,
                i.reason,
                None if i.score is None else round(i.score, 4),
                i.best_entry_id,
                i.question,
            )
            for n, g in enumerate(groups, start=1)
            for i in g.items
        ]
        return csv_response("review-queue.csv", header, rows)

    async def _selected(self, request: web.Request, form: MultiDictProxy[Any]) -> list[ReviewItem]:
        """The open review items whose checkboxes were ticked; none is a one-line error."""
        items = await self._queries.open_reviews_by_id(_ids(form))
        if not items:
            self._pages.flash(
                request, "error", "Select at least one question of the group; nothing changed."
            )
            raise web.HTTPSeeOther("/dashboard/review")
        return list(items)

    async def _close_reviews(
        self, request: web.Request, items: Sequence[ReviewItem], status: str
    ) -> int:
        ids = [item.id for item in items]
        return await self._queries.resolve_reviews(ids, status, _actor(request), utcnow())

    @requires("review")
    async def review_phrasing(self, request: web.Request) -> web.StreamResponse:
        """Each selected question becomes a phrasing of the chosen entry (a group's, or one
        question's own button); the selected questions are resolved."""
        form = await request.post()
        # The one-click button of a group whose asker picked a suggestion names that entry.
        chosen = _field(form, "picked_entry_id", 20) or _field(form, "entry_id", 20)
        entry = await self._deps.faq.get(_ident(chosen) or 0)
        if entry is None:
            self._pages.flash(request, "error", "Choose an FAQ entry; nothing changed.")
            raise web.HTTPSeeOther("/dashboard/review")
        items = await self._selected(request, form)
        phrasings = list(dict.fromkeys(_phrasing(item.question) for item in items))
        for phrasing in phrasings:
            await self._deps.faq.add_phrasing(entry.id, phrasing)
        closed = await self._close_reviews(request, items, "resolved")
        await self._deps.knowledge.reload()
        await self._deps.audit.record(
            _actor(request),
            "faq.add_phrasing",
            f"entry {entry.id} ({entry.slug})",
            detail=f"{phrasings!r}; {closed} review item(s) resolved",
        )
        added = (
            f"\u201c{_short(phrasings[0])}\u201d"
            if len(phrasings) == 1
            else f"{len(phrasings)} questions"
        )
        self._pages.flash(
            request,
            "ok",
            f"Added {added} as a phrasing of \u201c{entry.question}\u201d; "
            "the bot answers it from now on.",
        )
        raise web.HTTPSeeOther("/dashboard/review")

    @requires("review")
    async def review_create(self, request: web.Request) -> web.StreamResponse:
        """A new FAQ entry whose phrasings are the selected questions."""
        form = await request.post()
        items = await self._selected(request, form)
        entry = await self._save_entry(
            request,
            form,
            None,
            extra_phrasings=[_phrasing(item.question) for item in items],
            back="/dashboard/review",
        )
        closed = await self._close_reviews(request, items, "resolved")
        await self._deps.audit.record(
            _actor(request),
            "faq.create",
            f"entry {entry.id} ({entry.slug})",
            detail=f"from the review queue; {closed} review item(s) resolved",
        )
        self._pages.flash(
            request,
            "ok",
            f"Created FAQ entry \u201c{entry.question}\u201d; the bot answers it from now on.",
        )
        raise web.HTTPSeeOther("/dashboard/review")

    @requires("review")
    async def review_dismiss(self, request: web.Request) -> web.StreamResponse:
        """The selected questions need nothing."""
        form = await request.post()
        closed = await self._close_reviews(
            request, await self._selected(request, form), "dismissed"
        )
        await self._deps.audit.record(
            _actor(request), "review.dismiss", detail=f"{closed} review item(s)"
        )
        self._pages.flash(request, "ok", f"Dismissed {closed} question(s).")
        raise web.HTTPSeeOther("/dashboard/review")

    # --- FAQ editor ---------------------------------------------------------------------

    async def _save_entry(
        self,
        request: web.Request,
        form: MultiDictProxy[Any],
        existing: FaqEntry | None,
        *,
        extra_phrasings: Sequence[str] = (),
        back: str,
    ) -> FaqEntry:
        """Validate the form as the FAQ file format does, store it, re-index the bot."""
        question = " ".join(_field(form, "question", 1000).split())
        phrasings = [
            " ".join(line.split())
            for line in _field(form, "phrasings", 20_000).splitlines()
            if line.strip()
        ]
        for extra in extra_phrasings:
            if extra and extra != question and extra not in phrasings:
                phrasings.append(extra)
        tags = [t.strip() for t in _field(form, "tags", 1000).split(",") if t.strip()]
        raw: dict[str, Any] = {
            "slug": existing.slug if existing else await self._free_slug(question),
            "question": question,
            "answer": _field(form, "answer", 10_000),
            "phrasings": phrasings[:50],
            "tags": tags,
        }
        if _field(form, "source_url", 2000):
            raw["source_url"] = _field(form, "source_url", 2000)
        if _field(form, "as_of", 20):
            raw["as_of"] = _field(form, "as_of", 20)
        try:
            record = validate_records([raw])[0]
        except FaqImportError as exc:
            problem = exc.problems[0].removeprefix("entry 1: ")
            self._pages.flash(request, "error", f"Not saved: {problem}.".replace("..", "."))
            raise web.HTTPSeeOther(back) from None
        await self._deps.faq.upsert([record])
        await self._deps.knowledge.reload()
        return next(e for e in await self._deps.faq.all() if e.slug == record.slug)

    async def _free_slug(self, question: str) -> str:
        taken = {e.slug for e in await self._deps.faq.all()}
        base = slugify(question)
        slug, n = base, 2
        while slug in taken:
            slug, n = f"{base}-{n}", n + 1
        return slug

    @requires("view")
    async def faq(self, request: web.Request) -> web.StreamResponse:
        entries = await self._deps.faq.all()
        return self._pages.render(request, "faq.html", page="faq", entries=entries)

    @requires("view")
    async def faq_csv(self, request: web.Request) -> web.StreamResponse:
        entries = await self._deps.faq.all()
        header = (
            "id",
            "slug",
            "question",
            "phrasings",
            "answer",
            "tags",
            "source_url",
            "as_of",
            "updated_at",
        )
        rows = [
            (
                e.id,
                e.slug,
                e.question,
                " | ".join(e.phrasings),
                e.answer,
                ", ".join(e.tags),
                e.source_url,
                e.as_of.isoformat() if e.as_of else None,
                e.updated_at.isoformat(timespec="seconds"),
            )
            for e in entries
        ]
        return csv_response("faq.csv", header, rows)

    async def _entry(self, request: web.Request) -> FaqEntry:
        ident = request.match_info["ident"]
        entry = await self._deps.faq.get(_ident(ident) or 0)
        if entry is None:
            raise web.HTTPNotFound(text=f"There is no FAQ entry #{ident}.")
        return entry

    @requires("view")
    async def faq_entry(self, request: web.Request) -> web.StreamResponse:
        entry = None if request.match_info.get("ident") is None else await self._entry(request)
        return self._pages.render(request, "faq_edit.html", page="faq", entry=entry)

    @requires("edit_faq")
    async def faq_save(self, request: web.Request) -> web.StreamResponse:
        existing = None if request.match_info.get("ident") is None else await self._entry(request)
        back = f"/dashboard/faq/{existing.id}" if existing else "/dashboard/faq/new"
        form = await request.post()
        entry = await self._save_entry(request, form, existing, back=back)
        await self._deps.audit.record(
            _actor(request),
            "faq.update" if existing else "faq.create",
            f"entry {entry.id} ({entry.slug})",
        )
        self._pages.flash(
            request, "ok", f"Saved \u201c{entry.question}\u201d; the bot uses it now."
        )
        raise web.HTTPSeeOther(f"/dashboard/faq/{entry.id}")

    @requires("edit_faq")
    async def faq_delete(self, request: web.Request) -> web.StreamResponse:
        entry = await self._entry(request)
        await self._deps.faq.delete(entry.id)
        await self._deps.knowledge.reload()
        await self._deps.audit.record(
            _actor(request), "faq.delete", f"entry {entry.id} ({entry.slug})", detail=entry.question
        )
        self._pages.flash(request, "ok", f"Deleted \u201c{entry.question}\u201d.")
        raise web.HTTPSeeOther("/dashboard/faq")

    # --- audit log ----------------------------------------------------------------------

    @requires("audit")
    async def audit(self, request: web.Request) -> web.StreamResponse:
        page = _page(request.query)
        total = await self._deps.audit.count()
        rows = await self._deps.audit.list(self._size, (page - 1) * self._size)
        return self._pages.render(
            request,
            "audit.html",
            page="audit",
            rows=rows,
            paging=_paging("/dashboard/audit", {}, page, total, self._size),
        )

    @requires("audit")
    async def audit_csv(self, request: web.Request) -> web.StreamResponse:
        rows = await self._deps.audit.list(EXPORT_LIMIT)
        header = ("id", "created_at", "actor", "action", "target", "allowed", "detail")
        return csv_response(
            "audit-log.csv",
            header,
            (
                (
                    r.id,
                    r.created_at.isoformat(timespec="seconds"),
                    r.actor,
                    r.action,
                    r.target,
                    r.allowed,
                    r.detail,
                )
                for r in rows
            ),
        )


async def _stylesheet(_request: web.Request) -> web.StreamResponse:
    from importlib import resources

    css = resources.files("bot.dashboard").joinpath("static/dashboard.css").read_bytes()
    return web.Response(
        body=css,
        headers={"Content-Type": "text/css; charset=utf-8", "Cache-Control": "max-age=3600"},
    )


def add_routes(app: web.Application, deps: DashboardDeps, pages: Pages) -> None:
    """Register every page and action on the dashboard application."""
    views = Views(deps, pages)
    r = app.router
    r.add_get("/static/dashboard.css", _stylesheet)
    r.add_get("/", views.overview)
    r.add_get("/log", views.log)
    r.add_get("/log.csv", views.log_csv)
    r.add_get("/announcements", views.announcements)
    r.add_get("/announcements.csv", views.announcements_csv)
    r.add_get(r"/announcements/{ident:\d+}", views.announcement)
    r.add_get(r"/announcements/{ident:\d+}.csv", views.announcement_csv)
    r.add_get(r"/announcements/{ident:\d+}/deliveries.csv", views.deliveries_csv)
    r.add_get(r"/announcements/{ident:\d+}/metrics.csv", views.metrics_csv)
    r.add_get("/attention.csv", views.attention_csv)
    r.add_post(r"/announcements/{ident:\d+}/{action:retry|mark-sent}", views.announcement_action)
    r.add_get("/review", views.review)
    r.add_get("/review.csv", views.review_csv)
    r.add_post("/review/phrasing", views.review_phrasing)
    r.add_post("/review/create", views.review_create)
    r.add_post("/review/dismiss", views.review_dismiss)
    r.add_get("/faq", views.faq)
    r.add_get("/faq.csv", views.faq_csv)
    r.add_get("/faq/new", views.faq_entry)
    r.add_post("/faq/new", views.faq_save)
    r.add_get(r"/faq/{ident:\d+}", views.faq_entry)
    r.add_post(r"/faq/{ident:\d+}", views.faq_save)
    r.add_post(r"/faq/{ident:\d+}/delete", views.faq_delete)
    r.add_get("/audit", views.audit)
    r.add_get("/audit.csv", views.audit_csv)
