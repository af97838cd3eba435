"""The FAQ matcher: which entry answers a question, or a decision to decline.

Method (chosen on the dev set in ``tests/data/dev_questions.toml``, see ``bench/eval_matcher.py``
and the README): every canonical question and phrasing is a short passage; a question is
normalized (mentions and URLs removed, typos corrected against the pack's own vocabulary,
words stemmed, a small table of domain synonyms folded into concepts) and scored against the
passages with IDF-weighted overlap in both directions:

* *question coverage* — how much of what the user asked (by IDF weight) the passage explains;
* *passage coverage* — how much of the passage the question touches.

An entry's score is its best passage's blend of the two. The bot answers only when the score
clears the threshold *and* the best entry is clearly ahead of the runner-up; everything else is
declined, because a confident wrong answer is worse than an honest "I don't know". Words the
pack has never seen count against the question (they are what it is really about), so
on-topic-looking questions the FAQ cannot answer ("when is PyTorch 3.0 released?") decline.

Everything is in memory and pure Python (rapidfuzz for typo correction, snowballstemmer for
stemming): no model download, about a millisecond per question at 10,000 entries because
scoring only visits passages sharing a term with the question (an inverted index).
"""

from __future__ import annotations

import logging
import math
import re
import unicodedata
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

import snowballstemmer
from rapidfuzz import process
from rapidfuzz.distance import OSA

log = logging.getLogger(__name__)

DEFAULT_THRESHOLD = 0.55
#: The best entry must beat the runner-up by this much, unless it is very confident.
MIN_MARGIN = 0.06
CONFIDENT = 0.8
UNKNOWN_WEIGHT = 1.5
#: Named parties: a question about one must not be answered with an entry about another.
ENTITIES = frozenset(
    {
        "~meta",
        "googl",
        "amd",
        "nvidia",
        "aws",
        "amazon",
        "microsoft",
        "azur",
        "appl",
        "tensorflow",
        "ibm",
        "intel",
    }
)
ENTITY_PENALTY = 0.7
#: Only the first characters of a message are read: long pastes are not questions.
MAX_CHARS = 600
MAX_TOKENS = 40
LONG_POSTINGS = 500

_MENTION = re.compile(r"<[@#!&][^>]*>|(?<!\w)@\w+")
_URL = re.compile(r"https?://\S+|www\.\S+")
_WORD = re.compile(r"[a-z0-9]+(?:[.'][a-z0-9]+)*")

STOPWORDS = frozenset(
    [
        "a",
        "about",
        "above",
        "after",
        "again",
        "all",
        "am",
        "an",
        "and",
        "any",
        "are",
        "as",
        "at",
        "be",
        "been",
        "being",
        "below",
        "between",
        "both",
        "but",
        "by",
        "can",
        "could",
        "did",
        "do",
        "does",
        "doing",
        "down",
        "during",
        "each",
        "few",
        "for",
        "from",
        "further",
        "had",
        "has",
        "have",
        "having",
        "he",
        "her",
        "here",
        "hers",
        "herself",
        "him",
        "himself",
        "his",
        "how",
        "i",
        "if",
        "in",
        "into",
        "is",
        "it",
        "its",
        "itself",
        "just",
        "me",
        "more",
        "most",
        "my",
        "myself",
        "nor",
        "of",
        "off",
        "on",
        "once",
        "only",
        "or",
        "other",
        "our",
        "ours",
        "ourselves",
        "out",
        "over",
        "own",
        "same",
        "she",
        "should",
        "so",
        "some",
        "such",
        "than",
        "that",
        "the",
        "their",
        "theirs",
        "them",
        "themselves",
        "then",
        "there",
        "these",
        "they",
        "this",
        "those",
        "through",
        "to",
        "too",
        "under",
        "until",
        "up",
        "very",
        "was",
        "we",
        "were",
        "what",
        "which",
        "while",
        "whom",
        "with",
        "would",
        "you",
        "your",
        "yours",
        "yourself",
        "yourselves",
        "hey",
        "hi",
        "hello",
        "please",
        "thanks",
        "thank",
        "bot",
        "pls",
        "plz",
        "also",
        "really",
        "actually",
        "anyone",
        "someone",
        "um",
        "uh",
        "s",
        "t",
        "re",
        "ve",
        "ll",
        "d",
        "m",
        "lol",
    ]
)
#: Question words are kept: "who announced it" and "when was it announced" differ only there.

