"""Accuracy of the FAQ matcher on the dev set, against simpler candidates.

Run: ``python -m bench.eval_matcher``. For each method it prints answerable accuracy (the right
entry answered), wrong answers (answered with the wrong entry, or answered a must-decline
question: the worst outcome), correct declines, and overall accuracy; then a threshold sweep
and a split-half check (threshold tuned on one half, measured on the other) for the chosen
method, as a guard against tuning to the dev set.
"""

from __future__ import annotations

import random
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rapidfuzz import fuzz

from bot.faqfile import builtin_pack
from bot.matcher import FaqDoc, Matcher, _words

DEV = Path(__file__).resolve().parent.parent / "tests" / "data" / "dev_questions.toml"

Predict = Callable[[str], tuple[str | None, float]]


@dataclass(frozen=True)
class Result:
    answerable: float
    wrong: float
    declines: float
    overall: float
    wrong_count: int


def load_dev() -> list[tuple[str, str]]:
    """(question, expected slug or "") pairs."""
    data = tomllib.loads(DEV.read_text(encoding="utf-8"))
    return [(q["text"], q["expect"]) for q in data["question"]]


def evaluate(predict: Predict, questions: list[tuple[str, str]], threshold: float) -> Result:
    """Score a predictor that returns (slug, confidence); answers when confidence >= threshold."""
    right = wrong = declined_ok = answerable = 0
    for text, expect in questions:
        slug, score = predict(text)
        answered = slug is not None and score >= threshold
        if expect:
            answerable += 1
            right += answered and slug == expect
            wrong += answered and slug != expect
        else:
            declined_ok += not answered
            wrong += answered
    decline_total = len(questions) - answerable
    return Result(
        answerable=right / max(answerable, 1),
        wrong=wrong / max(len(questions), 1),
        declines=declined_ok / max(decline_total, 1),
        overall=(right + declined_ok) / max(len(questions), 1),
        wrong_count=wrong,
    )


def hybrid(threshold: float | None = None) -> Predict:
    """The shipped matcher (its own answer/decline decision, threshold overridable)."""
    pack = builtin_pack()
    slugs = {i: r.slug for i, r in enumerate(pack, start=1)}
    matcher = Matcher(
        [FaqDoc(i, r.question, r.phrasings, r.answer) for i, r in enumerate(pack, start=1)],
        threshold=threshold,
    )

    def predict(text: str) -> tuple[str | None, float]:
        match = matcher.match(text)
        if not match.answered or match.entry_id is None:
            return None, 0.0
        return slugs[match.entry_id], 1.0

    return predict


def fuzzy_token_set() -> Predict:
    """Baseline: rapidfuzz token_set_ratio against every phrasing."""
    pack = builtin_pack()
    passages = [(r.slug, p.lower()) for r in pack for p in (r.question, *r.phrasings)]

    def predict(text: str) -> tuple[str | None, float]:
        if not text.strip():
            return None, 0.0
        best = max(passages, key=lambda p: fuzz.token_set_ratio(text.lower(), p[1]))
        return best[0], fuzz.token_set_ratio(text.lower(), best[1]) / 100

    return predict


def word_overlap() -> Predict:
    """Baseline: Jaccard overlap of content words (no stemming, typos or synonyms)."""
    pack = builtin_pack()
    passages = [(r.slug, set(_words(p))) for r in pack for p in (r.question, *r.phrasings)]

    def predict(text: str) -> tuple[str | None, float]:
        words = set(_words(text))
        if not words:
            return None, 0.0
        best = max(passages, key=lambda p: len(words & p[1]) / len(words | p[1]))
        return best[0], len(words & best[1]) / len(words | best[1])

    return predict


def main() -> None:
    questions = load_dev()
    answerable = sum(1 for _, e in questions if e)
    print(
        f"dev set: {len(questions)} questions ({answerable} answerable, "
        f"{len(questions) - answerable} must decline)\n"
    )
    print("| method | answerable right | wrong answers | correct declines | overall |")
    print("|---|---|---|---|---|")
    rows = [
        ("word overlap (Jaccard ≥ 0.4)", word_overlap(), 0.4),
        ("rapidfuzz token_set_ratio (≥ 0.8)", fuzzy_token_set(), 0.8),
        ("hybrid matcher (shipped)", hybrid(), 0.5),
    ]
    for name, predict, threshold in rows:
        r = evaluate(predict, questions, threshold)
        print(
            f"| {name} | {r.answerable:.1%} | {r.wrong:.1%} ({r.wrong_count}) | "
            f"{r.declines:.1%} | {r.overall:.1%} |"
        )
    print("\nthreshold sweep (hybrid):")
    print("| threshold | answerable right | wrong answers | correct declines | overall |")
    print("|---|---|---|---|---|")
    for t in (0.45, 0.5, 0.55, 0.6, 0.65, 0.7):
        r = evaluate(hybrid(t), questions, 0.5)
        print(
            f"| {t:.2f} | {r.answerable:.1%} | {r.wrong:.1%} ({r.wrong_count}) | "
            f"{r.declines:.1%} | {r.overall:.1%} |"
        )
    rng = random.Random(2022)
    shuffled = questions[:]
    rng.shuffle(shuffled)
    first, second = shuffled[: len(shuffled) // 2], shuffled[len(shuffled) // 2 :]
    candidates = (0.45, 0.5, 0.55, 0.6, 0.65, 0.7)
    tuned = max(
        candidates,
        key=lambda t: (
            evaluate(hybrid(t), first, 0.5).overall - 2 * evaluate(hybrid(t), first, 0.5).wrong
        ),
    )
    held = evaluate(hybrid(tuned), second, 0.5)
    print(
        f"\nsplit-half: threshold tuned on half A = {tuned:.2f}; on half B: answerable "
        f"{held.answerable:.1%}, wrong {held.wrong:.1%}, declines {held.declines:.1%}, "
        f"overall {held.overall:.1%}"
    )


if __name__ == "__main__":
    main()
