"""The FAQ matcher: which entry answers a question, or a decision to decline.

A confident wrong answer is the worst thing the bot can do, so the matcher declines whenever
the evidence is thin. The method, chosen against simpler candidates on the dev set in
``tests/data/dev_questions.toml`` (``python -m bench.eval_matcher`` prints the comparison):

1. **Normalize.** Chat mentions, URLs and control characters go; contractions, chat spellings
   and a small hand-written table of domain synonyms ("facebook" -> "meta", "funding" ->
   "invest") are folded; stop words and chat filler are dropped; words are Snowball-stemmed.
   Question words ("who", "when", "where", "why", "how") are kept: "who announced it" and
   "when was it announced" differ only there.
2. **Correct typos** against the pack's own vocabulary (optimal string alignment, so a swap
   is one edit; one edit for words of 4+ letters, two for 8+), through an index of one-letter
   deletions rather than a scan. A corrected word earns a little less credit.
3. **Score.** Each canonical question and phrasing is a passage. A query term weighs its IDF
   over entries; a word the pack never uses weighs as much as the rarest known word, because
   it is probably what the question is really about ("how do I install pytorch on windows"
   is not about anything in the FAQ). An entry's score blends

   * the best passage's F-measure (beta 1.5) of *query coverage* (how much of what was asked,
     by weight, the passage explains) and *passage coverage* (how much of the passage was
     asked about), with names as slots: "is AMD on the board" fits "is Nvidia on the board"
     when the entry's answer names AMD;
   * the query coverage of all the entry's phrasings together;
   * the same with the answer's words at half credit.

   A passage asking with other question words ("since when ...?" for a "why" question) and an
   entry that never mentions a name the question uses are penalized, and a one-word question
   only matches a phrasing that is little more than that word. For the top few entries,
   character-level similarity of the whole wording (stop words included) breaks near-ties
   that bags of words cannot ("what is X" vs "what is X for").
4. **Decide.** Answer only if the score clears the threshold and the best entry leads the
   runner-up; otherwise decline, reporting the near-miss for moderators.

Everything goes through inverted indexes (term -> entries, deletion variant -> words), and
only a shortlist of entries is scored in full, so a question costs a fraction of a millisecond
on the bundled pack and under 4 ms (p99) at 10,000 entries (``python -m bench.bench_matcher``).
Pure Python plus rapidfuzz (edit distance, string similarity) and snowballstemmer: no model or
data download.
"""

from __future__ import annotations

import heapq
import logging
import math
import re
import threading
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

import snowballstemmer
from rapidfuzz import fuzz
from rapidfuzz.distance import OSA

from bot.specifics import (
    Kind,
    asked_kinds,
    counted_thing,
    counted_things,
    member_named,
    stated_kinds,
)
from bot.wordlist import is_english_word

log = logging.getLogger(__name__)

#: Score needed to answer; picked on the dev set (see ``bench/eval_matcher.py``).
DEFAULT_THRESHOLD = 0.60
#: The best entry must lead the runner-up by more than this, or the question is ambiguous.
MIN_MARGIN = 0.005
#: Below this score the best entry is not even plausible: no near-miss is reported.
PLAUSIBLE = 0.2

#: Only the start of a message is read: long pastes are not questions, and latency stays flat.
MAX_CHARS = 1000
#: A message this long that repeats its few words (each four times or more on average) is
#: noise, not a question.
REPEATS_MIN_WORDS = 4
#: Distinct terms read from one question.
MAX_TERMS = 32
#: Unknown words looked up for typos per question, and the longest word worth a lookup.
MAX_CORRECTIONS = 8
MAX_CORRECTABLE = 24
#: Postings walked in full per question; past that, common terms only re-score the best
#: ``SEEDS`` entries found so far.
POSTINGS_BUDGET = 3000
SEEDS = 300
#: Entries scored in full after the inverted-index pass, and re-ranked by wording.
CANDIDATES = 40
FUZZ_TOP = 5
#: Entries reported by :meth:`Matcher.analyze`.
TOP_K = 5

#: Weight of a word the pack never uses, relative to a word used by no entry.
UNKNOWN_WEIGHT = 1.0
#: What a name the pack never uses stands for in a question about membership
#: (:func:`bot.specifics.member_named`).
MEMBER_WORD = "company"
#: Credit for a typo-corrected word, relative to one spelled right.
CORRECTED_CREDIT = 0.8
#: Credit for a word found only in an entry's answer (not its questions).
ANSWER_CREDIT = 0.5
#: F-measure beta: query coverage counts this much more than passage coverage.
BETA = 1.5
#: Blend of best-passage F, phrasing-union coverage and coverage including the answer.
BLEND = (0.5, 0.3, 0.2)
#: Credit for a name swapped for another name the same entry uses.
SWAP_CREDIT = 0.8
#: Score factor when the question names a party (company, person) the entry never mentions.
ENTITY_PENALTY = 0.6
#: Capitalized words in more than this share of entries are not treated as names.
COMMON_ENTITY = 0.5
#: Factor on a passage asking with other question words than the question ("why" vs "when").
QUESTION_WORD_PENALTY = 0.7
#: Share of the score that character-level similarity of the wording can take away.
FUZZ_WEIGHT = 0.15

