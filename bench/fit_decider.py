"""Fit the answer / clarify / decline model on the tuning half and write it to the package.

Run from the repository root: ``python -m bench.fit_decider`` (``--check`` fits and reports
without writing). It

1. reads every tuning question as the bot does (:mod:`bot.understanding`), ranks each
   question in it with the matcher, and labels each ranked question: is the best entry right
   (for P(answer)), is a right entry among the top three (for P(clarify))? Must-decline
   questions are negatives for both;
2. fits two L2-regularised logistic regressions on :data:`bot.deciding.FEATURES`
   (Newton's method; standard library only);
3. picks the cut-offs by running the whole bot over the tuning messages: the answer cut-off
   keeps wrong answers at or under :data:`MAX_WRONG` of all messages, then the clarify
   cut-off and the suggestion ratio maximise right answers plus clarifications with a right
   suggestion, at a cost for suggestions given to must-decline messages;
4. reports 5-fold cross-validated figures (fit and cut-offs chosen on four folds, scored on
   the fifth), then writes ``bot/decision_model.json``.

The test half is never read here.
"""

from __future__ import annotations

import argparse
import json
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

from bench.eval_matcher import (
    TUNE,
    Question,
    Score,
    load,
    pack_matcher,
    pack_semantic,
    run,
    summarize,
)
from bot.deciding import (
    FEATURES,
    SECOND_FEATURES,
    Decider,
    DecisionModel,
    Logistic,
    Outcome,
    SecondOpinion,
    SemanticScores,
    features,
    fuse,
    second_features,
)
from bot.matcher import Matcher
from bot.understanding import read

MODEL = Path(__file__).resolve().parent.parent / "bot" / "decision_model.json"
#: Wrong answers allowed, as a share of all messages, when the answer cut-off is chosen.
MAX_WRONG = 0.01
#: L2 penalty on the standardized weights.
RIDGE = 1.0
#: Matcher score below which nothing is suggested; on the tuning half it is the lowest that
#: keeps every off-topic, injection and garbage message free of suggestions.
SUGGEST_FLOOR = 0.25
#: What a must-decline message given suggestions costs, against one clarification gained.
SUGGESTED_COST = 0.5
ANSWER_CUTS = tuple(round(0.30 + 0.02 * i, 2) for i in range(35))
CLARIFY_CUTS = tuple(round(0.05 + 0.05 * i, 2) for i in range(18))
RATIOS = (0.5, 0.6, 0.7, 0.8, 0.9)

Sample = tuple[tuple[float, ...], int, int]
Semantic = Callable[[str], SemanticScores | None]
#: Fusion weights tried for the semantic second opinion (score + weight x cosine).
WEIGHTS = (0.5, 1.0, 1.5, 2.0, 3.0)


def samples(questions: Sequence[Question], matcher: Matcher, slugs: dict[int, str]) -> list[Sample]:
    """(features, best is right, a right one in the top 3) for every ranked question."""
    out: list[Sample] = []
    for question in questions:
        reading = read(question.text)
        parts = reading.parts or (question.text,)
        every = frozenset().union(*question.expect) if question.expect else frozenset()
        for position, part in enumerate(parts):
            analysis = matcher.analyze(part)
            if analysis.reason or not analysis.candidates:
                continue
            if not question.answerable:
                right: frozenset[str] = frozenset()
            elif len(parts) == len(question.expect):
                right = question.expect[position]
            else:
                right = every
            ranked = [slugs[c.entry_id] for c in analysis.candidates]
            out.append(
                (
                    features(analysis, asked=reading.asked),
                    int(ranked[0] in right),
                    int(bool(right.intersection(ranked[:3]))),
                )
            )
    return out


def _solve(a: list[list[float]], b: list[float]) -> list[float]:
    """Gaussian elimination with partial pivoting (small dense systems)."""
    n = len(b)
    m = [[*row, b[i]] for i, row in enumerate(a)]
    for col in range(n):
        pivot = max(range(col, n), key=lambda r: abs(m[r][col]))
        m[col], m[pivot] = m[pivot], m[col]
        for r in range(n):
            if r != col and m[col][col]:
                f = m[r][col] / m[col][col]
                m[r] = [x - f * y for x, y in zip(m[r], m[col], strict=True)]
    return [m[i][n] / m[i][i] if m[i][i] else 0.0 for i in range(n)]


