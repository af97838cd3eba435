"""The X adapter: tweepy's async client behind the core's Adapter contract (see the package)."""

from __future__ import annotations

import html
import logging
import re
import time
from collections.abc import Coroutine, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import aiohttp
import tweepy.errors
from aiohttp import ClientHandlerType, ClientRequest, ClientResponse, hdrs
from tweepy.asynchronous import AsyncClient
from twitter_text import extract_urls
from yarl import URL

from adapters.base import EventSink
from adapters.x.rules import PLATFORM, X_POST_LIMIT, x_weighted_length
from bot.errors import (
    DuplicatePostError,
    PermanentPlatformError,
    PlatformError,
    TransientPlatformError,
)
from bot.events import Author, Conversation, IncomingMessage, OutgoingMessage, SentMessage, utcnow
from bot.timeline import MentionBatch, PostMetrics

log = logging.getLogger(__name__)

#: The one "channel" of an X account: its public timeline (announcements, replies, mentions).
TIMELINE = "timeline"
#: The host tweepy sends every request to.
TWEEPY_HOST = "api.twitter.com"
ELLIPSIS = "…"
#: X returns at most 100 posts per page (mentions) and per lookup.
PAGE_SIZE = 100

DUPLICATE = (
    "X refused a duplicate post: this account already posted exactly this text. If an earlier "
    "attempt timed out or hit a server error it may be there already: check the timeline, then "
    "/announce mark-sent; otherwise change the text"
)
READ_ONLY_APP = (
    "the X app is not allowed to post (its permissions are read-only): set 'Read and write' "
    "under User authentication settings in the developer portal, then regenerate the access "
    "token and secret"
)
NOT_IN_TIER = (
    "the X API access level of the app's project does not include this endpoint ({detail}). "
    "Posting works on every level; mentions and metrics need read access (see the README, "
    "section X)"
)
USAGE_CAP = (
    "the X API usage cap of this app's plan is used up ({detail}); nothing more can be sent "
    "or read until it resets or the plan is raised"
)
BAD_CREDENTIALS = (
    "X rejected the credentials (check X_API_KEY, X_API_SECRET, X_ACCESS_TOKEN and "
    "X_ACCESS_TOKEN_SECRET; regenerate the access token if the app's permissions changed)"
)


def api_base_middleware(base: str) -> Any:
    """An aiohttp client middleware sending tweepy's api.twitter.com requests to ``base``.

    ``base`` may carry a path prefix (``https://proxy.example/x``); query strings are kept
    byte for byte, because the OAuth signature covers them.
    """
    target = URL(base)
    if not target.scheme or not target.raw_host:
        raise ValueError(f"x.api_url must be an absolute URL, got {base!r}")
    prefix = target.raw_path.rstrip("/")

    async def rewrite(request: ClientRequest, handler: ClientHandlerType) -> ClientResponse:
        url = request.url
        if url.raw_host == TWEEPY_HOST:
            request.url = URL.build(
                scheme=target.scheme,
                host=target.raw_host or "",
                port=target.explicit_port,
                path=prefix + url.raw_path,
                query_string=url.raw_query_string,
                encoded=True,
            )
            request.headers[hdrs.HOST] = target.raw_authority
        return await handler(request)

    return rewrite


