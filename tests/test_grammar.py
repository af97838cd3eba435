"""The /announce parser: exact results for good input, CommandError for everything else."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from announcements.grammar import parse
from bot.errors import CommandError


def is_time(text: str) -> bool:
    return text in ("tomorrow 9am", "tomorrow", "in 2 hours", "2026-12-01")


def is_rule(text: str) -> bool:
    return text in ("monday 17:00",)


def p(text: str):  # type: ignore[no-untyped-def]
    return parse(text, is_time=is_time, is_rule=is_rule)


def test_text_is_kept_byte_for_byte_after_options() -> None:
    args = p("schedule --at tomorrow 9am --to slack,x,slack It's *here*:\n- one\n- two  ")
    assert args.at == "tomorrow 9am"
    assert args.to == ("slack", "x")
    assert args.text == "It's *here*:\n- one\n- two"


def test_quoted_and_inline_values() -> None:
    args = p(
        'schedule --at="in 2 hours" --tz Europe/Berlin --every “monday 17:00” '
        '--until 2026-12-01 --x-text "Short for X" --force Long text'
    )
    assert (args.at, args.tz, args.every, args.until) == (
        "in 2 hours",
        "Europe/Berlin",
        "monday 17:00",
        "2026-12-01",
    )
    assert args.overrides == {"x": "Short for X"} and args.force


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("schedule --at", "can't read the time after --at"),
        ("schedule --at tomorrow --at tomorrow x", "--at is given twice"),
        ("now --at tomorrow hi", "Option --at does not apply to /announce now"),
        ("list --force", "Option --force does not apply"),
        ("now --force=yes hi", "takes no value"),
        ('now --x-text "unterminated hi', "missing its closing quote"),
        ("show", "needs an announcement id"),
        ("show 12 extra", "Unexpected text"),
        ("mark-sent 3", "needs --to"),
        ("schedule --at tomorrow --until 2026-12-01 hi", "--until only applies with --every"),
        ("now --to , hi", "Unknown platform"),
        ("edit 4", "Give new text and/or --at"),
    ],
)
def test_mistakes_are_one_line(text: str, message: str) -> None:
    with pytest.raises(CommandError) as info:
        p(text)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_empty_is_help() -> None:
    assert p("").action == "help"
    assert p("   ").action == "help"


words = st.sampled_from(
    [
        "schedule",
        "now",
        "list",
        "show",
        "edit",
        "cancel",
        "--at",
        "--to",
        "--tz",
        "--every",
        "--until",
        "--force",
        "--x-text",
        "--",
        "=",
        '"',
        "'",
        "“",
        "1",
        "#2",
        "slack,x",
        "tomorrow",
        "9am",
        "hello",
        "\n",
        "\x00",
        "🙂",
        "--at=",
        '--x-text="a b"',
    ]
)


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.text(max_size=200), st.lists(words, max_size=12).map(" ".join)))
def test_parser_never_raises_anything_but_command_error(text: str) -> None:
    try:
        args = p(text)
    except CommandError as exc:
        message = str(exc)
    else:
        assert args.action
        return
    assert message
    assert "\n" not in message
