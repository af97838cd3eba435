"""The FAQ matcher: answers what the pack covers, declines everything else."""

from __future__ import annotations

import time

import pytest

from bench.eval_matcher import evaluate, hybrid, load_dev
from bot.faqfile import builtin_pack
from bot.matcher import FaqDoc, Matcher

PACK = builtin_pack()
SLUGS = {i: r.slug for i, r in enumerate(PACK, start=1)}
MATCHER = Matcher(
    [FaqDoc(i, r.question, r.phrasings, r.answer) for i, r in enumerate(PACK, start=1)]
)


def answer_slug(text: str) -> str | None:
    match = MATCHER.match(text)
    return SLUGS[match.entry_id] if match.answered and match.entry_id else None


@pytest.mark.parametrize(
    ("text", "slug"),
    [
        ("which firms sit on the pytorch foundation's governing body?", "governing-board"),
        ("is meta still paying for pytorch?", "meta-continued-investment"),
        ("will my code break after the move", "code-changes"),
        ("what is the linux foundaton", "what-is-linux-foundation"),
        ("goverance principles of the foundation?", "four-principles"),
        ("<@U0123ABC> who announced it", "who-announced-it"),
        ("@foundationbot when was it announced", "when-announced"),
        ("is pytroch still open source", "still-open-source"),
    ],
)
def test_paraphrases_typos_and_mentions_get_the_right_entry(text: str, slug: str) -> None:
    assert answer_slug(text) == slug


@pytest.mark.parametrize(
    "text",
    [
        "what's the weather in Paris?",
        "tell me a joke",
        "how do I fix CUDA out of memory?",
        "'; DROP TABLE faq_entries; --",
        "🙂🎉🔥",
        "",
        "   \t\n",
        "x" * 10_000,
        "\x00\x01\x1b[2J",
        "when is pytorch 3.0 released",
        "who founded the kubernetes project",
    ],
)
def test_off_topic_and_junk_decline(text: str) -> None:
    match = MATCHER.match(text)
    assert match.answered is False
    assert 0.0 <= match.score <= 1.0


def test_huge_input_stays_fast() -> None:
    started = time.perf_counter()
    for _ in range(20):
        MATCHER.match("pytorch foundation board " * 2000)
    assert time.perf_counter() - started < 2.0  # a runaway scan would take far longer


def test_empty_index_declines() -> None:
    assert Matcher([]).match("who is on the board?").answered is False


def test_dev_set_accuracy_does_not_regress() -> None:
    """Floors sit just under the figures in the README; a regression fails here."""
    result = evaluate(hybrid(), load_dev(), 0.5)
    assert result.answerable >= 0.80
    assert result.declines >= 0.94
    assert result.wrong <= 0.035
