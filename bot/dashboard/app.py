"""The dashboard's aiohttp application: middlewares, templates and the route table.

Mounted by :func:`bot.web.build_app` under ``/dashboard/`` on the bot's own web server.
Every route but the login page and the stylesheet needs a session; every POST needs the
session's CSRF token; every page is rendered by Jinja2 with autoescaping on.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import jinja2
from aiohttp import web

from announcements.commands import AnnounceCommands
from announcements.store import AnnouncementStore
from bot.answering import Knowledge
from bot.config import DashboardSection
from bot.dashboard.auth import (
    COOKIE_PATH,
    CSRF_FIELD,
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    USER_KEY,
    Handler,
    allowed,
    same_token,
)
from bot.errors import StoreError
from bot.store.db import Database
from bot.store.engagement import AuditTrail, EngagementLog, LinkBuilder
from bot.store.faq import FaqStore
from bot.store.users import LoginLimiter, UserStore

log = logging.getLogger(__name__)

#: Strict by default: no script at all, styles and images only from the dashboard itself.
CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
PUBLIC = ("/dashboard/login", "/dashboard/static/")

NAV = (
    ("overview", "/dashboard/", "Overview", "view"),
    ("log", "/dashboard/log", "Engagement log", "view"),
    ("announcements", "/dashboard/announcements", "Announcements", "view"),
    ("review", "/dashboard/review", "Review queue", "view"),
    ("faq", "/dashboard/faq", "FAQ", "view"),
    ("audit", "/dashboard/audit", "Audit log", "audit"),
)


@dataclass(frozen=True, slots=True)
class DashboardDeps:
    """The collaborators the dashboard works with (the same objects the bot uses)."""

    db: Database
    settings: DashboardSection
    engagement: EngagementLog
    audit: AuditTrail
    faq: FaqStore
    knowledge: Knowledge
    announcements: AnnouncementStore
    announce: AnnounceCommands
    #: Whether engagement user ids are pseudonyms (shown as such).
    pseudonymized: bool = False
    #: Reverse proxies whose X-Forwarded-For is believed (``web.trusted_proxies``).
    trusted_proxies: tuple[str, ...] = ()
    #: Builds a logged message's link from its ids (each platform's rule).
    links: LinkBuilder | None = None
    #: Every supported platform's name (the log's platform filter suggests them).
    platforms: tuple[str, ...] = ()


class Pages:
    """Template rendering and the one-shot messages shown after an action."""

    def __init__(self) -> None:
        self.env = jinja2.Environment(
            loader=jinja2.PackageLoader("bot.dashboard", "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self._flash: dict[str, list[tuple[str, str]]] = {}

    def flash(self, request: web.Request, level: str, text: str) -> None:
        """Show ``text`` on the user's next page."""
        key = request[USER_KEY].csrf_token
        self._flash.setdefault(key, []).append((level, text))

    def render(
        self, request: web.Request, template: str, status: int = 200, **context: Any
    ) -> web.Response:
        """Render a template with the common context (user, navigation, CSRF, messages)."""
        user = request.get(USER_KEY)
        messages = self._flash.pop(user.csrf_token, []) if user else []
        nav = [n for n in NAV if user and allowed(user.role, n[3])]
        html = self.env.get_template(template).render(
            user=user,
            nav=nav,
            csrf=user.csrf_token if user else "",
            messages=messages,
            can=(lambda p: user is not None and allowed(user.role, p)),
            **context,
        )
        return web.Response(text=html, status=status, content_type="text/html", charset="utf-8")


def _error(pages: Pages, request: web.Request, status: int, message: str) -> web.Response:
    return pages.render(request, "error.html", status=status, status_code=status, message=message)


def _middlewares(deps: DashboardDeps, pages: Pages, users: UserStore) -> list[Any]:
    lifetime = timedelta(hours=deps.settings.session_hours)

    @web.middleware
    async def security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
        response = await handler(request)
        response.headers.setdefault("Content-Security-Policy", CSP)
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "same-origin"
        response.headers["X-Frame-Options"] = "DENY"
        if not request.path.startswith("/dashboard/static/"):
            response.headers["Cache-Control"] = "no-store"
        return response

    @web.middleware
    async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
        """No traceback ever reaches a browser: known errors become one-line pages."""
        try:
            return await handler(request)
        except web.HTTPRedirection:
            raise
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            return _error(pages, request, exc.status, exc.text or exc.reason)
        except StoreError as exc:
            log.error("dashboard: %s", exc)
            return _error(pages, request, 503, "The database is unreachable; try again shortly.")
        except Exception:
            log.exception("dashboard request failed path=%s", request.path)
            return _error(pages, request, 500, "Something went wrong; the error was logged.")

    @web.middleware
    async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith(PUBLIC):
            return await handler(request)
        token = request.cookies.get(SESSION_COOKIE)
        session = await users.session_for(token, lifetime) if token else None
        if session is None:
            if request.method == "GET":
                target = request.rel_url.path_qs
                raise web.HTTPSeeOther(
                    request.app.router["login"].url_for().with_query(next=target)
                )
            raise web.HTTPUnauthorized(text="Your session has ended; log in again.")
        request[USER_KEY] = session
        if request.method not in ("GET", "HEAD"):
            form = await request.post()
            given = form.get(CSRF_FIELD)
            if not same_token(given if isinstance(given, str) else None, session.csrf_token):
                raise web.HTTPForbidden(
                    text="This form has expired or came from another site; reload the page "
                    "and try again."
                )
        return await handler(request)

    return [security_headers, errors, authenticate]


def build_dashboard(deps: DashboardDeps) -> web.Application:
    """The dashboard as an aiohttp sub-application (mount it under ``/dashboard``)."""
    from bot.dashboard import views

    pages = Pages()
    users = UserStore(deps.db)
    limiter = LoginLimiter(deps.db, deps.settings.max_failed_logins)
    app = web.Application(middlewares=_middlewares(deps, pages, users))
    login = views.Login(deps, pages, users, limiter)
    app.router.add_get("/login", login.form, name="login")
    app.router.add_post("/login", login.submit)
    app.router.add_post("/logout", login.logout)
    views.add_routes(app, deps, pages)
    return app


def set_session_cookie(response: web.StreamResponse, token: str, secure: bool) -> None:
    """The session cookie: HttpOnly (no script can read it), SameSite=Lax, path-scoped."""
    response.set_cookie(
        SESSION_COOKIE,
        token,
        path=COOKIE_PATH,
        httponly=True,
        samesite="Lax",
        secure=secure,
    )


def set_login_csrf(response: web.StreamResponse, token: str, secure: bool) -> None:
    """Mirror the login form's token in a cookie (double submit: there is no session yet)."""
    response.set_cookie(
        LOGIN_CSRF_COOKIE,
        token,
        path=COOKIE_PATH,
        httponly=True,
        samesite="Strict",
        secure=secure,
        max_age=3600,
    )
