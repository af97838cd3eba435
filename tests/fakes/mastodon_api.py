"""A fake Mastodon instance on 127.0.0.1: the endpoints the bot calls through Mastodon.py.

``GET /api/v1/accounts/verify_credentials``, ``GET /api/v2/instance`` (the character limit),
``POST /api/v1/statuses`` (honouring ``Idempotency-Key`` as Mastodon does: a repeated key
returns the status the first request made), ``GET``/``DELETE /api/v1/statuses/{id}`` (with
favourite, boost and reply counts) and ``GET /api/v1/notifications`` (mentions, newest first,
``max_id``/``since_id``/``limit`` paging). Every request is recorded and its bearer token
checked (a wrong one gets 401). Failures can be scripted per route; a post can be answered
too late for the client, after it was made (:meth:`FakeMastodon.time_out`). Rate-limit headers
come with every answer, as Mastodon sends them.
"""

from __future__ import annotations

import html
import itertools
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from tests.fakes.server import ScriptedRoutes, serving

TOKEN = "mastodon-test-token"
BOT_ID = "109000000000000001"
BOT_HANDLE = "foundationbot"
READER_ID = "109000000000000042"


def account(account_id: str, username: str, *, bot: bool = False) -> dict[str, Any]:
    """An account as Mastodon returns it (the fields Mastodon.py reads)."""
    return {
        "id": account_id,
        "username": username,
        "acct": username,
        "display_name": username,
        "url": f"https://fake.social/@{username}",
        "bot": bot,
        "locked": False,
        "created_at": "2024-01-01T00:00:00.000Z",
        "note": "",
        "avatar": "",
        "header": "",
        "followers_count": 0,
        "following_count": 0,
        "statuses_count": 0,
        "fields": [],
        "emojis": [],
    }


@dataclass
class Call:
    method: str
    path: str
    form: dict[str, Any]
    headers: dict[str, str]
    status: int = 200


