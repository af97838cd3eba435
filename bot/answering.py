"""Answering questions from the FAQ: pick an entry or decline honestly.

:class:`Knowledge` holds an immutable :class:`~bot.matcher.Matcher` over the stored entries and
swaps in a new one when the FAQ changes, so answering never waits on the database.

Published announcements feed the answers too: each one sent is searchable like an FAQ entry,
and "what's the latest news?" / "when is the next announcement?" are answered live from a
:class:`NewsSource` (implemented by the announcements package; the core only knows this
protocol). Upcoming announcements are never quoted, only their time: they may be embargoed.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import Protocol

from bot.matcher import FaqDoc, Match, Matcher
from bot.store.faq import FaqStore
from bot.store.models import FaqEntry

log = logging.getLogger(__name__)

#: Decline reasons that carry no question worth a moderator's time.
NOT_A_QUESTION = frozenset({"empty", "no_content"})
#: Matcher ids of the live news answers; published announcements use ANNOUNCEMENT_BASE - id.
LATEST_NEWS = -1
NEXT_ANNOUNCEMENT = -2
ANNOUNCEMENT_BASE = -1000
#: Distinct question texts whose match is remembered between reloads.
MATCH_CACHE_SIZE = 4096

LATEST_PHRASINGS = (
    "What's the latest news?",
    "any news?",
    "what was announced recently",
    "latest announcement",
    "most recent update from the foundation",
    "what's new",
    "recent announcements",
)
NEXT_PHRASINGS = (
    "When is the next announcement?",
    "is there an announcement coming up",
    "upcoming announcements",
    "what's scheduled next",
    "when will the next update be posted",
    "next news",
)


@dataclass(frozen=True, slots=True)
class NewsItem:
    """A published or upcoming announcement as the answering side sees it."""

    announcement_id: int
    text: str
    when: datetime
    url: str | None = None


class NewsSource(Protocol):
    """Where live news answers come from."""

    async def published(self, limit: int) -> Sequence[NewsItem]:
        """Announcements sent (and not retracted), newest first."""

    async def upcoming(self, limit: int) -> Sequence[NewsItem]:
        """Announcements scheduled to go out (none while an embargo is on), soonest first."""


@dataclass(frozen=True, slots=True)
class Answer:
    """The bot's reply to one question."""

    question: str
    answered: bool
    #: The reply to post: the answer with its source, or the decline message.
    text: str
    #: The answering FAQ entry, or the closest one for a low-confidence decline.
    entry_id: int | None
    score: float
    #: The matcher's reason ("match", "low_confidence", "off_topic", ...) or "too_long".
    reason: str
    #: The announcement the answer is about, for news answers.
    announcement_id: int | None = None

    @property
    def needs_review(self) -> bool:
        """Whether moderators should see this question in their queue."""
        return not self.answered and self.reason not in NOT_A_QUESTION


def format_as_of(day: date) -> str:
    """``2022-09-12`` -> ``12 September 2022``."""
    return f"{day.day} {day.strftime('%B %Y')}"


def _sentences(text: str) -> list[str]:
    plain = re.sub(r"[*_`#>\[\]]", " ", text)
    return [s.strip() for s in re.split(r"(?<=[.!?])\s+|\n+", plain) if len(s.split()) >= 3]


@dataclass(frozen=True, slots=True)
class _Entry:
    answer: str
    source_url: str | None
    as_of: date | None
    question: str