#: Chat mentions (<@U123>, <@!123>, <#C1|x>, @foundationbot), URLs and control characters.
_NOISE = re.compile(
    r"<[@#!&][^>\s]{0,80}>|(?<![\w.])@[\w.-]+|(?:https?://|www\.)\S+|[\x00-\x08\x0b-\x1f\x7f-\x9f`]"
)
_TOKEN = re.compile(r"[^\W_]+(?:'[^\W_]+)*")
#: A capitalized word that does not start a sentence (a name, usually).
_MID_CAPITAL = re.compile(r"(?<=[^\s.!?:])\s+([A-Z][^\W_]*)")
#: Acronyms ("AMD", "AWS") are names wherever they stand, after a colon or a list's start too.
_ACRONYM = re.compile(r"\b([A-Z]{2,6})s?\b")

#: Function words, chat filler and request verbs: they say nothing about which entry is meant.
_STOPWORDS = """
    a about above after again against all also am an and any anybody anyone anything are as at
    be because been before being below between both but by can could did do does doing done
    down during each either else even ever every few for from further get gets getting got had
    has have having he her here hers herself him himself his i if in into is it its itself
    just let lets me might mine more most must my myself no nor not now of off on once only or
    other others our ours ourselves out over per please same shall she should so some
    somebody someone something such than that the their theirs them themselves then there
    these they this those through thus to too under until up upon us very was we were what
    whatever which while whom whose will with would yet you your yours yourself yourselves
    hey hi hello hiya yo thanks thank thx ty cheers pls plz ok okay lol lmao haha hmm um uh
    bot guys folks everyone everybody actually really basically exactly quick question
    questions wondering wonder curious know knows knew wanted want wants need needs like
    kind sort anyway btw fyi tbh imo idk already still s t d ll m re ve thing things stuff
    heard hear lately talking talk sure maybe probably
    list show
    wait nah ngl fr af legit pretty guess assume anymore eventually ballpark honestly totally
    yeah yep nope omg bruh lowkey fam iirc afaik imho smh rly srsly bro dude kinda sorta
    confused supposed try tried trying apparently
"""
STOPWORDS = frozenset(_STOPWORDS.split())

#: Question words (stemmed: "why" -> "whi"): kept as terms, but alone they are no content.
QUESTION_WORDS = frozenset({"who", "when", "where", "whi", "how", "howmani", "howmuch"})

#: Chat spellings, folded first; a value with spaces expands to several words.
SLANG: dict[str, str] = {
    "u": "you",
    "ur": "your",
    "r": "are",
    "y": "why",
    "wat": "what",
    "wut": "what",
    "wht": "what",
    "whats": "what",
    "whos": "who",
    "wheres": "where",
    "hows": "how",
    "gonna": "going",
    "wanna": "want",
    "gotta": "must",
    "abt": "about",
    "bc": "because",
    "cuz": "because",
    "coz": "because",
    "ppl": "people",
    "tho": "though",
    "rn": "now",
    "pytorchs": "pytorch",
    "lf": "linux foundation",
    "wen": "when",
    "prob": "probably",
    "src": "source",
    "fdn": "foundation",
    "n": "and",
    "og": "original",
    # Slips of short stop words (too short for the stop-word slip rule) and chat shorthand.
    "teh": "the",
    "hte": "the",
    "ther": "there",
    "wil": "will",
    "waht": "what",
    "adn": "and",
    "taht": "that",
    "jsut": "just",
    "smth": "something",
    "sth": "something",
    "cos": "because",
    # Company tickers and short names: the same company, named.
    "msft": "microsoft",
    "gcp": "google cloud",
    "amzn": "amazon",
    "goog": "google",
    "nvda": "nvidia",
}

#: Multi-word phrases folded into one word before tokenizing.
_PHRASES: tuple[tuple[str, str], ...] = (
    (r"non[\s-]?profit", "nonprofit"),
    (r"not[\s-]for[\s-]profit", "nonprofit"),
    (r"open[\s-]?(?:sourced?|src)", "opensource"),
    # Asking whether it goes closed source is asking whether it stays open source.
    (r"closed[\s-]?sourced?", "opensource"),
    (r"in charge", "control"),
    (r"(?:governing|governance|stewardship|oversight) body", "board"),
    (r"board of directors", "board"),
    (r"code ?base", "code"),
    (r"source code", "code"),
    (r"machine learning", "ml"),
    (r"deep learning", "ml"),
    (r"large language models?", "llm"),
    (r"multi[\s-]stakeholders?", "multistakeholder"),
    (r"decision[\s-]making", "decision"),
    (r"set(?:ting)? up", "create"),
    # Asking for a number is not asking how something is done ("how does a company apply").
    (r"how many", "howmany"),
    (r"how much", "howmuch"),
    # A technical steering committee is not the board (the pack may not know it at all).
    (r"technical steering (?:committee|council|group)", "tsc"),
    # "What is the foundation (actually) for?" asks its purpose.
    (
        r"(?:foundation|org|organi[sz]ation)(?: actually| even| really| exactly)? for(?=\W*$)",
        "foundation purpose",
    ),
)
_PHRASE = re.compile("|".join(rf"(?P<p{i}>\b{p}\b)" for i, (p, _) in enumerate(_PHRASES)))
_PHRASE_REPLACEMENT = {f"p{i}": r for i, (_, r) in enumerate(_PHRASES)}
_CONTRACTIONS = (("won't", "will not"), ("can't", "can not"), ("n't", " not"))
#: Substrings without which no phrase, mention or URL can match.
_PHRASE_HINT = re.compile(
    "profit|source|src|charge|body|directors|code|learning|language model|stakeholder|decision|set"
    "|how m|steering"
)
_NOISE_HINT = re.compile(r"[<@`]|http|www\.")
_MULTIWORD_SLANG = frozenset(k for k, v in SLANG.items() if " " in v)

