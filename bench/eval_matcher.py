"""Accuracy of the FAQ matcher on the dev set, against the simpler methods it was chosen over.

Run from the repository root as a module: ``python -m bench.eval_matcher`` (``--questions FILE`` for
another question file in the dev set's format, ``--misses`` to list what the shipped matcher
gets wrong). For each method it prints

* **answerable right**: answerable questions answered with the right entry;
* **wrong answers**: questions answered with a wrong entry, or must-decline questions answered
  at all, over all questions: the worst outcome;
* **correct declines**: must-decline questions declined;
* **overall**: questions handled right (right entry, or declined when it should be).

The baselines' thresholds are tuned on the very questions they are scored on (their best
case); the shipped matcher uses its fixed default. Then an honesty check: over 20 random
halvings of the question set, each method's threshold is tuned on one half and scored on the
other, so a method that only looks good because its threshold fits these questions shows it.
"""

from __future__ import annotations

import argparse
import math
import random
import tomllib
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from rapidfuzz import fuzz

from bot.faqfile import FaqRecord, builtin_pack
from bot.matcher import DEFAULT_THRESHOLD, STOPWORDS, FaqDoc, Matcher, term_of, words

DEV = Path(__file__).resolve().parent.parent / "tests" / "data" / "dev_questions.toml"
THRESHOLDS = tuple(round(0.05 * i, 2) for i in range(2, 20))
#: How much worse a wrong answer is than a miss when a threshold is tuned.
WRONG_COST = 3.0

#: (expected slug or "" for must-decline, question text)
Question = tuple[str, str]
#: A method: question -> (best slug or None, confidence in [0, 1], may answer at all).
Method = Callable[[str], tuple[str | None, float, bool]]


@dataclass(frozen=True, slots=True)
class Result:
    """Accuracy figures for one method on one question set."""

    answerable: float
    wrong: float
    declines: float
    overall: float
    wrong_count: int
    total: int

    def row(self, name: str) -> str:
        """One Markdown table row."""
        return (
            f"| {name} | {self.answerable:.1%} | {self.wrong:.1%} ({self.wrong_count}) | "
            f"{self.declines:.1%} | {self.overall:.1%} |"
        )


def load_questions(path: Path = DEV) -> list[Question]:
    """(expected slug or "", text) pairs from a dev-set style TOML file."""
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    return [(str(q["expect"]), str(q["text"])) for q in data["question"]]


def evaluate(outcomes: Sequence[tuple[str, str | None, float, bool]], threshold: float) -> Result:
    """Score (expected, predicted slug, confidence, may answer) tuples at ``threshold``."""
    right = wrong = declined = answerable = 0
    for expect, slug, score, may_answer in outcomes:
        answered = may_answer and slug is not None and score >= threshold
        if expect:
            answerable += 1
            right += answered and slug == expect
            wrong += answered and slug != expect
        else:
            declined += not answered
            wrong += answered
    total = len(outcomes)
    return Result(
        answerable=right / max(answerable, 1),
        wrong=wrong / max(total, 1),
        declines=declined / max(total - answerable, 1),
        overall=(right + declined) / max(total, 1),
        wrong_count=wrong,
        total=total,
    )


def tune(outcomes: Sequence[tuple[str, str | None, float, bool]]) -> float:
    """The threshold maximizing overall accuracy minus ``WRONG_COST`` x wrong-answer rate."""
    return max(
        THRESHOLDS,
        key=lambda t: (lambda r: r.overall - WRONG_COST * r.wrong)(evaluate(outcomes, t)),
    )


def run(method: Method, questions: Sequence[Question]) -> list[tuple[str, str | None, float, bool]]:
    """Each question's (expected, predicted, confidence, may answer)."""
    return [(expect, *method(text)) for expect, text in questions]


# --- the candidates -----------------------------------------------------------------------


def _passages(pack: Sequence[FaqRecord]) -> list[tuple[str, str]]:
    return [(r.slug, text) for r in pack for text in (r.question, *r.phrasings)]


