"""Deciding what to do with a ranked question: answer, clarify, or decline.

The matcher ranks entries well (a right entry is first for most questions and among the top
three for nearly all answerable ones), but its score alone separates "right" from "must
decline" badly: long chatty questions score low even when the best entry is right, and short
ones score high even when it is wrong. One hand-set cut-off cannot do it, so the decision is a
small model over several features of the match (:func:`features`):

* two classifiers fitted on the tuning set of the evaluation questions by
  ``python -m bench.fit_decider``: **P(answer)** that the best entry is right, and
  **P(clarify)** that a right entry is among the top three. Each is a small ensemble of
  gradient-boosted trees (:class:`Boosted`), monotone in the match features; the optional
  semantic second opinion (:class:`SecondOpinion`) is a logistic regression;
* two cut-offs chosen on the same set: answer when P(answer) clears the first (chosen so that
  wrong answers stay at about 1 % of all questions), otherwise offer the top entries ("did you
  mean…") when P(clarify) clears the second, otherwise decline honestly.

The fitted numbers ship as ``bot/decision_model.json``; loading them needs nothing but the
standard library. ``bench/fit_decider.py`` reports cross-validated figures, and
``bench/eval_matcher.py`` the figures on the held-out test half.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from importlib import resources
from typing import Any

from bot.matcher import PLAUSIBLE, TOP_K, Analysis, Candidate, Matcher
from bot.understanding import asks_for_coding_help, read

#: Suggestions offered with a clarification.
MAX_SUGGESTIONS = 3
#: Wording similarity at which a question is one of the entry's own phrasings (give or take
#: case, punctuation and word order): answered whatever the model says.
EXACT = 0.97

#: Decline reason for a message that tries to instruct the bot (:mod:`bot.understanding`).
INSTRUCTIONS = "instructions"
#: Matcher reasons for a question with nothing in it to rank.
NO_CONTENT = frozenset({"empty", "no_content"})
#: A question that points back at what came before it ("what does that refer to?").
_POINTERS = "that|this|it|these|those|they|them"
_POINTS_BACK = re.compile(rf"\b(?:{_POINTERS})\b", re.IGNORECASE)
#: A later question of a message that points back at an earlier one ("Who wrote the blog
#: post, and what's his role there?"): possessives and "there" point back too, but "is
#: there" / "are there" is no pointer.
_POINTS_BACK_PART = re.compile(
    rf"\b(?:{_POINTERS}|his|her|its|their|there)\b(?<!\bis there)(?<!\bare there)",
    re.IGNORECASE,
)
#: Decline reason for a question that points back at the one before it, which was declined
#: ("Is there a technical advisory council? Who sits on it?").
REFERS_BACK = "refers_back"
#: Decline reason for a message that only asks about the bot itself ("who made you").
ABOUT_ME = "about_me"

#: Names of the model's inputs, in order (see :func:`features`).
FEATURES = (
    "score",
    "margin",
    "known",
    "terms",
    "corrected",
    "ask_agreement",
    "similarity",
    "precision",
    "foreign_name",
    "statement",
    "coverage",
    "third_gap",
    "unstated",
)


#: Inputs of the second opinion (:func:`second_features`): the lexical ones, then these.
SECOND_FEATURES = (
    *FEATURES,
    "semantic",
    "semantic_margin",
    "semantic_agrees",
    "fused_margin",
)

#: Entry id -> cosine similarity of the question to the entry's closest phrasing.
SemanticScores = Mapping[int, float]


class Outcome(StrEnum):
    """What the bot does with one question."""

    ANSWER = "answer"
    CLARIFY = "clarify"
    DECLINE = "decline"


def features(analysis: Analysis, *, asked: bool = True) -> tuple[float, ...]:
    """The model's inputs for one analysed question, in :data:`FEATURES` order.

    Args:
        analysis: the matcher's reading and ranking of the question.
        asked: False when the message was a statement read as a question.
    """
    scores = [c.score for c in analysis.candidates]
    best = scores[0] if scores else 0.0
    runner_up = scores[1] if len(scores) > 1 else 0.0
    return (
        best,
        best - runner_up,
        analysis.known,
        math.log1p(analysis.terms),
        float(analysis.corrected > 0),
        analysis.ask_agreement,
        analysis.similarity,
        analysis.precision,
        float(analysis.foreign_name),
        float(not asked),
        analysis.coverage,
        best - (scores[2] if len(scores) > 2 else 0.0),
        float(analysis.unstated),
    )


def fuse(analysis: Analysis, semantic: SemanticScores, weight: float) -> tuple[Candidate, ...]:
    """The matcher's candidates and the semantic ones, re-ranked by score + weight x cosine."""
    lexical = {c.entry_id: c.score for c in analysis.candidates}
    pool = set(lexical) | set(sorted(semantic, key=semantic.__getitem__, reverse=True)[:TOP_K])
    fused = sorted(
        (Candidate(e, round(lexical.get(e, 0.0) + weight * semantic.get(e, 0.0), 4)) for e in pool),
        key=lambda c: (-c.score, c.entry_id),
    )
    return tuple(fused[:TOP_K])