#: Domain synonyms: canonical word -> the words people use for it. Small and hand-written:
#: how this community talks about the foundation move, not an attempt at a thesaurus.
_SYNONYM_GROUPS: dict[str, str] = {
    "meta": "facebook fb",
    "zuckerberg": "zuck zuckerbergs",
    "pytorch": "torch",
    "amazon": "aws",
    "ml": "ai",
    "opensource": "oss foss",
    "license": "licence licenses licences licensing",
    "organization": "org orgs organisation organisations organizations",
    "company": "companies firm firms corporation corporations corp",
    "developer": "dev devs developers",
    "invest": "fund funds funding funded finance finances financing money paying",
    "free": "cost costs price paid pay",
    "abandon": "abandons abandoning abandoned ditch ditching drop dropping dump quit quitting",
    "control": "controls controlled controlling own owns owned owner owners ownership",
    "announce": "announces announced announcing announcement announcements unveil unveiled "
    "reveal revealed",
    "transfer": "transfers transferred transferring donate donated donating donation migrate "
    "migrated migration move moved moving moves transition transitions transitioned",
    "change": "changes changed changing alter altered modify modified",
    "affect": "affects affected impact impacts impacted",
    "break": "breaks broke broken breaking incompatible compatibility",
    "code": "script scripts program programs",
    "rewrite": "rewrites rewriting refactor refactoring port porting",
    "create": "creates created creating creation creator invent invented founded",
    "start": "started starting begin began origin origins",
    "goal": "goals aim aims objective objectives purpose",
    "reason": "reasons motivation motivated motive rationale",
    "principle": "principles value values tenet tenets pillar pillars",
    "decide": "decides decided deciding decision decisions",
    "separate": "separated separation split apart",
    "grow": "grows growing growth expand expands expanding expansion bigger enlarge",
    "member": "members membership",
    "benefit": "benefits advantage advantages upside upsides gain gains pros",
    "future": "outlook vision prospects",
    # Never "ceo": a synonym must not turn a role the question names into one the pack has.
    "executive": "exec execs executives",
    "information": "info details detail docs documentation",
    "blog": "article articles writeup blogpost",
    "twitter": "tweet tweets tweeted tweeting",
    "date": "dates day days month months year years",
    "llm": "llms",
    "several": "multiple",
    "explain": "explains explained describe summarize summarise summary overview eli5 tell tldr",
    "1": "one",
    "2": "two",
    "3": "three",
    "4": "four",
    "5": "five",
    "6": "six",
    "7": "seven",
    "8": "eight",
    "9": "nine",
    "10": "ten",
}
SYNONYMS: dict[str, str] = {
    variant: canonical
    for canonical, variants in _SYNONYM_GROUPS.items()
    for variant in variants.split()
}

_stemmer = snowballstemmer.stemmer("english")
# The Snowball stemmer keeps state while it stems, and the bot builds indexes in a worker
# thread while the event loop answers: one stemmer, one lock.
_stem_lock = threading.Lock()
#: Words whose stems are everyday words of their own ("found" a bug, an "object").
_SURFACE_ONLY = frozenset({"founded", "objective", "objectives"})
#: The synonym table on stems, so other inflections fold too ("originally" -> "start").
STEM_SYNONYMS: dict[str, str] = {
    _stemmer.stemWord(variant): _stemmer.stemWord(canonical)
    for variant, canonical in SYNONYMS.items()
    if variant not in _SURFACE_ONLY and _stemmer.stemWord(variant) != _stemmer.stemWord(canonical)
}


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


@dataclass(frozen=True, slots=True)
class Candidate:
    """One ranked entry for a question."""

    entry_id: int
    #: The matcher's score in [0, 1]; comparable between entries of one question only.
    score: float


