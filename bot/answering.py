"""Answering questions from the FAQ: pick an entry or decline honestly.

:class:`Knowledge` holds an immutable :class:`~bot.matcher.Matcher` over the stored entries and
swaps in a new one when the FAQ changes, so answering never waits on the database.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from bot.matcher import FaqDoc, Match, Matcher
from bot.store.faq import FaqStore
from bot.store.models import FaqEntry

log = logging.getLogger(__name__)

#: Decline reasons that carry no question worth a moderator's time.
NOT_A_QUESTION = frozenset({"empty", "no_content"})


@dataclass(frozen=True, slots=True)
class Answer:
    """The bot's reply to one question."""

    question: str
    answered: bool
    #: The reply to post: the answer with its source, or the decline message.
    text: str
    #: The answering entry, or the closest one for a low-confidence decline.
    entry_id: int | None
    score: float
    #: The matcher's reason ("match", "low_confidence", "off_topic", ...) or "too_long".
    reason: str

    @property
    def needs_review(self) -> bool:
        """Whether moderators should see this question in their queue."""
        return not self.answered and self.reason not in NOT_A_QUESTION


def format_as_of(day: date) -> str:
    """``2022-09-12`` -> ``12 September 2022``."""
    return f"{day.day} {day.strftime('%B %Y')}"


@dataclass(frozen=True, slots=True)
class _Entry:
    answer: str
    source_url: str | None
    as_of: date | None
    question: str


class Knowledge:
    """The FAQ as the bot answers from it."""

    def __init__(
        self,
        faq: FaqStore,
        *,
        threshold: float | None = None,
        more_info_url: str = "",
        max_question_chars: int = 2000,
    ) -> None:
        self._faq = faq
        self._threshold = threshold
        self._more_info_url = more_info_url
        self._max_chars = max_question_chars
        self._matcher = Matcher([], threshold=threshold)
        self._entries: dict[int, _Entry] = {}
        self._examples: tuple[str, ...] = ()
        self._lock = asyncio.Lock()

    def __len__(self) -> int:
        return len(self._matcher)

    async def reload(self) -> None:
        """Rebuild the matcher from the database (call after any FAQ change)."""
        async with self._lock:
            entries = await self._faq.all()
            # Building the index is CPU work; a thread keeps the loop answering meanwhile.
            self._matcher, self._entries, self._examples = await asyncio.to_thread(
                self._build, entries
            )
        log.info("knowledge loaded entries=%d", len(self._entries))

    def _build(
        self, entries: Sequence[FaqEntry]
    ) -> tuple[Matcher, dict[int, _Entry], tuple[str, ...]]:
        docs = [
            FaqDoc(e.id, e.question, tuple(e.phrasings), e.answer, tuple(e.tags)) for e in entries
        ]
        table = {e.id: _Entry(e.answer, e.source_url, e.as_of, e.question) for e in entries}
        examples = tuple(e.question for e in entries[:2])
        return Matcher(docs, threshold=self._threshold), table, examples

    def question_of(self, entry_id: int) -> str | None:
        """The canonical question of an entry."""
        entry = self._entries.get(entry_id)
        return entry.question if entry else None

    def answer(self, question: str) -> Answer:
        """Answer or decline ``question``. Pure CPU work; never raises on any string."""
        if len(question) > self._max_chars:
            return Answer(question, False, self.too_long_text(), None, 0.0, "too_long")
        match: Match = self._matcher.match(question)
        entry = self._entries.get(match.entry_id) if match.entry_id is not None else None
        if match.answered and entry is not None:
            return Answer(
                question, True, self._cite(entry), match.entry_id, match.score, match.reason
            )
        return Answer(
            question,
            False,
            self.decline_text(match.reason),
            match.entry_id,
            match.score,
            match.reason,
        )

    @staticmethod
    def _cite(entry: _Entry) -> str:
        parts = []
        if entry.source_url:
            parts.append(f"Source: {entry.source_url}")
        if entry.as_of:
            parts.append(f"as of {format_as_of(entry.as_of)}")
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
