"""A fake Slack on 127.0.0.1: the Web API methods the bot calls, response URLs, and a Socket
Mode websocket. It records every call so tests assert on what the real slack-sdk sent."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import WSMsgType, web

BOT_USER = "UBOT"


@dataclass
class Call:
    method: str
    args: dict[str, Any]
    headers: dict[str, str]


@dataclass
class FakeSlack:
    """Records calls; ``fail`` scripts responses per method."""

    calls: list[Call] = field(default_factory=list)
    hooks: list[dict[str, Any]] = field(default_factory=list)
    fail: dict[str, list[tuple[int, dict[str, Any], dict[str, str]]]] = field(default_factory=dict)
    usergroups: list[dict[str, Any]] = field(default_factory=list)
    acks: list[dict[str, Any]] = field(default_factory=list)
    outbox: asyncio.Queue[dict[str, Any]] = field(default_factory=asyncio.Queue)
    port: int = 0
    _ts: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _changed: asyncio.Event = field(default_factory=asyncio.Event)
    _counts: dict[str, int] = field(default_factory=dict)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def calls_to(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method == method]

    def count(self, method: str) -> int:
        """How many calls ``method`` got (cheap: the load generator polls it)."""
        return self._counts.get(method, 0)

    async def wait_for(self, predicate: Any, limit: float = 10.0) -> None:
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
        self.calls.append(Call(method, args, dict(request.headers)))
        self._counts[method] = self._counts.get(method, 0) + 1
        self._changed.set()
        scripted = self.fail.get(method)
        if scripted:
            status, payload, headers = scripted.pop(0)
            return web.json_response(payload, status=status, headers=headers)
        return web.json_response(self._answer(method, args))

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
            ts = f"1700000000.{next(self._ts):06d}"
            return {
                "ok": True,
                "channel": args.get("channel"),
                "ts": ts,
                "message": {"text": args.get("text"), "ts": ts},
            }
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

    async def hook(self, request: web.Request) -> web.Response:
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
                await ws.send_json(await self.outbox.get())

        sender = asyncio.create_task(pump())
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
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    fake.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield fake
    finally:
        await runner.cleanup()