@dataclass(frozen=True, slots=True)
class Analysis:
    """Everything the matcher found about one question: the ranking and how it was read.

    The deciding side (:mod:`bot.deciding`) turns this into answer / clarify / decline.
    """

    #: Why nothing was ranked ("empty", "no_content", "off_topic"), or "" when ranked.
    reason: str
    #: The best entries, best first (at most :data:`TOP_K`).
    candidates: tuple[Candidate, ...] = ()
    #: Share of the question's weight carried by words the pack uses.
    known: float = 0.0
    #: Content terms read from the question.
    terms: int = 0
    #: Words the pack never uses (after typo correction), in order.
    unknown: tuple[str, ...] = ()
    #: Words read as typos of pack words.
    corrected: int = 0
    #: The question asks with a question word that the best entry's phrasings share
    #: (1.0), asks with one they never use (0.0), or asks with none (0.5).
    ask_agreement: float = 0.5
    #: Character-level similarity of the question to the best entry's closest phrasing.
    similarity: float = 0.0
    #: How much of the best entry's closest phrasing the question covers (by weight).
    precision: float = 0.0
    #: The question names a party (company, person) that the best entry never mentions.
    foreign_name: bool = False
    #: Share of the question's weight that the best entry's words explain (its questions
    #: fully, its answer at half credit).
    coverage: float = 0.0
    #: The question asks for a kind of specific fact (a person, an amount, a date...) that
    #: the best entry's answer does not state (:mod:`bot.specifics`).
    unstated: bool = False

    @property
    def best(self) -> Candidate | None:
        """The top candidate, if any."""
        return self.candidates[0] if self.candidates else None


@lru_cache(maxsize=100_000)
def term_of(word: str) -> str:
    """The index term for one lowercase word: chat spelling and synonyms folded, stemmed.

    Args:
        word: one token from :func:`words`.

    Returns:
        The term, or ``""`` for a stop word.
    """
    word = SLANG.get(word, word)
    if word in STOPWORDS or " " in word:
        return ""
    word = SYNONYMS.get(word, word)
    if word.isdigit():
        return word
    with _stem_lock:
        stem: str = _stemmer.stemWord(word)
    return STEM_SYNONYMS.get(stem, stem)


def clean(text: str) -> str:
    """Lowercased text without mentions, URLs or control characters, phrases folded.

    Args:
        text: any string; only the first :data:`MAX_CHARS` characters are read.

    Returns:
        The cleaned text.
    """
    text = unicodedata.normalize("NFKC", text[:MAX_CHARS]).casefold()
    # The regexes are the slow part of indexing 50,000 phrasings: run them only when a
    # plain substring test says they can match.
    if not text.isprintable() or _NOISE_HINT.search(text):
        text = _NOISE.sub(" ", text)
    if "'" in text or "’" in text or "‘" in text:
        text = text.replace("’", "'").replace("‘", "'")
        for short, long in _CONTRACTIONS:
            text = text.replace(short, long)
    if _PHRASE_HINT.search(text) or text.rstrip(" ?!.").endswith(" for"):
        text = _PHRASE.sub(lambda m: " " + _PHRASE_REPLACEMENT[m.lastgroup or ""] + " ", text)
    return text


def words(text: str) -> list[str]:
    """The lowercase word tokens of ``text`` after :func:`clean`, stop words included.

    Args:
        text: any string.

    Returns:
        Tokens in order, clitics dropped ("what's" -> "what") and chat spellings that stand
        for several words expanded ("lf" -> "linux", "foundation").
    """
    cleaned = clean(text)
    found: list[str] = _TOKEN.findall(cleaned)
    if "'" in cleaned:
        found = [token.split("'", 1)[0] for token in found]
    if not _MULTIWORD_SLANG.isdisjoint(found):
        found = [part for word in found for part in SLANG.get(word, word).split()]
    return found


def _deletes(word: str) -> set[str]:
    return {word[:i] + word[i + 1 :] for i in range(len(word))}


def _deletion_index(words: Iterable[str]) -> dict[str, list[str]]:
    """Each word and each of its one-letter deletions -> the words it comes from: the lookup
    side of symmetric-delete spelling correction (:func:`_near`)."""
    index: dict[str, list[str]] = {}
    for word in words:
        for variant in _deletes(word) | {word}:
            index.setdefault(variant, []).append(word)
    return index


def _near(word: str, index: dict[str, list[str]], limit: int) -> dict[str, int]:
    """The words of ``index`` (:func:`_deletion_index`) within ``limit`` (1 or 2) edits or
    swaps of ``word``, each with its distance."""
    probes = _deletes(word) | {word}
    if limit == 2:
        probes |= {d for p in _deletes(word) for d in _deletes(p)}
    found: dict[str, int] = {}
    for candidate in {c for probe in probes for c in index.get(probe, ())}:
        distance = OSA.distance(word, candidate, score_cutoff=limit)
        if distance <= limit:
            found[candidate] = distance
    return found


def _f_measure(recall: float, precision: float) -> float:
    if recall <= 0.0 or precision <= 0.0:
        return 0.0
    b2 = BETA * BETA
    return (1 + b2) * precision * recall / (b2 * precision + recall)


#: Stop words worth correcting to (five letters or more, so one slip still leaves them
#: recognisable and a short name such as "Suse" or "Fram" is not read as "sure" or "from"),
#: by each of their one-letter deletions.
_STOP_VARIANTS = _deletion_index(stop for stop in sorted(STOPWORDS) if len(stop) >= 5)


