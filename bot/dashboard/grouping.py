"""Grouping the review queue: the same question asked ten ways is one task, not ten."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from rapidfuzz import fuzz

from bot.store.models import ReviewItem

#: token_set_ratio at or above this puts two questions in the same group.
SIMILARITY = 72.0
_WORDS = re.compile(r"[^\w\s]+")


def _normal(text: str) -> str:
    return " ".join(_WORDS.sub(" ", text.lower()).split())


@dataclass(slots=True)
class ReviewGroup:
    """Similar open review items; ``question`` is the first (newest) one's text."""

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
    """Greedy grouping by word-set similarity, largest groups first."""
    groups: list[tuple[str, ReviewGroup]] = []
    for item in items:
        key = _normal(item.question)
        for rep, group in groups:
            if key == rep or (key and rep and fuzz.token_set_ratio(key, rep) >= SIMILARITY):
                group.items.append(item)
                break
        else:
            groups.append((key, ReviewGroup(item.question, [item])))
    ordered = [g for _, g in groups]
    ordered.sort(key=lambda g: -len(g.items))
    return ordered