#: Domain synonyms folded into one concept token (stems on the left).
SYNONYMS: dict[str, str] = {}
for _concept, _members in {
    "meta": "meta facebook fb zuckerberg",
    "board": "board govern governing governance governor member membership",
    "company": "company compani corpor organ organis organiz vendor sponsor partner firm",
    "own": "own owner control charg run runner steer decid decis say overrid",
    "chang": "chang break broke rewrit differ modifi affect impact",
    "code": "code codebas api sourc librari model",
    "invest": "invest fund money pay paid financ support commit",
    "lf": "lf linux",
    "announc": "announc news unveil reveal",
    "found": "foundat",
    "open": "open opensourc free licens",
    "start": "start creat begin began origin born launch histori old",
    "contributor": "contributor develop maintain communiti research",
    "use": "use usag adopt popular",
    "principl": "principl valu",
    "independ": "independ neutral",
    "project": "project repo",
    "abandon": "abandon drop dump leav quit stop pull exit",
    "when": "when date month year day",
    "purpos": "purpos goal mission aim point exist object",
    "grow": "grow expand bigger larger enlarg",
    "build": "build built applic app",
    "llm": "llm llms",
    "execut": "execut exec",
    "nonprofit": "nonprofit",
    "process": "process workflow",
}.items():
    for _word in _members.split():
        # "~" keeps concepts apart from real stems ("founded" -> "found" is not a foundation).
        SYNONYMS[_word] = "~" + _concept

_stemmer = snowballstemmer.stemmer("english")


@dataclass(frozen=True, slots=True)
class FaqDoc:
    """One FAQ entry as the matcher sees it."""

    entry_id: int
    question: str
    phrasings: tuple[str, ...]
    answer: str
    tags: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Match:
    """The matcher's verdict on one question."""

    #: Best entry, or None if nothing plausible.
    entry_id: int | None
    #: Confidence in [0, 1].
    score: float
    #: True = confident enough to answer; False = decline.
    answered: bool
    #: "match", "low_confidence", "ambiguous", "no_content", "off_topic" or "empty".
    reason: str


@lru_cache(maxsize=50_000)
def _stem(word: str) -> str:
    stem: str = _stemmer.stemWord(word)
    return SYNONYMS.get(stem, SYNONYMS.get(word, stem))


def _words(text: str) -> list[str]:
    text = unicodedata.normalize("NFKC", text[:MAX_CHARS]).lower()
    text = _MENTION.sub(" ", text)
    text = _URL.sub(" ", text)
    text = (
        text.replace("’", "'").replace("non-profit", "nonprofit").replace("non profit", "nonprofit")
    )
    words = [w.replace("'s", "") for w in _WORD.findall(text)]
    return [w for w in words if w and w not in STOPWORDS][:MAX_TOKENS]


