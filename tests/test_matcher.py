"""The FAQ matcher as a user sees it: right entry for what the pack covers, a decline otherwise."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.deciding import Decider, Outcome, consider
from bot.faqfile import builtin_pack
from bot.matcher import DEFAULT_THRESHOLD, MAX_CHARS, FaqDoc, Match, Matcher, term_of

PACK = builtin_pack()
SLUGS = {i: r.slug for i, r in enumerate(PACK, start=1)}
IDS = {slug: i for i, slug in SLUGS.items()}
MATCHER = Matcher(
    [FaqDoc(i, r.question, r.phrasings, r.answer, r.tags) for i, r in enumerate(PACK, start=1)]
)


def answered_slug(text: str) -> str | None:
    match = MATCHER.match(text)
    return SLUGS[match.entry_id] if match.answered and match.entry_id is not None else None


@pytest.mark.parametrize(
    ("text", "slug"),
    [
        ("Which firms sit on the PyTorch Foundation's governing body?", "governing-board"),
        ("is facebook still paying for pytorch development?", "meta-continued-investment"),
        ("will my code break after the move to the foundation", "code-changes"),
        ("What does the Linux Foundation do, exactly?", "what-is-linux-foundation"),
        ("who owns pytorch these days", "meta-control"),
        ("will pytorch stay open source", "still-open-source"),
        ("when was the foundation announced?", "when-announced"),
        ("is nvidia on the pytorch board", "governing-board"),
    ],
)
def test_paraphrases_get_the_right_entry(text: str, slug: str) -> None:
    assert answered_slug(text) == slug


@pytest.mark.parametrize(
    ("text", "slug"),
    [
        ("is pytroch still open source", "still-open-source"),
        ("what is the linux foundaton", "what-is-linux-foundation"),
        ("who is on the governing board", "governing-board"),
        ("wil meta keep investing in pytorch", "meta-continued-investment"),
        # A typo inside a phrase: corrected first, then the phrase is folded as spelled right.
        ("is pytorch stil open sorce", "still-open-source"),
        ("wen was the pytorch foundation anounced", "when-announced"),
    ],
)
def test_typos_get_the_right_entry(text: str, slug: str) -> None:
    assert answered_slug(text) == slug


@pytest.mark.parametrize(
    "text",
    [
        "<@U123ABC> who is on the governing board?",
        "<@!123456789> who is on the governing board?",
        "@foundationbot who is on the governing board?",
        "who is on the governing board? <@U123ABC>",
    ],
)
def test_chat_mentions_are_ignored(text: str) -> None:
    assert answered_slug(text) == "governing-board"


@pytest.mark.parametrize(
    "text",
    [
        "what's the weather in Paris today?",
        "tell me a joke",
        "how do I fix CUDA out of memory in my training loop?",
        "write a python function that reverses a linked list",
        "'; DROP TABLE faq_entries; --",
        "SELECT * FROM users WHERE 1=1",
        "🙂🎉🔥",
        "",
        "   \t\n",
        "x" * 10_000,
        "pytorch foundation board governance " * 300,
        "\x00\x01\x1b[2J\x7f",
        "hi",
        "thanks!",
        "?????",
        "when is pytorch 3.0 released",
        "is onnx joining the linux foundation",
        "who founded the kubernetes project",
    ],
)
def test_off_topic_and_junk_are_declined(text: str) -> None:
    match = MATCHER.match(text)
    assert match.answered is False
    assert 0.0 <= match.score <= 1.0
    assert match.reason in {"low_confidence", "ambiguous", "no_content", "off_topic", "empty"}


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty"),
        ("  \n ", "empty"),
        ("<@U123ABC>", "empty"),
        ("🙂🎉🔥", "no_content"),
        ("hi", "no_content"),
        ("thanks!!", "no_content"),
        ("why?", "no_content"),
        ("asdfghjkl qwerty", "off_topic"),
        ("what's the weather in Paris?", "off_topic"),
    ],
)
def test_decline_reasons(text: str, reason: str) -> None:
    match = MATCHER.match(text)
    assert (match.answered, match.reason, match.entry_id) == (False, reason, None)


def test_a_near_miss_names_the_entry_it_almost_answered() -> None:
    match = MATCHER.match("is google leaving the pytorch foundation")
    assert match.answered is False
    assert match.reason == "low_confidence"
    assert match.entry_id is not None
    assert 0.2 <= match.score < DEFAULT_THRESHOLD


def test_a_tie_between_two_entries_is_declined_as_ambiguous() -> None:
    twins = Matcher(
        [
            FaqDoc(1, "Where is the conference held?", (), "In Paris."),
            FaqDoc(2, "Where is the conference held?", (), "In Lyon."),
            FaqDoc(3, "Who runs the meetup?", (), "Volunteers."),
        ]
    )
    match = twins.match("where is the conference held")
    assert (match.answered, match.reason) == (False, "ambiguous")
    assert match.entry_id in {1, 2}


def test_answers_carry_the_entry_id_and_a_confidence() -> None:
    match = MATCHER.match("who is on the pytorch foundation board?")
    assert match == Match(IDS["governing-board"], match.score, True, "match")
    assert DEFAULT_THRESHOLD <= match.score <= 1.0


def test_threshold_decides_how_sure_it_must_be() -> None:
    docs = [FaqDoc(i, r.question, r.phrasings, r.answer) for i, r in enumerate(PACK, 1)]
    question = "is meta still going to invest in pytorch"
    assert Matcher(docs, threshold=0.3).match(question).answered is True
    strict = Matcher(docs, threshold=1.0).match(question)
    assert (strict.answered, strict.reason) == (False, "low_confidence")
    assert strict.entry_id == IDS["meta-continued-investment"]
    assert Matcher(docs).threshold == DEFAULT_THRESHOLD


def test_any_entry_ids_work_and_len_counts_entries() -> None:
    matcher = Matcher(
        [
            FaqDoc(-1, "What's the latest news?", ("any news?", "recent announcements"), ""),
            FaqDoc(-2, "When is the next announcement?", ("upcoming announcements",), ""),
        ]
    )
    assert len(matcher) == 2
    assert matcher.match("any recent news?").entry_id == -1
    assert matcher.match("when is the next announcement").entry_id == -2


def test_an_empty_index_declines() -> None:
    matcher = Matcher([])
    assert len(matcher) == 0
    match = matcher.match("who is on the pytorch foundation board?")
    assert (match.answered, match.entry_id) == (False, None)


def test_the_matcher_is_immutable() -> None:
    with pytest.raises(AttributeError):
        MATCHER.threshold = 0.1  # type: ignore[misc]


def test_huge_and_hostile_inputs_are_read_only_up_to_the_limit() -> None:
    """Input is truncated before matching (an unbounded scan would take seconds): whatever
    follows the first MAX_CHARS characters changes nothing. (Speed is measured in bench/.)"""
    for text in ["x" * 10_000, "pytorch foundation board " * 2000, "é" * 10_000, "\x00" * 10_000]:
        assert 0.0 <= MATCHER.match(text).score <= 1.0
        assert MATCHER.analyze(text) == MATCHER.analyze(text[:MAX_CHARS])


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_never_raises_on_any_string(text: str) -> None:
    match = MATCHER.match(text)
    assert 0.0 <= match.score <= 1.0
    assert match.answered is (match.reason == "match")


@pytest.mark.parametrize(
    ("word", "not_into"),
    [("ceo", "executive"), ("mark", "zuckerberg"), ("forked", "work"), ("stars", "start")],
)
def test_no_synonym_or_typo_fix_invents_a_word_the_question_did_not_contain(
    word: str, not_into: str
) -> None:
    """A role or name the question never named ("ceo" -> "executive"), or a real English
    word read as a typo of a pack word ("forked" -> "work"), made confident wrong answers."""
    analysis = MATCHER.analyze(f"who {word} it")
    assert term_of(word) != term_of(not_into)
    assert analysis.corrected == 0


def test_chat_slang_keeps_its_meaning() -> None:
    """ "ppl" was dropped as a stop word; it is people, which can be what is asked."""
    assert term_of("ppl") == term_of("people") != ""


def test_a_misspelled_stop_word_is_a_stop_word_not_an_unknown_word() -> None:
    """ "stil" is one slip from "still": it carries no weight instead of counting against the
    match as a word the pack never uses."""
    typo = MATCHER.analyze("is pytorch stil open source")
    right = MATCHER.analyze("is pytorch still open source")
    assert typo.unknown == () and typo.known == right.known == 1.0
    assert typo.best is not None and right.best is not None
    assert typo.best.score == pytest.approx(right.best.score)
    # Only an unambiguous slip: "thse" is one from "these" and from "those".
    assert "thse" in MATCHER.analyze("thse board members").unknown
    # A short name is not a slip of a stop word ("Suse" is not "sure"), nor a capitalized one.
    assert "suse" in MATCHER.analyze("did SUSE post about the board").unknown
    assert "stil" in MATCHER.analyze("did Stil post about the board").unknown


def test_chat_filler_and_tickers_are_read_as_meant() -> None:
    """Filler ("ngl", "nah", "fr") says nothing; tickers and short forms name what they stand
    for ("msft" is Microsoft, "open src" is open source)."""
    assert all(term_of(w) == "" for w in ("ngl", "nah", "fr", "wait", "lowkey"))
    assert term_of("msft") == term_of("microsoft")
    filler = MATCHER.analyze("ngl is msft on the board or nah")
    assert filler.unknown == ()
    assert filler.best is not None and SLUGS[filler.best.entry_id] == "governing-board"
    src = MATCHER.analyze("is it still gonna be open src")
    assert src.best is not None and SLUGS[src.best.entry_id] == "still-open-source"


def test_who_is_the_ceo_of_the_linux_foundation_is_not_answered() -> None:
    """The README promises a decline: the sources do not name the LF's CEO."""
    verdict = consider("who is the CEO of the Linux Foundation", MATCHER, Decider())
    assert verdict.outcome is not Outcome.ANSWER