def second_features(
    lexical: tuple[float, ...],
    fused: Sequence[Candidate],
    semantic: SemanticScores,
) -> tuple[float, ...]:
    """The second opinion's inputs, in :data:`SECOND_FEATURES` order: the lexical ones
    (:func:`features`), then the semantic ones."""
    top = fused[0].entry_id if fused else None
    best_cos = semantic.get(top, 0.0) if top is not None else 0.0
    others = [v for e, v in semantic.items() if e != top]
    agrees = bool(semantic) and top == max(semantic, key=semantic.__getitem__)
    return (
        *lexical,
        best_cos,
        best_cos - (max(others) if others else 0.0),
        float(agrees),
        (fused[0].score - fused[1].score) if len(fused) > 1 else (fused[0].score if fused else 0.0),
    )


def _sigmoid(z: float) -> float:
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


@dataclass(frozen=True, slots=True)
class Logistic:
    """A fitted logistic regression on standardized features."""

    weights: tuple[float, ...]
    bias: float
    means: tuple[float, ...]
    scales: tuple[float, ...]

    def probability(self, x: tuple[float, ...]) -> float:
        """P(y = 1 | x)."""
        return _sigmoid(
            self.bias
            + sum(
                w * (v - m) / s
                for w, v, m, s in zip(self.weights, x, self.means, self.scales, strict=True)
            )
        )

    def to_json(self) -> dict[str, object]:
        """A JSON-ready dict."""
        return {
            "weights": list(self.weights),
            "bias": self.bias,
            "means": list(self.means),
            "scales": list(self.scales),
        }

    @classmethod
    def from_json(cls, data: dict[str, object]) -> Logistic:
        """The inverse of :meth:`to_json`."""

        def floats(key: str) -> tuple[float, ...]:
            value = data[key]
            assert isinstance(value, list)
            return tuple(float(v) for v in value)

        bias = data["bias"]
        assert isinstance(bias, int | float)
        return cls(floats("weights"), float(bias), floats("means"), floats("scales"))


@dataclass(frozen=True, slots=True)
class Tree:
    """One regression tree of a boosted ensemble, as parallel arrays (node 0 is the root;
    a leaf has ``left == -1``): go left when ``x[feature] <= threshold``."""

    feature: tuple[int, ...]
    threshold: tuple[float, ...]
    left: tuple[int, ...]
    right: tuple[int, ...]
    value: tuple[float, ...]

    def leaf_value(self, x: tuple[float, ...]) -> float:
        """The value of the leaf ``x`` falls in."""
        node = 0
        while self.left[node] != -1:
            branch = x[self.feature[node]] <= self.threshold[node]
            node = self.left[node] if branch else self.right[node]
        return self.value[node]


