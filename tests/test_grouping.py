"""Grouping the review queue: only questions that ask the same thing share a group."""

from __future__ import annotations

from bot.dashboard.grouping import content_words, group_reviews, similar
from bot.store.models import ReviewItem


def item(ident: int, question: str, entry: int | None = None) -> ReviewItem:
    return ReviewItem(
        id=ident, platform="slack", question=question, reason="declined", best_entry_id=entry
    )


def test_an_unrelated_question_sharing_a_word_is_not_grouped() -> None:
    """The report: "is the foundation hiring" (no closest entry) was grouped under "why did
    they pick the linux foundation"."""
    groups = group_reviews(
        [
            item(1, "why did they pick the linux foundation", entry=3),
            item(2, "Why did they pick the Linux Foundation??", entry=3),
            item(3, "is the foundation hiring"),
            item(4, "why did they pick the linux foundation?"),
        ]
    )
    assert [g.ids for g in groups] == [[1, 2, 4], [3]]


def test_the_same_question_with_typos_punctuation_and_filler_is_grouped() -> None:
    a = item(1, "Is there a PyTorch Foundation meetup in Lisbon this spring?")
    b = item(2, "pytorch foundation meetup lisbon spring??")
    c = item(3, "is there a pytorch foundation meetup in lisbon this sprng")
    assert similar(a, b) and similar(a, c)


def test_different_questions_with_similar_words_stay_apart() -> None:
    pairs = [
        ("why did pytorch move to the linux foundation", "when did pytorch move to the lf"),
        ("is the foundation hiring", "is the foundation hiring interns in europe"),
        ("what is the capital of peru", "what is the capital of the foundation"),
    ]
    for first, second in pairs:
        assert not similar(item(1, first), item(2, second)), (first, second)


def test_closest_to_different_entries_never_share_a_group() -> None:
    assert not similar(item(1, "who runs it", entry=1), item(2, "who runs it", entry=2))
    assert similar(item(1, "who runs it", entry=1), item(2, "who runs it"))


def test_content_words_keep_question_words() -> None:
    assert content_words("Why is the sky blue?") == "why sky blue"
    assert content_words("the a is") == ""