@dataclass
class FakeMastodon(ScriptedRoutes):
    """The fake's state: statuses, notifications, recorded calls; failures are scripted per
    route (``post``, ``delete``, ``status``, ``notifications``, ``me``, ``instance``)."""

    max_characters: int = 500
    calls: list[Call] = field(default_factory=list)
    statuses: dict[str, dict[str, Any]] = field(default_factory=dict)
    deleted: set[str] = field(default_factory=set)
    notifications: list[dict[str, Any]] = field(default_factory=list)
    _keys: dict[str, str] = field(default_factory=dict)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    # --- test helpers --------------------------------------------------------------------

    def calls_to(self, route: str) -> list[Call]:
        return [c for c in self.calls if _route(c.method, c.path) == route]

    def posted(self) -> list[dict[str, Any]]:
        """Statuses the bot made that still exist, oldest first."""
        return [s for i, s in self.statuses.items() if i not in self.deleted]

    def mention(
        self,
        text: str,
        *,
        author: str = READER_ID,
        username: str = "reader",
        in_reply_to: str | None = None,
        to_bot: bool = True,
    ) -> dict[str, Any]:
        """A status by ``author`` that notifies the bot (a mention), as HTML like Mastodon's."""
        status_id = self._snowflake()
        handle = (
            f'<span class="h-card"><a href="https://fake.social/@{BOT_HANDLE}" '
            f'class="u-url mention">@<span>{BOT_HANDLE}</span></a></span> '
            if to_bot
            else ""
        )
        status = self._status(
            status_id,
            f"<p>{handle}{html.escape(text)}</p>",
            account(author, username),
            in_reply_to=in_reply_to,
        )
        notification = {
            "id": str(next(self._ids) + 1000),
            "type": "mention",
            "created_at": status["created_at"],
            "account": status["account"],
            "status": status,
        }
        self.notifications.append(notification)
        return status

    # --- the API -------------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.Response:
        form: dict[str, Any] = {}
        if request.method in ("POST", "PUT"):
            if request.content_type == "application/json":
                form = dict(await request.json())
            else:
                form = dict(await request.post())
        call = Call(request.method, request.path, form, dict(request.headers))
        self.calls.append(call)
        self.touched()
        route = _route(request.method, request.path)
        response = self._answer(route, request, form)
        call.status = response.status
        await self.answer_late(route)
        return response

    def _answer(self, route: str, request: web.Request, form: dict[str, Any]) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return _json({"error": "The access token is invalid"}, 401)
        scripted = self.scripted_answer(route, _json)
        if scripted is not None:
            return scripted
        if route == "me":
            return _json(account(BOT_ID, BOT_HANDLE, bot=True))
        if route == "instance":
            return _json(
                {
                    "domain": "fake.social",
                    "title": "Fake",
                    "version": "4.3.0",
                    "configuration": {
                        "statuses": {
                            "max_characters": self.max_characters,
                            "characters_reserved_per_url": 23,
                        }
                    },
                }
            )
        if route == "post":
            return self._post(request, form)
        status_id = request.path.rsplit("/", 1)[-1]
        if route in ("status", "delete"):
            found = self.statuses.get(status_id)
            if found is None or status_id in self.deleted:
                return _json({"error": "Record not found"}, 404)
            if route == "delete":
                self.deleted.add(status_id)
            return _json(found)
        if route == "notifications":
            return self._notifications(request)
        return _json({"error": "not found"}, 404)

    def _post(self, request: web.Request, form: dict[str, Any]) -> web.Response:
        key = request.headers.get("Idempotency-Key")
        if key and key in self._keys:
            return _json(self.statuses[self._keys[key]])
        text = str(form.get("status") or "")
        if len(text) > self.max_characters:
            return _json({"error": "Validation failed: Text character limit exceeded"}, 422)
        status_id = self._snowflake()
        status = self._status(
            status_id,
            f"<p>{html.escape(text)}</p>",
            account(BOT_ID, BOT_HANDLE, bot=True),
            in_reply_to=str(form["in_reply_to_id"]) if form.get("in_reply_to_id") else None,
            visibility=str(form.get("visibility") or "public"),
        )
        status["text"] = text  # for tests; Mastodon itself returns only HTML
        self.statuses[status_id] = status
        if key:
            self._keys[key] = status_id
        return _json(status)

    def _notifications(self, request: web.Request) -> web.Response:
        query = request.query
        found = [n for n in reversed(self.notifications)]  # newest first
        if "max_id" in query:
            found = [n for n in found if int(n["id"]) < int(query["max_id"])]
        if "since_id" in query:
            found = [n for n in found if int(n["id"]) > int(query["since_id"])]
        types = query.getall("types[]", [])
        if types:
            found = [n for n in found if n["type"] in types]
        limit = int(query.get("limit", "40"))
        return _json(found[:limit])

    def _snowflake(self) -> str:
        return str(int(time.time() * 1000) << 16 | next(self._ids))

    def _status(
        self,
        status_id: str,
        content: str,
        author: dict[str, Any],
        *,
        in_reply_to: str | None = None,
        visibility: str = "public",
    ) -> dict[str, Any]:
        return {
            "id": status_id,
            "uri": f"https://fake.social/users/{author['username']}/statuses/{status_id}",
            "url": f"https://fake.social/@{author['username']}/{status_id}",
            "created_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            "content": content,
            "visibility": visibility,
            "sensitive": False,
            "spoiler_text": "",
            "account": author,
            "in_reply_to_id": in_reply_to,
            "in_reply_to_account_id": (
                self.statuses[in_reply_to]["account"]["id"]
                if in_reply_to in self.statuses
                else None
            ),
            "media_attachments": [],
            "mentions": [],
            "tags": [],
            "emojis": [],
            "reblogs_count": 0,
            "favourites_count": 0,
            "replies_count": 0,
            "reblog": None,
        }


def _route(method: str, path: str) -> str:
    path = path.rstrip("/")
    if path == "/api/v1/accounts/verify_credentials":
        return "me"
    if path == "/api/v2/instance":
        return "instance"
    if path == "/api/v1/statuses" and method == "POST":
        return "post"
    if path.startswith("/api/v1/statuses/"):
        return "delete" if method == "DELETE" else "status"
    if path == "/api/v1/notifications":
        return "notifications"
    return "other"


def _json(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    limits = {
        "X-RateLimit-Limit": "300",
        "X-RateLimit-Remaining": "299",
        "X-RateLimit-Reset": datetime.fromtimestamp(time.time() + 300, UTC).isoformat(),
    }
    return web.json_response(payload, status=status, headers={**limits, **(headers or {})})


@asynccontextmanager
async def fake_mastodon() -> AsyncIterator[FakeMastodon]:
    """Run the fake on a free port."""
    fake = FakeMastodon()
    app = web.Application()
    app.router.add_route("*", "/{path:.*}", fake.handle)
    async with serving(fake, app):
        yield fake