def _stop_word_typo(word: str) -> str | None:
    """The stop word ``word`` is one slip (edit or swap) away from, if exactly one is."""
    if len(word) < 4 or not word.isalpha():
        return None
    found = _near(word, _STOP_VARIANTS, 1)
    return next(iter(found)) if len(found) == 1 else None


def _written_as_name(word: str, text: str) -> bool:
    """Whether ``word`` (lowercase) stands capitalized somewhere in ``text``."""
    return (
        re.search(rf"\b{re.escape(word[0].upper())}(?i:{re.escape(word[1:])})\b", text) is not None
    )


@dataclass(frozen=True, slots=True)
class _Passage:
    terms: frozenset[str]
    #: Sum of the terms' IDF.
    weight: float
    #: Names in it, which a question may swap for other names of the same entry.
    entities: frozenset[str]
    #: Question words it asks with.
    asks: frozenset[str]
    #: Its words joined, for the wording tie-breaker.
    text: str


@dataclass(frozen=True, slots=True)
class _Entry:
    entry_id: int
    passages: tuple[_Passage, ...]
    question_terms: frozenset[str]
    #: Terms only its answer (or tags) use.
    answer_terms: frozenset[str]
    #: Names anywhere in it.
    entities: frozenset[str]
    #: Kinds of specific fact its answer states (a person, a date...).
    stated: frozenset[Kind]
    #: Terms of what its answer gives numbers of ("six companies": compani).
    counted: frozenset[str]


@dataclass(frozen=True, slots=True)
class _Query:
    weights: dict[str, float]
    #: Share of a term's weight it earns when matched: 0 for unknown words.
    credits: dict[str, float]
    total: float
    text: str
    #: weights[t] * credits[t]: what matching each term earns (computed once per question).
    gains: dict[str, float]