@dataclass(frozen=True, slots=True)
class Boosted:
    """Gradient-boosted regression trees on the log-odds (fitted by ``bench.fit_decider``
    with scikit-learn; read and evaluated here with the standard library only). Where the
    features interact (a high score means little on a two-word question), shallow trees
    separate right from wrong better than one weighted sum."""

    base: float
    rate: float
    trees: tuple[Tree, ...]

    def probability(self, x: tuple[float, ...]) -> float:
        """P(y = 1 | x)."""
        return _sigmoid(self.base + self.rate * sum(t.leaf_value(x) for t in self.trees))

    def to_json(self) -> dict[str, object]:
        """A JSON-ready dict."""
        return {
            "kind": "boosted",
            "base": self.base,
            "rate": self.rate,
            "trees": [
                [list(t.feature), list(t.threshold), list(t.left), list(t.right), list(t.value)]
                for t in self.trees
            ],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Boosted:
        """The inverse of :meth:`to_json`."""
        trees = tuple(
            Tree(
                tuple(int(v) for v in feature),
                tuple(float(v) for v in threshold),
                tuple(int(v) for v in left),
                tuple(int(v) for v in right),
                tuple(float(v) for v in value),
            )
            for feature, threshold, left, right, value in data["trees"]
        )
        return cls(float(data["base"]), float(data["rate"]), trees)


#: A fitted P(y = 1 | features).
Classifier = Logistic | Boosted


def classifier_from_json(data: dict[str, Any]) -> Classifier:
    """A :class:`Logistic` or :class:`Boosted` from its JSON form."""
    if data.get("kind") == "boosted":
        return Boosted.from_json(data)
    return Logistic.from_json(data)


@dataclass(frozen=True, slots=True)
class SecondOpinion:
    """The model asked when the lexical one is not sure enough to answer and a semantic
    signal is available: it re-ranks with the sentence embeddings and decides again."""

    answer: Logistic
    clarify: Logistic
    answer_cut: float
    clarify_cut: float
    #: Fused score = matcher score + weight x cosine similarity.
    weight: float

    def to_json(self) -> dict[str, object]:
        """A JSON-ready dict."""
        return {
            "features": list(SECOND_FEATURES),
            "answer": self.answer.to_json(),
            "clarify": self.clarify.to_json(),
            "answer_cut": self.answer_cut,
            "clarify_cut": self.clarify_cut,
            "weight": self.weight,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SecondOpinion:
        """The inverse of :meth:`to_json`; refuses a model fitted on other features."""
        if data.get("features") != list(SECOND_FEATURES):
            raise ValueError("second opinion was fitted on other features; refit it")
        return cls(
            Logistic.from_json(data["answer"]),
            Logistic.from_json(data["clarify"]),
            float(data["answer_cut"]),
            float(data["clarify_cut"]),
            float(data["weight"]),
        )


@dataclass(frozen=True, slots=True)
class DecisionModel:
    """Both classifiers and their cut-offs."""

    answer: Classifier
    clarify: Classifier
    answer_cut: float
    clarify_cut: float
    #: A suggestion must score at least this share of the best entry's score.
    suggestion_ratio: float
    #: No suggestions at all below this matcher score: off-topic messages (weather, coding
    #: help, jokes, injection) then get the honest decline, never a "did you mean".
    suggest_floor: float = 0.25
    #: Asked when the lexical model is unsure and sentence embeddings are available.
    second: SecondOpinion | None = None

    def to_json(self) -> dict[str, object]:
        """A JSON-ready dict (what ``bench.fit_decider`` writes)."""
        return {
            "features": list(FEATURES),
            "answer": self.answer.to_json(),
            "clarify": self.clarify.to_json(),
            "answer_cut": self.answer_cut,
            "clarify_cut": self.clarify_cut,
            "suggestion_ratio": self.suggestion_ratio,
            "suggest_floor": self.suggest_floor,
            **({"second": self.second.to_json()} if self.second else {}),
        }

    @classmethod
    def from_json(cls, data: dict[str, object]) -> DecisionModel:
        """The inverse of :meth:`to_json`; refuses a model fitted on other features."""
        if data.get("features") != list(FEATURES):
            raise ValueError("decision model was fitted on other features; refit it")
        answer, clarify, second = data["answer"], data["clarify"], data.get("second")
        assert isinstance(answer, dict) and isinstance(clarify, dict)
        cuts = [
            data["answer_cut"],
            data["clarify_cut"],
            data["suggestion_ratio"],
            data.get("suggest_floor", 0.25),
        ]
        assert all(isinstance(c, int | float) for c in cuts)
        return cls(
            classifier_from_json(answer),
            classifier_from_json(clarify),
            float(cuts[0]),  # type: ignore[arg-type]
            float(cuts[1]),  # type: ignore[arg-type]
            float(cuts[2]),  # type: ignore[arg-type]
            float(cuts[3]),  # type: ignore[arg-type]
            SecondOpinion.from_json(second) if isinstance(second, dict) else None,
        )


def bundled_model() -> DecisionModel:
    """The model fitted on the bundled evaluation set's tuning questions."""
    text = resources.files("bot").joinpath("decision_model.json").read_text(encoding="utf-8")
    return DecisionModel.from_json(json.loads(text))


@dataclass(frozen=True, slots=True)
class Decision:
    """The verdict on one question."""

    outcome: Outcome
    #: The entry answered with; for a decline, the near miss (for moderators), if any.
    entry_id: int | None
    #: Entries offered with a clarification, best first.
    suggestions: tuple[int, ...]
    #: P(answer): how sure the bot is that its best entry is right.
    confidence: float
    #: Why: "confident", "unsure" (clarify), "low_confidence", or the matcher's reason
    #: ("empty", "no_content", "off_topic"), or "instructions" for a message that tries
    #: to instruct the bot.
    reason: str


class Decider:
    """Turns a matcher :class:`Analysis` into a :class:`Decision`."""

    def __init__(self, model: DecisionModel | None = None, *, answer_cut: float | None = None):
        """Args:
        model: the fitted model; None loads the bundled one.
        answer_cut: overrides the model's answer cut-off (``answering.threshold``).
        """
        self._model = model if model is not None else bundled_model()
        self._answer_cut = self._model.answer_cut if answer_cut is None else answer_cut

    @property
    def answer_cut(self) -> float:
        """P(answer) needed to answer."""
        return self._answer_cut

    @property
    def model(self) -> DecisionModel:
        """The fitted model in use."""
        return self._model

    def decide(
        self,
        analysis: Analysis,
        *,
        asked: bool = True,
        clarify: bool = True,
        semantic: Callable[[], SemanticScores | None] | None = None,
    ) -> Decision:
        """Answer, clarify or decline.

        Args:
            analysis: the matcher's analysis of one question.
            asked: False for a statement read as a question.
            clarify: whether a clarification may be offered at all (False where the
                platform cannot show one); an unsure question is then declined.
            semantic: the question's cosine similarity to every entry, computed on demand
                (only questions the lexical model is not sure of pay for an embedding).
        """
        best = analysis.best
        if analysis.reason or best is None:
            return Decision(Outcome.DECLINE, None, (), 0.0, analysis.reason or "off_topic")
        x = features(analysis, asked=asked)
        confidence = self._model.answer.probability(x)
        runner_up = analysis.candidates[1].score if len(analysis.candidates) > 1 else 0.0
        exact = analysis.similarity >= EXACT and best.score > runner_up
        if exact:
            confidence = max(confidence, self._answer_cut)
        # An answer that lacks the kind of fact asked for (a person, a date, a count of
        # that thing...) is at most offered, however well the words match.
        if confidence >= self._answer_cut and (exact or not analysis.unstated):
            return Decision(Outcome.ANSWER, best.entry_id, (), confidence, "confident")
        second = self._model.second
        scores = semantic() if second is not None and semantic is not None else None
        if second is not None and scores:
            return self._second_opinion(analysis, x, scores, second, clarify=clarify)
        plausible = best.score >= self._model.suggest_floor
        if clarify and plausible and self._model.clarify.probability(x) >= self._model.clarify_cut:
            return self._clarify(analysis.candidates, confidence)
        return self._decline(best, confidence)

    def _second_opinion(
        self,
        analysis: Analysis,
        lexical: tuple[float, ...],
        scores: SemanticScores,
        second: SecondOpinion,
        *,
        clarify: bool,
    ) -> Decision:
        fused = fuse(analysis, scores, second.weight)
        x = second_features(lexical, fused, scores)
        confidence = second.answer.probability(x)
        top = fused[0]
        best = analysis.best
        lacking = analysis.unstated and best is not None and top.entry_id == best.entry_id
        if confidence >= second.answer_cut and not lacking:
            return Decision(Outcome.ANSWER, top.entry_id, (), confidence, "confident")
        plausible = best is not None and best.score >= self._model.suggest_floor
        if clarify and plausible and second.clarify.probability(x) >= second.clarify_cut:
            return self._clarify(fused, confidence)
        assert best is not None
        return self._decline(best, confidence)

    def _clarify(self, candidates: Sequence[Candidate], confidence: float) -> Decision:
        floor = candidates[0].score * self._model.suggestion_ratio
        suggestions = tuple(c.entry_id for c in candidates[:MAX_SUGGESTIONS] if c.score >= floor)
        return Decision(Outcome.CLARIFY, candidates[0].entry_id, suggestions, confidence, "unsure")

    @staticmethod
    def _decline(best: Candidate, confidence: float) -> Decision:
        if best.score < PLAUSIBLE:
            # Not even a near miss: nothing for moderators to compare it with.
            return Decision(Outcome.DECLINE, None, (), confidence, "off_topic")
        return Decision(Outcome.DECLINE, best.entry_id, (), confidence, "low_confidence")


@dataclass(frozen=True, slots=True)
class PartVerdict:
    """One question of a message and what the bot decided about it."""

    question: str
    analysis: Analysis
    decision: Decision


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the bot does with a whole message."""

    outcome: Outcome
    #: Each question read from the message, in order (at least one).
    parts: tuple[PartVerdict, ...]
    #: Whether the message asked outright (False: a statement read as a question).
    asked: bool

    @property
    def answers(self) -> tuple[int, ...]:
        """Entries answered with, in the order asked, each once."""
        seen: list[int] = []
        for part in self.parts:
            entry = part.decision.entry_id
            answered = part.decision.outcome is Outcome.ANSWER
            if answered and entry is not None and entry not in seen:
                seen.append(entry)
        return tuple(seen)

    @property
    def suggestions(self) -> tuple[int, ...]:
        """Entries offered, for a clarification (those of its first unsure question)."""
        for part in self.parts:
            if part.decision.outcome is Outcome.CLARIFY:
                return part.decision.suggestions
        return ()

    @property
    def lead(self) -> PartVerdict:
        """The part that decided the outcome (the first of its kind)."""
        for part in self.parts:
            if part.decision.outcome is self.outcome:
                return part
        return self.parts[0]


def _declined_whole(text: str, reason: str, *, asked: bool) -> Verdict:
    """A message declined before any ranking (``reason``: what it was instead of a question)."""
    decision = Decision(Outcome.DECLINE, None, (), 0.0, reason)
    return Verdict(Outcome.DECLINE, (PartVerdict(text, Analysis(reason), decision),), asked)


def _agreed(alone: Decision, in_context: Decision, *, clarify: bool) -> Decision:
    """A question answered on its own words (``alone``), checked against how the whole
    message reads (``in_context``): the same answer stands; a different or unsure one makes
    it a clarification between them; nothing the bot knows makes it a decline."""
    entry = alone.entry_id
    if in_context.outcome is Outcome.ANSWER and in_context.entry_id == entry:
        return alone
    if in_context.outcome is Outcome.DECLINE or not clarify or entry is None:
        return Decision(Outcome.DECLINE, entry, (), in_context.confidence, REFERS_BACK)
    others = in_context.suggestions or (in_context.entry_id,)
    suggestions = (entry, *(e for e in others if e is not None and e != entry))
    return Decision(
        Outcome.CLARIFY, entry, suggestions[:MAX_SUGGESTIONS], in_context.confidence, "unsure"
    )


def consider(
    text: str,
    matcher: Matcher,
    decider: Decider,
    *,
    clarify: bool = True,
    semantic: Callable[[str], SemanticScores | None] | None = None,
) -> Verdict:
    """Read a message, rank each question in it and decide.

    The message's outcome is *answer* if any of its questions is answered (the others are
    left out of the reply), else *clarify* if one is worth suggestions, else *decline*.
    """
    reading = read(text)
    if reading.instructions:
        return _declined_whole(text, INSTRUCTIONS, asked=False)
    analyses = [matcher.analyze(question) for question in reading.parts]
    if reading.about_me and all(a.reason in NO_CONTENT for a in analyses):
        # Only the question about the bot had anything in it ("how old are you? same here").
        return _declined_whole(text, ABOUT_ME, asked=True)
    questions = reading.parts or (text,)
    if not reading.parts:
        analyses = [matcher.analyze(text)]
    points_back = bool(reading.context) and all(_POINTS_BACK.search(p) for p in reading.parts)
    nothing = NO_CONTENT | ({"off_topic"} if points_back else set())
    whole = " ".join((*reading.context, *reading.parts)) if reading.context else text
    if reading.parts and all(a.reason in nothing for a in analyses):
        # The questions read out of it say nothing ("pytorch foundation vs linux foundation...
        # same thing now??", "I keep seeing 'X'. What does that refer to?"): what the message
        # is about is in the rest of it, greetings left out.
        questions, analyses = (whole,), [matcher.analyze(whole)]
        points_back = False

    def decide(question: str, analysis: Analysis) -> Decision:
        scores = None if semantic is None else functools.partial(semantic, question)
        return decider.decide(analysis, asked=reading.asked, clarify=clarify, semantic=scores)

    in_context: Decision | None = None
    parts: list[PartVerdict] = []
    for question, analysis in zip(questions, analyses, strict=True):
        decision = decide(question, analysis)
        if points_back and decision.outcome is Outcome.ANSWER and analysis.terms <= 1:
            # "Meta released a new Llama license. What does that mean?": "that" is in the
            # statement before it, and the question says little by itself; it is answered
            # only if, read with the statement, the bot would give the same answer. (One
            # that says more, "who made the announcement of this change", stands alone.)
            if in_context is None:
                in_context = decide(whole, matcher.analyze(whole))
            decision = _agreed(decision, in_context, clarify=clarify)
        if decision.outcome is Outcome.CLARIFY and asks_for_coding_help(question):
            # Coding help shares words with the entry about code changes; suggesting that
            # entry to someone debugging their training loop is noise.
            decision = Decision(Outcome.DECLINE, None, (), decision.confidence, "off_topic")
        before = parts[-1].decision if parts else None
        if (
            before is not None
            and before.outcome is Outcome.ANSWER
            and decision.outcome is Outcome.ANSWER
            and decision.entry_id != before.entry_id
            and analysis.terms <= 2
            and _POINTS_BACK_PART.search(question)
        ):
            # "Is Microsoft on the board, and is Meta staying on it too?": "it" is the board
            # of the question before, and "is Meta staying" alone reads as another entry. A
            # later question that says little by itself and points back is answered only if,
            # read after the one it points to, the bot would give the same answer.
            joined = f"{parts[-1].question} {question}"
            decision = _agreed(decision, decide(joined, matcher.analyze(joined)), clarify=clarify)
        if (
            before is not None
            and (
                before.outcome is Outcome.CLARIFY
                or before.reason in {"low_confidence", "off_topic"}
            )
            and decision.outcome is not Outcome.DECLINE
            and _POINTS_BACK.search(question)
        ):
            # "Is there a technical advisory council? Who sits on it?": "it" is the thing the
            # pack knows nothing about, whatever else "who sits on" matches. So too after a
            # question the bot was unsure of ("Is there a code of conduct, and where do I
            # read it?"): what "it" is waits on the reader's choice.
            decision = Decision(
                Outcome.DECLINE, decision.entry_id, (), decision.confidence, REFERS_BACK
            )
        parts.append(PartVerdict(question, analysis, decision))
    outcomes = {p.decision.outcome for p in parts}
    for outcome in (Outcome.ANSWER, Outcome.CLARIFY):
        if outcome in outcomes:
            return Verdict(outcome, tuple(parts), reading.asked)
    return Verdict(Outcome.DECLINE, tuple(parts), reading.asked)
