"""A fake Slack on 127.0.0.1: the Web API methods the bot calls, response URLs, and a Socket
Mode websocket. It records every call so tests assert on what the real slack-sdk sent.

Posted messages are kept per channel with their metadata, and ``conversations.history`` /
``conversations.replies`` read them back (``oldest``, ``include_all_metadata``, cursors).
:meth:`FakeSlack.time_out` makes the next call of a method answer too late for the client,
after doing the work (the post is up) or without doing it.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import WSMsgType, web

from tests.fakes.server import serving
from tests.waiting import PATIENCE

BOT_USER = "UBOT"


@dataclass
class Call:
    method: str
    args: dict[str, Any]
    headers: dict[str, str]
    #: When the call arrived (time.monotonic()).
    at: float = field(default_factory=time.monotonic)


@dataclass
class FakeSlack:
    """Records calls; ``fail`` scripts responses per method."""

    calls: list[Call] = field(default_factory=list)
    hooks: list[dict[str, Any]] = field(default_factory=list)
    #: method -> scripted answers (status, JSON body, headers); a str body is sent as
    #: text/plain, as a proxy in front of Slack answers.
    fail: dict[str, list[tuple[int, dict[str, Any] | str, dict[str, str]]]] = field(
        default_factory=dict
    )
    usergroups: list[dict[str, Any]] = field(default_factory=list)
    #: Response URL ids (``/hooks/{id}``) that answer 404 ``expired_url``, as Slack does after
    #: 30 minutes or 5 uses; nothing is shown.
    expired_hooks: set[str] = field(default_factory=set)
    acks: list[dict[str, Any]] = field(default_factory=list)
    outbox: asyncio.Queue[dict[str, Any]] = field(default_factory=asyncio.Queue)
    _sender: asyncio.Task[None] | None = None
    #: Called with every call as it arrives (benchmarks time answers with it).
    observer: Callable[[Call], None] | None = None
    port: int = 0
    _ts: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _changed: asyncio.Event = field(default_factory=asyncio.Event)
    _counts: dict[str, int] = field(default_factory=dict)
    #: channel -> messages posted there (thread replies too), oldest first.
    messages: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    #: method -> scripted late answers: (the work is done first, seconds before answering).
    timeouts: dict[str, list[tuple[bool, float]]] = field(default_factory=dict)
    #: Methods whose next call closes the connection after doing the work (in order).
    drops: list[str] = field(default_factory=list)
    #: Share of posts and history reads that fail at random: 429, 500, a late answer (after
    #: posting, or without), or a connection closed after posting.
    chaos: float = 0.0
    chaos_late: float = 1.0
    rng: random.Random = field(default_factory=lambda: random.Random(0))

    def drop(self, method: str) -> None:
        """The next call of ``method`` does its work, then the connection closes unanswered."""
        self.drops.append(method)

    def time_out(self, method: str, *, posted: bool, seconds: float) -> None:
        """The next call of ``method`` answers only after ``seconds`` (past the client's
        timeout): ``posted`` = the work is done first, like a slow Slack; otherwise it is not
        done at all, like a request lost on the way."""
        self.timeouts.setdefault(method, []).append((posted, seconds))

    def posted(self, channel: str, text: str | None = None) -> list[dict[str, Any]]:
        """Messages the bot posted in ``channel`` (with ``text`` only, if given)."""
        return [m for m in self.messages.get(channel, []) if text is None or m["text"] == text]

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def calls_to(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method == method]

    def count(self, method: str) -> int:
        """How many calls ``method`` got (cheap: the load generator polls it)."""
        return self._counts.get(method, 0)

    async def wait_for(self, predicate: Any, limit: float = PATIENCE) -> None:
        """Wait until ``predicate()`` is true (listeners run after the ack)."""
        async with asyncio.timeout(limit):
            while not predicate():
                self._changed.clear()
                await self._changed.wait()

    async def api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        body = await request.text()
        if request.content_type == "application/json" and body:
            args = json.loads(body)
        else:
            args = dict(parse_qsl(body)) | dict(request.query)
        call = Call(method, args, dict(request.headers))
        self.calls.append(call)
        self._counts[method] = self._counts.get(method, 0) + 1
        self._changed.set()
        if self.observer is not None:
            self.observer(call)
        if (
            self.chaos
            and method in ("chat.postMessage", "conversations.history")
            and self.rng.random() < self.chaos
        ):
            self._misbehave(method)
        if method in self.drops:
            self.drops.remove(method)
            self._answer(method, args)
            assert request.transport is not None
            request.transport.close()
            return web.Response()  # never reaches the client
        late = self.timeouts.get(method)
        if late:
            posted, seconds = late.pop(0)
            answer = self._answer(method, args) if posted else None
            await asyncio.sleep(seconds)
            if answer is None:
                return web.json_response({"ok": False, "error": "request_timeout"}, status=504)
            return web.json_response(answer)
        scripted = self.fail.get(method)
        if scripted:
            status, payload, headers = scripted.pop(0)
            if isinstance(payload, str):
                return web.Response(text=payload, status=status, headers=headers)
            return web.json_response(payload, status=status, headers=headers)
        return web.json_response(self._answer(method, args))

    def _misbehave(self, method: str) -> None:
        """Script this very call to fail one of the ways Slack (or the network) can."""
        kind = self.rng.choice(("429", "500", "late", "lost", "drop"))
        if kind == "429":
            failure = (429, {"ok": False, "error": "ratelimited"}, {"Retry-After": "0"})
            self.fail.setdefault(method, []).insert(0, failure)
        elif kind == "500":
            failure = (500, {"ok": False, "error": "internal_error"}, {})
            self.fail.setdefault(method, []).insert(0, failure)
        elif kind == "drop":
            self.drops.insert(0, method)
        else:
            self.timeouts.setdefault(method, []).insert(0, (kind == "late", self.chaos_late))

    def _answer(self, method: str, args: dict[str, Any]) -> dict[str, Any]:
        if method == "auth.test":
            return {
                "ok": True,
                "user_id": BOT_USER,
                "bot_id": "BBOT",
                "team_id": "T1",
                "url": "https://fake.slack.com/",
            }
        if method == "chat.postMessage":
            # Real time, like Slack's: conversations.history filters on it with ``oldest``.
            ts = f"{int(time.time())}.{next(self._ts):06d}"
            message: dict[str, Any] = {
                "type": "message",
                "user": BOT_USER,
                "bot_id": "BBOT",
                "text": args.get("text"),
                "ts": ts,
            }
            if args.get("thread_ts"):
                message["thread_ts"] = args["thread_ts"]
            metadata = args.get("metadata")
            if isinstance(metadata, str):
                metadata = json.loads(metadata)
            if metadata:
                message["metadata"] = metadata
            self.messages.setdefault(str(args.get("channel")), []).append(message)
            return {"ok": True, "channel": args.get("channel"), "ts": ts, "message": message}
        if method in ("conversations.history", "conversations.replies"):
            return self._history(method, args)
        if method == "chat.postEphemeral":
            return {"ok": True, "message_ts": f"1700000001.{next(self._ts):06d}"}
        if method == "chat.getPermalink":
            return {
                "ok": True,
                "permalink": f"https://fake.slack.com/archives/"
                f"{args.get('channel')}/p{str(args.get('message_ts')).replace('.', '')}",
            }
        if method == "apps.connections.open":
            return {"ok": True, "url": f"ws://127.0.0.1:{self.port}/ws"}
        if method == "usergroups.list":
            return {"ok": True, "usergroups": self.usergroups}
        return {"ok": True}

    def _history(self, method: str, args: dict[str, Any]) -> dict[str, Any]:
        posted = self.messages.get(str(args.get("channel")), [])
        oldest = float(args.get("oldest") or 0)
        if method == "conversations.history":
            found = [m for m in posted if m.get("thread_ts", m["ts"]) == m["ts"]]
        else:
            parent = str(args.get("ts"))
            found = [m for m in posted if parent in (m["ts"], m.get("thread_ts"))]
        found = [m for m in found if float(m["ts"]) > oldest]
        if method == "conversations.history":
            found.reverse()  # newest first, like Slack
        with_metadata = str(args.get("include_all_metadata", "")).lower() in ("1", "true")
        if not with_metadata:
            found = [{k: v for k, v in m.items() if k != "metadata"} for m in found]
        limit = int(args.get("limit") or 100)
        offset = int(args.get("cursor") or 0)
        page = found[offset : offset + limit]
        more = offset + limit < len(found)
        return {
            "ok": True,
            "messages": page,
            "has_more": more,
            "response_metadata": {"next_cursor": str(offset + limit) if more else ""},
        }

    async def hook(self, request: web.Request) -> web.Response:
        if request.match_info["id"] in self.expired_hooks:
            return web.Response(status=404, text="expired_url")
        self.hooks.append(await request.json())
        self._changed.set()
        return web.Response(text="ok")

    async def socket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.send_json(
            {"type": "hello", "num_connections": 1, "connection_info": {"app_id": "A1"}}
        )

        async def pump() -> None:
            while True:
                envelope = await self.outbox.get()
                await ws.send_json(envelope)
                if envelope.get("type") == "disconnect":
                    return  # like Slack: nothing more on a connection told to go away

        # Only the newest connection gets envelopes: an older one the client has not closed
        # yet must not take them.
        if self._sender is not None:
            self._sender.cancel()
        sender = self._sender = asyncio.create_task(pump())
        try:
            async for message in ws:
                if message.type == WSMsgType.TEXT:
                    self.acks.append(json.loads(message.data))
                    self._changed.set()
        finally:
            sender.cancel()
        return ws


@asynccontextmanager
async def fake_slack() -> AsyncIterator[FakeSlack]:
    """Run the fake on a free port."""
    fake = FakeSlack()
    app = web.Application()
    app.router.add_post("/api/{method}", fake.api)
    app.router.add_get("/api/{method}", fake.api)
    app.router.add_post("/hooks/{id}", fake.hook)
    app.router.add_get("/ws", fake.socket)
    async with serving(fake, app):
        yield fake