class Matcher:
    """An immutable index over FAQ entries; rebuild it when the FAQ changes."""

    def __init__(self, docs: Iterable[FaqDoc], *, threshold: float | None = None) -> None:
        """Index ``docs``.

        Args:
            docs: the FAQ entries; ids need not be positive or contiguous.
            threshold: score needed to answer, in [0, 1]; None means
                :data:`DEFAULT_THRESHOLD`.
        """
        self._threshold = DEFAULT_THRESHOLD if threshold is None else float(threshold)
        doc_list = list(docs)
        self._size = len(doc_list)

        word_entries: dict[str, int] = {}
        capitalized: dict[str, int] = {}
        parsed: list[tuple[int, list[tuple[frozenset[str], str]], frozenset[str]]] = []
        stated = [stated_kinds(doc.answer[:MAX_CHARS]) for doc in doc_list]
        counted = [
            frozenset(
                t
                for thing in counted_things(doc.answer[:MAX_CHARS])
                for t in map(term_of, words(thing))
                if t
            )
            for doc in doc_list
        ]
        for doc in doc_list:
            passages: list[tuple[frozenset[str], str]] = []
            seen: set[str] = set()
            for text in (doc.question, *doc.phrasings):
                passage_words = words(text)
                seen.update(passage_words)
                passage_terms = frozenset(t for t in map(term_of, passage_words) if t)
                if passage_terms:
                    passages.append((passage_terms, " ".join(passage_words)))
            answer_words = words(doc.answer) + [w for tag in doc.tags for w in words(tag)]
            seen.update(answer_words)
            parsed.append(
                (doc.entry_id, passages, frozenset(t for t in map(term_of, answer_words) if t))
            )
            for word in seen:
                word_entries[word] = word_entries.get(word, 0) + 1
            names = {
                name.casefold()
                for text in (doc.question, *doc.phrasings, doc.answer)
                for pattern in (_MID_CAPITAL, _ACRONYM)
                for name in pattern.findall(text[:MAX_CHARS])
            }
            for word in names:
                capitalized[word] = capitalized.get(word, 0) + 1

        # Entry-level document frequency; a word only in an answer counts half, because
        # answers are long and their words say less about what the entry is for.
        frequency: dict[str, float] = {}
        for _, passages, answer_terms in parsed:
            question_terms = frozenset().union(*(p for p, _ in passages))
            for term in question_terms:
                frequency[term] = frequency.get(term, 0.0) + 1.0
            for term in answer_terms - question_terms:
                frequency[term] = frequency.get(term, 0.0) + 0.5
        n = max(1, self._size)
        self._idf = {t: math.log(1 + (n - df + 0.5) / (df + 0.5)) for t, df in frequency.items()}
        self._unknown = UNKNOWN_WEIGHT * math.log(1 + (n + 0.5) / 0.5)

        # Names: words written capitalized mid-sentence in most of the entries that use them.
        # One in most entries ("PyTorch" here) tells entries apart no better than "the".
        common_name = max(3.0, COMMON_ENTITY * n)
        entity_terms = frozenset(
            term
            for word, count in capitalized.items()
            if count >= 0.6 * word_entries.get(word, 0)
            and (term := term_of(word))
            and frequency.get(term, 0.0) <= common_name
        )

        entries: list[_Entry] = []
        postings: dict[str, list[int]] = {}
        for (entry_id, passages, answer_terms), kinds, counts in zip(
            parsed, stated, counted, strict=True
        ):
            question_terms = frozenset().union(*(p for p, _ in passages))
            everything = question_terms | answer_terms
            for term in everything:
                postings.setdefault(term, []).append(len(entries))
            entries.append(
                _Entry(
                    entry_id,
                    tuple(
                        _Passage(
                            terms,
                            sum(self._idf[t] for t in terms),
                            terms & entity_terms,
                            terms & QUESTION_WORDS,
                            text,
                        )
                        for terms, text in passages
                    ),
                    question_terms,
                    answer_terms - question_terms,
                    everything & entity_terms,
                    kinds,
                    counts,
                )
            )
        self._entries = tuple(entries)
        self._postings = {t: tuple(ids) for t, ids in postings.items()}
        # Sets for the few very common terms, to intersect them at C speed.
        self._common_sets = {
            t: frozenset(ids) for t, ids in postings.items() if len(ids) > POSTINGS_BUDGET
        }
        self._entity_terms = entity_terms

        # Typo correction: each known word and its one-letter deletions point at the word.
        self._word_entries = word_entries
        self._variants = _deletion_index(
            word
            for word in word_entries
            if 4 <= len(word) <= MAX_CORRECTABLE and word.isalpha() and term_of(word)
        )
        log.debug("matcher built entries=%d terms=%d", self._size, len(self._idf))

    @property
    def threshold(self) -> float:
        """Score needed to answer."""
        return self._threshold

    def __len__(self) -> int:
        """Number of indexed entries."""
        return self._size

    def match(self, text: str) -> Match:
        """The entry that answers ``text``, or a decline with its reason. Never raises.

        Args:
            text: the user's message, mentions and all.

        Returns:
            A :class:`Match`; ``answered`` is False whenever the bot should decline, and
            ``entry_id`` then names the near-miss (for moderators) if there was one.
        """
        try:
            return self._match(text if isinstance(text, str) else str(text))
        except Exception:  # a matcher bug must cost one reply, not the bot
            log.exception("matcher failed; declining")
            return Match(None, 0.0, False, "low_confidence")

    def analyze(self, text: str) -> Analysis:
        """Rank the entries for ``text`` and report how the question was read. Never raises.

        Args:
            text: one question (see :mod:`bot.understanding` for whole messages).

        Returns:
            An :class:`Analysis`; ``reason`` is set when there was nothing to rank.
        """
        try:
            return self._analyze(text if isinstance(text, str) else str(text))
        except Exception:  # a matcher bug must cost one reply, not the bot
            log.exception("matcher failed; declining")
            return Analysis("off_topic")

    def _analyze(self, text: str) -> Analysis:
        query = self._query(text)
        if isinstance(query, Match):
            return Analysis(query.reason)
        unknown = tuple(t for t, c in query.credits.items() if c == 0.0)
        known = 1.0 - sum(query.weights[t] for t in unknown) / query.total
        read = {
            "known": round(known, 4),
            "terms": len(query.weights.keys() - QUESTION_WORDS),
            "unknown": unknown,
            "corrected": sum(1 for c in query.credits.values() if 0.0 < c < 1.0),
        }
        ranked = self._rank(query)
        if not ranked:
            return Analysis("off_topic", **read)  # type: ignore[arg-type]
        top = ranked[:TOP_K]
        candidates = tuple(
            Candidate(self._entries[i].entry_id, round(min(1.0, max(0.0, s)), 4)) for s, i in top
        )
        entry = self._entries[top[0][1]]
        asks = QUESTION_WORDS.intersection(query.weights)
        entry_asks = frozenset().union(*(p.asks for p in entry.passages))
        agreement = 0.5 if not asks else (1.0 if asks & entry_asks or not entry_asks else 0.0)
        similarity = max(
            (fuzz.token_sort_ratio(query.text, p.text) / 100 for p in entry.passages), default=0.0
        )
        precision = max(
            (
                sum(self._idf[t] for t in p.terms.intersection(query.weights)) / p.weight
                for p in entry.passages
                if p.weight
            ),
            default=0.0,
        )
        foreign = bool(self._entity_terms.intersection(query.weights) - entry.entities)
        explained = sum(
            query.gains[t] * (1.0 if t in entry.question_terms else ANSWER_CREDIT)
            for t in query.weights
            if t in entry.question_terms or t in entry.answer_terms
        )
        return Analysis(
            "",
            candidates,
            ask_agreement=agreement,
            similarity=round(similarity, 4),
            precision=round(precision, 4),
            foreign_name=foreign,
            coverage=round(explained / query.total, 4),
            unstated=self._unstated(text[:MAX_CHARS], entry, foreign=foreign),
            **read,  # type: ignore[arg-type]
        )

    def _unstated(self, text: str, entry: _Entry, *, foreign: bool) -> bool:
        """Whether ``text`` asks for a kind of fact ``entry``'s answer does not state; for
        "how many X", whether the numbers the answer gives are of something else ("how many
        GitHub stars" against "150,000 projects").

        ``foreign``: the question names someone the entry never mentions; a specific fact
        about them ("How many engineers does AMD commit?" against Meta's engineers) is one
        the entry does not state.
        """
        asked = asked_kinds(text)
        if asked - entry.stated or (foreign and asked):
            return True
        if Kind.COUNT not in asked or not entry.counted:
            return False
        thing = counted_thing(text)
        if thing is None:
            return False
        terms = set()
        for word in words(thing):
            term = term_of(word)
            terms.add(term)
            if term not in self._idf and (fixed := self._correct(word)) is not None:
                terms.add(term_of(fixed))  # "how many projcts"
        return not terms & entry.counted

    def _match(self, text: str) -> Match:
        query = self._query(text)
        if isinstance(query, Match):
            return query
        ranked = self._rank(query)
        if not ranked:
            return Match(None, 0.0, False, "off_topic")
        score, index = ranked[0]
        runner_up = ranked[1][0] if len(ranked) > 1 else 0.0
        score = round(min(1.0, max(0.0, score)), 4)
        if score < PLAUSIBLE:
            return Match(None, score, False, "off_topic")
        entry_id = self._entries[index].entry_id
        if score < self._threshold:
            return Match(entry_id, score, False, "low_confidence")
        if score - runner_up <= MIN_MARGIN:
            return Match(entry_id, score, False, "ambiguous")
        return Match(entry_id, score, True, "match")

    def _typos(self, tokens: Sequence[str], text: str = "") -> dict[str, str]:
        """Misspelled words of a question and what they stand for.

        Only a word the pack does not use and that is not English can be a typo ("forked" is
        not "worked"). It is corrected to a pack word when one is close; else, if it is one
        slip from a stop word ("stil", "abotu") and not written capitalized in ``text`` (a
        name: "Steil"), it is that stop word and carries no weight.
        """
        fixes: dict[str, str] = {}
        looked = 0
        for token in dict.fromkeys(tokens):
            term = term_of(token)
            if not term or term in self._idf or token in self._word_entries:
                continue
            looked += 1
            if looked > MAX_CORRECTIONS:
                break
            if is_english_word(token):
                continue
            fixed = self._correct(token)
            if fixed is not None and term_of(fixed) in self._idf:
                fixes[token] = fixed
            elif (stop := _stop_word_typo(token)) is not None and not _written_as_name(token, text):
                fixes[token] = stop
        return fixes

    def _correct(self, word: str) -> str | None:
        """The pack word that ``word`` is probably a typo of, or None."""
        if len(word) < 4 or len(word) > MAX_CORRECTABLE or not word.isalpha():
            return None
        found = _near(word, self._variants, 2 if len(word) >= 8 else 1)
        # Closest first, then the word more entries use, then alphabetical (stable).
        best = min(
            ((distance, -self._word_entries[c], c) for c, distance in found.items()), default=None
        )
        return None if best is None else best[2]

    def _query(self, text: str) -> _Query | Match:
        """The question's weighted terms, or an early decline."""
        if not text.strip():
            return Match(None, 0.0, False, "empty")
        tokens = words(text)
        if not tokens:
            # Something was there (emoji, punctuation) or only a mention.
            reason = "no_content" if clean(text).strip() else "empty"
            return Match(None, 0.0, False, reason)
        if len(tokens) >= REPEATS_MIN_WORDS and len(set(tokens)) * 4 <= len(tokens):
            # "pytorch pytorch pytorch ...": one or two words said over and over ask nothing.
            return Match(None, 0.0, False, "no_content")
        named = member_named(text)
        if named is not None:
            # "Is Apple on the board?": the pack's list of members answers it whichever name
            # it asks about; a name the pack never uses stands for "a member company".
            name = set(words(named))
            tokens = [
                MEMBER_WORD
                if t in name
                and term_of(t) not in self._idf
                and (not is_english_word(t) or _written_as_name(t, text))
                else t
                for t in tokens
            ]
        fixes = self._typos(tokens, text)
        corrected: frozenset[str] = frozenset()
        if fixes:
            # Fold phrases again with the typos fixed ("open sorce" is "open source"); a term
            # the original words did not give is a corrected one.
            original = {term_of(t) for t in tokens}
            tokens = words(" ".join(fixes.get(t, t) for t in tokens))
            corrected = frozenset(term_of(t) for t in tokens) - original
        weights: dict[str, float] = {}
        credits: dict[str, float] = {}
        for token in tokens:
            term = term_of(token)
            if not term or term in weights:
                continue
            known = term in self._idf
            weights[term] = self._idf[term] if known else self._unknown
            credits[term] = (CORRECTED_CREDIT if term in corrected else 1.0) if known else 0.0
            if len(weights) >= MAX_TERMS:
                break
        if not weights or weights.keys() <= QUESTION_WORDS:
            return Match(None, 0.0, False, "no_content")
        if not any(credits.values()):
            return Match(None, 0.0, False, "off_topic")
        gains = {t: weights[t] * credits[t] for t in weights}
        return _Query(weights, credits, sum(weights.values()), " ".join(tokens), gains)

    def _rank(self, query: _Query) -> list[tuple[float, int]]:
        """(score, entry index) for the plausible entries, best first."""
        weights, credits, total = query.weights, query.credits, query.total
        known = [t for t, c in credits.items() if c > 0 and t in self._postings]

        # Pass 1 (inverted index): how much of the query each entry's words cover. Rare terms
        # are walked in full, up to a budget of postings; common ones then only add to the
        # best entries found so far, so a word in half the pack never walks half the pack.
        known.sort(key=lambda t: len(self._postings[t]))
        coverage: dict[int, float] = {}
        walked = 0
        rest = known
        if known and len(self._postings[known[0]]) > POSTINGS_BUDGET:
            # Only common words: start from the entries that have as many of them as possible.
            seeds = self._common_sets[known[0]]
            for term in known[1:]:
                narrower = seeds & self._common_sets[term]
                if not narrower:
                    break
                seeds = narrower
            coverage = dict.fromkeys(sorted(seeds)[:SEEDS], 0.0)
        else:
            for position, term in enumerate(known):
                ids = self._postings[term]
                if walked and walked + len(ids) > POSTINGS_BUDGET:
                    rest = known[position:]
                    break
                walked += len(ids)
                gain = weights[term] * credits[term]
                for index in ids:
                    factor = 1.0 if term in self._entries[index].question_terms else ANSWER_CREDIT
                    coverage[index] = coverage.get(index, 0.0) + gain * factor
            else:
                rest = []
            if rest and len(coverage) > SEEDS:
                coverage = dict(heapq.nlargest(SEEDS, coverage.items(), key=lambda item: item[1]))
        for term in rest if coverage else ():
            gain = weights[term] * credits[term]
            for index in coverage:
                entry = self._entries[index]
                if term in entry.question_terms:
                    coverage[index] += gain
                elif term in entry.answer_terms:
                    coverage[index] += gain * ANSWER_CREDIT
        shortlist = heapq.nlargest(CANDIDATES, coverage.items(), key=lambda item: item[1])

        # Pass 2: full features for the shortlist only.
        gains = query.gains
        asked_entities = self._entity_terms.intersection(weights)
        asks = QUESTION_WORDS.intersection(weights)
        single = len(weights.keys() - asks) == 1
        scored: list[tuple[float, int]] = []
        for index, with_answer in shortlist:
            entry = self._entries[index]
            best, precision = 0.0, 0.0
            for passage in entry.passages:
                if passage.terms.isdisjoint(weights):
                    continue  # fits 0 (and cannot beat a best of 0)
                fit, fit_precision = self._passage_fit(query, passage, entry, asked_entities, asks)
                if fit > best:
                    best, precision = fit, fit_precision
            union = sum(map(gains.__getitem__, entry.question_terms.intersection(weights)))
            score = BLEND[0] * best + BLEND[1] * union / total + BLEND[2] * with_answer / total
            if single:
                # One word covers itself completely wherever it appears ("time" in "over
                # time"); it can only stand for a phrasing that is little more than that word.
                score = min(score, precision)
            if asked_entities - entry.entities:
                score *= ENTITY_PENALTY
            scored.append((score, index))
        scored.sort(key=lambda item: (-item[0], item[1]))

        # Wording breaks near-ties between the leaders; it can only lower a score.
        reranked = []
        for score, index in scored[:FUZZ_TOP]:
            similarity = max(
                (
                    fuzz.token_sort_ratio(query.text, p.text) / 100
                    for p in self._entries[index].passages
                ),
                default=0.0,
            )
            reranked.append((score * (1 - FUZZ_WEIGHT + FUZZ_WEIGHT * similarity), index))
        reranked.sort(key=lambda item: (-item[0], item[1]))
        return reranked + [(s * (1 - FUZZ_WEIGHT), i) for s, i in scored[FUZZ_TOP:]]

    def _passage_fit(
        self,
        query: _Query,
        passage: _Passage,
        entry: _Entry,
        asked_entities: frozenset[str],
        asks: frozenset[str],
    ) -> tuple[float, float]:
        """F-measure of query coverage and passage coverage for one passage, and the latter."""
        weights = query.weights
        shared = passage.terms.intersection(weights)
        if not shared:
            return 0.0, 0.0
        # map() over the same set: the same order and products as a generator, at C speed.
        matched = sum(map(query.gains.__getitem__, shared))
        covered = sum(map(self._idf.__getitem__, shared))
        if asked_entities and passage.entities:
            # Names are slots: "is AMD on the board" fits "is Nvidia on the board" when the
            # entry names AMD somewhere (its answer lists the board).
            swap_in = sorted(
                (weights[t] for t in asked_entities - passage.terms if t in entry.entities),
                reverse=True,
            )
            swap_out = sorted(
                (self._idf[t] for t in passage.entities if t not in weights), reverse=True
            )
            swaps = min(len(swap_in), len(swap_out))
            matched += SWAP_CREDIT * sum(swap_in[:swaps])
            covered += SWAP_CREDIT * sum(swap_out[:swaps])
        precision = covered / passage.weight
        fit = _f_measure(matched / query.total, precision)
        # "Why does it exist?" is not answered by "since when has it existed?".
        if asks and passage.asks and not asks & passage.asks:
            fit *= QUESTION_WORD_PENALTY
        return fit, precision