class Knowledge:
    """The FAQ (and published news) as the bot answers from it."""

    def __init__(
        self,
        faq: FaqStore,
        *,
        threshold: float | None = None,
        more_info_url: str = "",
        max_question_chars: int = 2000,
        news: NewsSource | None = None,
    ) -> None:
        self._faq = faq
        self._threshold = threshold
        self._more_info_url = more_info_url
        self._max_chars = max_question_chars
        self._news = news
        self._matcher = Matcher([], threshold=threshold)
        # The same questions come a thousand times: remember the matcher's verdict per exact
        # question text until the next reload (bounded; oldest dropped first).
        self._recent: OrderedDict[str, Match] = OrderedDict()
        self._entries: dict[int, _Entry] = {}
        self._examples: tuple[str, ...] = ()
        self._lock = asyncio.Lock()
        self._pending_reload: asyncio.Task[None] | None = None

    def __len__(self) -> int:
        return len(self._entries)

    async def reload(self) -> None:
        """Rebuild the matcher from the database (call after any FAQ change)."""
        async with self._lock:
            entries = await self._faq.all()
            published = await self._news.published(200) if self._news else ()
            # Building the index is CPU work; a thread keeps the loop answering meanwhile.
            self._matcher, self._entries, self._examples = await asyncio.to_thread(
                self._build, entries, published
            )
            self._recent = OrderedDict()
        log.info("knowledge loaded entries=%d news=%d", len(entries), len(published))

    def reload_soon(self, delay: float = 2.0) -> None:
        """Reload after ``delay`` seconds; calls meanwhile are merged into that one reload.

        A fan-out sends many deliveries within a second; one re-index covers them all and
        keeps the database free for the deliveries themselves.
        """
        if self._pending_reload is None or self._pending_reload.done():
            self._pending_reload = asyncio.get_running_loop().create_task(self._reload_later(delay))

    async def cancel_reload(self) -> None:
        """Drop a reload that is still waiting (shutdown: before the database closes)."""
        task, self._pending_reload = self._pending_reload, None
        if task is not None and not task.done():
            task.cancel()
            await asyncio.wait({task})  # unlike ``await task``, a cancel of ours still propagates

    async def _reload_later(self, delay: float) -> None:
        await asyncio.sleep(delay)
        try:
            await self.reload()
        except Exception:
            log.exception("knowledge reload failed; answering from the previous index")

    def _build(
        self, entries: Sequence[FaqEntry], published: Sequence[NewsItem]
    ) -> tuple[Matcher, dict[int, _Entry], tuple[str, ...]]:
        docs = [
            FaqDoc(e.id, e.question, tuple(e.phrasings), e.answer, tuple(e.tags)) for e in entries
        ]
        table = {e.id: _Entry(e.answer, e.source_url, e.as_of, e.question) for e in entries}
        if self._news is not None:
            docs.append(FaqDoc(LATEST_NEWS, LATEST_PHRASINGS[0], LATEST_PHRASINGS[1:], "", ()))
            docs.append(FaqDoc(NEXT_ANNOUNCEMENT, NEXT_PHRASINGS[0], NEXT_PHRASINGS[1:], "", ()))
        for item in published:
            sentences = _sentences(item.text)
            if sentences:
                ident = ANNOUNCEMENT_BASE - item.announcement_id
                docs.append(FaqDoc(ident, sentences[0], tuple(sentences[1:6]), item.text, ()))
                table[ident] = _Entry(item.text, item.url, item.when.date(), sentences[0])
        examples = tuple(e.question for e in entries[:2])
        return Matcher(docs, threshold=self._threshold), table, examples

    def question_of(self, entry_id: int) -> str | None:
        """The canonical question of an entry."""
        entry = self._entries.get(entry_id)
        return entry.question if entry else None

    def _match(self, question: str) -> Match:
        match = self._recent.get(question)
        if match is None:
            match = self._matcher.match(question)
            self._recent[question] = match
            if len(self._recent) > MATCH_CACHE_SIZE:
                self._recent.popitem(last=False)
        else:
            self._recent.move_to_end(question)
        return match

    def answer(self, question: str) -> Answer:
        """Answer or decline from the FAQ alone. Pure CPU work; never raises on any string.

        Live news questions come back with ``reason="news"``; :meth:`respond` fills them in.
        """
        if len(question) > self._max_chars:
            return Answer(question, False, self.too_long_text(), None, 0.0, "too_long")
        match = self._match(question)
        ident = match.entry_id
        if match.answered and ident in (LATEST_NEWS, NEXT_ANNOUNCEMENT):
            return Answer(question, True, "", ident, match.score, "news")
        entry = self._entries.get(ident) if ident is not None else None
        announcement = (
            ANNOUNCEMENT_BASE - ident if ident is not None and ident <= ANNOUNCEMENT_BASE else None
        )
        faq_id = ident if ident is not None and ident > 0 else None
        if match.answered and entry is not None:
            text = self._cite(entry, announcement is not None)
            return Answer(question, True, text, faq_id, match.score, match.reason, announcement)
        return Answer(
            question,
            False,
            self.decline_text(match.reason),
            faq_id,
            match.score,
            match.reason,
            announcement,
        )

    async def respond(self, question: str) -> Answer:
        """:meth:`answer`, with live news questions answered from the announcements."""
        answer = self.answer(question)
        if answer.reason != "news" or self._news is None:
            return answer
        if answer.entry_id == LATEST_NEWS:
            items = await self._news.published(3)
            if not items:
                return replace(answer, entry_id=None, text="No announcements have been posted yet.")
            lines = ["The latest announcements:"]
            for item in items:
                link = f" — {item.url}" if item.url else ""
                lines.append(f"• {item.when:%Y-%m-%d}: {_summary(item.text)}{link}")
            return replace(
                answer,
                entry_id=None,
                text="\n".join(lines),
                announcement_id=items[0].announcement_id,
            )
        upcoming = await self._news.upcoming(1)
        if not upcoming:
            return replace(answer, entry_id=None, text="No announcement is scheduled right now.")
        when = upcoming[0].when
        return replace(
            answer,
            entry_id=None,
            text=f"The next announcement is scheduled for {when:%Y-%m-%d %H:%M} UTC.",
        )

    @staticmethod
    def _cite(entry: _Entry, is_announcement: bool) -> str:
        parts = []
        if entry.source_url:
            parts.append(f"Source: {entry.source_url}")
        if entry.as_of:
            label = "posted" if is_announcement else "as of"
            parts.append(f"{label} {format_as_of(entry.as_of)}")
        return entry.answer if not parts else f"{entry.answer}\n\n{' · '.join(parts)}"

    def too_long_text(self) -> str:
        """Reply to a message over the length limit."""
        return (
            f"That message is too long for me (over {self._max_chars} characters). "
            "Please ask one short question."
        )

    def decline_text(self, reason: str) -> str:
        """A short, honest, helpful fallback."""
        examples = " or ".join(f"“{q}”" for q in self._examples)
        lines = []
        if reason in NOT_A_QUESTION:
            lines.append("Hi! Ask me a question about PyTorch's move to the PyTorch Foundation.")
        else:
            lines.append(
                "Sorry, I don't have a reliable answer to that, so I won't guess. "
                "I've passed your question to the moderators."
            )
            lines.append(
                "I can answer questions about PyTorch's move to the PyTorch Foundation "
                "under the Linux Foundation."
            )
        if examples:
            lines.append(f"For example: {examples}")
        if self._more_info_url:
            lines.append(f"Read more: {self._more_info_url}")
        return "\n".join(lines)


def _summary(text: str, limit: int = 200) -> str:
    one_line = " ".join(re.sub(r"[*_`#>]", "", text).split())
    return one_line if len(one_line) <= limit else one_line[: limit - 1] + "…"
