"""The Bluesky adapter: atproto's async client behind the core's Adapter contract.

Posts are records in the account's repo with a client-chosen record key derived from the
post's idempotency key, so a post whose answer was lost is found again by its key (and a
repeat is refused by the PDS rather than posted twice). Links and @handles become rich-text
facets; a reply carries its thread's root and its parent.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Awaitable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from atproto import AsyncClient
from atproto_client import exceptions as at
from atproto_client.request import AsyncRequest

from adapters.base import EventSink
from adapters.bluesky.errors import translate
from adapters.bluesky.rules import COLLECTION, PLATFORM, post_link
from bot.errors import PermanentPlatformError, PlatformError, TransientPlatformError
from bot.events import Author, Conversation, IncomingMessage, OutgoingMessage, SentMessage, utcnow
from bot.timeline import MentionBatch, PostMetrics

log = logging.getLogger(__name__)

#: The one "channel" of a Bluesky account: its feed.
FEED = "feed"
PAGE_SIZE = 50
#: Posts per app.bsky.feed.getPosts.
LOOKUP_SIZE = 25
#: Notifications answered as questions or logged as engagement.
MENTION_REASONS = ("mention", "reply", "quote")
_TID_ALPHABET = "234567abcdefghijklmnopqrstuvwxyz"
_URL = re.compile(r"https?://[^\s<>\"']+[^\s<>\"'.,;:!?)\]]")
_HANDLE = re.compile(r"(?<![\w@/])@([a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9-]+)+)")
_URI = re.compile(r"at://(?P<repo>[^/]+)/(?P<collection>[^/]+)/(?P<rkey>[^/]+)")

T = TypeVar("T")


def record_key(key: str) -> str:
    """A record key (a TID: 13 base32-sortable characters) derived from ``key`` alone, so
    every attempt of the same post uses the same one."""
    value = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") >> 1
    chars = []
    for _ in range(13):
        chars.append(_TID_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def _utf8_span(text: str, start: int, end: int) -> dict[str, int]:
    """A facet's byte range: Bluesky indexes text by UTF-8 bytes."""
    return {
        "byteStart": len(text[:start].encode()),
        "byteEnd": len(text[:end].encode()),
    }


def link_facets(text: str) -> list[dict[str, Any]]:
    """Rich-text facets making every URL in ``text`` a link."""
    return [
        {
            "index": _utf8_span(text, m.start(), m.end()),
            "features": [{"$type": "app.bsky.richtext.facet#link", "uri": m.group()}],
        }
        for m in _URL.finditer(text)
    ]


def _plain(value: Any) -> dict[str, Any]:
    """An atproto model (or DotDict) as a plain dict with the wire's camelCase keys."""
    if value is None:
        return {}
    if isinstance(value, Mapping):
        return dict(value)
    to_dict = getattr(value, "to_dict", None)
    if callable(to_dict):
        found = to_dict()
        return dict(found) if isinstance(found, Mapping) else {}
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        found = dump(by_alias=True, exclude_none=True)
        return dict(found) if isinstance(found, Mapping) else {}
    return {}


def _micros(stamp: object) -> int:
    """An ISO time as microseconds since the epoch (the mentions cursor)."""
    if isinstance(stamp, str) and stamp:
        try:
            when = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
        except ValueError:
            return 0
        return int(when.timestamp() * 1_000_000)
    return 0


