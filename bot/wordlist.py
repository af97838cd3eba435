"""The English word list: is this a real word? (typo correction, names in answers)."""

from __future__ import annotations

import threading
from functools import lru_cache

_english_lock = threading.Lock()


@lru_cache(maxsize=1)
def _english_words() -> frozenset[str]:
    # pyspellchecker's English frequency list (about 160,000 words, maintained, shipped in
    # its wheel): the check for "is this a real word" before any typo correction.
    with _english_lock:
        from spellchecker import SpellChecker

        return frozenset(SpellChecker(language="en", distance=1).word_frequency.keys())


def is_english_word(word: str) -> bool:
    """Whether ``word`` (lowercase) is in the English word list."""
    return word in _english_words()


def load_word_list() -> None:
    """Load the English word list now (it takes a few tenths of a second) rather than on the
    first question that has an unknown word."""
    _english_words()
