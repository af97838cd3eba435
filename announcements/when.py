"""Reading announcement times: ISO or natural language ("tomorrow 9am", "in 2 hours",
"next monday 17:00"), and recurring rules ("every monday 17:00") in local wall-clock time.

Natural language goes through dateparser (a maintained parser with relative-date support)
rather than hand-written patterns. Recurrences are computed on the local calendar and then
converted to UTC, so "every monday 17:00" stays at 17:00 local across daylight-saving changes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bot.commands import echo
from bot.errors import CommandError

MAX_AHEAD = timedelta(days=365)
#: The times a command may name: room is left before the ends of the calendar for what is
#: computed from them (a zone's offset, the next weekly occurrence, the end of that day).
EARLIEST = datetime.min.replace(tzinfo=UTC) + timedelta(days=8)
LATEST = datetime.max.replace(tzinfo=UTC) - timedelta(days=8)
DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_DAY_ALIASES = {d[:3]: i for i, d in enumerate(DAYS)} | {d: i for i, d in enumerate(DAYS)}
_DAY_ALIASES |= {d + "s": i for i, d in enumerate(DAYS)} | {"tues": 1, "thur": 3, "thurs": 3}


def zone(name: str) -> ZoneInfo:
    """The IANA zone ``name``, or a CommandError."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise CommandError(
            f"Unknown time zone '{echo(name)}'. Use an IANA name such as Europe/Berlin or UTC."
        ) from None


def parse_when(text: str, tz: ZoneInfo, now: datetime) -> datetime:
    """A point in time from ``text``, read in ``tz``; returned in UTC.

    Raises:
        CommandError: unparseable.
    """
    cleaned = text.strip()
    if not cleaned:
        raise CommandError('--at needs a time, e.g. --at "tomorrow 9am" or --at 2026-12-01T09:00.')
    try:
        parsed = datetime.fromisoformat(cleaned)
    except ValueError:
        parsed = _natural(cleaned, tz, now)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=tz)
    try:
        utc = parsed.astimezone(UTC)
    except OverflowError:
        utc = None
    if utc is None or not EARLIEST <= utc <= LATEST:
        raise CommandError(f"The time '{echo(cleaned)}' is outside the calendar I can use.")
    return utc


def _natural(text: str, tz: ZoneInfo, now: datetime) -> datetime:
    import dateparser  # imported on first use: it loads language data (~0.5 s)

    local_now = now.astimezone(tz).replace(tzinfo=None)
    settings = {
        "RELATIVE_BASE": local_now,
        "PREFER_DATES_FROM": "future",
        "RETURN_AS_TIMEZONE_AWARE": False,
        "STRICT_PARSING": False,
    }
    try:
        parsed: datetime | None = dateparser.parse(text, languages=["en"], settings=settings)
    except (ValueError, OverflowError, TypeError, AttributeError):
        parsed = None
    if parsed is None:
        raise CommandError(
            f'I can\'t read the time \'{echo(text)}\'. Try "tomorrow 9am", "in 2 hours", '
            '"next monday 17:00" or 2026-12-01T09:00.'
        )
    return parsed


def check_window(when: datetime, now: datetime) -> None:
    """Refuse times in the past or more than a year ahead."""
    if when < now - timedelta(seconds=1):
        raise CommandError(f"That time is in the past ({when:%Y-%m-%d %H:%M} UTC).")
    if when > now + MAX_AHEAD:
        raise CommandError("That time is more than a year ahead; schedule it closer to the date.")


@dataclass(frozen=True, slots=True)
class Recurrence:
    """A weekly pattern in local wall-clock time."""

    weekdays: frozenset[int]  # 0 = Monday
    at: time

    def describe(self) -> str:
        """Canonical text, e.g. ``every monday,friday 17:00``; parse(describe()) == self."""
        if self.weekdays == frozenset(range(7)):
            days = "day"
        elif self.weekdays == frozenset(range(5)):
            days = "weekday"
        else:
            days = ",".join(DAYS[d] for d in sorted(self.weekdays))
        return f"every {days} {self.at:%H:%M}"


_TIME = re.compile(r"^(?:at\s+)?(\d{1,2})(?::(\d{2}))?\s*(am|pm)?$")


def parse_recurrence(text: str) -> Recurrence:
    """``"every monday 17:00"``, ``"monday,thursday 9am"``, ``"every day 08:30"``, ``"weekday 9"``.

    Raises:
        CommandError: the rule is not understood.
    """
    normalized = re.sub(r"(\d)\s+(am|pm)\b", r"\1\2", text.lower().replace(" and ", ","))
    words = normalized.split()
    if words and words[0] == "every":
        words = words[1:]
    if len(words) < 2:
        raise CommandError(_recurrence_help(text))
    day_part, time_part = " ".join(words[:-1]), words[-1]
    if words[-2] in ("at",) and len(words) >= 3:
        day_part = " ".join(words[:-2])
    match = _TIME.match(time_part)
    if match is None:
        raise CommandError(_recurrence_help(text))
    hour, minute = int(match.group(1)), int(match.group(2) or 0)
    if match.group(3) == "pm" and hour < 12:
        hour += 12
    elif match.group(3) == "am" and hour == 12:
        hour = 0
    if hour > 23 or minute > 59:
        raise CommandError(_recurrence_help(text))
    days: set[int] = set()
    for token in re.split(r"[,\s]+", day_part.strip()):
        if token in ("day", "days", "daily"):
            days |= set(range(7))
        elif token in ("weekday", "weekdays"):
            days |= set(range(5))
        elif token in _DAY_ALIASES:
            days.add(_DAY_ALIASES[token])
        elif token:
            raise CommandError(_recurrence_help(text))
    if not days:
        raise CommandError(_recurrence_help(text))
    return Recurrence(frozenset(days), time(hour, minute))


def _recurrence_help(text: str) -> str:
    return (
        f"I can't read the repeat rule '{echo(text)}'. Try --every \"monday 17:00\", "
        '--every "weekday 9am" or --every "day 08:30".'
    )


def next_occurrence(rule: Recurrence, after: datetime, tz: ZoneInfo) -> datetime:
    """The first occurrence strictly after ``after``, in UTC.

    Works on local calendar dates, so the wall-clock hour is kept across DST changes. A local
    time that does not exist on a spring-forward day resolves forward (zoneinfo's ``fold``).
    """
    local_after = after.astimezone(tz)
    day: date = local_after.date()
    for _ in range(8):
        if day.weekday() in rule.weekdays:
            candidate = datetime.combine(day, rule.at, tzinfo=tz)
            utc = candidate.astimezone(UTC)
            if utc > after:
                return utc
        day += timedelta(days=1)
    raise AssertionError("a weekly rule always has an occurrence within 8 days")


def format_local(when: datetime, tz: ZoneInfo) -> str:
    """``2026-12-01 09:00 CET (08:00 UTC)``."""
    local = when.astimezone(tz)
    utc = when.astimezone(UTC)
    if tz.key == "UTC":
        return f"{utc:%Y-%m-%d %H:%M} UTC"
    same_day = local.date() == utc.date()
    utc_text = f"{utc:%H:%M}" if same_day else f"{utc:%Y-%m-%d %H:%M}"
    return f"{local:%Y-%m-%d %H:%M} {local.tzname()} ({utc_text} UTC)"
