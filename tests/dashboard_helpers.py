"""Shared set-up for the dashboard tests: a started runtime serving the dashboard on
127.0.0.1 (port 0), recording Slack and X adapters, and an HTTP client that logs in the way a
browser does (login form, CSRF token, session cookie)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
from pydantic import SecretStr

from adapters.memory import MemoryAdapter
from bot.config import Config, Settings
from bot.events import Author, Conversation, IncomingMessage, SlashCommand
from bot.runtime import Runtime
from bot.store.users import UserStore

STAFF = Author("U-staff", "stella")
DESK = Conversation("slack", "C-comms")
GENERAL = Conversation("slack", "C-general")
PASSWORDS = {"mia": "mia-password-1", "cody": "cody-password-1", "ada": "ada-password-1"}
ROLES = {"mia": "moderator", "cody": "comms", "ada": "admin"}
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclass
class DashBot:
    runtime: Runtime
    slack: MemoryAdapter
    x: MemoryAdapter
    base: str

    async def ask(self, text: str, mid: str, user: str = "U-alice") -> str:
        """A Slack member mentions the bot; returns the bot's reply."""
        before = len(self.slack.sent)
        await self.slack.inject(
            IncomingMessage(GENERAL, Author(user, user), text, mid, mentions_bot=True)
        )
        return self.slack.sent[before].text

    async def announce(self, text: str) -> str:
        """Staff type ``/announce TEXT`` in Slack; returns the ephemeral reply."""
        before = len(self.slack.sent)
        await self.slack.inject(SlashCommand(DESK, STAFF, "announce", text))
        return self.slack.sent[before].text


def dashboard_config(
    db_url: str, secrets: Mapping[tuple[str, str], str] | None = None, **sections: dict[str, Any]
) -> Config:
    """A config serving the dashboard on a free port."""
    raw: dict[str, Any] = {
        "database": {"url": db_url},
        "web": {"port": 0},
        "staff": {"slack_users": [STAFF.id]},
        "dashboard": {"page_size": 5, "max_failed_logins": 3},
    }
    for name, values in sections.items():
        raw[name] = {**raw.get(name, {}), **values}
    return Config(
        Settings.model_validate(raw),
        {k: SecretStr(v) for k, v in (secrets or {}).items()},
        "test",
    )


@asynccontextmanager
async def dashboard_bot(config: Config, add_users: bool = True) -> AsyncIterator[DashBot]:
    """A started runtime with the dashboard and one user per role (unless another instance
    on the same database added them already); stopped on exit."""
    slack = MemoryAdapter("slack", announce_channels=("C-news",))
    x = MemoryAdapter("x", announce_channels=("timeline",))
    runtime = Runtime(config, [slack, x])
    await runtime.start()
    try:
        users = UserStore(runtime.db)
        for name, password in PASSWORDS.items() if add_users else ():
            await users.add(name, ROLES[name], password)
        assert runtime.web is not None and runtime.web.port
        yield DashBot(runtime, slack, x, f"http://127.0.0.1:{runtime.web.port}")
    finally:
        await runtime.stop()


class DashClient:
    """One browser: a cookie jar, the last page's CSRF token, no automatic redirects."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        self.csrf = ""

    async def close(self) -> None:
        await self.http.close()

    async def get(self, path: str, **kw: Any) -> tuple[int, str, aiohttp.ClientResponse]:
        async with self.http.get(self.base + path, allow_redirects=False, **kw) as resp:
            text = await resp.text()
        found = _CSRF.search(text)
        if found:
            self.csrf = found.group(1)
        return resp.status, text, resp

    async def post(
        self, path: str, data: Mapping[str, Any] | list[tuple[str, str]], *, csrf: bool = True
    ) -> tuple[int, str, aiohttp.ClientResponse]:
        form: list[tuple[str, str]] = (
            list(data.items()) if isinstance(data, Mapping) else list(data)
        )
        if csrf:
            form.append(("csrf_token", self.csrf))
        async with self.http.post(self.base + path, data=form, allow_redirects=False) as resp:
            text = await resp.text()
        return resp.status, text, resp

    async def login(self, name: str, password: str | None = None) -> int:
        """Fill in the login form; returns the status of the POST (303 on success)."""
        await self.get("/dashboard/login")
        status, _, _ = await self.post(
            "/dashboard/login", {"name": name, "password": password or PASSWORDS[name]}
        )
        if status == 303:
            await self.get("/dashboard/")  # picks up the session's CSRF token
        return status


@asynccontextmanager
async def client(base: str, user: str | None = None) -> AsyncIterator[DashClient]:
    """A client, logged in as ``user`` if given."""
    c = DashClient(base)
    try:
        if user is not None:
            assert await c.login(user) == 303
        yield c
    finally:
        await c.close()