class Matcher:
    """An immutable index over FAQ entries; rebuild it when the FAQ changes."""

    def __init__(self, docs: Iterable[FaqDoc], *, threshold: float | None = None) -> None:
        self.threshold = DEFAULT_THRESHOLD if threshold is None else threshold
        self._docs = list(docs)
        # passage -> (entry id, term weights); term -> passages containing it
        self._passages: list[tuple[int, dict[str, float], float]] = []
        self._postings: dict[str, list[int]] = defaultdict(list)
        vocabulary: set[str] = set()
        raw: list[tuple[int, list[str]]] = []
        for doc in self._docs:
            for text in (doc.question, *doc.phrasings):
                words = _words(text)
                vocabulary.update(words)
                raw.append((doc.entry_id, [_stem(w) for w in words]))
        frequency: dict[str, int] = defaultdict(int)
        entries_with: dict[str, set[int]] = defaultdict(set)
        for entry_id, terms in raw:
            for term in set(terms):
                frequency[term] += 1
                entries_with[term].add(entry_id)
        entries = max(1, len(self._docs))
        # IDF over entries, not passages: a word in every phrasing of one entry is still rare.
        self._idf = {term: math.log(1 + entries / len(ids)) for term, ids in entries_with.items()}
        # A word the pack never uses is likely what the question is really about, so it
        # weighs more than any known word: "who *founded* the Linux Foundation" is not
        # "what is the Linux Foundation".
        self._unknown_idf = UNKNOWN_WEIGHT * math.log(1 + entries)
        for entry_id, terms in raw:
            weights = {t: self._idf[t] for t in set(terms)}
            total = sum(weights.values())
            if total <= 0:
                continue
            index = len(self._passages)
            self._passages.append((entry_id, weights, total))
            for term in weights:
                self._postings[term].append(index)
        for postings in self._postings.values():
            postings.sort(key=lambda i: self._passages[i][2])
        self._vocabulary = sorted(w for w in vocabulary if len(w) >= 4)
        self._by_length: dict[int, list[str]] = defaultdict(list)
        for word in self._vocabulary:
            self._by_length[len(word)].append(word)
        self._corrections: dict[str, str] = {}
        self._known_words = vocabulary
        self._stems = set(self._idf)

    def __len__(self) -> int:
        return len(self._docs)

    def _correct(self, word: str) -> str:
        """The word, or the pack's closest word if it looks like a typo of one."""
        if word in self._known_words or _stem(word) in self._stems or len(word) < 4:
            return word
        if word.isdigit():
            return word
        # Optimal string alignment counts a swap as one edit ("pytroch"); one edit for
        # ordinary words, two for long ones, so real words ("leaving") are not "corrected"
        # into pack words ("learning").
        if word in self._corrections:
            return self._corrections[word]
        limit = 1 if len(word) < 9 else 2
        # Only words within `limit` letters of this length can be within `limit` edits.
        nearby = [
            w
            for size in range(len(word) - limit, len(word) + limit + 1)
            for w in self._by_length.get(size, ())
        ]
        best = process.extractOne(word, nearby, scorer=OSA.distance, score_cutoff=limit)
        corrected = word if best is None else str(best[0])
        if len(self._corrections) < 100_000:
            self._corrections[word] = corrected
        return corrected

    def match(self, text: str) -> Match:
        """Score ``text`` against every entry. Never raises."""
        try:
            return self._match(text if isinstance(text, str) else str(text))
        except Exception:  # pragma: no cover - defensive: a matcher bug must not crash a reply
            log.exception("matcher failed; declining")
            return Match(None, 0.0, False, "low_confidence")

    def _match(self, text: str) -> Match:
        if not text.strip():
            return Match(None, 0.0, False, "empty")
        words = _words(text)
        if not words:
            return Match(None, 0.0, False, "no_content")
        terms = list(dict.fromkeys(_stem(self._correct(w)) for w in words))
        weights = {t: self._idf.get(t, self._unknown_idf) for t in terms}
        known = [t for t in terms if t in self._idf]
        if not known or not self._passages:
            return Match(None, 0.0, False, "off_topic")
        query_total = sum(weights.values())
        # Candidates come from the postings of the rarer terms only. The most common terms are
        # left out of candidate generation while their combined weight is too small for a
        # passage holding nothing else to reach (threshold - margin): such a passage could
        # neither be answered nor make the winner ambiguous. Keeps 10,000 entries fast.
        bound = max(0.0, (self.threshold - MIN_MARGIN - 0.35) / 0.65) * query_total
        dropped: list[str] = []
        kept: list[str] = []
        spent = 0.0
        for term in sorted(known, key=self._idf.__getitem__):
            if not kept and spent + self._idf[term] < bound:
                spent += self._idf[term]
                dropped.append(term)
            else:
                kept.append(term)
        covered: dict[int, float] = defaultdict(float)
        # Very common terms (long postings) only add to candidates found through rarer terms:
        # in a large pack a passage sharing nothing but such terms is a weak match, and
        # walking thousands of postings per question would break the latency budget.
        seeded = False
        for term in reversed(kept):
            weight = self._idf[term]
            postings = self._postings[term]
            if seeded and len(postings) > LONG_POSTINGS:
                for index in covered:
                    if term in self._passages[index][1]:
                        covered[index] += weight
                continue
            # Postings are sorted shortest passage first: when a common term must seed the
            # candidates, its shortest passages are the ones it can score highest in.
            for index in postings[:LONG_POSTINGS]:
                covered[index] += weight
            seeded = True
        asked = ENTITIES & weights.keys()
        passages = self._passages
        per_entry: dict[int, float] = {}
        for index, total in covered.items():
            entry_id, passage, passage_total = passages[index]
            for term in dropped:
                if term in passage:
                    total += passage[term]
            score = total * (0.65 / query_total + 0.35 / passage_total)
            if asked and not asked & passage.keys() and ENTITIES & passage.keys():
                score *= ENTITY_PENALTY
            if score > per_entry.get(entry_id, 0.0):
                per_entry[entry_id] = score
        if not per_entry:
            return Match(None, 0.0, False, "low_confidence")
        ranked = sorted(per_entry.items(), key=lambda item: item[1], reverse=True)
        entry_id, score = ranked[0]
        runner_up = ranked[1][1] if len(ranked) > 1 else 0.0
        score = min(1.0, score)
        if score < self.threshold:
            return Match(entry_id, score, False, "low_confidence")
        if score - runner_up < MIN_MARGIN and score < CONFIDENT:
            return Match(entry_id, score, False, "ambiguous")
        return Match(entry_id, score, True, "match")