def fit_logistic(xs: Sequence[tuple[float, ...]], ys: Sequence[int]) -> Logistic:
    """L2-regularised logistic regression by Newton's method on standardized features."""
    k = len(xs[0])
    means = tuple(sum(x[j] for x in xs) / len(xs) for j in range(k))
    scales = tuple(
        math.sqrt(sum((x[j] - means[j]) ** 2 for x in xs) / len(xs)) or 1.0 for j in range(k)
    )
    rows = [[1.0] + [(x[j] - means[j]) / scales[j] for j in range(k)] for x in xs]
    beta = [0.0] * (k + 1)
    for _ in range(50):
        grad = [0.0] * (k + 1)
        hess = [[0.0] * (k + 1) for _ in range(k + 1)]
        for row, y in zip(rows, ys, strict=True):
            z = sum(b * v for b, v in zip(beta, row, strict=True))
            p = 1 / (1 + math.exp(-max(-30.0, min(30.0, z))))
            w = p * (1 - p)
            for i in range(k + 1):
                grad[i] += (y - p) * row[i]
                for j in range(k + 1):
                    hess[i][j] += w * row[i] * row[j]
        for i in range(1, k + 1):
            grad[i] -= RIDGE * beta[i]
            hess[i][i] += RIDGE
        step = _solve(hess, grad)
        beta = [b + s for b, s in zip(beta, step, strict=True)]
        if max(abs(s) for s in step) < 1e-7:
            break
    return Logistic(tuple(beta[1:]), beta[0], means, scales)


def _objective(
    questions: Sequence[Question],
    matcher: Matcher,
    slugs: dict[int, str],
    model: DecisionModel,
    semantic: Semantic | None = None,
) -> tuple[float, float]:
    results = run(questions, matcher, slugs, Decider(model), semantic)
    summary = summarize(results)
    gained = summary.right_or_clarified - SUGGESTED_COST * summary.decline_suggested * (
        summary.must_decline / max(1, summary.answerable)
    )
    return summary.wrong_of_all, gained + 0.5 * summary.right


def second_samples(
    questions: Sequence[Question],
    matcher: Matcher,
    slugs: dict[int, str],
    first: DecisionModel,
    semantic: Semantic,
    weight: float,
) -> list[Sample]:
    """Like :func:`samples`, for the questions the lexical model would not answer, ranked
    by the fused score."""
    decider = Decider(first)
    out: list[Sample] = []
    for question in questions:
        reading = read(question.text)
        parts = reading.parts or (question.text,)
        every = frozenset().union(*question.expect) if question.expect else frozenset()
        for position, part in enumerate(parts):
            analysis = matcher.analyze(part)
            if analysis.reason or not analysis.candidates:
                continue
            if decider.decide(analysis, asked=reading.asked).outcome is Outcome.ANSWER:
                continue
            scores = semantic(part)
            if not scores:
                continue
            fused = fuse(analysis, scores, weight)
            if not question.answerable:
                right: frozenset[str] = frozenset()
            elif len(parts) == len(question.expect):
                right = question.expect[position]
            else:
                right = every
            ranked = [slugs[c.entry_id] for c in fused]
            out.append(
                (
                    second_features(features(analysis, asked=reading.asked), fused, scores),
                    int(ranked[0] in right),
                    int(bool(right.intersection(ranked[:3]))),
                )
            )
    return out


def fit_second(
    questions: Sequence[Question],
    matcher: Matcher,
    slugs: dict[int, str],
    first: DecisionModel,
    semantic: Semantic,
) -> DecisionModel:
    """``first`` with a semantic second opinion fitted on the questions it would not answer."""
    best_weight, best_hits = WEIGHTS[0], -1.0
    for weight in WEIGHTS:
        data = second_samples(questions, matcher, slugs, first, semantic, weight)
        hits = sum(a + 0.5 * c for _, a, c in data)
        if hits > best_hits:
            best_weight, best_hits = weight, hits
    data = second_samples(questions, matcher, slugs, first, semantic, best_weight)
    xs = [x for x, _, _ in data]
    answer = fit_logistic(xs, [a for _, a, _ in data])
    clarify = fit_logistic(xs, [c for _, _, c in data])

    def with_second(answer_cut: float, clarify_cut: float, _ratio: float) -> DecisionModel:
        second = SecondOpinion(answer, clarify, answer_cut, clarify_cut, best_weight)
        return replace(first, second=second)

    return _choose_cuts(
        with_second,
        lambda model: _objective(questions, matcher, slugs, model, semantic),
        (first.suggestion_ratio,),
    )


def _choose_cuts(
    build: Callable[[float, float, float], DecisionModel],
    objective: Callable[[DecisionModel], tuple[float, float]],
    ratios: Sequence[float],
) -> DecisionModel:
    """The answer cut-off first (no clarifications), as low as the wrong-answer budget
    allows; then the clarify cut-off and suggestion ratio that gain the most.

    ``build(answer_cut, clarify_cut, ratio)`` makes the model to score.
    """
    answer_cut = ANSWER_CUTS[-1]
    for cut in ANSWER_CUTS:
        wrong, _ = objective(build(cut, 2.0, 1.0))
        if wrong <= MAX_WRONG:
            answer_cut = cut
            break
    best: tuple[float, DecisionModel] | None = None
    for clarify_cut in CLARIFY_CUTS:
        for ratio in ratios:
            model = build(answer_cut, clarify_cut, ratio)
            _, gained = objective(model)
            if best is None or gained > best[0]:
                best = (gained, model)
    assert best is not None
    return best[1]


