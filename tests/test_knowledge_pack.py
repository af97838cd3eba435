"""The bundled pack's answers read right for any wording of their questions."""

from __future__ import annotations

import re

import pytest

from bench.eval_matcher import pack_matcher
from bot.deciding import Decider, consider
from bot.faqfile import builtin_pack

PACK = builtin_pack()
MATCHER, SLUGS = pack_matcher(PACK)
DECIDER = Decider()
#: An opener that only fits one polarity of the question ("Yes." to "will it go closed?").
POLAR = re.compile(r"^(yes|no|nope|yep|yeah|not|correct|right|true|false)\b", re.IGNORECASE)


def negate(question: str) -> str:
    """A negative wording of a yes/no question ("Is X?" -> "Isn't X?"), or the same text."""
    return re.sub(
        r"^(is|are|was|will|does|do|did|can|has)\b",
        lambda m: {"will": "won't", "can": "can't"}.get(m[1].lower(), m[1] + "n't"),
        question,
        count=1,
        flags=re.IGNORECASE,
    )


@pytest.mark.parametrize("record", PACK, ids=[r.slug for r in PACK])
def test_answers_state_the_fact_without_a_yes_or_no_opener(record: object) -> None:
    assert not POLAR.match(record.answer), record.answer  # type: ignore[attr-defined]


@pytest.mark.parametrize("record", PACK, ids=[r.slug for r in PACK])
def test_every_phrasing_positive_and_negative_gets_an_answer_that_reads_right(
    record: object,
) -> None:
    slug = record.slug  # type: ignore[attr-defined]
    for phrasing in (record.question, *record.phrasings):  # type: ignore[attr-defined]
        # Asked as written, the entry is answered or at least offered.
        verdict = consider(phrasing, MATCHER, DECIDER)
        offered = {SLUGS[e] for e in (*verdict.answers, *verdict.suggestions)}
        assert slug in offered, (phrasing, sorted(offered))
        # Asked the other way round, whatever is answered still reads right.
        for entry in consider(negate(phrasing), MATCHER, DECIDER).answers:
            assert not POLAR.match(PACK[entry].answer), (negate(phrasing), SLUGS[entry])