def token_set(pack: Sequence[FaqRecord]) -> Method:
    """rapidfuzz ``token_set_ratio`` against every phrasing (lowercased), best one wins."""
    passages = [(slug, text.lower()) for slug, text in _passages(pack)]

    def predict(text: str) -> tuple[str | None, float, bool]:
        query = text.lower()[:1000]
        if not query.strip():
            return None, 0.0, False
        slug, passage = max(passages, key=lambda p: fuzz.token_set_ratio(query, p[1]))
        return slug, fuzz.token_set_ratio(query, passage) / 100, True

    return predict


def _plain_terms(text: str) -> list[str]:
    # Stemmed words without stop words, but none of the matcher's synonyms or typo fixes.
    return [term_of(w) or w for w in words(text) if w not in STOPWORDS]


def bm25(pack: Sequence[FaqRecord], k1: float = 1.2, b: float = 0.75) -> Method:
    """Okapi BM25 over entries (question + phrasings as one document), stemmed words.

    The score is normalized by the best a document could score for the query (every query
    word present, unknown words at the highest IDF), so it reads as a weighted coverage.
    """
    docs = [
        (r.slug, Counter(t for p in (r.question, *r.phrasings) for t in _plain_terms(p)))
        for r in pack
    ]
    n = len(docs)
    average = sum(sum(c.values()) for _, c in docs) / max(n, 1)
    df = Counter(t for _, c in docs for t in c)
    idf = {t: math.log(1 + (n - f + 0.5) / (f + 0.5)) for t, f in df.items()}
    unknown = math.log(1 + (n + 0.5) / 0.5)

    def predict(text: str) -> tuple[str | None, float, bool]:
        query = set(_plain_terms(text))
        if not query:
            return None, 0.0, False
        ceiling = sum(idf.get(t, unknown) for t in query)
        best_slug, best = None, 0.0
        for slug, counts in docs:
            length = sum(counts.values())
            score = 0.0
            for t in query & counts.keys():
                tf = counts[t]
                score += idf[t] * tf * (k1 + 1) / (tf + k1 * (1 - b + b * length / average))
            if score > best:
                best_slug, best = slug, score
        return best_slug, min(1.0, best / ceiling), True

    return predict


def _grams(text: str, n: int = 3) -> Counter[str]:
    grams: Counter[str] = Counter()
    for word in words(text):
        padded = f" {word} "
        grams.update(padded[i : i + n] for i in range(max(1, len(padded) - n + 1)))
    return grams


def char_ngrams(pack: Sequence[FaqRecord]) -> Method:
    """TF-IDF cosine over character 3-grams (word-bounded), best phrasing wins."""
    raw = [(slug, _grams(text)) for slug, text in _passages(pack)]
    df = Counter(g for _, grams in raw for g in grams)
    idf = {g: math.log(len(raw) / f) + 1 for g, f in df.items()}
    vectors = []
    for slug, grams in raw:
        vector = {g: c * idf[g] for g, c in grams.items()}
        vectors.append((slug, vector, math.sqrt(sum(v * v for v in vector.values()))))

    def predict(text: str) -> tuple[str | None, float, bool]:
        grams = _grams(text)
        # Unseen 3-grams weigh as the rarest seen ones: they are what the question is about.
        query = {g: c * idf.get(g, math.log(len(raw)) + 1) for g, c in grams.items()}
        norm = math.sqrt(sum(v * v for v in query.values()))
        if not norm:
            return None, 0.0, False
        best_slug, best = None, 0.0
        for slug, vector, length in vectors:
            dot = sum(w * vector[g] for g, w in query.items() if g in vector)
            if length and dot / (norm * length) > best:
                best_slug, best = slug, dot / (norm * length)
        return best_slug, best, True

    return predict


def shipped(pack: Sequence[FaqRecord]) -> Method:
    """The shipped matcher. Built with threshold 0, so another threshold can be applied
    afterwards; its other decline rules (no content, off topic, ambiguous) still hold."""
    slugs = {i: r.slug for i, r in enumerate(pack, start=1)}
    matcher = Matcher(
        [FaqDoc(i, r.question, r.phrasings, r.answer, r.tags) for i, r in enumerate(pack, 1)],
        threshold=0.0,
    )

    def predict(text: str) -> tuple[str | None, float, bool]:
        match = matcher.match(text)
        slug = slugs.get(match.entry_id) if match.entry_id is not None else None
        return slug, match.score, match.answered

    return predict


