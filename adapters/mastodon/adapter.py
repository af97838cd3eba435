"""The Mastodon adapter: Mastodon.py behind the core's Adapter contract, off the event loop.

Mastodon.py is synchronous (requests), so every call runs on one worker thread of the
adapter's own: the loop never blocks, and the client's rate-limit state (read from the
``X-RateLimit-*`` headers of every answer) is never shared between threads. It runs with
``ratelimit_method="throw"``: a 429 becomes a transient error carrying the reset time, and
the caller reschedules instead of a thread sleeping inside the call.
"""

from __future__ import annotations

import asyncio
import functools
import html
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from html.parser import HTMLParser
from typing import Any, TypeVar

from mastodon import Mastodon, MastodonError

from adapters.base import EventSink
from adapters.mastodon.errors import translate
from adapters.mastodon.rules import PLATFORM, STATUS_LIMIT, status_length
from bot.errors import PermanentPlatformError, PlatformError, TransientPlatformError
from bot.events import Author, Conversation, IncomingMessage, OutgoingMessage, SentMessage, utcnow
from bot.timeline import MentionBatch, PostMetrics

log = logging.getLogger(__name__)

#: The one "channel" of a Mastodon account: its public timeline.
TIMELINE = "timeline"
#: Mastodon answers at most 40 notifications per page.
PAGE_SIZE = 40
#: The Mastodon version the client assumes (no version request at construction).
ASSUMED_VERSION = "4.3.0"
ELLIPSIS = "…"

T = TypeVar("T")


class _Text(HTMLParser):
    """A status's HTML as plain text: paragraphs and line breaks kept, tags dropped."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "br":
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag == "p":
            self.parts.append("\n\n")

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def plain_text(content: str) -> str:
    """A status's HTML ``content`` as the text its author typed."""
    parser = _Text()
    parser.feed(content)
    parser.close()
    return html.unescape("".join(parser.parts)).strip()


def fit_status(text: str, limit: int) -> str:
    """``text`` as one status: unchanged if it fits, else cut at a word with an ellipsis,
    keeping a closing line with a link (an answer's source) whole."""
    text = text.strip()
    if status_length(text) <= limit:
        return text
    body, tail = text, ""
    head, sep, last = text.rpartition("\n")
    if sep and "http" in last and status_length(last) <= limit // 2:
        body, tail = head.rstrip(), "\n\n" + last.strip()
    words = body.split(" ")
    while words and status_length(" ".join(words) + ELLIPSIS + tail) > limit:
        words.pop()
    cut = " ".join(words).rstrip() or body[: max(1, limit - len(tail) - 1)]
    return cut + ELLIPSIS + tail


_LEADING_HANDLES = re.compile(r"^(?:\s*@[\w.@-]+)+\s*")


