"""What the fake platforms share: an HTTP server on a free port of 127.0.0.1, waiting until a
request has come (never for a while), and failures or late answers scripted per route."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiohttp import web

from tests.waiting import PATIENCE

#: Builds a JSON answer the way the platform does (its headers): ``(payload, status, headers)``.
JsonAnswer = Callable[[Any, int, dict[str, str]], web.Response]


@dataclass
class FakeServer:
    """A fake platform's server: where it listens, and a signal per request it records."""

    port: int = 0
    _changed: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def touched(self) -> None:
        """A request came or was answered: whoever waits in :meth:`wait_for` looks again."""
        self._changed.set()

    async def wait_for(self, predicate: Callable[[], object], limit: float = PATIENCE) -> None:
        """Return once ``predicate()`` is true, checked after every request."""
        async with asyncio.timeout(limit):
            while not predicate():
                self._changed.clear()
                await self._changed.wait()


@dataclass
class ScriptedRoutes(FakeServer):
    """Failures and late answers scripted per route (an XRPC method, an endpoint's name), one
    per request, in order."""

    #: route -> scripted (status, body, headers), one per request.
    scripted: dict[str, list[tuple[int, Any, dict[str, str]]]] = field(default_factory=dict)
    #: route -> seconds to wait before answering (the work is done first), one per request.
    late: dict[str, list[float]] = field(default_factory=dict)

    def fail(
        self, route: str, status: int, body: Any, headers: dict[str, str] | None = None
    ) -> None:
        """Answer the next request to ``route`` with an error; a str body is plain text (as
        a proxy in front of the platform answers)."""
        self.scripted.setdefault(route, []).append((status, body, headers or {}))

    def time_out(self, route: str, seconds: float) -> None:
        """The next request to ``route`` does its work, then answers after ``seconds``."""
        self.late.setdefault(route, []).append(seconds)

    def scripted_answer(self, route: str, as_json: JsonAnswer) -> web.Response | None:
        """The error scripted for this request to ``route``, if any."""
        scripted = self.scripted.get(route)
        if not scripted:
            return None
        status, body, headers = scripted.pop(0)
        if isinstance(body, str):
            return web.Response(text=body, status=status, headers=headers)
        return as_json(body, status, headers)

    async def answer_late(self, route: str) -> None:
        """Wait as scripted for this request to ``route`` (not at all by default)."""
        delays = self.late.get(route)
        if delays:
            await asyncio.sleep(delays.pop(0))


class Listening(Protocol):
    """A fake that is told the port it listens on."""

    port: int


@asynccontextmanager
async def serving(fake: Listening, app: web.Application) -> AsyncIterator[None]:
    """Serve ``app`` on a free port (``fake.port``) until the block ends."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    fake.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield
    finally:
        await runner.cleanup()
