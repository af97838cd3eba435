"""A fake Bluesky PDS and AppView on 127.0.0.1: the XRPC methods the bot calls through atproto.

``com.atproto.server.createSession`` (handle + app password; a session JWT the SDK can read),
``app.bsky.actor.getProfile``, ``com.atproto.identity.resolveHandle``,
``com.atproto.repo.createRecord`` (a client-chosen ``rkey`` that exists already is refused, as
a PDS does), ``getRecord``, ``deleteRecord``, ``app.bsky.notification.listNotifications``
(newest first, cursor paging) and ``app.bsky.feed.getPosts`` (like, repost, reply and quote
counts). Every call is recorded and its bearer token checked. Failures can be scripted per
method; a create can be answered too late for the client, after the record was made.
"""

from __future__ import annotations

import base64
import itertools
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from tests.fakes.server import ScriptedRoutes, serving

HANDLE = "foundationbot.bsky.example"
PASSWORD = "abcd-efgh-ijkl-mnop"
DID = "did:plc:foundationbot0000000000"
READER_DID = "did:plc:reader000000000000000000"
READER_HANDLE = "reader.bsky.example"
POST = "app.bsky.feed.post"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def session_jwt(seconds: float = 3600) -> str:
    """An unsigned token shaped like a PDS access JWT (the SDK reads its expiry)."""
    header = _b64(json.dumps({"alg": "ES256K", "typ": "at+jwt"}).encode())
    payload = _b64(
        json.dumps(
            {
                "scope": "com.atproto.appPass",
                "sub": DID,
                "iat": int(time.time()),
                "exp": int(time.time() + seconds),
                "aud": "did:web:fake.pds",
            }
        ).encode()
    )
    return f"{header}.{payload}.{_b64(b'signature')}"


def profile(did: str, handle: str) -> dict[str, Any]:
    return {"did": did, "handle": handle, "displayName": handle, "labels": []}


def stamp(when: datetime | None = None) -> str:
    return (when or datetime.now(UTC)).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class Call:
    method: str
    params: dict[str, Any]
    body: Any
    headers: dict[str, str]
    status: int = 200


