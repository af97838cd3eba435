"""Slash commands: one router, staff authorization and an audit row for every command.

Handlers receive the normalized :class:`~bot.events.SlashCommand` and return the reply text
(shown only to the caller where the platform allows). A :class:`~bot.errors.CommandError`
becomes a one-line explanation plus the usage; any other exception becomes a generic apology
and a log entry, never a traceback in chat. With the database away the caller still gets a
one-line answer: the audit row is then written to the log instead.
"""

from __future__ import annotations

import logging
import unicodedata
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bot.config import StaffSection
from bot.errors import COMMAND_FAILED, CommandError, StoreError
from bot.events import Author, SlashCommand
from bot.store.engagement import AuditTrail

if TYPE_CHECKING:
    from adapters.base import PlatformRules

log = logging.getLogger(__name__)

Handler = Callable[[SlashCommand], Awaitable[str]]

REFUSAL = "Sorry, only the comms staff can use /{name}. If you think you should, ask an admin."
FAILURE = COMMAND_FAILED
UNREACHABLE = (
    "Sorry, I can't reach my database right now, so /{name} could not run; "
    "please try again in a few minutes."
)


#: Unicode categories never echoed: controls (escape sequences, NUL), format characters
#: (right-to-left overrides that reorder the rest of the line) and unpaired surrogates.
_HIDDEN = frozenset({"Cc", "Cf", "Cs"})
#: Echoes are bounded; a reason quoting a 5,000-character input stays one short line.
ECHO_CHARS = 40


def echo(text: str, limit: int = ECHO_CHARS) -> str:
    """User input quoted back in a reply: one line, printable, at most ``limit`` characters
    (cut with "…"). Every reply that repeats what someone typed goes through this."""
    head = text[: limit * 8]  # enough to fill ``limit`` after collapsing whitespace
    shown = "".join(" " if unicodedata.category(c) in _HIDDEN else c for c in head)
    one_line = " ".join(shown.split())
    if len(one_line) > limit or len(head) < len(text):
        return one_line[: limit - 1] + "…"
    return one_line


def one_line(text: str) -> str:
    """A reason for the reply's first line: printable, on one line (a safety net for
    messages built from several parts)."""
    return echo(text, limit=max(len(text), 1)) if text else text


def is_staff(
    platform: str, author: Author, staff: StaffSection, rules: Mapping[str, PlatformRules]
) -> bool:
    """Whether ``author`` is comms staff on ``platform``, as that platform recognises staff
    (its rules read their own keys of the ``staff`` section); unknown platforms have none."""
    found = rules.get(platform)
    return found is not None and found.is_staff(author, staff)


@dataclass(frozen=True, slots=True)
class Command:
    """A registered command."""

    name: str
    handler: Handler
    staff_only: bool
    summary: str


class CommandRouter:
    """Routes commands by name, checks staff rights, audits everything."""

    def __init__(
        self, staff: StaffSection, audit: AuditTrail, rules: Mapping[str, PlatformRules]
    ) -> None:
        self._staff = staff
        self._rules = rules
        self._audit = audit
        self._commands: dict[str, Command] = {}
        self.register("help", self._help, staff_only=False, summary="list the commands")

    def register(self, name: str, handler: Handler, *, staff_only: bool, summary: str) -> None:
        """Add a command; ``name`` without the slash."""
        self._commands[name] = Command(name, handler, staff_only, summary)

    def names(self) -> list[str]:
        """Registered command names."""
        return sorted(self._commands)

    async def _help(self, cmd: SlashCommand) -> str:
        visible = [c for c in self._commands.values() if not c.staff_only or self._is_staff(cmd)]
        lines = [f"/{c.name} — {c.summary}" for c in sorted(visible, key=lambda c: c.name)]
        lines.append("Or just ask me a question.")
        return "\n".join(lines)

    def _is_staff(self, cmd: SlashCommand) -> bool:
        return is_staff(cmd.where.platform, cmd.author, self._staff, self._rules)

    async def dispatch(self, cmd: SlashCommand) -> str:
        """Run ``cmd`` and return the reply text. Never raises."""
        actor = f"{cmd.where.platform}:{cmd.author.id}"
        target = f"/{cmd.name} {cmd.text}".strip()
        command = self._commands.get(cmd.name)
        if command is None:
            await self._record(actor, target, allowed=False, detail="unknown")
            return f"Unknown command /{echo(cmd.name)}. Try /help."
        if command.staff_only and not self._is_staff(cmd):
            await self._record(actor, target, allowed=False, detail="not staff")
            return REFUSAL.format(name=cmd.name)
        try:
            reply = await command.handler(cmd)
        except CommandError as exc:
            await self._record(actor, target, detail=f"rejected: {exc}")
            reason = one_line(str(exc))
            return f"{reason}\n{exc.usage}" if exc.usage else reason
        except StoreError as exc:
            log.error("command failed name=%s actor=%s: %s", cmd.name, actor, exc)
            await self._record(actor, target, detail="database unreachable")
            return UNREACHABLE.format(name=cmd.name)
        except Exception:
            log.exception("command failed name=%s actor=%s", cmd.name, actor)
            await self._record(actor, target, detail="internal error")
            return FAILURE
        await self._record(actor, target)
        return reply

    async def _record(
        self, actor: str, target: str, *, allowed: bool = True, detail: str | None = None
    ) -> None:
        """Write the audit row; with the database away, log it instead (the reply matters
        more than the row, and the log keeps who did what)."""
        try:
            await self._audit.record(actor, "command", target, allowed=allowed, detail=detail)
        except StoreError as exc:
            log.error(
                "audit row not written actor=%s target=%r allowed=%s detail=%s: %s",
                actor,
                target,
                allowed,
                detail,
                exc,
            )
