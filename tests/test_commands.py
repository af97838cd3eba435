"""The command router: every input, however malformed, gets one reply, and what it echoes of
the input is bounded and printable (property-based, on each backend)."""

from __future__ import annotations

import unicodedata
from collections.abc import AsyncIterator

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from announcements.grammar import OPTIONS, USAGE
from bot.commands import FAILURE
from bot.events import SlashCommand
from tests.announce_helpers import DESK, STAFF, Bot, running_bot

#: Values that once broke a handler: times at the ends of the calendar, zones far from UTC,
#: NUL (PostgreSQL refuses it), a lone surrogate (arrives through JSON escapes), escapes.
TRICKY = [
    "9999-12-31T23:59:59",
    '"9999-12-31T23:59:59"',
    "0001-01-01",
    '"0001-01-01T00:00"',
    "Etc/GMT+12",
    "Etc/GMT-14",
    "Pacific/Kiritimati",
    "tomorrow 9am",
    '"every monday 17:00"',
    "monday 17:00",
    "\x00",
    "\udede",
    "\x1b[31m",
    "\r",
    "\u202e",
    "slack,x",
    "console",
    "#1",
    "1",
    "999999999",
    '"',
    "“",
    "=",
    "--",
    "text",
]
word = st.one_of(
    st.sampled_from(TRICKY),
    st.sampled_from(list(OPTIONS)),
    st.text(st.characters(exclude_categories=()), max_size=12),
)
command_text = st.one_of(
    st.text(st.characters(exclude_categories=()), max_size=200),
    st.tuples(st.sampled_from(list(USAGE)), st.lists(word, max_size=10)).map(
        lambda t: " ".join([t[0], *t[1]])
    ),
)
#: Line breaks and tabs may appear in replies (lists, help, an announcement's own lines).
ALLOWED_CONTROLS = {"\n", "\t"}


def is_clean(reply: str) -> bool:
    return not any(
        unicodedata.category(c) in ("Cc", "Cs") and c not in ALLOWED_CONTROLS for c in reply
    )


@pytest.fixture
async def bot(db_url: str) -> AsyncIterator[Bot]:
    async with running_bot(db_url) as running:
        yield running


@settings(
    max_examples=200,
    deadline=None,
    # One bot serves every example, as one bot serves every command in production; a busy CI
    # machine makes the examples slow, which says nothing about the router.
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(text=command_text)
# The reproductions from the fuzzing that found them (issue 15): overflows at the ends of the
# calendar, NUL (a database error on PostgreSQL), a lone surrogate (no reply at all), and
# escape sequences echoed back.
@example(text='schedule --at "9999-12-31T23:59:59" --tz Etc/GMT+12 Big news')
@example(text='schedule --at tomorrow --every "monday 9am" --until "0001-01-01" Big news')
@example(text='schedule --at "0001-01-01T00:00" --tz Pacific/Kiritimati Big news')
@example(text="now --to slack Big\x00news")
@example(text="fly \udede")
@example(text="\x1b[2J\x1b[31mfly " + "x" * 5000)
async def test_every_command_gets_one_clean_bounded_reply(bot: Bot, text: str) -> None:
    reply = await bot.runtime.router.dispatch(SlashCommand(DESK, STAFF, "announce", text))
    assert reply and reply != FAILURE
    assert is_clean(reply), repr(reply)
    first = reply.splitlines()[0]
    assert len(first) <= 300, first


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(name=st.text(st.characters(exclude_categories=()), max_size=300))
async def test_an_unknown_command_name_is_echoed_short_and_clean(bot: Bot, name: str) -> None:
    reply = await bot.runtime.router.dispatch(SlashCommand(DESK, STAFF, name, "x"))
    assert reply and is_clean(reply) and len(reply) <= 120
