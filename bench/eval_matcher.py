"""How well the bot answers: the held-out test half, per category of question.

Run from the repository root: ``python -m bench.eval_matcher`` (``--half tune`` for the
tuning set, ``--questions FILE`` for another file in the same format, ``--misses`` to list
what goes wrong). The question sets (``tests/data/questions_{tune,tune_more,test}.toml``)
were written from the source texts alone by people who never saw the pack or the matcher;
everything that was tuned (the message reader, the matcher, the pack's wording, the decision
model) was tuned on the two tuning files only.

Each message is scored as a user would see the reply:

* **right**: answered, and every question in it answered with a right entry;
* **partly**: some of its questions answered right, none wrong, the rest not answered;
* **clarified right**: "did you mean…" with a right entry among the suggestions;
* **wrong**: an answer from a wrong entry (or any answer to a must-decline message);
* **declined**: no answer (for must-decline messages, the right outcome); a clarification
  without a right suggestion counts here too (as "clarified, none right").
"""

from __future__ import annotations

import argparse
import functools
import tomllib
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from bot.deciding import Decider, Outcome, SemanticScores, Verdict, consider
from bot.faqfile import FaqRecord, builtin_pack
from bot.matcher import Analysis, FaqDoc, Matcher
from bot.semantic import Embedder, SemanticIndex

DATA = Path(__file__).resolve().parent.parent / "tests" / "data"
TUNE = DATA / "questions_tune.toml"
#: The second round of tuning questions (two more writers, written 2026-12-06).
TUNE_MORE = DATA / "questions_tune_more.toml"
#: The third round (one more writer; measured once as it came, then tuned on).
TUNE_ROUND3 = DATA / "questions_tune_round3.toml"
#: The fourth round (a sixth writer; measured once as it came, then tuned on).
TUNE_ROUND4 = DATA / "questions_tune_round4.toml"
#: The fifth round (a seventh writer; measured once as it came, then tuned on).
TUNE_ROUND5 = DATA / "questions_tune_round5.toml"
#: Everything that may be tuned on.
TUNING = (TUNE, TUNE_MORE, TUNE_ROUND3, TUNE_ROUND4, TUNE_ROUND5)
TEST = DATA / "questions_test.toml"
#: The older dev set (written partly alongside the first matcher); used by the speed benches.
DEV = DATA / "dev_questions.toml"


@dataclass(frozen=True, slots=True)
class Question:
    """One labelled message."""

    text: str
    #: "answer" or "decline".
    kind: str
    category: str
    #: For each question in the message, the slugs whose answer is right for it.
    expect: tuple[frozenset[str], ...]
    #: Who wrote it ("a", "b", ...; "" if the file does not say).
    writer: str = ""

    @property
    def answerable(self) -> bool:
        """Whether the pack can answer it."""
        return self.kind == "answer"


class Score(StrEnum):
    """How a reply fares, as the user would judge it."""

    RIGHT = "right"
    PARTLY = "partly"
    CLARIFIED = "clarified right"
    WRONG = "wrong"
    SUGGESTED = "clarified, none right"
    DECLINED = "declined"


def load(path: Path) -> list[Question]:
    """The questions of one file."""
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    return [
        Question(
            str(q["text"]),
            str(q["kind"]),
            str(q["category"]),
            tuple(frozenset(map(str, part)) for part in q["expect"]),
            str(q.get("source", "")),
        )
        for q in data["question"]
    ]


def load_dev_texts(path: Path = DEV) -> list[str]:
    """Question texts of the older dev set (for the speed benches)."""
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    return [str(q["text"]) for q in data["question"]]


class MemoMatcher(Matcher):
    """A matcher that remembers its analyses (the fitting runs the same questions through
    many candidate cut-offs)."""

    def __init__(self, docs: Sequence[FaqDoc]) -> None:
        super().__init__(docs)
        self._memo: dict[str, Analysis] = {}

    def analyze(self, text: str) -> Analysis:
        """:meth:`Matcher.analyze`, once per text."""
        if text not in self._memo:
            self._memo[text] = super().analyze(text)
        return self._memo[text]


def pack_matcher(pack: Sequence[FaqRecord] | None = None) -> tuple[Matcher, dict[int, str]]:
    """A matcher over the pack (remembering its analyses), and entry id -> slug."""
    records = list(pack if pack is not None else builtin_pack())
    docs = [
        FaqDoc(i, r.question, tuple(r.phrasings), r.answer, tuple(r.tags))
        for i, r in enumerate(records)
    ]
    return MemoMatcher(docs), {i: r.slug for i, r in enumerate(records)}


def pack_semantic(
    pack: Sequence[FaqRecord] | None = None,
) -> Callable[[str], SemanticScores | None] | None:
    """Cosine similarity of a question to every pack entry (ids as in :func:`pack_matcher`),
    memoized per text; None where the embedding model is not installed."""
    embedder = Embedder.load()
    if embedder is None:
        return None
    records = list(pack if pack is not None else builtin_pack())
    index = SemanticIndex.build(
        embedder, [(i, (r.question, *r.phrasings)) for i, r in enumerate(records)]
    )

    @functools.cache
    def scores(text: str) -> SemanticScores | None:
        return index.scores(embedder.embed_one(text))

    return scores


def score(question: Question, verdict: Verdict, slugs: dict[int, str]) -> Score:
    """How the reply to ``question`` fares."""
    answered = {slugs[e] for e in verdict.answers}
    if verdict.outcome is Outcome.ANSWER:
        if not question.answerable:
            return Score.WRONG
        every = frozenset().union(*question.expect)
        if answered - every:
            return Score.WRONG
        covered = sum(1 for part in question.expect if part & answered)
        return Score.RIGHT if covered == len(question.expect) else Score.PARTLY
    if verdict.outcome is Outcome.CLARIFY:
        offered = {slugs[e] for e in verdict.suggestions}
        if question.answerable and offered & frozenset().union(*question.expect):
            return Score.CLARIFIED
        return Score.SUGGESTED
    return Score.DECLINED


