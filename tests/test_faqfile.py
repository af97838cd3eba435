"""FAQ files: validation with entry numbers, TOML/JSON round trips."""

from __future__ import annotations

from datetime import date

import pytest

from bot.errors import FaqImportError
from bot.faqfile import FaqRecord, builtin_pack, dump, parse, slugify

RECORD = FaqRecord(
    slug="who-runs-it",
    question="Who runs it?",
    phrasings=("who is in charge", 'quotes " and\nnewlines'),
    answer='A board.\n\nWith "quotes", a trailing newline and ünïcödé ✓\n',
    tags=("governance",),
    source_url="https://example.org/a",
    as_of=date(2022, 9, 12),
)
BARE = FaqRecord(slug="bare", question="Bare?", phrasings=(), answer="Yes.")


@pytest.mark.parametrize("fmt", ["toml", "json"])
def test_dump_then_parse_round_trips_exactly(fmt: str) -> None:
    records = [RECORD, BARE]
    text = dump(records, fmt)  # type: ignore[arg-type]
    assert parse(text, fmt) == records  # type: ignore[arg-type]
    assert dump(parse(text, fmt), fmt) == text  # type: ignore[arg-type]


def test_every_problem_is_reported_with_its_entry_number() -> None:
    text = """
[[entry]]
slug = "ok"
question = "Fine?"
answer = "Fine."

[[entry]]
slug = "Bad Slug"
question = ""
answer = "x"
phrasings = "not a list"

[[entry]]
slug = "ok"
question = "Dup?"
answer = "dup"
colour = "red"
as_of = "yesterday"
source_url = "ftp://x"
"""
    with pytest.raises(FaqImportError) as info:
        parse(text, "toml")
    problems = info.value.problems
    assert "entry 2: 'question' is empty" in problems
    assert "entry 2: 'phrasings' must be a list of strings" in problems
    assert "entry 2: 'slug' must be lowercase letters, digits and dashes" in problems
    assert "entry 3: slug 'ok' repeats entry 1" in problems
    assert "entry 3: unknown key 'colour'" in problems
    assert "entry 3: 'as_of' must be a date (YYYY-MM-DD)" in problems
    assert "entry 3: 'source_url' must be an http(s) URL" in problems
    assert not any(p.startswith("entry 1") for p in problems)


@pytest.mark.parametrize(
    ("text", "fmt", "problem"),
    [
        ("[[entry]\n", "toml", "not valid TOML"),
        ("{", "json", "not valid JSON"),
        ('title = "x"\n', "toml", "no [[entry]] tables"),
        ('{"entries": []}', "json", "no entries"),
        ('{"entries": [42]}', "json", "entry 1: must be a table/object"),
    ],
)
def test_malformed_files(text: str, fmt: str, problem: str) -> None:
    with pytest.raises(FaqImportError) as info:
        parse(text, fmt)  # type: ignore[arg-type]
    assert any(problem in p for p in info.value.problems)


def test_missing_slug_is_derived_from_the_question() -> None:
    [record] = parse('[[entry]]\nquestion = "What is PyTorch?"\nanswer = "A framework."\n', "toml")
    assert record.slug == "what-is-pytorch"
    assert slugify("  ¿¿  ") == "entry"


def test_builtin_pack_is_substantial_and_cites_its_source() -> None:
    pack = builtin_pack()
    assert len(pack) >= 25
    for record in pack:
        assert len(record.phrasings) >= 3, record.slug
        assert record.source_url and record.as_of, record.slug