def fit_post(text: str, limit: int = X_POST_LIMIT) -> str:
    """``text`` as one post: unchanged if it fits, else cut at a word with an ellipsis.

    A closing line with a link (an answer's "Source: …" or a decline's "Read more: …") is kept
    whole, so a shortened answer still says where the full one is.
    """
    text = text.strip()
    if x_weighted_length(text) <= limit:
        return text
    body, tail = text, ""
    head, sep, last = text.rpartition("\n")
    if sep and "http" in last and x_weighted_length(last) <= limit // 2:
        body, tail = head.rstrip(), "\n\n" + last.strip()
    words = body.split(" ")
    low, high = 0, len(words)
    # The longest prefix of whole words that fits (X's weighting only grows with more words).
    while low < high:
        middle = (low + high + 1) // 2
        if x_weighted_length(" ".join(words[:middle]).rstrip() + ELLIPSIS + tail) <= limit:
            low = middle
        else:
            high = middle - 1
    if low == 0:  # one enormous word: cut by characters
        cut = body
        while cut and x_weighted_length(cut + ELLIPSIS + tail) > limit:
            cut = cut[: max(0, len(cut) - max(1, len(cut) // 10))]
        return cut + ELLIPSIS + tail
    return " ".join(words[:low]).rstrip() + ELLIPSIS + tail


def _status(response: Any) -> int:
    return int(getattr(response, "status", 0) or getattr(response, "status_code", 0) or 0)


def _reset_delay(exc: tweepy.errors.TooManyRequests, now: float) -> float | None:
    """Seconds until every exhausted X limit has reset (15-minute window, 24-hour caps)."""
    headers = getattr(exc.response, "headers", None) or {}
    resets: list[int] = []
    for prefix in ("x-rate-limit", "x-user-limit-24hour", "x-app-limit-24hour"):
        reset = headers.get(f"{prefix}-reset")
        if headers.get(f"{prefix}-remaining") == "0" and reset and reset.isdigit():
            resets.append(int(reset))
    if not resets and exc.reset_time is not None:
        resets.append(int(exc.reset_time))
    if not resets:
        return None
    # X resets at the start of the given second; one more second avoids racing it.
    return max(1.0, max(resets) - now + 1.0)


def translate(
    exc: BaseException,
    problem: Mapping[str, Any] | None = None,
    *,
    write: bool = False,
    now: float | None = None,
) -> PlatformError:
    """A tweepy or network error as the core's platform error, with a reason staff can act on.

    Args:
        exc: What tweepy or aiohttp raised.
        problem: The error body X sent (RFC 7807 problem JSON), if any.
        write: The request creates something (a post): a lost answer may mean it was created.
        now: The current Unix time (tests pass it).
    """
    now = time.time() if now is None else now
    if isinstance(exc, tweepy.errors.HTTPException):
        status = _status(exc.response)
        problem = problem or {}
        detail = "; ".join(str(m) for m in exc.api_messages if m) or str(
            problem.get("detail") or problem.get("title") or ""
        )
        detail = detail[:300]
        kind = " ".join(
            str(problem.get(k) or "") for k in ("type", "reason", "title", "required_enrollment")
        )
        text = f"{detail} {kind}".lower()
        if status == 429:
            if "usage-capped" in text or "usage cap" in text:
                return PermanentPlatformError(PLATFORM, USAGE_CAP.format(detail=detail))
            assert isinstance(exc, tweepy.errors.TooManyRequests)
            delay = _reset_delay(exc, now)
            until = ""
            if delay is not None:
                until = f" until {datetime.fromtimestamp(now + delay, UTC):%H:%M:%S} UTC"
            return TransientPlatformError(
                PLATFORM, f"rate limited by X (HTTP 429){until}", retry_after=delay
            )
        if status >= 500:
            return TransientPlatformError(PLATFORM, f"X server error (HTTP {status})")
        if status == 401:
            return PermanentPlatformError(PLATFORM, BAD_CREDENTIALS)
        if status == 403:
            if "duplicate" in text:
                return DuplicatePostError(PLATFORM, DUPLICATE)
            if "oauth1" in text and "permission" in text:
                return PermanentPlatformError(PLATFORM, READ_ONLY_APP)
            if any(k in text for k in ("client-not-enrolled", "client-forbidden", "a project")):
                enrollment = str(problem.get("required_enrollment") or "")
                shown = f"X requires: {enrollment}" if enrollment else "X says: client forbidden"
                return PermanentPlatformError(PLATFORM, NOT_IN_TIER.format(detail=shown))
            return PermanentPlatformError(
                PLATFORM, f"X refused the request (HTTP 403: {detail or 'Forbidden'})"
            )
        if status == 404:
            return PermanentPlatformError(PLATFORM, "the post does not exist on X (deleted?)")
        return PermanentPlatformError(
            PLATFORM, f"X rejected the request (HTTP {status}: {detail or 'no detail'})"
        )
    if isinstance(exc, aiohttp.ClientResponseError):
        # An error page that is not X's JSON (a proxy in between): judge by the status alone.
        if exc.status == 429 or exc.status >= 500:
            return TransientPlatformError(PLATFORM, f"X or a proxy failed (HTTP {exc.status})")
        return PermanentPlatformError(PLATFORM, f"X or a proxy refused (HTTP {exc.status})")
    if isinstance(exc, aiohttp.ClientConnectorError):
        return TransientPlatformError(PLATFORM, "cannot reach X (connection failed)")
    if write:
        # The post went out but no answer came back: X may have created it. Retrying blindly
        # could post twice, so a person decides.
        return TransientPlatformError(
            PLATFORM, f"X did not confirm the post ({type(exc).__name__})", ambiguous=True
        )
    if isinstance(exc, TimeoutError):
        return TransientPlatformError(PLATFORM, "X did not answer in time")
    return TransientPlatformError(PLATFORM, f"cannot reach X ({type(exc).__name__})")


async def _problem(exc: tweepy.errors.HTTPException) -> dict[str, Any] | None:
    """X's error body (already read by tweepy), if it is JSON."""
    try:
        body = await exc.response.json(content_type=None)
    except Exception:
        return None
    return body if isinstance(body, dict) else None


_LEADING_HANDLES = re.compile(r"^(?:\s*@\w{1,15})+\s*")


def _replied_to(post: Mapping[str, Any]) -> str | None:
    """The id of the post ``post`` replies to, if any."""
    return next(
        (
            str(ref.get("id"))
            for ref in post.get("referenced_tweets") or []
            if ref.get("type") == "replied_to"
        ),
        None,
    )


def comparable_text(text: str) -> str:
    """A post's text as compared when looking a post up: X returns ``&``, ``<`` and ``>``
    HTML-escaped and every link as a t.co link, and may trim whitespace."""
    text = html.unescape(text)
    for url in sorted(set(extract_urls(text)), key=len, reverse=True):
        text = text.replace(url, "\x00")
    return " ".join(text.split())


def _parse_time(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _count(metrics: Mapping[str, Any], key: str) -> int | None:
    value = metrics.get(key)
    return int(value) if isinstance(value, int) else None


class XAdapter:
    """The X platform behind the core's Adapter contract (plus mentions and metrics)."""

    platform = PLATFORM

    def __init__(
        self,
        *,
        api_key: str,
        api_secret: str,
        access_token: str,
        access_token_secret: str,
        api_url: str | None = None,
        announce_channels: tuple[str, ...] = (TIMELINE,),
        timeout: float = 30.0,
        max_mention_pages: int = 5,
    ) -> None:
        self.announce_channels = announce_channels
        self._middleware = api_base_middleware(api_url) if api_url else None
        self._timeout = timeout
        self._max_pages = max_mention_pages
        self._client = AsyncClient(
            consumer_key=api_key,
            consumer_secret=api_secret,
            access_token=access_token,
            access_token_secret=access_token_secret,
            return_type=dict,
            # Never: it would sleep inside the call. 429s become TransientPlatformError with
            # the reset time, and the caller schedules the retry.
            wait_on_rate_limit=False,
        )
        # OAuth 1.0a access tokens start with the account's user id: a fallback for /users/me.
        self.user_id: str = access_token.partition("-")[0]
        self.username: str | None = None
        self._session: aiohttp.ClientSession | None = None
        self._sink: EventSink | None = None
        self._connected = False

    # --- contract ------------------------------------------------------------------------

    def is_connected(self) -> bool:
        return self._connected

    async def start(self, sink: EventSink) -> None:
        """Open the HTTP session and learn who the bot is (``GET /2/users/me``).

        Bad credentials stop the start; a transient failure only logs, since posting works
        without the handle (links then use X's handle-less form).
        """
        self._sink = sink  # X pushes nothing; mentions are polled by the core
        if self._session is None:
            self._session = aiohttp.ClientSession(
                middlewares=(self._middleware,) if self._middleware else (),
                timeout=aiohttp.ClientTimeout(total=self._timeout),
            )
            self._client.session = self._session
        try:
            await self._whoami()
        except TransientPlatformError as exc:
            log.warning("x: cannot read the bot account yet: %s", exc.reason)
        except PermanentPlatformError:
            await self.stop()
            raise
        self._connected = True
        log.info("x: connected as user_id=%s handle=%s", self.user_id, self.username)

    async def _whoami(self) -> None:
        me = await self._call(self._client.get_me(user_auth=True, user_fields=["username"]))
        data = me.get("data") or {}
        self.user_id = str(data.get("id") or self.user_id)
        self.username = str(data.get("username") or "") or None

    async def stop(self) -> None:
        self._connected = False
        if self._session is not None:
            session, self._session = self._session, None
            self._client.session = None
            await session.close()

    def _sent(self, message: OutgoingMessage, post_id: str) -> SentMessage:
        """The post ``message`` became (posted now, or found on the timeline)."""
        return SentMessage(
            PLATFORM,
            message.where.channel_id,
            post_id,
            self.post_url(post_id),
            thread_id=message.where.thread_id or message.reply_to,
        )

    def post_url(self, post_id: str) -> str:
        """The public link of a post."""
        if self.username:
            return f"https://x.com/{self.username}/status/{post_id}"
        return f"https://x.com/i/web/status/{post_id}"

    async def send(self, message: OutgoingMessage) -> SentMessage:
        """Post ``message`` (a reply when ``reply_to`` is set), shortened to one post if needed.

        Announcements arrive already split into thread parts that fit; answers longer than a
        post are cut at a word, keeping their closing source link.
        """
        if message.ephemeral_to:
            raise PermanentPlatformError(PLATFORM, "X has no private replies")
        kwargs: dict[str, Any] = {"text": fit_post(message.text), "user_auth": True}
        if message.reply_to:
            kwargs["in_reply_to_tweet_id"] = message.reply_to
        body = await self._call(self._client.create_tweet(**kwargs), write=True)
        post_id = str((body.get("data") or {}).get("id") or "")
        if not post_id:
            raise TransientPlatformError(PLATFORM, "X answered without a post id", ambiguous=True)
        return self._sent(message, post_id)

    async def find_posted(
        self, message: OutgoingMessage, key: str, since: datetime
    ) -> SentMessage | None:
        """The account's post of ``message`` since ``since``, read from its own timeline.

        X keeps no idempotency key, so a post matches by its text (links and HTML escaping
        aside) and the post it replies to (none for the first part of a thread). ``key`` is
        not used. X refuses a second post with the same text anyway, so a match is the lost
        post, not an older one.
        """
        wanted = comparable_text(fit_post(message.text))
        params: dict[str, Any] = {
            "start_time": since,
            "max_results": PAGE_SIZE,
            "tweet_fields": ["created_at", "in_reply_to_user_id", "referenced_tweets"],
            "exclude": ["retweets"],
            "user_auth": True,
        }
        token: str | None = None
        for _ in range(self._max_pages):
            if token:
                params["pagination_token"] = token
            body = await self._call(self._client.get_users_tweets(self.user_id, **params))
            for post in body.get("data") or []:
                if _replied_to(post) != message.reply_to:
                    continue
                if comparable_text(str(post.get("text") or "")) != wanted:
                    continue
                return self._sent(message, str(post["id"]))
            token = (body.get("meta") or {}).get("next_token")
            if not token:
                break
        return None

    async def delete(self, sent: SentMessage) -> None:
        try:
            await self._call(self._client.delete_tweet(sent.message_id, user_auth=True))
        except PermanentPlatformError as exc:
            if "does not exist" not in exc.reason:
                raise
            # Already gone (deleted by hand, or an earlier retraction got this far).

    # --- polled by the core ----------------------------------------------------------------

    async def fetch_mentions(
        self, since_id: str | None, *, start_time: datetime | None = None
    ) -> MentionBatch:
        """Mentions of the bot newer than ``since_id`` (or since ``start_time``), oldest first.

        At most ``max_mention_pages`` pages of 100 are read per call; X pages from the newest
        backwards, so anything older than that is reported as ``truncated``.
        """
        params: dict[str, Any] = {
            "max_results": PAGE_SIZE,
            "tweet_fields": [
                "author_id",
                "conversation_id",
                "created_at",
                "in_reply_to_user_id",
                "referenced_tweets",
            ],
            "expansions": ["author_id"],
            "user_fields": ["username"],
            "user_auth": True,
        }
        if self.username is None:
            # Without the handle a reply under the bot's own post would count as a question.
            await self._whoami()
        if since_id:
            params["since_id"] = since_id
        elif start_time is not None:
            params["start_time"] = start_time
        posts: list[dict[str, Any]] = []
        users: dict[str, dict[str, Any]] = {}
        newest: str | None = None
        token: str | None = None
        truncated = False
        for page in range(self._max_pages):
            if token:
                params["pagination_token"] = token
            body = await self._call(self._client.get_users_mentions(self.user_id, **params))
            meta = body.get("meta") or {}
            if page == 0:
                newest = str(meta["newest_id"]) if meta.get("newest_id") else None
            posts += list(body.get("data") or [])
            for user in (body.get("includes") or {}).get("users") or []:
                users[str(user.get("id"))] = user
            token = meta.get("next_token")
            if not token:
                break
        else:
            truncated = bool(token)
        posts.sort(key=lambda post: int(post["id"]))
        mentions = tuple(self._mention(post, users) for post in posts)
        return MentionBatch(
            mentions, newest or (mentions[-1].message_id if mentions else None), truncated
        )

    async def fetch_metrics(self, post_ids: Sequence[str]) -> Mapping[str, PostMetrics]:
        """``public_metrics`` of the posts that still exist, 100 per request."""
        found: dict[str, PostMetrics] = {}
        ids = list(dict.fromkeys(post_ids))
        for start in range(0, len(ids), PAGE_SIZE):
            chunk = ids[start : start + PAGE_SIZE]
            body = await self._call(
                self._client.get_tweets(chunk, tweet_fields=["public_metrics"], user_auth=True)
            )
            for post in body.get("data") or []:
                metrics = post.get("public_metrics") or {}
                post_id = str(post.get("id"))
                found[post_id] = PostMetrics(
                    post_id=post_id,
                    likes=_count(metrics, "like_count") or 0,
                    reposts=_count(metrics, "retweet_count") or 0,
                    replies=_count(metrics, "reply_count") or 0,
                    quotes=_count(metrics, "quote_count") or 0,
                    bookmarks=_count(metrics, "bookmark_count"),
                    impressions=_count(metrics, "impression_count"),
                )
        return found

    # --- helpers ---------------------------------------------------------------------------

    async def _call(self, call: Coroutine[Any, Any, Any], *, write: bool = False) -> dict[str, Any]:
        if self._session is None:
            # Without our session tweepy would open its own, straight to api.twitter.com,
            # bypassing x.api_url.
            call.close()
            raise TransientPlatformError(PLATFORM, "the X adapter is not started")
        try:
            result = await call
        except tweepy.errors.HTTPException as exc:
            raise translate(exc, await _problem(exc), write=write) from exc
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise translate(exc, write=write) from exc
        return result if isinstance(result, dict) else {}

    def _mention(self, post: Mapping[str, Any], users: Mapping[str, Any]) -> IncomingMessage:
        """A post from the mentions timeline as the core's message.

        X puts the handles of a conversation in front of every reply, so a reply to one of the
        bot's own posts (a comment under an announcement) mentions the bot without asking it
        anything: ``mentions_bot`` is false there unless the handle is also in the body.
        """
        post_id = str(post["id"])
        author_id = str(post.get("author_id") or "")
        text = html.unescape(str(post.get("text") or ""))
        replied_to = _replied_to(post)
        leading = _LEADING_HANDLES.match(text)
        body = text[leading.end() :] if leading else text
        handle = self.username
        own = re.compile(rf"(?<![\w@])@{re.escape(handle)}\b", re.IGNORECASE) if handle else None
        to_bot = replied_to is not None and str(post.get("in_reply_to_user_id")) == self.user_id
        addressed = not to_bot or own is None or bool(own.search(body))
        question = " ".join((own.sub(" ", body) if own else body).split())
        user = users.get(author_id) or {}
        return IncomingMessage(
            where=Conversation(
                PLATFORM, TIMELINE, thread_id=str(post.get("conversation_id") or post_id)
            ),
            author=Author(id=author_id, name=str(user.get("username") or "")),
            text=question,
            message_id=post_id,
            mentions_bot=addressed,
            is_own=bool(author_id) and author_id == self.user_id,
            event_id=f"mention:{post_id}",
            reply_to_id=replied_to,
            received_at=_parse_time(post.get("created_at")) or utcnow(),
        )
