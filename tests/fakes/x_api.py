"""A fake X API v2 on 127.0.0.1: the endpoints the bot calls through tweepy.

``POST /2/tweets``, ``DELETE /2/tweets/{id}``, ``GET /2/users/me``, the mentions timeline
``GET /2/users/{id}/mentions`` (since_id, start_time, pagination), the account's own posts
``GET /2/users/{id}/tweets`` (start_time, pagination; text HTML-escaped like X's, and new posts
only visible after ``timeline_lag`` seconds) and the post lookup ``GET /2/tweets?ids=`` with
``public_metrics``. Every request is recorded, and its OAuth 1.0a
header is checked the way X checks it: the HMAC-SHA1 signature is recomputed over the
``https://api.twitter.com`` URL with the known secrets; a bad one gets 401. Failures can be
scripted for the n-th call of an endpoint, and so can an answer that comes too late for the
client (:meth:`FakeX.time_out`), with or without the post created. Like X, it refuses a post
whose text the account already posted (403 duplicate content), so a double post cannot go
unnoticed.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import html
import itertools
import json
import random
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from oauthlib.oauth1.rfc5849 import signature, utils  # type: ignore[import-untyped]

from tests.fakes.server import FakeServer, serving

API_KEY = "test-api-key"
API_SECRET = "test-api-secret"
BOT_ID = "1500"
ACCESS_TOKEN = f"{BOT_ID}-test-access-token"
ACCESS_TOKEN_SECRET = "test-access-token-secret"
BOT_HANDLE = "foundationbot"
#: What tweepy signs: the host is hard-coded there.
SIGNED_BASE = "https://api.twitter.com"

DUPLICATE_BODY = {
    "detail": "You are not allowed to create a Tweet with duplicate content.",
    "type": "about:blank",
    "title": "Forbidden",
    "status": 403,
}
NOT_ENROLLED_BODY = {
    "client_id": "123",
    "detail": "When authenticating requests to the Twitter API v2 endpoints, you must use keys "
    "and tokens from a Twitter developer App that is attached to a Project. You can create a "
    "project via the developer portal.",
    "registration_url": "https://developer.twitter.com/en/docs/projects/overview",
    "title": "Client Forbidden",
    "required_enrollment": "Appropriate Level of API Access",
    "reason": "client-not-enrolled",
    "type": "https://api.twitter.com/2/problems/client-forbidden",
}
READ_ONLY_BODY = {
    "title": "Forbidden",
    "status": 403,
    "detail": "Your client app is not configured with the appropriate oauth1 app permissions "
    "for this endpoint.",
    "type": "https://api.twitter.com/2/problems/oauth1-permissions",
}
USAGE_CAP_BODY = {
    "title": "UsageCapExceeded",
    "period": "Monthly",
    "scope": "Product",
    "detail": "Usage cap exceeded: Monthly product cap",
    "type": "https://api.twitter.com/2/problems/usage-capped",
}
SERVER_ERROR_BODY = {"title": "Service Unavailable", "detail": "Service Unavailable", "status": 503}
RATE_LIMIT_BODY = {"title": "Too Many Requests", "detail": "Too Many Requests", "status": 429}


def rate_limit_headers(reset: int) -> dict[str, str]:
    """The headers of a 429 whose 15-minute window resets at Unix time ``reset``."""
    return {
        "x-rate-limit-limit": "100",
        "x-rate-limit-remaining": "0",
        "x-rate-limit-reset": str(reset),
    }


@dataclass
class Call:
    """One request as the fake saw it."""

    route: str
    method: str
    path: str
    query: dict[str, str]
    json: dict[str, Any] | None
    headers: dict[str, str]
    at: float
    oauth: dict[str, str]
    signed: bool
    status: int = 0


@dataclass
class FakeX(FakeServer):
    """The fake's state: posts, mentions, metrics, recorded calls and scripted failures."""

    calls: list[Call] = field(default_factory=list)
    posts: dict[str, dict[str, Any]] = field(default_factory=dict)
    deleted: set[str] = field(default_factory=set)
    users: dict[str, str] = field(default_factory=lambda: {BOT_ID: BOT_HANDLE})
    metrics: dict[str, dict[str, int]] = field(default_factory=dict)
    #: The access level reports no impression counts.
    hide_impressions: bool = False
    #: Ignore since_id (to show that claims alone prevent double replies).
    ignore_since_id: bool = False
    #: route -> seconds to wait before answering (after doing the work, like a slow X).
    stall: dict[str, float] = field(default_factory=dict)
    #: Seconds before a new post shows on the account's own timeline (X's is not instant).
    timeline_lag: float = 0.0
    #: (route, n-th call of it) -> (the work is done first, seconds before answering)
    timeouts: dict[tuple[str, int], tuple[bool, float]] = field(default_factory=dict)
    #: Share of posts and timeline reads that fail at random: 429, 503, or an answer that
    #: comes ``chaos_late`` seconds late (after the post was created, or without it).
    chaos: float = 0.0
    chaos_late: float = 1.0
    rng: random.Random = field(default_factory=lambda: random.Random(0))
    #: (route, n-th call of it) -> (status, body, headers)
    scripted: dict[tuple[str, int], tuple[int, dict[str, Any] | str, dict[str, str]]] = field(
        default_factory=dict
    )
    _ids: itertools.count[int] = field(
        default_factory=lambda: itertools.count(1_860_000_000_000_000_000, 1000)
    )
    _counts: dict[str, int] = field(default_factory=dict)

    # --- test helpers ----------------------------------------------------------------------

    def fail(
        self,
        route: str,
        status: int,
        body: dict[str, Any] | str,
        *,
        call: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        """Answer the ``call``-th request to ``route`` (default: the next) with an error.

        Routes: ``create``, ``delete``, ``me``, ``mentions``, ``timeline``, ``lookup``. A str
        body is sent as text/plain, as a proxy in front of X answers.
        """
        number = call if call is not None else self._counts.get(route, 0) + 1
        self.scripted[(route, number)] = (status, body, headers or {})

    def time_out(
        self, route: str, *, posted: bool, seconds: float, call: int | None = None
    ) -> None:
        """The ``call``-th request to ``route`` (default: the next) answers only after
        ``seconds``, past the client's timeout: ``posted`` = the work is done first (the post
        is up, only the answer is lost); otherwise nothing is done, like a request lost on
        the way (then the late answer is a 503)."""
        number = call if call is not None else self._counts.get(route, 0) + 1
        self.timeouts[(route, number)] = (posted, seconds)

    def calls_to(self, route: str, *, ok: bool | None = None) -> list[Call]:
        """Recorded calls to ``route`` (only successful or failed ones if ``ok`` is given)."""
        found = [c for c in self.calls if c.route == route]
        if ok is not None:
            found = [c for c in found if (200 <= c.status < 300) == ok]
        return found

    def created(self) -> list[dict[str, Any]]:
        """Posts the bot created, in order."""
        return [p for p in self.posts.values() if p["author_id"] == BOT_ID]

    def mention(
        self,
        text: str,
        *,
        author: str = "2001",
        username: str = "alice",
        reply_to: str | None = None,
        created_at: datetime | None = None,
    ) -> str:
        """Someone posts ``text`` (mentioning the bot); returns the post id."""
        post_id = str(next(self._ids))
        self.users[author] = username
        post: dict[str, Any] = {
            "id": post_id,
            "text": text,
            "author_id": author,
            "conversation_id": post_id,
            "created_at": (created_at or datetime.now(UTC))
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "edit_history_tweet_ids": [post_id],
        }
        if reply_to is not None:
            parent = self.posts[reply_to]
            post["conversation_id"] = parent["conversation_id"]
            post["in_reply_to_user_id"] = parent["author_id"]
            post["referenced_tweets"] = [{"type": "replied_to", "id": reply_to}]
        self.posts[post_id] = post
        return post_id

    def replies_to(self, post_id: str) -> list[dict[str, Any]]:
        """The bot's posts replying to ``post_id``."""
        return [p for p in self.created() if p.get("in_reply_to") == post_id]

    # --- the API ---------------------------------------------------------------------------

    def _check_oauth(self, request: web.Request, prefix: str) -> tuple[dict[str, str], bool]:
        auth = request.headers.get("Authorization", "")
        if not auth.startswith("OAuth "):
            return {}, False
        params = {k: utils.unescape(v) for k, v in utils.parse_authorization_header(auth)}
        path = request.raw_path.split("?", 1)[0].removeprefix(prefix)
        uri = SIGNED_BASE + path
        collected = signature.collect_parameters(
            uri_query=request.query_string,
            headers={"Authorization": auth},
            exclude_oauth_signature=True,
        )
        base = signature.signature_base_string(
            request.method,
            signature.base_string_uri(uri),
            signature.normalize_parameters(collected),
        )
        # RFC 5849 §3.4.2, computed here rather than by oauthlib's signer.
        key = f"{utils.escape(API_SECRET)}&{utils.escape(ACCESS_TOKEN_SECRET)}"
        digest = hmac.new(key.encode(), base.encode(), hashlib.sha1).digest()
        expected = base64.b64encode(digest).decode()
        ok = (
            params.get("oauth_consumer_key") == API_KEY
            and params.get("oauth_token") == ACCESS_TOKEN
            and params.get("oauth_signature_method") == "HMAC-SHA1"
            and bool(params.get("oauth_nonce"))
            and bool(params.get("oauth_timestamp"))
            and hmac.compare_digest(expected, params.get("oauth_signature", ""))
        )
        return params, ok

    async def handle(self, route: str, request: web.Request) -> web.Response:
        prefix = request.match_info.get("prefix", "")
        prefix = f"/{prefix}" if prefix else ""
        body = await request.read()
        payload = json.loads(body) if body else None
        oauth, signed = self._check_oauth(request, prefix)
        call = Call(
            route=route,
            method=request.method,
            path=request.path.removeprefix(prefix),
            query=dict(request.query),
            json=payload,
            headers=dict(request.headers),
            at=time.time(),
            oauth=oauth,
            signed=signed,
        )
        self.calls.append(call)
        self._counts[route] = number = self._counts.get(route, 0) + 1
        if self.chaos and route in ("create", "timeline") and self.rng.random() < self.chaos:
            self._misbehave(route, number)
        late = self.timeouts.pop((route, number), None)
        if late is not None and not late[0]:
            self.touched()
            await asyncio.sleep(late[1])
            call.status = 503
            return web.json_response(SERVER_ERROR_BODY, status=503)
        response = self._respond(route, request, payload, number, signed)
        call.status = response.status
        self.touched()
        if late is not None:
            await asyncio.sleep(late[1])
        if self.stall.get(route):
            await asyncio.sleep(self.stall[route])
        return response

    def _misbehave(self, route: str, number: int) -> None:
        kind = self.rng.choice(("429", "503", "late", "lost"))
        if kind == "429":
            self.scripted[(route, number)] = (429, RATE_LIMIT_BODY, {})
        elif kind == "503":
            self.scripted[(route, number)] = (503, SERVER_ERROR_BODY, {})
        else:
            self.timeouts[(route, number)] = (kind == "late", self.chaos_late)

    def _respond(
        self,
        route: str,
        request: web.Request,
        payload: dict[str, Any] | None,
        number: int,
        signed: bool,
    ) -> web.Response:
        if not signed:
            return web.json_response(
                {"title": "Unauthorized", "type": "about:blank", "status": 401,
                 "detail": "Unauthorized"},
                status=401,
            )  # fmt: skip
        scripted = self.scripted.pop((route, number), None)
        if scripted is not None:
            status, body, headers = scripted
            if isinstance(body, str):
                return web.Response(text=body, status=status, headers=headers)
            return web.json_response(body, status=status, headers=headers)
        if route == "me":
            return web.json_response(
                {"data": {"id": BOT_ID, "name": "Foundation Bot", "username": BOT_HANDLE}}
            )
        if route == "create":
            return self._create(payload or {})
        if route == "delete":
            post_id = request.match_info["id"]
            if post_id not in self.posts or post_id in self.deleted:
                return web.json_response(
                    {"title": "Not Found Error", "detail": "Not Found", "status": 404}, status=404
                )
            self.deleted.add(post_id)
            return web.json_response({"data": {"deleted": True}})
        if route == "mentions":
            return self._mentions(request)
        if route == "timeline":
            return self._timeline(request)
        return self._lookup(request)

    def _create(self, payload: dict[str, Any]) -> web.Response:
        text = str(payload.get("text") or "")
        live = [p for p in self.created() if p["id"] not in self.deleted]
        if any(p["text"] == text for p in live):
            return web.json_response(DUPLICATE_BODY, status=403)
        post_id = str(next(self._ids))
        reply_to = (payload.get("reply") or {}).get("in_reply_to_tweet_id")
        parent = self.posts.get(str(reply_to)) if reply_to else None
        self.posts[post_id] = {
            "id": post_id,
            "text": text,
            "author_id": BOT_ID,
            "in_reply_to": reply_to,
            "conversation_id": parent["conversation_id"] if parent else post_id,
            "created_at": datetime.now(UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
        }
        return web.json_response(
            {"data": {"id": post_id, "text": text, "edit_history_tweet_ids": [post_id]}},
            status=201,
        )

    def _mentions(self, request: web.Request) -> web.Response:
        query = request.query
        handle = f"@{self.users[request.match_info['id']]}".lower()
        found = [
            p
            for p in self.posts.values()
            if handle in p["text"].lower() and p["id"] not in self.deleted
        ]
        if query.get("since_id") and not self.ignore_since_id:
            found = [p for p in found if int(p["id"]) > int(query["since_id"])]
        if query.get("start_time"):
            start = datetime.fromisoformat(query["start_time"].replace("Z", "+00:00"))
            found = [
                p
                for p in found
                if datetime.fromisoformat(p["created_at"].replace("Z", "+00:00")) >= start
            ]
        found.sort(key=lambda p: int(p["id"]), reverse=True)
        size = int(query.get("max_results", "10"))
        offset = int(query.get("pagination_token", "0"))
        page = found[offset : offset + size]
        meta: dict[str, Any] = {"result_count": len(page)}
        if page:
            meta["newest_id"], meta["oldest_id"] = page[0]["id"], page[-1]["id"]
        if offset + size < len(found):
            meta["next_token"] = str(offset + size)
        fields = set(query.get("tweet.fields", "").split(","))
        keep = {"id", "text", "edit_history_tweet_ids"} | fields
        data = [{k: v for k, v in p.items() if k in keep} for p in page]
        body: dict[str, Any] = {"meta": meta}
        if data:
            body["data"] = data
            authors = dict.fromkeys(p["author_id"] for p in page)
            body["includes"] = {
                "users": [{"id": a, "name": a, "username": self.users[a]} for a in authors]
            }
        return web.json_response(body)

    def _timeline(self, request: web.Request) -> web.Response:
        """``GET /2/users/{id}/tweets``: the user's posts, newest first."""
        query = request.query
        now = datetime.now(UTC)
        start = (
            datetime.fromisoformat(query["start_time"].replace("Z", "+00:00"))
            if query.get("start_time")
            else None
        )
        found = []
        for post in self.posts.values():
            created = datetime.fromisoformat(post["created_at"].replace("Z", "+00:00"))
            if (
                post["author_id"] != request.match_info["id"]
                or post["id"] in self.deleted
                or (start is not None and created < start)
                or (now - created).total_seconds() < self.timeline_lag
            ):
                continue
            found.append(post)
        found.sort(key=lambda p: int(p["id"]), reverse=True)
        size = int(query.get("max_results", "10"))
        offset = int(query.get("pagination_token", "0"))
        page = found[offset : offset + size]
        meta: dict[str, Any] = {"result_count": len(page)}
        if page:
            meta["newest_id"], meta["oldest_id"] = page[0]["id"], page[-1]["id"]
        if offset + size < len(found):
            meta["next_token"] = str(offset + size)
        fields = set(query.get("tweet.fields", "").split(","))
        data = []
        for post in page:
            # X escapes &, < and > in the text it returns.
            item: dict[str, Any] = {
                "id": post["id"],
                "text": html.escape(post["text"], quote=False),
                "edit_history_tweet_ids": [post["id"]],
            }
            parent = post.get("in_reply_to")
            if parent and "referenced_tweets" in fields:
                item["referenced_tweets"] = [{"type": "replied_to", "id": str(parent)}]
            if parent and "in_reply_to_user_id" in fields:
                item["in_reply_to_user_id"] = self.posts[str(parent)]["author_id"]
            if "created_at" in fields:
                item["created_at"] = post["created_at"]
            data.append(item)
        body: dict[str, Any] = {"meta": meta}
        if data:
            body["data"] = data
        return web.json_response(body)

    def _lookup(self, request: web.Request) -> web.Response:
        ids = [i for i in request.query.get("ids", "").split(",") if i]
        data, errors = [], []
        for post_id in ids:
            post = self.posts.get(post_id)
            if post is None or post_id in self.deleted:
                errors.append(
                    {
                        "value": post_id,
                        "detail": f"Could not find tweet with ids: [{post_id}].",
                        "title": "Not Found Error",
                        "resource_type": "tweet",
                        "parameter": "ids",
                        "resource_id": post_id,
                        "type": "https://api.twitter.com/2/problems/resource-not-found",
                    }
                )
                continue
            counts = {
                "retweet_count": 0,
                "reply_count": 0,
                "like_count": 0,
                "quote_count": 0,
                "bookmark_count": 0,
                "impression_count": 0,
            } | self.metrics.get(post_id, {})
            if self.hide_impressions:
                counts.pop("impression_count", None)
            item: dict[str, Any] = {"id": post_id, "text": post["text"]}
            if "public_metrics" in request.query.get("tweet.fields", ""):
                item["public_metrics"] = counts
            data.append(item)
        body: dict[str, Any] = {}
        if data:
            body["data"] = data
        if errors:
            body["errors"] = errors
        return web.json_response(body)


def _bind(fake: FakeX, route: str) -> Any:
    async def handler(request: web.Request) -> web.Response:
        return await fake.handle(route, request)

    return handler


@asynccontextmanager
async def fake_x() -> AsyncIterator[FakeX]:
    """Run the fake on a free port (also reachable under the path prefix ``/proxy``)."""
    fake = FakeX()
    app = web.Application()
    routes = (
        ("POST", "/2/tweets", "create"),
        ("DELETE", "/2/tweets/{id}", "delete"),
        ("GET", "/2/users/me", "me"),
        ("GET", "/2/users/{id}/mentions", "mentions"),
        ("GET", "/2/users/{id}/tweets", "timeline"),
        ("GET", "/2/tweets", "lookup"),
    )
    for prefix in ("", "/{prefix:proxy}"):
        for method, path, route in routes:
            app.router.add_route(method, prefix + path, _bind(fake, route))
    async with serving(fake, app):
        yield fake