class MastodonAdapter:
    """The Mastodon platform: posts and threads, replies to mentions, metrics, deletion."""

    platform = PLATFORM

    def __init__(
        self,
        *,
        api_url: str,
        access_token: str,
        visibility: str = "public",
        announce: bool = True,
        timeout: float = 30.0,
        max_mention_pages: int = 5,
    ) -> None:
        self.announce_channels: tuple[str, ...] = (TIMELINE,) if announce else ()
        self._visibility = visibility
        self._max_pages = max_mention_pages
        self._client = Mastodon(
            access_token=access_token,
            api_base_url=api_url.rstrip("/"),
            ratelimit_method="throw",
            request_timeout=timeout,
            mastodon_version=ASSUMED_VERSION,
            version_check_mode="none",
            user_agent="foundation-bot",
        )
        self._executor: ThreadPoolExecutor | None = None
        self.account_id = ""
        self.username = ""
        #: The instance's own limit (read at start); answers are fitted to it.
        self.max_characters = STATUS_LIMIT
        self._sink: EventSink | None = None
        self._connected = False

    # --- the funnel ----------------------------------------------------------------------

    async def _call(
        self, fn: Callable[..., T], /, *args: Any, write: bool = False, **kwargs: Any
    ) -> T:
        """Run one Mastodon.py call on the adapter's thread; its errors become the core's."""
        if self._executor is None:
            raise TransientPlatformError(PLATFORM, "the Mastodon adapter is not started")
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(
                self._executor, functools.partial(fn, *args, **kwargs)
            )
        except (MastodonError, OSError, TimeoutError) as exc:
            reset = getattr(self._client, "ratelimit_reset", None)
            raise translate(exc, write=write, reset_at=float(reset) if reset else None) from exc

    # --- contract ------------------------------------------------------------------------

    def is_connected(self) -> bool:
        return self._connected

    async def start(self, sink: EventSink) -> None:
        """Check the token (who the bot is) and read the instance's character limit."""
        self._sink = sink  # Mastodon's mentions are polled by the core
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mastodon")
        try:
            me = _data(await self._call(self._client.account_verify_credentials))
            self.account_id = str(me.get("id") or "")
            self.username = str(me.get("username") or "")
            await self._read_limit()
        except PlatformError:
            await self.stop()
            raise
        self._connected = True
        log.info("mastodon: connected as @%s (id %s)", self.username, self.account_id)

    async def _read_limit(self) -> None:
        try:
            instance = _data(await self._call(self._client.instance_v2))
        except TransientPlatformError as exc:
            log.warning("mastodon: instance limits not read, assuming 500: %s", exc.reason)
            return
        except PermanentPlatformError as exc:
            if "does not exist" not in exc.reason:
                raise
            log.warning("mastodon: the instance has no v2 instance API; assuming 500")
            return
        statuses = _data(_data(instance.get("configuration")).get("statuses"))
        limit = statuses.get("max_characters")
        if isinstance(limit, int) and limit > 0:
            self.max_characters = limit
        if self.max_characters < STATUS_LIMIT:
            raise PermanentPlatformError(
                PLATFORM,
                f"this instance allows {self.max_characters} characters per post, fewer than "
                f"the {STATUS_LIMIT} announcements are rendered for",
            )

    async def stop(self) -> None:
        self._connected = False
        if self._executor is not None:
            executor, self._executor = self._executor, None
            await asyncio.get_running_loop().run_in_executor(None, executor.shutdown)

    async def send(self, message: OutgoingMessage) -> SentMessage:
        """Post a status (a reply when ``reply_to`` is set), fitted to the instance's limit.

        An announcement post carries its idempotency key as ``Idempotency-Key``: Mastodon
        returns the status an earlier request with the same key made, so a post whose answer
        was lost is sent once more with the same key and cannot appear twice.
        """
        if message.ephemeral_to:
            raise PermanentPlatformError(PLATFORM, "Mastodon has no private replies here")
        text = fit_status(message.text, self.max_characters)
        options: dict[str, Any] = {"visibility": self._visibility}
        if message.reply_to:
            options["in_reply_to_id"] = message.reply_to
        if message.idempotency_key:
            options["idempotency_key"] = message.idempotency_key
        keyed = bool(message.idempotency_key)
        try:
            status = await self._call(self._client.status_post, text, write=True, **options)
        except TransientPlatformError as exc:
            if not (exc.ambiguous and keyed):
                raise
            log.warning("mastodon post unconfirmed; sending again with its Idempotency-Key")
            status = await self._call(self._client.status_post, text, write=True, **options)
        found = _data(status)
        status_id = str(found.get("id") or "")
        if not status_id:
            raise TransientPlatformError(PLATFORM, "Mastodon answered without a status id")
        return SentMessage(
            PLATFORM,
            message.where.channel_id,
            status_id,
            str(found.get("url") or "") or None,
            thread_id=message.where.thread_id or message.reply_to,
        )

    async def delete(self, sent: SentMessage) -> None:
        try:
            await self._call(self._client.status_delete, sent.message_id)
        except PermanentPlatformError as exc:
            if "does not exist" not in exc.reason:
                raise
            # Already gone (deleted by hand, or an earlier retraction got this far).

    # --- polled by the core ----------------------------------------------------------------

    async def fetch_mentions(
        self, since_id: str | None, *, start_time: datetime | None = None
    ) -> MentionBatch:
        """Mentions newer than the notification ``since_id`` (or since ``start_time``),
        oldest first; the cursor is the notification id."""
        found: list[dict[str, Any]] = []
        max_id: str | None = None
        truncated = False
        for page in range(self._max_pages):
            options: dict[str, Any] = {"types": ["mention"], "limit": PAGE_SIZE}
            if since_id:
                options["since_id"] = since_id
            if max_id:
                options["max_id"] = max_id
            batch = [_data(n) for n in await self._call(self._client.notifications, **options)]
            if start_time is not None and not since_id:
                batch = [n for n in batch if _time(n.get("created_at")) >= start_time]
            found += batch
            if len(batch) < PAGE_SIZE:
                break
            max_id = str(batch[-1]["id"])
            truncated = page == self._max_pages - 1
        found.sort(key=lambda n: int(n["id"]))
        mentions = [(n, _data(n.get("status"))) for n in found if n.get("status")]
        newest = str(found[-1]["id"]) if found else None
        return MentionBatch(
            tuple(self._mention(status) for _, status in mentions),
            newest,
            truncated,
            positions=tuple(str(n["id"]) for n, _ in mentions),
        )

    async def fetch_metrics(self, post_ids: Sequence[str]) -> Mapping[str, PostMetrics]:
        """Favourites, boosts and replies of the statuses that still exist."""
        found: dict[str, PostMetrics] = {}
        for post_id in dict.fromkeys(post_ids):
            try:
                status = _data(await self._call(self._client.status, post_id))
            except PermanentPlatformError as exc:
                if "does not exist" in exc.reason:
                    continue
                raise
            found[post_id] = PostMetrics(
                post_id=post_id,
                likes=int(status.get("favourites_count") or 0),
                reposts=int(status.get("reblogs_count") or 0),
                replies=int(status.get("replies_count") or 0),
                quotes=int(status.get("quotes_count") or 0),
            )
        return found

    def _mention(self, status: Mapping[str, Any]) -> IncomingMessage:
        """A status that mentions the bot as the core's message.

        Mastodon puts the handles of a conversation in front of every reply, so a reply to
        one of the bot's statuses (a comment under an announcement) names the bot without
        asking it anything: ``mentions_bot`` is false there unless the bot is named again in
        the body.
        """
        status_id = str(status.get("id"))
        author = _data(status.get("account"))
        author_id = str(author.get("id") or "")
        text = plain_text(str(status.get("content") or ""))
        leading = _LEADING_HANDLES.match(text)
        body = text[leading.end() :] if leading else text
        own = re.compile(rf"(?<![\w@])@{re.escape(self.username)}(@[\w.-]+)?\b", re.I)
        replied_to = status.get("in_reply_to_id")
        to_bot = replied_to is not None and str(status.get("in_reply_to_account_id")) == (
            self.account_id
        )
        addressed = not to_bot or bool(self.username and own.search(body))
        question = " ".join((own.sub(" ", body) if self.username else body).split())
        return IncomingMessage(
            where=Conversation(
                PLATFORM, TIMELINE, thread_id=str(replied_to) if replied_to else None
            ),
            author=Author(
                id=author_id,
                name=str(author.get("acct") or ""),
                is_bot=bool(author.get("bot")) and author_id != self.account_id,
            ),
            text=question,
            message_id=status_id,
            mentions_bot=addressed,
            is_own=bool(author_id) and author_id == self.account_id,
            event_id=f"mention:{status_id}",
            reply_to_id=str(replied_to) if replied_to else None,
            url=str(status.get("url") or "") or None,
            received_at=_time(status.get("created_at")),
        )


def _data(value: object) -> dict[str, Any]:
    """A Mastodon.py result (a dict subclass) as a plain dict; anything else as empty."""
    return dict(value) if isinstance(value, Mapping) else {}


def _time(value: object) -> datetime:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str) and value:
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            pass
    return utcnow()
