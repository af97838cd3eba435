"""A fake Discord on 127.0.0.1: the REST API the bot calls and the gateway websocket, on one
port. Every REST call and every gateway op the real discord.py sends is recorded, so tests
assert on what a user would see.

The gateway speaks plain-text JSON frames (discord.py only decompresses binary ones): HELLO,
IDENTIFY -> READY + GUILD_CREATE, heartbeats -> ACK, RESUME -> replay of what was missed +
RESUMED. Dispatches queued while a session is disconnected are delivered after its RESUME,
as Discord does.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from tests.fakes.server import serving
from tests.waiting import PATIENCE

APP_ID = "900000000000000001"
BOT_ID = "900000000000000002"
GUILD_ID = "800000000000000001"
STAFF_ROLE = "700000000000000001"
#: The role Discord manages for the bot itself (tagged with its id).
BOT_ROLE = "700000000000000002"
#: Channel ids the fake knows (anything else is 404 Unknown Channel).
GENERAL = "810000000000000001"
NEWS = "810000000000000002"
DESK = "810000000000000003"
DM_CHANNEL = "820000000000000001"
#: Discord's epoch (2015-01-01), the zero of snowflake times.
DISCORD_EPOCH_MS = 1_420_070_400_000

BOT_USER = {
    "id": BOT_ID,
    "username": "foundation-bot",
    "discriminator": "0",
    "global_name": None,
    "avatar": None,
    "bot": True,
}


def user(user_id: str, name: str = "reader") -> dict[str, Any]:
    """A Discord user object."""
    return {
        "id": user_id,
        "username": name,
        "discriminator": "0",
        "global_name": name,
        "avatar": None,
    }


def member(roles: list[str]) -> dict[str, Any]:
    """The partial guild member attached to messages and interactions."""
    return {
        "roles": roles,
        "joined_at": "2024-01-01T00:00:00+00:00",
        "deaf": False,
        "mute": False,
        "flags": 0,
    }


def _json(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    if isinstance(payload, str):
        # Not Discord's JSON: what a proxy or load balancer in front of the API answers.
        return web.Response(text=payload, status=status, headers=headers)
    # discord.py compares the header literally: no "; charset=utf-8".
    return web.Response(
        body=json.dumps(payload).encode(),
        status=status,
        headers={"Content-Type": "application/json", **(headers or {})},
    )


@dataclass
class Call:
    method: str
    path: str
    body: Any
    headers: dict[str, str]
    query: dict[str, str]


@dataclass
class Session:
    """One gateway session (IDENTIFY), possibly over several websocket connections."""

    session_id: str
    shard: tuple[int, int]
    seq: int = 0
    queue: asyncio.Queue[dict[str, Any]] = field(default_factory=asyncio.Queue)
    sent: list[dict[str, Any]] = field(default_factory=list)
    socket: web.WebSocketResponse | None = None


@dataclass
class FakeDiscord:
    """Records calls and gateway ops; ``fail`` scripts REST responses per ``(method, path)``."""

    port: int = 0
    calls: list[Call] = field(default_factory=list)
    ops: list[dict[str, Any]] = field(default_factory=list)
    sessions: list[Session] = field(default_factory=list)
    #: (METHOD, path) -> scripted (status, body, headers); popped one per call.
    fail: dict[tuple[str, str], list[tuple[int, Any, dict[str, str]]]] = field(default_factory=dict)
    #: (METHOD, path) -> seconds to stall before answering, popped one per call.
    stall: dict[tuple[str, str], list[float]] = field(default_factory=dict)
    #: How many stalled requests have been answered (a test waits for a late one to land).
    stalled_answered: int = 0
    channels: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: Close the socket with this code right after IDENTIFY (4014: disallowed intents).
    close_on_identify: int | None = None
    messages: dict[str, dict[str, Any]] = field(default_factory=dict)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _changed: asyncio.Event = field(default_factory=asyncio.Event)
    _last_timed: int = 0

    def __post_init__(self) -> None:
        for channel_id, name, kind in (
            (GENERAL, "general", 0),
            (NEWS, "announcements", 5),
            (DESK, "comms-desk", 0),
        ):
            self.channels[channel_id] = {
                "id": channel_id,
                "type": kind,
                "guild_id": GUILD_ID,
                "name": name,
                "position": 0,
                "permission_overwrites": [],
                "nsfw": False,
                "parent_id": None,
            }

    # --- test helpers --------------------------------------------------------------------

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        return f"{self.base}/api/v10"

    @property
    def gateway_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/gateway"

    def snowflake(self) -> str:
        return str(1_000_000_000_000_000_000 + next(self._ids))

    def time_snowflake(self) -> str:
        """An id that encodes the time, as Discord's do: history reads ``after`` a time."""
        stamp = (int(time.time() * 1000) - DISCORD_EPOCH_MS) << 22
        self._last_timed = max(self._last_timed + 1, stamp)
        return str(self._last_timed)

    def calls_to(self, method: str, path_prefix: str) -> list[Call]:
        return [c for c in self.calls if c.method == method and c.path.startswith(path_prefix)]

    def posts(self, channel_id: str | None = None) -> list[Call]:
        """Messages created through ``POST /channels/{id}/messages`` (answers, announcements)."""
        return [
            c
            for c in self.calls
            if c.method == "POST"
            and c.path.endswith("/messages")
            and (channel_id is None or c.path == f"/channels/{channel_id}/messages")
        ]

    def ops_of(self, op: int) -> list[dict[str, Any]]:
        return [o for o in self.ops if o.get("op") == op]

    async def wait_for(self, predicate: Callable[[], Any], limit: float = PATIENCE) -> None:
        """Wait until ``predicate()`` is true (the bot works after the event is delivered)."""
        async with asyncio.timeout(limit):
            while not predicate():
                self._changed.clear()
                await self._changed.wait()

    def dispatch(self, event: str, data: dict[str, Any], guild_id: str | None = GUILD_ID) -> None:
        """Queue a gateway dispatch for the session that owns ``guild_id`` (DMs: shard 0)."""
        for session in self.sessions:
            shard_id, count = session.shard
            owner = (int(guild_id) >> 22) % count if guild_id else 0
            if owner == shard_id:
                session.queue.put_nowait({"op": 0, "t": event, "d": data})

    async def drop_connections(self) -> None:
        """Close every gateway socket the way a network blip or a Discord restart does."""
        for session in self.sessions:
            if session.socket is not None and not session.socket.closed:
                await session.socket.close(code=4000, message=b"fake: connection reset")

    def message(
        self,
        content: str,
        *,
        author: str = "600000000000000001",
        channel_id: str = GENERAL,
        guild: bool = True,
        roles: list[str] | None = None,
        mentions_bot: bool = False,
        reply_to: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """A MESSAGE_CREATE payload from a user."""
        data: dict[str, Any] = {
            "id": self.snowflake(),
            "channel_id": channel_id,
            "author": user(author),
            "content": f"<@{BOT_ID}> {content}" if mentions_bot else content,
            "type": 19 if reply_to else 0,
            "timestamp": "2026-11-23T10:00:00+00:00",
            "edited_timestamp": None,
            "tts": False,
            "mention_everyone": False,
            "mentions": [BOT_USER] if mentions_bot else [],
            "mention_roles": [],
            "attachments": [],
            "embeds": [],
            "pinned": False,
            "flags": 0,
        }
        if guild:
            data["guild_id"] = GUILD_ID
            data["member"] = member(roles or [])
        if reply_to is not None:
            data["message_reference"] = {
                "type": 0,
                "message_id": reply_to["id"],
                "channel_id": reply_to["channel_id"],
                "guild_id": GUILD_ID,
            }
            data["referenced_message"] = reply_to
        return data

    def interaction(
        self,
        kind: int,
        data: dict[str, Any],
        *,
        author: str = "600000000000000001",
        roles: list[str] | None = None,
        channel_id: str = DESK,
        message: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """An INTERACTION_CREATE payload (2 = app command, 3 = component, 5 = modal submit)."""
        payload: dict[str, Any] = {
            "id": self.snowflake(),
            "application_id": APP_ID,
            "type": kind,
            "token": f"itoken-{next(self._ids)}",
            "version": 1,
            "attachment_size_limit": 8_388_608,
            "channel_id": channel_id,
            # discord.py reads the channel from this partial channel object.
            "channel": self.channels.get(channel_id, {"id": channel_id, "type": 0}),
            "guild_id": GUILD_ID,
            "member": {**member(roles or []), "user": user(author), "permissions": "0"},
            "app_permissions": "0",
            "locale": "en-US",
            "guild_locale": "en-US",
            "entitlements": [],
            "authorizing_integration_owners": {},
            "context": 0,
            "data": data,
        }
        if message is not None:
            payload["message"] = message
        return payload

    # --- REST ----------------------------------------------------------------------------

    async def rest(self, request: web.Request) -> web.Response:
        path = "/" + request.match_info["path"]
        raw = await request.read()
        body: Any = None
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                body = raw.decode(errors="replace")
        self.calls.append(
            Call(request.method, path, body, dict(request.headers), dict(request.query))
        )
        self._changed.set()
        key = (request.method, path)
        stalled = bool(self.stall.get(key))
        if stalled:
            await asyncio.sleep(self.stall[key].pop(0))
        try:
            if self.fail.get(key):
                status, payload, headers = self.fail[key].pop(0)
                return _json(payload, status, headers)
            return self._answer(request.method, path, body, dict(request.query))
        finally:
            if stalled:
                self.stalled_answered += 1
                self._changed.set()

    def _answer(
        self, method: str, path: str, body: Any, query: dict[str, str] | None = None
    ) -> web.Response:
        query = query or {}
        parts = path.strip("/").split("/")
        if path == "/users/@me":
            return _json(BOT_USER)
        if path == "/oauth2/applications/@me":
            return _json(
                {
                    "id": APP_ID,
                    "name": "foundation-bot",
                    "description": "",
                    "icon": None,
                    "bot_public": False,
                    "bot_require_code_grant": False,
                    "owner": user("600000000000000099", "owner"),
                    "verify_key": "00",
                    "flags": 0,
                }
            )
        if path == "/gateway/bot":
            return _json(
                {
                    "url": self.gateway_url,
                    "shards": 1,
                    "session_start_limit": {
                        "total": 1000,
                        "remaining": 999,
                        "reset_after": 0,
                        "max_concurrency": 1,
                    },
                }
            )
        if path == "/users/@me/channels" and method == "POST":
            return _json({"id": DM_CHANNEL, "type": 1, "recipients": [user(body["recipient_id"])]})
        if parts[0] == "channels":
            channel_id = parts[1]
            if channel_id not in self.channels and channel_id != DM_CHANNEL:
                return _json({"code": 10003, "message": "Unknown Channel"}, 404)
            if len(parts) == 2 and method == "GET":
                return _json(self.channels[channel_id])
            if parts[2:] == ["messages"] and method == "POST":
                return _json(self._create_message(channel_id, body))
            if parts[2:] == ["messages"] and method == "GET":
                return _json(self._history(channel_id, query))
            if len(parts) == 5 and parts[4] == "threads" and method == "POST":
                return _json(self._create_thread(channel_id, parts[3], body))
            if len(parts) == 5 and parts[4] == "crosspost" and method == "POST":
                return _json({**self.messages[parts[3]], "flags": 1})
            if len(parts) == 4 and method == "DELETE":
                if self.messages.pop(parts[3], None) is None:
                    return _json({"code": 10008, "message": "Unknown Message"}, 404)
                return web.Response(status=204)
        if parts[0] == "interactions" and parts[-1] == "callback":
            return _json(
                {"interaction": {"id": parts[1], "type": 2}, "resource": {"type": body["type"]}}
            )
        if parts[0] == "webhooks" and method == "POST":
            return _json(self._message_payload(parts[1], body))
        if parts[0] == "webhooks" and method == "PATCH":
            return _json(self._message_payload(parts[1], body))
        if parts[0] == "applications" and method == "PUT":
            return _json(
                [
                    {
                        **command,
                        "id": self.snowflake(),
                        "application_id": APP_ID,
                        "version": "1",
                        "default_member_permissions": None,
                    }
                    for command in body
                ]
            )
        return _json({"code": 0, "message": f"fake: no route {method} {path}"}, 404)

    def _message_payload(self, channel_id: str, body: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": self.snowflake(),
            "channel_id": channel_id,
            "author": BOT_USER,
            "content": body.get("content") or "",
            "type": 0,
            "timestamp": "2026-11-23T10:00:01+00:00",
            "edited_timestamp": None,
            "tts": False,
            "mention_everyone": False,
            "mentions": [],
            "mention_roles": [],
            "attachments": [],
            "embeds": [],
            "pinned": False,
            "components": body.get("components", []),
            "flags": body.get("flags", 0),
            "nonce": body.get("nonce"),
        }

    def _history(self, channel_id: str, query: dict[str, str]) -> list[dict[str, Any]]:
        """A channel's messages as Discord pages them: newest first, ``limit`` of them, the
        ones just after ``after`` or just before ``before`` (else the newest)."""
        limit = int(query.get("limit", 50))
        mine = sorted(
            (m for m in self.messages.values() if m["channel_id"] == channel_id),
            key=lambda m: int(m["id"]),
        )
        if "after" in query:
            page = [m for m in mine if int(m["id"]) > int(query["after"])][:limit]
        elif "before" in query:
            page = [m for m in mine if int(m["id"]) < int(query["before"])][-limit:]
        else:
            page = mine[-limit:]
        return list(reversed(page))

    def _create_message(self, channel_id: str, body: dict[str, Any]) -> dict[str, Any]:
        if body.get("enforce_nonce") and body.get("nonce"):
            # Discord returns the earlier message for a repeated nonce instead of a second one.
            for existing in self.messages.values():
                if existing["channel_id"] == channel_id and existing["nonce"] == body["nonce"]:
                    return existing
        message = {**self._message_payload(channel_id, body), "id": self.time_snowflake()}
        if "message_reference" in body:
            message["message_reference"] = body["message_reference"]
            message["type"] = 19
        self.messages[message["id"]] = message
        return message

    def _create_thread(
        self, channel_id: str, message_id: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        thread = {
            # A thread started from a message has the message's id.
            "id": message_id,
            "type": 11,
            "guild_id": GUILD_ID,
            "parent_id": channel_id,
            "owner_id": BOT_ID,
            "name": body["name"],
            "last_message_id": None,
            "rate_limit_per_user": 0,
            "message_count": 0,
            "member_count": 1,
            "thread_metadata": {
                "archived": False,
                "auto_archive_duration": body.get("auto_archive_duration", 1440),
                "archive_timestamp": "2026-11-23T10:00:00+00:00",
                "locked": False,
            },
        }
        self.channels[message_id] = thread
        self.dispatch("THREAD_CREATE", {**thread, "newly_created": True})
        return thread

    # --- gateway -------------------------------------------------------------------------

    def _guild_create(self) -> dict[str, Any]:
        return {
            "id": GUILD_ID,
            "name": "PyTorch community",
            "unavailable": False,
            "owner_id": "600000000000000099",
            "member_count": 3,
            "large": False,
            "features": [],
            "emojis": [],
            "stickers": [],
            "roles": [
                {
                    "id": GUILD_ID,
                    "name": "@everyone",
                    "permissions": "0",
                    "position": 0,
                    "color": 0,
                    "hoist": False,
                    "managed": False,
                    "mentionable": False,
                    "flags": 0,
                },
                {
                    "id": BOT_ROLE,
                    "name": "foundation-bot",
                    "permissions": "0",
                    "position": 2,
                    "color": 0,
                    "hoist": False,
                    "managed": True,
                    "mentionable": True,
                    "flags": 0,
                    "tags": {"bot_id": BOT_ID},
                },
                {
                    "id": STAFF_ROLE,
                    "name": "comms",
                    "permissions": "0",
                    "position": 1,
                    "color": 0,
                    "hoist": False,
                    "managed": False,
                    "mentionable": False,
                    "flags": 0,
                },
            ],
            "channels": [c for c in self.channels.values() if c["type"] in (0, 5)],
            "threads": [c for c in self.channels.values() if c["type"] == 11],
            "members": [],
            "voice_states": [],
            "presences": [],
            "stage_instances": [],
            "guild_scheduled_events": [],
            "soundboard_sounds": [],
        }

    async def gateway(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.send_json({"op": 10, "d": {"heartbeat_interval": 41250}, "s": None, "t": None})
        session: Session | None = None
        pump: asyncio.Task[None] | None = None

        async def send(session: Session, payload: dict[str, Any]) -> None:
            if payload["op"] == 0:
                session.seq += 1
                payload = {**payload, "s": session.seq}
                session.sent.append(payload)
            await ws.send_json(payload)

        async def deliver(session: Session) -> None:
            while True:
                payload = await session.queue.get()
                await send(session, payload)

        try:
            async for frame in ws:
                if frame.type != WSMsgType.TEXT:
                    continue
                op = json.loads(frame.data)
                self.ops.append(op)
                self._changed.set()
                if op["op"] == 1:
                    await ws.send_json({"op": 11, "d": None, "s": None, "t": None})
                elif op["op"] == 2 and self.close_on_identify:
                    await ws.close(code=self.close_on_identify, message=b"fake: refused")
                elif op["op"] == 2:
                    shard = tuple(op["d"].get("shard") or (0, 1))
                    session = Session(f"session-{len(self.sessions) + 1}", (shard[0], shard[1]))
                    session.socket = ws
                    self.sessions.append(session)
                    await send(session, {"op": 0, "t": "READY", "d": self._ready(session)})
                    if (int(GUILD_ID) >> 22) % shard[1] == shard[0]:
                        await send(
                            session, {"op": 0, "t": "GUILD_CREATE", "d": self._guild_create()}
                        )
                    pump = asyncio.create_task(deliver(session))
                elif op["op"] == 6:
                    found = [s for s in self.sessions if s.session_id == op["d"]["session_id"]]
                    if not found:
                        await ws.send_json({"op": 9, "d": False, "s": None, "t": None})
                        continue
                    session = found[0]
                    session.socket = ws
                    for missed in [p for p in session.sent if p["s"] > (op["d"]["seq"] or 0)]:
                        await ws.send_json(missed)
                    await send(session, {"op": 0, "t": "RESUMED", "d": {}})
                    pump = asyncio.create_task(deliver(session))
        finally:
            if pump is not None:
                pump.cancel()
        return ws

    def _ready(self, session: Session) -> dict[str, Any]:
        owns_guild = (int(GUILD_ID) >> 22) % session.shard[1] == session.shard[0]
        return {
            "v": 10,
            "user": BOT_USER,
            "guilds": [{"id": GUILD_ID, "unavailable": True}] if owns_guild else [],
            "session_id": session.session_id,
            "resume_gateway_url": self.gateway_url,
            "shard": list(session.shard),
            "application": {"id": APP_ID, "flags": 0},
            "private_channels": [],
            "relationships": [],
        }


@asynccontextmanager
async def fake_discord() -> AsyncIterator[FakeDiscord]:
    """Run the fake on a free port."""
    fake = FakeDiscord()
    app = web.Application()
    app.router.add_get("/gateway", fake.gateway)
    app.router.add_route("*", "/api/v10/{path:.*}", fake.rest)
    async with serving(fake, app):
        try:
            yield fake
        finally:
            await fake.drop_connections()