def fit(
    questions: Sequence[Question],
    matcher: Matcher,
    slugs: dict[int, str],
    semantic: Semantic | None = None,
) -> DecisionModel:
    """The model and cut-offs for ``questions`` (with a second opinion if ``semantic``)."""
    first = fit_lexical(questions, matcher, slugs)
    if semantic is None:
        return first
    return fit_second(questions, matcher, slugs, first, semantic)


def fit_lexical(
    questions: Sequence[Question], matcher: Matcher, slugs: dict[int, str]
) -> DecisionModel:
    """The lexical model and cut-offs for ``questions``."""
    data = samples(questions, matcher, slugs)
    xs = [x for x, _, _ in data]
    answer = fit_logistic(xs, [a for _, a, _ in data])
    clarify = fit_logistic(xs, [c for _, _, c in data])
    return _choose_cuts(
        lambda a, c, r: DecisionModel(answer, clarify, a, c, r, SUGGEST_FLOOR),
        lambda model: _objective(questions, matcher, slugs, model),
        RATIOS,
    )


def cross_validate(
    questions: Sequence[Question],
    matcher: Matcher,
    slugs: dict[int, str],
    semantic: Semantic | None = None,
    folds: int = 5,
) -> str:
    """Figures of models fitted on four folds and scored on the fifth, pooled."""
    order = list(questions)
    random.Random(5).shuffle(order)
    pooled = []
    for fold in range(folds):
        held = order[fold::folds]
        train = [q for i, q in enumerate(order) if i % folds != fold]
        model = fit(train, matcher, slugs, semantic)
        pooled.extend(run(held, matcher, slugs, Decider(model), semantic))
    s = summarize(pooled)
    counts = {r: sum(1 for _, _, x in pooled if x is r) for r in Score}
    return (
        f"{folds}-fold cross-validation on the tuning half ({len(pooled)} messages): "
        f"right {s.right:.1%}, right or clarified right {s.right_or_clarified:.1%}, "
        f"wrong {s.wrong_of_all:.1%} of all, must-decline answered {s.decline_answered:.1%}, "
        f"given suggestions {s.decline_suggested:.1%}\n  outcomes: "
        + ", ".join(f"{k.value} {v}" for k, v in counts.items())
    )


def main(argv: Sequence[str] | None = None) -> None:
    """Fit, report, write."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="report only; write nothing")
    parser.add_argument("--no-cv", action="store_true", help="skip cross-validation")
    parser.add_argument("--lexical", action="store_true", help="no semantic second opinion")
    args = parser.parse_args(argv)
    questions = load(TUNE)
    matcher, slugs = pack_matcher()
    semantic = None if args.lexical else pack_semantic()
    if not args.no_cv:
        print(cross_validate(questions, matcher, slugs, semantic))
    model = fit(questions, matcher, slugs, semantic)
    s = summarize(run(questions, matcher, slugs, Decider(model), semantic))
    print(
        f"fitted on all {len(questions)} tuning messages: answer cut {model.answer_cut}, "
        f"clarify cut {model.clarify_cut}, suggestion ratio {model.suggestion_ratio}; "
        f"on the same half: right {s.right:.1%}, right or clarified {s.right_or_clarified:.1%}, "
        f"wrong {s.wrong_of_all:.1%}, must-decline answered {s.decline_answered:.1%}"
    )
    regressions: list[tuple[str, Logistic, tuple[str, ...]]] = [
        ("answer", model.answer, FEATURES),
        ("clarify", model.clarify, FEATURES),
    ]
    if model.second is not None:
        second = model.second
        print(
            f"second opinion: weight {second.weight}, answer cut {second.answer_cut}, "
            f"clarify cut {second.clarify_cut}"
        )
        regressions += [
            ("answer | second", second.answer, SECOND_FEATURES),
            ("clarify | second", second.clarify, SECOND_FEATURES),
        ]
    for name, reg, names in regressions:
        weights = ", ".join(f"{f}={w:+.2f}" for f, w in zip(names, reg.weights, strict=True))
        print(f"  P({name}): bias={reg.bias:+.2f} {weights}")
    if not args.check:
        MODEL.write_text(json.dumps(model.to_json(), indent=2) + "\n", encoding="utf-8")
        print(f"wrote {MODEL}")


if __name__ == "__main__":
    main()