@dataclass
class FakeBluesky(ScriptedRoutes):
    """The fake's state: repos, notifications, counts, recorded calls; failures are scripted
    per XRPC method."""

    calls: list[Call] = field(default_factory=list)
    #: at-uri -> {"uri", "cid", "value", "author"}: every record in the fake's repos.
    records: dict[str, dict[str, Any]] = field(default_factory=dict)
    notifications: list[dict[str, Any]] = field(default_factory=list)
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    handles: dict[str, str] = field(
        default_factory=lambda: {HANDLE: DID, READER_HANDLE: READER_DID}
    )
    token: str = field(default_factory=session_jwt)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    # --- test helpers --------------------------------------------------------------------

    def calls_to(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method == method]

    def posts_by(self, did: str = DID) -> list[dict[str, Any]]:
        """Post records in ``did``'s repo, oldest first."""
        return [r for r in self.records.values() if r["uri"].startswith(f"at://{did}/{POST}/")]

    def mention(
        self,
        text: str,
        *,
        reason: str = "mention",
        reply_to: str | None = None,
        age: timedelta = timedelta(0),
    ) -> str:
        """A reader's post notifying the bot; returns its at-uri."""
        rkey = f"3reader{next(self._ids):06d}"
        uri = f"at://{READER_DID}/{POST}/{rkey}"
        record: dict[str, Any] = {"$type": POST, "text": text, "createdAt": stamp()}
        if reply_to is not None:
            parent = self.records[reply_to]
            root = (parent["value"].get("reply") or {}).get("root") or {
                "uri": parent["uri"],
                "cid": parent["cid"],
            }
            record["reply"] = {"root": root, "parent": {"uri": parent["uri"], "cid": parent["cid"]}}
        self.records[uri] = {"uri": uri, "cid": f"bafy{rkey}", "value": record}
        self.notifications.append(
            {
                "uri": uri,
                "cid": f"bafy{rkey}",
                "author": profile(READER_DID, READER_HANDLE),
                "reason": reason,
                "record": record,
                "isRead": False,
                "indexedAt": stamp(datetime.now(UTC) - age),
                "labels": [],
            }
        )
        return uri

    # --- XRPC ----------------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        body: Any = None
        if request.method == "POST" and request.can_read_body:
            raw = await request.read()
            body = json.loads(raw) if raw else None
        params = {k: request.query.getall(k) for k in request.query}
        call = Call(method, params, body, dict(request.headers))
        self.calls.append(call)
        self.touched()
        response = self._answer(method, request, body)
        call.status = response.status
        await self.answer_late(method)
        return response

    def _answer(self, method: str, request: web.Request, body: Any) -> web.Response:
        if method == "com.atproto.server.createSession":
            if (body or {}).get("identifier") != HANDLE or body.get("password") != PASSWORD:
                return _error(401, "AuthenticationRequired", "Invalid identifier or password")
            return _json(
                {"accessJwt": self.token, "refreshJwt": self.token, "handle": HANDLE, "did": DID}
            )
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return _error(401, "AuthenticationRequired", "Authentication Required")
        scripted = self.scripted_answer(method, _json)
        if scripted is not None:
            return scripted
        query = request.query
        if method == "app.bsky.actor.getProfile":
            actor = query.get("actor", "")
            return _json(profile(self.handles.get(actor, actor), actor))
        if method == "com.atproto.identity.resolveHandle":
            did = self.handles.get(query.get("handle", ""))
            if did is None:
                return _error(400, "InvalidRequest", "Unable to resolve handle")
            return _json({"did": did})
        if method == "com.atproto.repo.createRecord":
            return self._create(body or {})
        if method == "com.atproto.repo.getRecord":
            uri = f"at://{query['repo']}/{query['collection']}/{query['rkey']}"
            found = self.records.get(uri)
            if found is None:
                return _error(400, "RecordNotFound", f"Could not locate record: {uri}")
            return _json({"uri": uri, "cid": found["cid"], "value": found["value"]})
        if method == "com.atproto.repo.deleteRecord":
            uri = f"at://{body['repo']}/{body['collection']}/{body['rkey']}"
            self.records.pop(uri, None)
            return _json({})
        if method == "app.bsky.notification.listNotifications":
            return self._notifications(query)
        if method == "app.bsky.feed.getPosts":
            return self._posts(query.getall("uris", []))
        return _error(400, "MethodNotImplemented", method)

    def _create(self, body: dict[str, Any]) -> web.Response:
        rkey = body.get("rkey") or f"3auto{next(self._ids):08d}"
        uri = f"at://{body['repo']}/{body['collection']}/{rkey}"
        if uri in self.records:
            return _error(400, "InvalidRequest", "Record already exists")
        cid = f"bafy{rkey}"
        self.records[uri] = {"uri": uri, "cid": cid, "value": body["record"]}
        return _json({"uri": uri, "cid": cid, "validationStatus": "valid"})

    def _notifications(self, query: Any) -> web.Response:
        newest_first = list(reversed(self.notifications))
        start = int(query.get("cursor", "0"))
        limit = int(query.get("limit", "50"))
        page = newest_first[start : start + limit]
        result: dict[str, Any] = {"notifications": page}
        if start + limit < len(newest_first):
            result["cursor"] = str(start + limit)
        return _json(result)

    def _posts(self, uris: list[str]) -> web.Response:
        posts = []
        for uri in uris:
            found = self.records.get(uri)
            if found is None:
                continue
            counts = self.counts.get(uri, {})
            posts.append(
                {
                    "uri": uri,
                    "cid": found["cid"],
                    "author": profile(DID, HANDLE),
                    "record": found["value"],
                    "indexedAt": stamp(),
                    "likeCount": counts.get("likes", 0),
                    "repostCount": counts.get("reposts", 0),
                    "replyCount": counts.get("replies", 0),
                    "quoteCount": counts.get("quotes", 0),
                    "labels": [],
                }
            )
        return _json({"posts": posts})


def _json(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(payload, status=status, headers=headers)


def _error(status: int, error: str, message: str) -> web.Response:
    return _json({"error": error, "message": message}, status)


@asynccontextmanager
async def fake_bluesky() -> AsyncIterator[FakeBluesky]:
    """Run the fake on a free port."""
    fake = FakeBluesky()
    app = web.Application()
    app.router.add_route("*", "/xrpc/{method}", fake.handle)
    async with serving(fake, app):
        yield fake
