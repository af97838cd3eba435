"""The ``/announce`` grammar, shared by every platform's command (and the dashboard).

The platforms it accepts (``--to``, and one ``--PLATFORM-text`` override per platform) are
given by the caller, from the adapter registry: no platform is named here.

Options come first, the announcement text last, and the text is kept byte for byte (newlines,
apostrophes, Markdown). Option values may be quoted (``--at "tomorrow 9am"``); unquoted
time-like values (``--at``, ``--every``, ``--until``) take the longest run of words that reads
as a time, so ``--at tomorrow 9am Big news`` works too. Every mistake raises
:class:`~bot.errors.CommandError` with a one-line reason and the usage; nothing else escapes.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from bot.commands import echo
from bot.errors import CommandError
from bot.platforms import ANNOUNCE_TARGETS

MAX_GREEDY_WORDS = 6

USAGE: dict[str, str] = {
    "schedule": "/announce schedule --at WHEN [--tz ZONE] [--to PLATFORMS] "
    '[--every "monday 17:00" [--until DATE]] [--PLATFORM-text "…"] [--force] TEXT',
    "now": '/announce now [--to PLATFORMS] [--PLATFORM-text "…"] [--force] TEXT',
    "preview": '/announce preview [--to PLATFORMS] [--PLATFORM-text "…"] TEXT',
    "list": "/announce list",
    "show": "/announce show ID",
    "edit": "/announce edit ID [--at WHEN] [--tz ZONE] [TEXT]",
    "cancel": "/announce cancel ID",
    "history": "/announce history",
    "retract": "/announce retract ID",
    "hold": "/announce hold",
    "resume": "/announce resume",
    "approve": "/announce approve ID",
    "retry": "/announce retry ID [--to PLATFORMS]",
    "mark-sent": "/announce mark-sent ID --to PLATFORMS",
    "help": "/announce help",
}
SUMMARY: dict[str, str] = {
    "schedule": 'queue an announcement for later (WHEN: ISO or "tomorrow 9am", "in 2 hours")',
    "now": "post an announcement right away",
    "preview": "what each platform would get, connected or not (nothing is queued)",
    "list": "upcoming announcements with their status per platform",
    "show": "the exact text each platform will get",
    "edit": "change the text or time of a queued announcement",
    "cancel": "cancel a queued announcement",
    "history": "announcements already sent, cancelled, missed or retracted",
    "retract": "delete a posted announcement everywhere the platform allows",
    "hold": "pause everything queued (embargo)",
    "resume": "release the embargo",
    "approve": "approve another staff member's announcement",
    "retry": "retry failed or unknown deliveries (a person checked they were not posted)",
    "mark-sent": "record failed or unknown deliveries as posted (a person checked they were)",
    "help": "this help",
}

#: option -> (takes a value, greedy time-like value)
OPTIONS: dict[str, tuple[bool, bool]] = {
    "--at": (True, True),
    "--tz": (True, False),
    "--to": (True, False),
    "--every": (True, True),
    "--until": (True, True),
    "--force": (False, False),
}
#: Actions that take one ``--PLATFORM-text`` override per platform.
OVERRIDES = {"schedule", "now", "preview"}
ALLOWED: dict[str, set[str]] = {
    "schedule": {"--at", "--tz", "--to", "--every", "--until", "--force"},
    "now": {"--to", "--force"},
    "preview": {"--to"},
    "edit": {"--at", "--tz"},
    "retry": {"--to"},
    "mark-sent": {"--to"},
}
NEEDS_ID = {"show", "edit", "cancel", "retract", "approve", "retry", "mark-sent"}
NEEDS_TEXT = {"schedule", "now", "preview"}
_QUOTES = {'"': '"', "'": "'", "“": "”", "‘": "’"}


def help_text(platforms: Sequence[str] = ()) -> str:
    """The full ``/announce help`` (naming the platforms, when given)."""
    lines = [f"{USAGE[a]}\n    {SUMMARY[a]}" for a in USAGE]
    if platforms:
        lines.append(f"PLATFORMS: {', '.join(platforms)}")
    return "\n".join(lines)


def _override(name: str) -> str:
    return f"--{name}-text"


@dataclass(frozen=True, slots=True)
class AnnounceArgs:
    """A parsed ``/announce`` command."""

    action: str
    ident: int | None = None
    at: str | None = None
    tz: str | None = None
    to: tuple[str, ...] | None = None
    every: str | None = None
    until: str | None = None
    force: bool = False
    overrides: dict[str, str] = field(default_factory=dict)
    text: str = ""


class _Scanner:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def skip_space(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def at_end(self) -> bool:
        self.skip_space()
        return self.pos >= len(self.text)

    def peek_word(self) -> str:
        self.skip_space()
        match = re.compile(r"\S+").match(self.text, self.pos)
        return match.group(0) if match else ""

    def word(self) -> str:
        value = self.peek_word()
        self.pos += len(value)
        return value

    def quoted(self) -> str | None:
        self.skip_space()
        if self.pos >= len(self.text) or self.text[self.pos] not in _QUOTES:
            return None
        close = _QUOTES[self.text[self.pos]]
        end = self.text.find(close, self.pos + 1)
        if end < 0:
            raise CommandError("A quoted value is missing its closing quote.")
        value = self.text[self.pos + 1 : end]
        self.pos = end + 1
        return value

    def rest(self) -> str:
        self.skip_space()
        return self.text[self.pos :].strip()


def parse(
    text: str,
    *,
    is_time: Callable[[str], bool],
    is_rule: Callable[[str], bool],
    platforms: Sequence[str] | None = None,
) -> AnnounceArgs:
    """Parse the text after ``/announce``.

    Args:
        text: e.g. ``schedule --at "tomorrow 9am" --to PLATFORM,PLATFORM Big news``.
        is_time: whether a string reads as a time (used for unquoted ``--at``/``--until``).
        is_rule: whether a string reads as a repeat rule (unquoted ``--every``).
        platforms: the names ``--to`` accepts (each also gets ``--NAME-text``); by default
            every platform the bot knows (``bot.platforms``).
    """
    if platforms is None:
        platforms = ANNOUNCE_TARGETS
    overrides_allowed = {_override(p) for p in platforms}
    bad = _unpostable(text)
    if bad is not None:
        raise CommandError(
            f"The command contains a control character (U+{ord(bad):04X}) that cannot be "
            "posted; remove it and try again."
        )
    scanner = _Scanner(text)
    action = scanner.word().lower()
    if not action or action in ("help", "-h", "--help"):
        return AnnounceArgs("help")
    if action not in USAGE:
        raise CommandError(
            f"Unknown action '{_short(action)}'.",
            f"Usage: /announce {'|'.join(USAGE)} … (/announce help explains each)",
        )
    usage = "Usage: " + USAGE[action]
    ident = None
    if action in NEEDS_ID:
        raw = scanner.word()
        if not raw:
            raise CommandError(f"/announce {action} needs an announcement id.", usage)
        if not re.fullmatch(r"#?\d{1,9}", raw):
            raise CommandError(f"'{_short(raw)}' is not an announcement id.", usage)
        ident = int(raw.lstrip("#"))
    values: dict[str, str] = {}
    force = False
    allowed = ALLOWED.get(action, set()) | (overrides_allowed if action in OVERRIDES else set())
    known = OPTIONS.keys() | overrides_allowed
    while scanner.peek_word().startswith("--"):
        word = scanner.word()
        name, eq, inline = word.partition("=")
        if name == "--":
            break
        if name not in allowed:
            what = "Unknown option" if name not in known else "Option"
            tail = "" if name not in known else f" does not apply to /announce {action}"
            raise CommandError(f"{what} {_short(name)}{tail}.", usage)
        if name in values or (name == "--force" and force):
            raise CommandError(f"{name} is given twice.", usage)
        takes_value, greedy = OPTIONS.get(name, (True, False))
        if not takes_value:
            if eq:
                raise CommandError(f"{name} takes no value.", usage)
            force = True
            continue
        if eq:
            value = inline
            if value[:1] in _QUOTES:
                scanner.pos -= len(word) - len(name) - 1
                value = scanner.quoted() or ""
        else:
            quoted = scanner.quoted()
            if quoted is not None:
                value = quoted
            elif greedy:
                value = _greedy(scanner, is_rule if name == "--every" else is_time)
                if not value:
                    probe = " ".join(scanner.rest().split()[:MAX_GREEDY_WORDS])
                    kind = "repeat rule" if name == "--every" else "time"
                    raise CommandError(
                        f"I can't read the {kind} after {name}: '{_short(probe)}'. "
                        f'Quote it, e.g. {name} "tomorrow 9am".',
                        usage,
                    )
            else:
                value = scanner.word()
        if not value.strip() or value.startswith("--"):
            raise CommandError(f"{name} needs a value.", usage)
        values[name] = value.strip()
    body = scanner.rest()
    if action in NEEDS_TEXT and not body:
        raise CommandError("The announcement text is empty.", usage)
    if action not in NEEDS_TEXT | {"edit"} and body:
        raise CommandError(f"Unexpected text after /announce {action}: '{_short(body)}'.", usage)
    if action == "schedule" and "--at" not in values:
        raise CommandError("/announce schedule needs --at WHEN.", usage)
    if action == "edit" and not body and not values:
        raise CommandError("Give new text and/or --at WHEN.", usage)
    if action == "mark-sent" and "--to" not in values:
        raise CommandError("/announce mark-sent needs --to PLATFORMS.", usage)
    if "--until" in values and "--every" not in values:
        raise CommandError("--until only applies with --every.", usage)
    to = _platforms(values["--to"], platforms, usage) if "--to" in values else None
    overrides = {p: values[_override(p)] for p in platforms if _override(p) in values}
    return AnnounceArgs(
        action=action,
        ident=ident,
        at=values.get("--at"),
        tz=values.get("--tz"),
        to=to,
        every=values.get("--every"),
        until=values.get("--until"),
        force=force,
        overrides=overrides,
        text=body,
    )


def _greedy(scanner: _Scanner, accepts: Callable[[str], bool]) -> str:
    """The longest run of up to MAX_GREEDY_WORDS words that ``accepts``."""
    start = scanner.pos
    words: list[tuple[str, int]] = []
    probe = _Scanner(scanner.text)
    probe.pos = start
    while len(words) < MAX_GREEDY_WORDS:
        word = probe.peek_word()
        if not word or word.startswith("--"):
            break
        probe.word()
        words.append((word, probe.pos))
    for count in range(len(words), 0, -1):
        candidate = " ".join(w for w, _ in words[:count])
        if accepts(candidate):
            scanner.pos = words[count - 1][1]
            return candidate
    return ""


def _platforms(value: str, platforms: Sequence[str], usage: str) -> tuple[str, ...]:
    names = [p.strip().lower() for p in value.split(",") if p.strip()]
    unknown = [p for p in names if p not in platforms]
    if unknown or not names:
        raise CommandError(
            f"Unknown platform '{_short(unknown[0] if unknown else value)}': use "
            + ", ".join(platforms)
            + ".",
            usage,
        )
    return tuple(dict.fromkeys(names))


def _short(text: str) -> str:
    """User text echoed in an error: one printable line, bounded."""
    return echo(text)


def _unpostable(text: str) -> str | None:
    """The first character no platform can show or store (a control character other than
    tab and line breaks: PostgreSQL refuses NUL; an unpaired surrogate, which arrives
    through JSON escapes and is no text at all), or None."""
    for char in text:
        if char not in "\t\n\r" and unicodedata.category(char) in ("Cc", "Cs"):
            return char
    return None
