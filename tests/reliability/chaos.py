"""A chaos proxy on 127.0.0.1 in front of a fake platform.

It forwards every request unchanged (paths, headers and bodies, so OAuth signatures still
check out at the fake), except that a seeded share of the *posting* calls get a fault instead:
a 429 with the platform's rate-limit headers, a 500, or a timeout — either before the fake saw
the post (lost) or after it made it (posted, but the client never heard back).
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web

HOP_BY_HOP = {"host", "content-length", "transfer-encoding", "connection", "keep-alive"}
FAULTS = ("429", "500", "timeout-lost", "timeout-posted")


@dataclass
class ChaosProxy:
    """Forwards to ``target``; ``rate`` of the posting calls get one of ``faults``."""

    target: str
    platform: str
    rate: float = 0.0
    faults: Sequence[str] = ("429", "500")
    hang_seconds: float = 3.0
    seed: int = 7
    port: int = 0
    injected: Counter[str] = field(default_factory=Counter)
    _rng: random.Random = field(init=False)
    _http: aiohttp.ClientSession | None = None

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _is_post(self, request: web.Request) -> bool:
        if self.platform == "slack":
            return request.path.endswith("/chat.postMessage")
        if self.platform == "x":
            return request.method == "POST" and request.path.endswith("/2/tweets")
        return request.method == "POST" and "/messages" in request.path

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        fault = None
        if self._is_post(request) and self._rng.random() < self.rate:
            fault = self._rng.choice(list(self.faults))
            self.injected[fault] += 1
        if fault == "429":
            return self._rate_limited()
        if fault == "500":
            return web.json_response({"ok": False, "error": "internal_error"}, status=500)
        if fault == "timeout-lost":
            await asyncio.sleep(self.hang_seconds)
            return web.json_response({"error": "gateway timeout"}, status=504)
        response = await self._forward(request, body)
        if fault == "timeout-posted":
            await asyncio.sleep(self.hang_seconds)
        return response

    def _rate_limited(self) -> web.Response:
        if self.platform == "x":
            headers = {
                "x-rate-limit-limit": "100",
                "x-rate-limit-remaining": "0",
                "x-rate-limit-reset": str(int(time.time()) + 1),
            }
            body = {"title": "Too Many Requests", "detail": "Too Many Requests", "status": 429}
        elif self.platform == "discord":
            # discord.py reads retry_after from the body; without Via it assumes a Cloudflare ban.
            headers = {"Retry-After": "0.5", "X-RateLimit-Scope": "user", "Via": "1.1 google"}
            body = {"message": "You are being rate limited.", "retry_after": 0.5, "global": False}
        else:
            headers = {"Retry-After": "1"}
            body = {"ok": False, "error": "ratelimited"}
        return web.Response(
            status=429, text=json.dumps(body), headers=headers, content_type="application/json"
        )

    async def _forward(self, request: web.Request, body: bytes) -> web.Response:
        assert self._http is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        async with self._http.request(
            request.method, self.target + request.path_qs, data=body, headers=headers
        ) as upstream:
            payload = await upstream.read()
            keep = {
                k: v
                for k, v in upstream.headers.items()
                if k.lower() not in HOP_BY_HOP and k.lower() != "content-type"
            }
            response = web.Response(status=upstream.status, body=payload, headers=keep)
            response.content_type = upstream.content_type
            if upstream.charset:
                response.charset = upstream.charset
            return response


@asynccontextmanager
async def chaos_proxy(
    target: str,
    platform: str,
    *,
    rate: float = 0.0,
    faults: Sequence[str] = ("429", "500"),
    hang_seconds: float = 3.0,
    seed: int = 7,
) -> AsyncIterator[ChaosProxy]:
    """Run a proxy to ``target`` on a free port."""
    proxy = ChaosProxy(target, platform, rate, faults, hang_seconds, seed)
    app = web.Application(client_max_size=10 * 1024 * 1024)
    app.router.add_route("*", "/{tail:.*}", proxy.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    proxy.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    async with aiohttp.ClientSession() as http:
        proxy._http = http
        try:
            yield proxy
        finally:
            await runner.cleanup()
