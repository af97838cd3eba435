"""Reading times and repeat rules."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from announcements.when import (
    check_window,
    format_local,
    next_occurrence,
    parse_recurrence,
    parse_when,
    zone,
)
from bot.errors import CommandError

NOW = datetime(2026, 11, 22, 19, 0, tzinfo=UTC)  # a Sunday
BERLIN = zone("Europe/Berlin")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("tomorrow 9am", datetime(2026, 11, 23, 8, tzinfo=UTC)),
        ("in 2 hours", datetime(2026, 11, 22, 21, tzinfo=UTC)),
        ("next monday 17:00", datetime(2026, 11, 23, 16, tzinfo=UTC)),
        ("2026-12-01T10:00", datetime(2026, 12, 1, 9, tzinfo=UTC)),
        ("2026-12-01T10:00+00:00", datetime(2026, 12, 1, 10, tzinfo=UTC)),
    ],
)
def test_parse_when_in_staff_zone(text: str, expected: datetime) -> None:
    assert parse_when(text, BERLIN, NOW) == expected


def test_window() -> None:
    with pytest.raises(CommandError, match="in the past"):
        check_window(datetime(2026, 11, 1, tzinfo=UTC), NOW)
    with pytest.raises(CommandError, match="more than a year"):
        check_window(datetime(2028, 1, 1, tzinfo=UTC), NOW)
    check_window(NOW, NOW)


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("every monday 17:00", "every monday 17:00"),
        ("monday,thursday 9am", "every monday,thursday 09:00"),
        ("every day at 8:30", "every day 08:30"),
        ("weekdays 9 am", "every weekday 09:00"),
        ("every mon and fri at 5pm", "every monday,friday 17:00"),
    ],
)
def test_recurrence_rules_round_trip(text: str, canonical: str) -> None:
    rule = parse_recurrence(text)
    assert rule.describe() == canonical
    assert parse_recurrence(canonical) == rule


def test_recurrence_keeps_wall_clock_hour_across_dst() -> None:
    rule = parse_recurrence("every sunday 17:00")
    first = next_occurrence(rule, datetime(2027, 3, 20, tzinfo=UTC), BERLIN)
    second = next_occurrence(rule, first, BERLIN)
    autumn = next_occurrence(rule, datetime(2027, 10, 30, tzinfo=UTC), BERLIN)
    assert (first, second) == (
        datetime(2027, 3, 21, 16, tzinfo=UTC),
        datetime(2027, 3, 28, 15, tzinfo=UTC),
    )
    assert autumn == datetime(2027, 10, 31, 16, tzinfo=UTC)
    assert format_local(second, BERLIN) == "2027-03-28 17:00 CEST (15:00 UTC)"
