"""The terminal chat: ask questions and type staff commands as the local console user.

Every line is a direct message to the bot; a line starting with ``/`` is a command
(``/announce list``). When the bot offers suggestions it numbers them after its text
(``1. Who sits on the board?``); a next line that is just one of those numbers picks it.
End of input (Ctrl-D, or the end of a piped file) stops the bot.
Stdin is read on a daemon thread so a blocked ``readline`` never holds up shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import sys
import threading
from collections.abc import Callable
from typing import TextIO

from adapters.base import EventSink, Limits
from announcements.render import Rendered, require_text
from bot.config import StaffSection
from bot.events import (
    Author,
    Choice,
    ChoicePicked,
    Conversation,
    IncomingMessage,
    OutgoingMessage,
    SentMessage,
    SlashCommand,
)

PLATFORM = "console"
CHANNEL = "terminal"
ANNOUNCEMENTS = "announcements"


class ConsoleRules:
    """The terminal: Markdown shown as typed, one conversation, no threads."""

    name = PLATFORM
    limits = Limits(100_000, len)
    has_threads = False
    #: The local user is not rate-limited: nobody else can type there.
    rate_limited = False

    def render(self, markdown: str, *, max_parts: int) -> Rendered:
        require_text(markdown)
        return Rendered(self.name, (markdown,))

    def message_link(self, channel: str, message_id: str) -> str | None:
        return None

    def is_staff(self, author: Author, staff: StaffSection) -> bool:
        return author.id in staff.console_users


RULES = ConsoleRules()


class ConsoleAdapter:
    """Chat with the bot in a terminal."""

    platform = PLATFORM
    announce_channels: tuple[str, ...] = (ANNOUNCEMENTS,)

    def __init__(
        self,
        *,
        user: str = "console",
        stdin: TextIO | None = None,
        stdout: TextIO | None = None,
        on_close: Callable[[], None] | None = None,
        banner: str = "",
    ) -> None:
        self._user = Author(id=user, name=user)
        self._stdin = stdin if stdin is not None else sys.stdin
        self._stdout = stdout if stdout is not None else sys.stdout
        self._on_close = on_close
        self._banner = banner
        self._interactive = self._stdin.isatty()
        self._ids = itertools.count(1)
        self._task: asyncio.Task[None] | None = None
        self._connected = False
        #: The suggestions the bot offered last; the user's next line may pick one by number.
        self._offered: tuple[Choice, ...] = ()

    def is_connected(self) -> bool:
        return self._connected

    def offers_choices(self) -> bool:
        """Suggestions are numbered lines; the user types a number to pick one."""
        return True

    async def start(self, sink: EventSink) -> None:
        loop = asyncio.get_running_loop()
        lines: asyncio.Queue[str | None] = asyncio.Queue()

        def read() -> None:
            try:
                for line in self._stdin:
                    loop.call_soon_threadsafe(lines.put_nowait, line)
            except (OSError, ValueError, UnicodeDecodeError):
                pass  # stdin closed or unreadable: treat as end of input
            finally:
                # RuntimeError: the loop is already closed, nobody is waiting any more.
                with contextlib.suppress(RuntimeError):
                    loop.call_soon_threadsafe(lines.put_nowait, None)

        threading.Thread(target=read, name="console-stdin", daemon=True).start()
        self._connected = True
        if self._banner:
            self._write(self._banner)
        self._task = asyncio.create_task(self._pump(lines, sink), name="console-adapter")

    async def _pump(self, lines: asyncio.Queue[str | None], sink: EventSink) -> None:
        self._prompt()
        while (line := await lines.get()) is not None:
            text = line.rstrip("\r\n")
            if text.strip():
                await sink(self._event(text))
            self._prompt()
        self._connected = False
        if self._on_close is not None:
            self._on_close()

    def _event(self, text: str) -> IncomingMessage | SlashCommand | ChoicePicked:
        where = Conversation(self.platform, CHANNEL, is_direct=True)
        message_id = str(next(self._ids))
        stripped = text.strip()
        # Only the line right after the suggestions can pick one: later, a number is a number.
        offered, self._offered = self._offered, ()
        if stripped.isdecimal() and 1 <= int(stripped) <= len(offered):
            picked = offered[int(stripped) - 1]
            return ChoicePicked(
                where=where, author=self._user, token=picked.token, event_id=f"pick:{message_id}"
            )
        if stripped.startswith("/") and len(stripped) > 1:
            name, _, rest = stripped[1:].partition(" ")
            return SlashCommand(
                where=where, author=self._user, name=name.lower(), text=rest.strip()
            )
        return IncomingMessage(where=where, author=self._user, text=text, message_id=message_id)

    def _prompt(self) -> None:
        if self._interactive:
            self._stdout.write("you> ")
            self._stdout.flush()

    def _write(self, text: str) -> None:
        self._stdout.write(text.rstrip("\n") + "\n")
        self._stdout.flush()

    async def stop(self) -> None:
        self._connected = False
        if self._task is not None and self._task is not asyncio.current_task():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def send(self, message: OutgoingMessage) -> SentMessage:
        message_id = f"bot-{next(self._ids)}"
        channel = message.where.channel_id
        prefix = "bot> " if channel == CHANNEL else f"bot [#{channel}]> "
        body = message.text.replace("\n", "\n     ")
        if message.choices:
            lines = [f"{n}. {c.label}" for n, c in enumerate(message.choices, start=1)]
            body += "\n     " + "\n     ".join(lines)
            body += "\n     (type a number to pick one)"
            self._offered = message.choices
        if message.feedback_token:
            body += "\n     (was this helpful? — feedback buttons appear on Slack and Discord)"
        self._write(prefix + body)
        return SentMessage(self.platform, channel, message_id)

    async def delete(self, sent: SentMessage) -> None:
        self._write(f"bot> [message {sent.message_id} in #{sent.channel_id} retracted]")