def run(
    questions: Sequence[Question],
    matcher: Matcher,
    slugs: dict[int, str],
    decider: Decider | None = None,
    semantic: Callable[[str], SemanticScores | None] | None = None,
) -> list[tuple[Question, Verdict, Score]]:
    """Every question through the bot's reading, ranking and deciding."""
    decider = decider if decider is not None else Decider()
    results = []
    for question in questions:
        verdict = consider(question.text, matcher, decider, semantic=semantic)
        results.append((question, verdict, score(question, verdict, slugs)))
    return results


@dataclass(frozen=True, slots=True)
class Summary:
    """Headline figures of one run."""

    right: float
    right_or_clarified: float
    wrong_of_all: float
    decline_answered: float
    decline_suggested: float
    answerable: int
    must_decline: int

    def meets_targets(self) -> bool:
        """The issue's targets."""
        return (
            self.right_or_clarified >= 0.90
            and self.right >= 0.75
            and self.wrong_of_all <= 0.01
            and self.decline_answered <= 0.05
        )


def summarize(results: Sequence[tuple[Question, Verdict, Score]]) -> Summary:
    """Shares over a run (``right`` counts partly answered multi-question messages as half)."""
    answerable = [s for q, _, s in results if q.answerable]
    declines = [s for q, _, s in results if not q.answerable]
    n_a, n_d = max(1, len(answerable)), max(1, len(declines))
    right = (answerable.count(Score.RIGHT) + 0.5 * answerable.count(Score.PARTLY)) / n_a
    clarified = answerable.count(Score.CLARIFIED) / n_a
    wrong = sum(1 for _, _, s in results if s is Score.WRONG) / max(1, len(results))
    return Summary(
        right,
        right + clarified,
        wrong,
        declines.count(Score.WRONG) / n_d,
        declines.count(Score.SUGGESTED) / n_d,
        len(answerable),
        len(declines),
    )


def table(results: Sequence[tuple[Question, Verdict, Score]]) -> str:
    """A Markdown table of outcomes per category, answerable first."""
    by_category: dict[tuple[str, str], Counter[Score]] = defaultdict(Counter)
    for question, _, result in results:
        by_category[(question.kind, question.category)][result] += 1
    columns = list(Score)
    lines = [
        "| kind | category | n | " + " | ".join(c.value for c in columns) + " |",
        "|---|---|---|" + "---|" * len(columns),
    ]
    totals: dict[str, Counter[Score]] = defaultdict(Counter)
    for (kind, category), counts in sorted(by_category.items()):
        n = sum(counts.values())
        totals[kind].update(counts)
        cells = " | ".join(f"{counts[c] / n:.0%}" if counts[c] else "·" for c in columns)
        lines.append(f"| {kind} | {category} | {n} | {cells} |")
    for kind, counts in sorted(totals.items()):
        n = sum(counts.values())
        cells = " | ".join(f"**{counts[c] / n:.1%}**" for c in columns)
        lines.append(f"| {kind} | **all** | {n} | {cells} |")
    return "\n".join(lines)


def headline(summary: Summary) -> str:
    """The issue's four figures on one Markdown table."""
    return "\n".join(
        [
            "| figure | value | target |",
            "|---|---|---|",
            f"| answerable: right or clarified right | {summary.right_or_clarified:.1%} | ≥ 90 % |",
            f"| answerable: right outright | {summary.right:.1%} | ≥ 75 % |",
            f"| wrong answers, of all questions | {summary.wrong_of_all:.1%} | ≤ 1 % |",
            f"| must-decline questions answered | {summary.decline_answered:.1%} | ≤ 5 % |",
            f"| must-decline questions given suggestions | {summary.decline_suggested:.1%} | — |",
        ]
    )


def main(argv: Sequence[str] | None = None) -> None:
    """Print the per-category table and the headline figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--half", choices=("test", "tune"), default="test")
    parser.add_argument("--questions", type=Path, help="another question file")
    parser.add_argument("--misses", action="store_true", help="list what goes wrong")
    parser.add_argument(
        "--lexical", action="store_true", help="without the semantic second opinion"
    )
    args = parser.parse_args(argv)
    paths = [args.questions] if args.questions else ([TEST] if args.half == "test" else TUNING)
    matcher, slugs = pack_matcher()
    semantic = None if args.lexical else pack_semantic()
    questions = [q for path in paths for q in load(path)]
    results = run(questions, matcher, slugs, semantic=semantic)
    signals = "matcher + MiniLM second opinion" if semantic else "matcher only"
    names = " + ".join(path.name for path in paths)
    print(f"{names}: {len(results)} messages ({signals})\n")
    print(table(results))
    print()
    print(headline(summarize(results)))
    if args.misses:
        print()
        for question, verdict, result in results:
            if result in (Score.RIGHT, Score.CLARIFIED) or (
                not question.answerable and result is Score.DECLINED
            ):
                continue
            lead = verdict.lead
            top = [f"{slugs[c.entry_id]}:{c.score:.2f}" for c in lead.analysis.candidates[:3]]
            print(
                f"[{result.value}] {question.category}: {question.text!r} -> "
                f"{[slugs[e] for e in verdict.answers or verdict.suggestions]} "
                f"p={lead.decision.confidence:.2f} parts={[p.question for p in verdict.parts]} "
                f"top={top} expect={[sorted(e) for e in question.expect]}"
            )


if __name__ == "__main__":
    main()
