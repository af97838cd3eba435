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
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from typing import Any, Protocol

from bot.deciding import (
    ABOUT_ME,
    INSTRUCTIONS,
    NO_CONTENT,
    Decider,
    Outcome,
    SemanticScores,
    Verdict,
    consider,
)
from bot.matcher import FaqDoc, Matcher
from bot.store.faq import FaqStore
from bot.store.models import FaqEntry
from bot.wordlist import load_word_list

log = logging.getLogger(__name__)

#: Decline reasons that carry no question worth a moderator's time.
COMMAND = "command"
#: "command": a bot command typed without its slash where commands cannot be run (a public
#: timeline), which is nobody's question.
NOT_A_QUESTION = NO_CONTENT | {COMMAND}
#: Declines the moderators' queue does not get: no question, a message refused as too long
#: (its author was asked for one short question; there is nothing to answer yet), or one
#: that tries to instruct the bot (no FAQ entry will ever answer it).
NOT_FOR_REVIEW = NOT_A_QUESTION | {"too_long", INSTRUCTIONS, ABOUT_ME}
#: Matcher ids of the live news answers; published announcements use ANNOUNCEMENT_BASE - id.
LATEST_NEWS = -1
NEXT_ANNOUNCEMENT = -2
ANNOUNCEMENT_BASE = -1000
#: Distinct question texts whose verdict is remembered between reloads.
MATCH_CACHE_SIZE = 4096
#: Longest button label / suggestion shown, in characters.
SUGGESTION_CHARS = 75
#: Questions of one message answered in one reply.
MAX_ANSWERS = 3
#: Said after a decline, depending on whether the question reached the review queue.
QUEUED_NOTE = "I've passed your question to the moderators."
NOT_QUEUED_NOTE = "I couldn't pass your question to the moderators just now."


def moderators_note(queued: bool) -> str:
    """The true sentence about the review queue, for a decline's reply."""
    return QUEUED_NOTE if queued else NOT_QUEUED_NOTE


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

    async def version(self) -> tuple[object, ...]:
        """A fingerprint that changes whenever :meth:`published` would."""


@dataclass(frozen=True, slots=True)
class Suggestion:
    """An entry offered with a clarification."""

    entry_id: int
    #: The entry's canonical question (what the button says).
    question: str
    #: The reply posted if it is picked (answer and citation).
    answer: str


