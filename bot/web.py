"""The bot's web server (aiohttp): health, readiness and metrics; the dashboard and Slack HTTP
mode mount their routes on the same application."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping

from aiohttp import web

from adapters.base import Adapter, WebRoutes
from bot.errors import StoreError
from bot.telemetry import CONTENT_TYPE, Metrics

log = logging.getLogger(__name__)


def build_app(
    check_database: Callable[[], Awaitable[None]],
    adapters: Mapping[str, Adapter],
    *,
    metrics: Metrics | None = None,
    dashboard: web.Application | None = None,
) -> web.Application:
    """The aiohttp application with ``/healthz``, ``/readyz``, ``/metrics``, the dashboard
    (under ``/dashboard/``) and the adapters' routes.

    An adapter that receives webhooks implements :class:`~adapters.base.WebRoutes`.
    """

    async def healthz(_request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(_request: web.Request) -> web.Response:
        checks: dict[str, str] = {}
        try:
            await check_database()
            checks["database"] = "ok"
        except StoreError as exc:
            # The reason names the database's user, host and name: the log gets it, the
            # response (which a misconfigured proxy could make public) only the verdict.
            log.warning("readiness: %s", exc)
            checks["database"] = "unreachable"
        for name, adapter in adapters.items():
            checks[name] = "ok" if adapter.is_connected() else "disconnected"
        ready = all(v == "ok" for v in checks.values())
        return web.json_response(
            {"status": "ready" if ready else "not ready", "checks": checks},
            status=200 if ready else 503,
        )

    async def prometheus(_request: web.Request) -> web.Response:
        assert metrics is not None
        return web.Response(body=metrics.exposition(), headers={"Content-Type": CONTENT_TYPE})

    async def to_dashboard(_request: web.Request) -> web.Response:
        raise web.HTTPFound("/dashboard/")

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    if metrics is not None:
        app.router.add_get("/metrics", prometheus)
    if dashboard is not None:
        app.router.add_get("/", to_dashboard)
        app.add_subapp("/dashboard/", dashboard)
    for adapter in adapters.values():
        if isinstance(adapter, WebRoutes):
            app.add_routes(adapter.web_routes())
    return app


class WebServer:
    """Runs an aiohttp application on host:port inside the bot's loop."""

    def __init__(self, app: web.Application, host: str, port: int) -> None:
        self._runner = web.AppRunner(app, access_log=None)
        self._host = host
        self._port = port
        self.port: int | None = None

    async def start(self) -> None:
        """Bind and serve; raises OSError if the port is taken."""
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port)
        await site.start()
        server = site._server  # aiohttp keeps the bound socket here; needed for port 0
        sockets = getattr(server, "sockets", None) or []
        self.port = sockets[0].getsockname()[1] if sockets else self._port
        log.info("web server listening host=%s port=%s", self._host, self.port)

    async def stop(self) -> None:
        """Stop serving."""
        await self._runner.cleanup()
