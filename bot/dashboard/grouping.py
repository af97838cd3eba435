"""Grouping the review queue: the same question asked ten ways is one task, not ten.

Only questions that really ask the same thing share a group: their content words (filler
such as "the", "is", "did" left out; question words kept, since "why" and "when" ask
different things) must be nearly the same, compared as sorted word lists, and two questions
the matcher found closest to different FAQ entries never share one. A moderator still picks
which questions of a group an action applies to.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from rapidfuzz import fuzz

from bot.store.models import ReviewItem

#: token_sort_ratio of the content words at or above this puts two questions in one group.
SIMILARITY = 85.0
_PUNCTUATION = re.compile(r"[^\w\s]+")
#: Words that say nothing about what is asked.
_FILLER_WORDS = (
    "a an the is are was were be been am do does did of to in on at for and or it its this "
    "that these those there here i you we they he she me my your our their his her can could "
    "will would should shall may might please pls hi hello hey thanks about with from by as "
    "any some so just"
)
_FILLER = frozenset(_FILLER_WORDS.split())

#: How each review reason reads on the page (a new reason only needs a line here).
REASON_LABELS: dict[str, str] = {
    "declined": "declined",
    "low_confidence": "low confidence",
    "thumbs_down": "thumbs down",
    "escalated": "asked for a moderator",
    "clarified": "user picked a suggestion",
}


def content_words(text: str) -> str:
    """The words of a question that say what is asked, lower case, in order."""
    words = _PUNCTUATION.sub(" ", text.lower()).split()
    return " ".join(w for w in words if w not in _FILLER)


def similar(a: ReviewItem, b: ReviewItem) -> bool:
    """Whether two review items ask the same question."""
    if a.best_entry_id and b.best_entry_id and a.best_entry_id != b.best_entry_id:
        return False
    ka, kb = content_words(a.question), content_words(b.question)
    if ka == kb:
        return True
    return bool(ka and kb) and fuzz.token_sort_ratio(ka, kb) >= SIMILARITY


@dataclass(slots=True)
class ReviewGroup:
    """Open review items asking the same question; ``question`` is the first (newest) one's."""

    question: str
    items: list[ReviewItem] = field(default_factory=list)

    @property
    def ids(self) -> list[int]:
        """The review item ids in this group."""
        return [item.id for item in self.items]

    @property
    def reasons(self) -> list[str]:
        """The distinct reasons (declined, thumbs_down, ...), in first-seen order."""
        return list(dict.fromkeys(item.reason for item in self.items))

    @property
    def best_entry_id(self) -> int | None:
        """The entry the matcher came closest with, if any item has one."""
        return next((i.best_entry_id for i in self.items if i.best_entry_id), None)


def group_reviews(items: Sequence[ReviewItem]) -> list[ReviewGroup]:
    """Each item joins the first group whose first question it is :func:`similar` to (no
    chains of ever looser likeness); largest groups first."""
    groups: list[ReviewGroup] = []
    for item in items:
        for group in groups:
            if similar(group.items[0], item):
                group.items.append(item)
                break
        else:
            groups.append(ReviewGroup(item.question, [item]))
    groups.sort(key=lambda g: -len(g.items))
    return groups