@dataclass(frozen=True, slots=True)
class Answer:
    """The bot's reply to one message."""

    question: str
    answered: bool
    #: The reply to post: the answer(s) with their sources, the clarification's lead-in, or
    #: the decline message.
    text: str
    #: The (first) answering FAQ entry, or the closest one for a decline or clarification.
    entry_id: int | None
    #: How sure the bot is of its best entry: P(answer) from the decision model.
    score: float
    #: Why: "confident", "unsure" (a clarification), "low_confidence", "off_topic",
    #: "no_content", "empty", "too_long", "instructions" (addressed to the bot), "about_me"
    #: (a question about the bot itself), "command" (a command without its slash where
    #: commands cannot run), "refers_back" (points back at a question it declined) or "news".
    reason: str
    #: The announcement the answer is about, for news answers.
    announcement_id: int | None = None
    #: "answer", "clarify" or "decline".
    outcome: Outcome = Outcome.DECLINE
    #: Entries offered, for a clarification.
    suggestions: tuple[Suggestion, ...] = ()
    #: Every entry answered with, in the order asked (several for a multi-part message).
    entry_ids: tuple[int, ...] = ()
    #: How the message was read and ranked, for ``/why`` and ``ask --json``.
    verdict: Verdict | None = field(default=None, compare=False, repr=False)

    @property
    def needs_review(self) -> bool:
        """Whether moderators should see this question in their queue."""
        return self.outcome is Outcome.DECLINE and self.reason not in NOT_FOR_REVIEW


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
        decider: Decider | None = None,
        semantic: bool = False,
    ) -> None:
        self._faq = faq
        #: Whether to build the semantic second opinion (see :meth:`_build_semantic`).
        self._want_semantic = semantic
        self._embedder: Any = None
        self._semantic: Any = None
        #: Passage text -> vector, so a reload embeds only new or changed passages.
        self._vectors: dict[str, Any] = {}
        self._semantic_task: asyncio.Task[None] | None = None
        self._decider = decider if decider is not None else Decider(answer_cut=threshold)
        self._more_info_url = more_info_url
        self._max_chars = max_question_chars
        self._news = news
        self._matcher = Matcher([])
        # The same questions come a thousand times: remember the verdict per exact question
        # text until the next reload (bounded; oldest dropped first).
        self._recent: OrderedDict[tuple[str, bool], Verdict] = OrderedDict()
        self._entries: dict[int, _Entry] = {}
        self._examples: tuple[str, ...] = ()
        self._lock = asyncio.Lock()
        self._pending_reload: asyncio.Task[None] | None = None
        self._loaded_version: tuple[object, ...] | None = None

    def __len__(self) -> int:
        return len(self._entries)

    async def _version(self) -> tuple[object, ...]:
        news = await self._news.version() if self._news else ()
        return (*await self._faq.version(), *news)

    async def refresh(self) -> bool:
        """Reload if the FAQ or the published news changed since the last load, whichever
        process changed them; True if it reloaded. Runs every couple of seconds."""
        if await self._version() == self._loaded_version:
            return False
        await self.reload()
        return True

    async def reload(self) -> None:
        """Rebuild the matcher from the database (call after any FAQ change)."""
        async with self._lock:
            # Read the fingerprint first: a change landing during the load is seen next time.
            self._loaded_version = await self._version()
            entries = await self._faq.all()
            published = await self._news.published(200) if self._news else ()
            # Building the index is CPU work; a thread keeps the loop answering meanwhile.
            self._matcher, self._entries, self._examples = await asyncio.to_thread(
                self._build, entries, published
            )
            self._recent = OrderedDict()
            self._semantic = None  # rebuilt below for the new entries
        log.info("knowledge loaded entries=%d news=%d", len(entries), len(published))
        if self._want_semantic:
            # Lexical answering is ready now; the second opinion joins when its vectors are.
            passages = [(e.id, (e.question, *e.phrasings)) for e in entries]
            if self._semantic_task is not None and not self._semantic_task.done():
                self._semantic_task.cancel()
            self._semantic_task = asyncio.get_running_loop().create_task(
                self._build_semantic(passages)
            )

    async def wait_semantic(self) -> bool:
        """Wait for the semantic index being built (tests, benchmarks); True if it is in use."""
        task = self._semantic_task
        if task is not None:
            await asyncio.wait({task})
        return self._semantic is not None

    async def _build_semantic(self, passages: Sequence[tuple[int, Sequence[str]]]) -> None:
        try:
            index = await asyncio.to_thread(self._semantic_index, passages)
        except Exception:
            log.exception("semantic index not built; answering lexically")
            return
        if index is not None:
            self._semantic = index
            self._recent = OrderedDict()
            log.info("semantic second opinion ready passages=%d", index.passage_count)

    def _semantic_index(self, passages: Sequence[tuple[int, Sequence[str]]]) -> Any:
        """The semantic index over ``passages``, embedding only texts not seen before."""
        if self._embedder is None:
            try:
                from bot.semantic import Embedder
            except ImportError as exc:
                log.warning("semantic second opinion off: %s (install the semantic extra)", exc)
                self._want_semantic = False
                return None
            self._embedder = Embedder.load()
            if self._embedder is None:
                self._want_semantic = False
                return None
        from bot.semantic import SemanticIndex

        embedder = self._embedder
        texts = list(dict.fromkeys(t for _, group in passages for t in group))
        missing = [t for t in texts if t not in self._vectors]
        if missing:
            for text, vector in zip(missing, embedder.embed(missing), strict=True):
                self._vectors[text] = vector
        keep = set(texts)
        self._vectors = {t: v for t, v in self._vectors.items() if t in keep}
        ids: list[int] = []
        counts: list[int] = []
        rows: list[Any] = []
        for entry_id, group in passages:
            unique = list(dict.fromkeys(group))
            if unique:
                ids.append(entry_id)
                counts.append(len(unique))
                rows.extend(self._vectors[t] for t in unique)
        import numpy as np

        matrix = np.stack(rows) if rows else np.empty((0, embedder.dimension), dtype=np.float32)
        return SemanticIndex(ids, counts, matrix)

    def _semantic_scores(self, text: str) -> SemanticScores | None:
        index, embedder = self._semantic, self._embedder
        if index is None or embedder is None:
            return None
        scores: SemanticScores = index.scores(embedder.embed_one(text))
        return scores

    def reload_soon(self, delay: float = 2.0) -> None:
        """Reload after ``delay`` seconds; calls meanwhile are merged into that one reload.

        A fan-out sends many deliveries within a second; one re-index covers them all and
        keeps the database free for the deliveries themselves.
        """
        if self._pending_reload is None or self._pending_reload.done():
            self._pending_reload = asyncio.get_running_loop().create_task(self._reload_later(delay))

    async def cancel_reload(self) -> None:
        """Drop a reload that is still waiting (shutdown: before the database closes)."""
        semantic, self._semantic_task = self._semantic_task, None
        if semantic is not None and not semantic.done():
            semantic.cancel()
            await asyncio.wait({semantic})
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
        load_word_list()
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
        return Matcher(docs), table, examples

    def question_of(self, entry_id: int) -> str | None:
        """The canonical question of an entry."""
        entry = self._entries.get(entry_id)
        return entry.question if entry else None

    def _verdict(self, question: str, clarify: bool) -> Verdict:
        key = (question, clarify)
        verdict = self._recent.get(key)
        if verdict is None:
            semantic = self._semantic_scores if self._semantic is not None else None
            verdict = consider(
                question, self._matcher, self._decider, clarify=clarify, semantic=semantic
            )
            self._recent[key] = verdict
            if len(self._recent) > MATCH_CACHE_SIZE:
                self._recent.popitem(last=False)
        else:
            self._recent.move_to_end(key)
        return verdict

    @property
    def answer_cut(self) -> float:
        """P(answer) the decision model needs to answer."""
        return self._decider.answer_cut

    def explain(self, question: str, *, clarify: bool = True) -> Verdict:
        """How ``question`` is read, ranked and decided (for ``/why`` and ``ask --json``)."""
        return self._verdict(question, clarify)

    def entry_reply(self, entry_id: int) -> Suggestion | None:
        """An entry's question and its reply with citation (a picked suggestion)."""
        entry = self._entries.get(entry_id)
        if entry is None:
            return None
        return Suggestion(entry_id, entry.question, self._cite(entry, entry_id < 0))

    def answer(self, question: str, *, clarify: bool = True) -> Answer:
        """Answer, clarify or decline from the FAQ alone. Pure CPU work; never raises.

        Args:
            question: the user's whole message.
            clarify: whether "did you mean…" may be offered (False where the platform cannot
                show suggestions; an unsure question is then declined).

        Live news questions come back with ``reason="news"``; :meth:`respond` fills them in.
        """
        if len(question) > self._max_chars:
            return Answer(question, False, self.too_long_text(), None, 0.0, "too_long")
        verdict = self._verdict(question, clarify)
        lead = verdict.lead
        confidence = round(lead.decision.confidence, 4)
        if verdict.outcome is Outcome.ANSWER:
            news = (LATEST_NEWS, NEXT_ANNOUNCEMENT)
            ids = tuple(i for i in verdict.answers if i in self._entries or i in news)
            if ids and ids[0] in news:
                return Answer(
                    question,
                    True,
                    "",
                    ids[0],
                    confidence,
                    "news",
                    None,
                    Outcome.ANSWER,
                    (),
                    ids[:1],
                    verdict,
                )
            ids = tuple(i for i in ids if i in self._entries)[:MAX_ANSWERS]
            if ids:
                first = ids[0]
                announcement = ANNOUNCEMENT_BASE - first if first <= ANNOUNCEMENT_BASE else None
                return Answer(
                    question,
                    True,
                    self._compose(ids),
                    first if first > 0 else None,
                    confidence,
                    "confident",
                    announcement,
                    Outcome.ANSWER,
                    (),
                    ids,
                    verdict,
                )
        near = lead.decision.entry_id
        faq_id = near if near is not None and near > 0 else None
        if verdict.outcome is Outcome.CLARIFY:
            suggestions = tuple(
                s for i in verdict.suggestions if (s := self.entry_reply(i)) is not None
            )
            if suggestions:
                return Answer(
                    question,
                    False,
                    self.clarify_text(suggestions),
                    faq_id,
                    confidence,
                    "unsure",
                    None,
                    Outcome.CLARIFY,
                    suggestions,
                    (),
                    verdict,
                )
        reason = lead.decision.reason
        if verdict.outcome is not Outcome.DECLINE:
            reason = "low_confidence"
        return Answer(
            question,
            False,
            self.decline_text(reason),
            faq_id,
            confidence,
            reason,
            None,
            Outcome.DECLINE,
            (),
            (),
            verdict,
        )

    def _compose(self, ids: Sequence[int]) -> str:
        """The reply for one or more answered entries, each with its own citation."""
        entries = [(i, self._entries[i]) for i in ids]
        if len(entries) == 1:
            ident, entry = entries[0]
            return self._cite(entry, ident <= ANNOUNCEMENT_BASE)
        return "\n\n".join(
            f"{entry.question}\n{self._cite(entry, ident <= ANNOUNCEMENT_BASE)}"
            for ident, entry in entries
        )

    async def respond(self, question: str, *, clarify: bool = True) -> Answer:
        """:meth:`answer`, with live news questions answered from the announcements."""
        answer = self.answer(question, clarify=clarify)
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

    def not_a_question(self, message: str, reason: str) -> Answer:
        """The quiet decline of a message that asks nothing (``reason`` in
        :data:`NOT_A_QUESTION`): logged, never queued for moderators."""
        return Answer(message, False, self.decline_text(reason), None, 0.0, reason)

    def too_long_text(self) -> str:
        """Reply to a message over the length limit."""
        return (
            f"That message is too long for me (over {self._max_chars} characters). "
            "Please ask one short question."
        )

    @staticmethod
    def clarify_text(suggestions: Sequence[Suggestion]) -> str:
        """The lead-in of a clarification; the suggestions themselves follow as choices."""
        del suggestions  # the adapter shows them (buttons, or numbered lines)
        return "I'm not sure which you mean:"

    def decline_text(self, reason: str) -> str:
        """A short, honest fallback. Whether the question reached the moderators is said by
        the caller, who knows (see :func:`moderators_note`)."""
        examples = " or ".join(f"“{q}”" for q in self._examples)
        lines = []
        if reason in NOT_A_QUESTION:
            lines.append("Hi! Ask me a question about PyTorch's move to the PyTorch Foundation.")
        elif reason == ABOUT_ME:
            lines.append(
                "I'm a bot: I answer questions about PyTorch's move to the PyTorch Foundation "
                "from a FAQ its team keeps, and pass the ones I can't answer to people."
            )
        else:
            lines.append("Sorry, I don't have a reliable answer to that, so I won't guess.")
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