def split_half(
    outcomes: Sequence[tuple[str, str | None, float, bool]], rounds: int = 20, seed: int = 2022
) -> tuple[Result, list[float]]:
    """Mean result on held-out halves, thresholds tuned on the other half; and those thresholds."""
    rng = random.Random(seed)
    results: list[Result] = []
    chosen: list[float] = []
    for _ in range(rounds):
        shuffled = list(outcomes)
        rng.shuffle(shuffled)
        half = len(shuffled) // 2
        for tune_on, score_on in (
            (shuffled[:half], shuffled[half:]),
            (shuffled[half:], shuffled[:half]),
        ):
            threshold = tune(tune_on)
            chosen.append(threshold)
            results.append(evaluate(score_on, threshold))
    mean = Result(
        answerable=sum(r.answerable for r in results) / len(results),
        wrong=sum(r.wrong for r in results) / len(results),
        declines=sum(r.declines for r in results) / len(results),
        overall=sum(r.overall for r in results) / len(results),
        wrong_count=round(sum(r.wrong_count for r in results) / len(results)),
        total=len(outcomes) // 2,
    )
    return mean, chosen


def main(argv: Sequence[str] | None = None) -> None:
    """Print the comparison tables."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--questions", type=Path, default=DEV, help="dev-set style TOML file")
    parser.add_argument("--misses", action="store_true", help="list the shipped matcher's misses")
    args = parser.parse_args(argv)

    pack = builtin_pack()
    questions = load_questions(args.questions)
    answerable = sum(1 for expect, _ in questions if expect)
    print(
        f"{args.questions.name}: {len(questions)} questions ({answerable} answerable, "
        f"{len(questions) - answerable} must decline); pack: {len(pack)} entries\n"
    )
    methods: list[tuple[str, Method]] = [
        ("rapidfuzz token_set_ratio, best phrasing", token_set(pack)),
        ("char 3-gram TF-IDF cosine, best phrasing", char_ngrams(pack)),
        ("BM25 over entries, stemmed", bm25(pack)),
        ("hybrid matcher (shipped)", shipped(pack)),
    ]
    header = (
        "| method | threshold | answerable right | wrong answers | correct declines | overall |"
    )
    print(header)
    print("|---|---|---|---|---|---|")
    outcomes = {name: run(method, questions) for name, method in methods}
    for name, _ in methods:
        shipped_row = name.endswith("(shipped)")
        threshold = DEFAULT_THRESHOLD if shipped_row else tune(outcomes[name])
        label = f"{threshold:.2f}" + ("" if shipped_row else " (tuned here)")
        row = evaluate(outcomes[name], threshold).row(name)
        print(row.replace(f"| {name} |", f"| {name} | {label} |", 1))

    print("\nsplit-half check (threshold tuned on a random half, scored on the other; 20 x 2):")
    print(header.replace("| threshold |", "| thresholds chosen |"))
    print("|---|---|---|---|---|---|")
    for name, _ in methods:
        mean, chosen = split_half(outcomes[name])
        spread = f"{min(chosen):.2f}-{max(chosen):.2f}"
        print(mean.row(name).replace(f"| {name} |", f"| {name} | {spread} |", 1))

    name = "hybrid matcher (shipped)"
    print(f"\nthreshold sweep ({name}):")
    print("| threshold | answerable right | wrong answers | correct declines | overall |")
    print("|---|---|---|---|---|")
    for threshold in (0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7):
        print(evaluate(outcomes[name], threshold).row(f"{threshold:.2f}"))

    if args.misses:
        print("\nshipped matcher misses at the default threshold:")
        for (expect, text), (_, slug, score, may) in zip(questions, outcomes[name], strict=True):
            answered = may and slug is not None and score >= DEFAULT_THRESHOLD
            if (answered and slug == expect) or (not expect and not answered):
                continue
            kind = "WRONG" if answered else "miss "
            print(f"  {kind} {text[:60]!r:64} expected={expect or '-'} got={slug} {score:.3f}")


if __name__ == "__main__":
    main()