class BlueskyAdapter:
    """The Bluesky platform: posts and threads, replies to mentions, metrics, deletion."""

    platform = PLATFORM

    def __init__(
        self,
        *,
        handle: str,
        app_password: str,
        api_url: str = "https://bsky.social",
        announce: bool = True,
        timeout: float = 30.0,
        max_mention_pages: int = 5,
    ) -> None:
        self.announce_channels: tuple[str, ...] = (FEED,) if announce else ()
        self.handle = handle
        self._password = app_password
        self._api_url = api_url
        self._timeout = timeout
        self._max_pages = max_mention_pages
        self._client: Any = None
        self.did = ""
        self._sink: EventSink | None = None
        self._connected = False

    # --- the funnel ----------------------------------------------------------------------

    async def _call(self, call: Awaitable[T], *, write: bool = False, login: bool = False) -> T:
        """Await one atproto call; its errors become the core's platform errors."""
        try:
            return await call
        except (at.AtProtocolError, OSError, TimeoutError) as exc:
            raise translate(exc, write=write, login=login) from exc

    def _running(self) -> Any:
        if self._client is None:
            raise TransientPlatformError(PLATFORM, "the Bluesky adapter is not started")
        return self._client

    # --- contract ------------------------------------------------------------------------

    def is_connected(self) -> bool:
        return self._connected

    async def start(self, sink: EventSink) -> None:
        """Log in with the handle and app password (a refusal fails the start in one line)."""
        self._sink = sink  # Bluesky's mentions are polled by the core
        client = AsyncClient(self._api_url, request=AsyncRequest(timeout=self._timeout))
        self._client = client
        try:
            profile = await self._call(client.login(self.handle, self._password), login=True)
        except PlatformError:
            await self.stop()
            raise
        self.did = str(getattr(profile, "did", "") or "")
        self._connected = True
        log.info("bluesky: logged in as %s (%s)", self.handle, self.did)

    async def stop(self) -> None:
        self._connected = False
        client, self._client = self._client, None
        if client is not None:
            await client.request.close()

    async def send(self, message: OutgoingMessage) -> SentMessage:
        """Post ``message`` (a reply in its thread when ``reply_to`` is set).

        An announcement post's record key comes from its idempotency key: an attempt whose
        answer was lost is looked up by that key before it is posted again.
        """
        if message.ephemeral_to:
            raise PermanentPlatformError(PLATFORM, "Bluesky has no private replies")
        client = self._running()
        record: dict[str, Any] = {
            "$type": COLLECTION,
            "text": message.text,
            "createdAt": datetime.now(UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "langs": ["en"],
        }
        facets = link_facets(message.text) + await self._mention_facets(message.text)
        if facets:
            record["facets"] = sorted(facets, key=lambda f: f["index"]["byteStart"])
        if message.reply_to:
            record["reply"] = await self._reply_ref(message.reply_to)
        data: dict[str, Any] = {"repo": self.did, "collection": COLLECTION, "record": record}
        rkey = record_key(message.idempotency_key) if message.idempotency_key else None
        if rkey is not None:
            data["rkey"] = rkey
        try:
            created = await self._call(
                client.com.atproto.repo.create_record(data), write=rkey is not None
            )
            uri = str(created.uri)
        except PlatformError as exc:
            if rkey is None or not (
                getattr(exc, "ambiguous", False) or "already exists" in exc.reason
            ):
                raise
            # A lost answer, or a repeat of a post that went out: it is there under its key.
            found = await self._record(self.did, rkey)
            if found is None:
                raise
            uri = str(found["uri"])
        return _sent(message, uri)

    async def find_posted(
        self, message: OutgoingMessage, key: str, since: datetime
    ) -> SentMessage | None:
        """The post made under ``key``'s record key, if it is there."""
        found = await self._record(self.did, record_key(key))
        if found is None:
            return None
        return _sent(message, str(found["uri"]))

    async def delete(self, sent: SentMessage) -> None:
        found = _URI.fullmatch(sent.message_id)
        if found is None:
            raise PermanentPlatformError(PLATFORM, f"{sent.message_id!r} is not a post's at-uri")
        data = {"repo": found["repo"], "collection": found["collection"], "rkey": found["rkey"]}
        await self._call(self._running().com.atproto.repo.delete_record(data))

    async def _record(self, repo: str, rkey: str) -> dict[str, Any] | None:
        """The post record ``rkey`` of ``repo`` (uri, cid, value), or None if there is none."""
        params = {"repo": repo, "collection": COLLECTION, "rkey": rkey}
        try:
            found = await self._call(self._running().com.atproto.repo.get_record(params))
        except PermanentPlatformError as exc:
            if "does not exist" in exc.reason:
                return None
            raise
        return {"uri": str(found.uri), "cid": str(found.cid), "value": _plain(found.value)}

    async def _reply_ref(self, parent_uri: str) -> dict[str, Any]:
        """Root and parent of a reply to ``parent_uri`` (the root: the parent's own root)."""
        found = _URI.fullmatch(parent_uri)
        parent = await self._record(found["repo"], found["rkey"]) if found else None
        if parent is None:
            raise PermanentPlatformError(PLATFORM, "the post to reply to does not exist")
        ref = {"uri": parent["uri"], "cid": parent["cid"]}
        root = _plain(_plain(parent["value"].get("reply")).get("root")) or ref
        return {"root": {"uri": root["uri"], "cid": root["cid"]}, "parent": ref}

    async def _mention_facets(self, text: str) -> list[dict[str, Any]]:
        """Mention facets for the @handles in ``text`` that resolve to an account."""
        facets = []
        for match in _HANDLE.finditer(text):
            params = {"handle": match.group(1)}
            try:
                resolved = await self._call(
                    self._running().com.atproto.identity.resolve_handle(params)
                )
            except PermanentPlatformError:
                continue  # not a handle after all: stays plain text
            facets.append(
                {
                    "index": _utf8_span(text, match.start(), match.end()),
                    "features": [
                        {"$type": "app.bsky.richtext.facet#mention", "did": str(resolved.did)}
                    ],
                }
            )
        return facets

    # --- polled by the core ----------------------------------------------------------------

    async def fetch_mentions(
        self, since_id: str | None, *, start_time: datetime | None = None
    ) -> MentionBatch:
        """Mentions, replies and quotes newer than ``since_id`` (microseconds of the last
        one's indexing) or ``start_time``, oldest first."""
        floor = int(since_id) if since_id and since_id.isdigit() else 0
        if not floor and start_time is not None:
            floor = int(start_time.timestamp() * 1_000_000)
        found: list[dict[str, Any]] = []
        cursor: str | None = None
        truncated = False
        for page in range(self._max_pages):
            params: dict[str, Any] = {"limit": PAGE_SIZE}
            if cursor:
                params["cursor"] = cursor
            answer = await self._call(
                self._running().app.bsky.notification.list_notifications(params)
            )
            items = [_plain(n) for n in answer.notifications]
            fresh = [n for n in items if _micros(n.get("indexedAt")) > floor]
            found += fresh
            cursor = getattr(answer, "cursor", None)
            if len(fresh) < len(items) or not cursor:
                break
            truncated = page == self._max_pages - 1
        found.sort(key=lambda n: _micros(n.get("indexedAt")))
        newest = str(_micros(found[-1].get("indexedAt"))) if found else None
        wanted = [n for n in found if n.get("reason") in MENTION_REASONS]
        return MentionBatch(
            tuple(self._mention(n) for n in wanted),
            newest,
            truncated,
            positions=tuple(str(_micros(n.get("indexedAt"))) for n in wanted),
        )

    async def fetch_metrics(self, post_ids: Sequence[str]) -> Mapping[str, PostMetrics]:
        """Likes, reposts, replies and quotes of the posts that still exist."""
        found: dict[str, PostMetrics] = {}
        uris = list(dict.fromkeys(post_ids))
        for start in range(0, len(uris), LOOKUP_SIZE):
            params = {"uris": uris[start : start + LOOKUP_SIZE]}
            answer = await self._call(self._running().app.bsky.feed.get_posts(params))
            for post in answer.posts:
                uri = str(post.uri)
                found[uri] = PostMetrics(
                    post_id=uri,
                    likes=int(post.like_count or 0),
                    reposts=int(post.repost_count or 0),
                    replies=int(post.reply_count or 0),
                    quotes=int(post.quote_count or 0),
                )
        return found

    def _mention(self, notification: Mapping[str, Any]) -> IncomingMessage:
        """A notification as the core's message.

        A reply under one of the bot's posts asks nothing unless it names the bot; a quote is
        engagement on the quoted post.
        """
        uri = str(notification.get("uri"))
        author = _plain(notification.get("author"))
        author_did = str(author.get("did") or "")
        record = _plain(notification.get("record"))
        text = str(record.get("text") or "")
        reason = notification.get("reason")
        own = re.compile(rf"(?<![\w@])@{re.escape(self.handle)}\b", re.IGNORECASE)
        reply = _plain(record.get("reply"))
        root = _plain(reply.get("root")).get("uri")
        parent = _plain(reply.get("parent")).get("uri")
        thread: str | None = str(root) if root else None
        if reason == "quote":
            quoted = _plain(_plain(record.get("embed")).get("record")).get("uri")
            thread = str(quoted) if quoted else thread
        addressed = reason == "mention" or (reason == "reply" and bool(own.search(text)))
        return IncomingMessage(
            where=Conversation(PLATFORM, FEED, thread_id=thread),
            author=Author(id=author_did, name=str(author.get("handle") or "")),
            text=" ".join(own.sub(" ", text).split()),
            message_id=uri,
            mentions_bot=addressed,
            is_own=bool(author_did) and author_did == self.did,
            event_id=f"mention:{uri}",
            reply_to_id=str(parent) if parent else None,
            url=post_link(uri),
            received_at=_time(record.get("createdAt")),
        )


def _time(value: object) -> datetime:
    micros = _micros(value)
    return datetime.fromtimestamp(micros / 1_000_000, UTC) if micros else utcnow()


def _sent(message: OutgoingMessage, uri: str) -> SentMessage:
    """What the core is told of ``message`` once it is up as the record ``uri``."""
    return SentMessage(
        PLATFORM,
        message.where.channel_id,
        uri,
        post_link(uri),
        thread_id=message.where.thread_id or message.reply_to,
    )
