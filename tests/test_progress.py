"""The per-part progress format: what a delivery row says was posted, and what may have been."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from announcements.progress import (
    Doubt,
    in_doubt,
    posted_entries,
    posted_entry,
    posted_ids,
    split_entry,
    with_doubt,
)
from bot.events import utcnow

T0 = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)
T1 = T0 + timedelta(seconds=40)


def test_a_posted_part_round_trips_even_with_a_bar_in_the_channel() -> None:
    entry = posted_entry("C-news", "1733475600.000100")
    assert entry == "C-news|1733475600.000100"
    assert split_entry(entry) == ("C-news", "1733475600.000100")
    # The id is everything after the last bar: a channel name can hold one, an id cannot.
    assert split_entry(posted_entry("a|b", "42")) == ("a|b", "42")


def test_the_part_in_doubt_is_the_last_entry_only() -> None:
    doubt = Doubt("timeline", T0, T1)
    progress = [posted_entry("timeline", "1"), doubt.entry()]
    assert progress[-1] == f"?timeline|{T0.isoformat()}|{T1.isoformat()}"
    assert in_doubt(progress) == doubt
    assert posted_entries(progress) == ["timeline|1"] and posted_ids(progress) == ["1"]
    assert in_doubt(progress[:1]) is None and in_doubt([]) is None


def test_marking_replaces_an_earlier_marker_and_keeps_the_first_time() -> None:
    first = Doubt("C-news", T0, T0)
    progress = with_doubt(["C-news|1"], first)
    again = first.again(T1)
    progress = with_doubt(progress, again)
    assert progress == ["C-news|1", again.entry()]
    assert in_doubt(progress) == Doubt("C-news", T0, T1)  # the lookup still starts at T0


def test_a_marker_without_a_channel_or_second_time_still_reads() -> None:
    # Written by a person's retry of a row that had none ("" channel), or by an older version.
    assert in_doubt([f"?|{T0.isoformat()}|{T1.isoformat()}"]) == Doubt("", T0, T1)
    assert in_doubt([f"?C-news|{T0.isoformat()}"]) == Doubt("C-news", T0, T0)


def test_an_unreadable_marker_looks_back_a_day_and_waits_the_full_delay() -> None:
    before = utcnow()
    doubt = in_doubt(["?C-news|yesterday-ish"])
    assert doubt is not None and doubt.channel == "C-news"
    assert doubt.last >= before and doubt.since <= before - timedelta(hours=23)
