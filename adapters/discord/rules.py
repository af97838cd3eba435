"""Discord's rules, as pure functions: Discord Markdown rendering, limits, staff. No
discord.py here: the core reads these whether or not Discord is connected.

Rendering: Discord Markdown (``**bold**``, ``*italic*``, ``[text](url)``, ``- `` bullets,
headings as ``**bold**`` lines, Markdown characters in the text backslash-escaped), split into
messages of at most 2,000 characters.
"""

from __future__ import annotations

import re
from typing import Final

from adapters.base import Limits
from announcements.render import (
    ZWSP,
    MarkupDialect,
    Packer,
    Rendered,
    RenderError,
    markdown_blocks,
    require_text,
    utf16_length,
)
from bot.config import StaffSection
from bot.events import Author

PLATFORM: Final = "discord"
DISCORD_MESSAGE_LIMIT: Final = 2000


_DISCORD_SPECIAL: Final = re.compile(r"([\\*_~`|])")
_DISCORD_BLOCK_START: Final = re.compile(r"^(\s*)([#>+-]|\d+(?=[.)]))")


class DiscordDialect(MarkupDialect):
    """Discord's Markdown."""

    strong = "**"
    em = "*"
    strike = "~~"
    bullet = "- "
    quote = "> "
    track_fences = True
    atoms = r"\[[^\[\]\n]*\]\([^()\s]*\)|`[^`\n]+`|\\\S"
    guards = (atoms,)

    def escape(self, text: str, *, line_start: bool) -> str:
        text = _DISCORD_SPECIAL.sub(r"\\\1", text)
        match = _DISCORD_BLOCK_START.match(text) if line_start else None
        if match:
            # `# `, `> `, `- ` or `1. ` typed as text would become a heading, quote or list:
            # escape the marker (for a number, the `.` or `)` after it).
            at = match.end(2) if match.group(2).isdigit() else match.start(2)
            text = f"{text[:at]}\\{text[at:]}"
        return text

    def bare_url(self, url: str) -> str:
        return url

    def code(self, content: str) -> str:
        # Double backticks let a code span contain a backtick.
        return f"`` {content} ``" if "`" in content else f"`{content}`"

    def link(self, text: str, url: str, *, bare: bool) -> str:
        if bare:
            return url.removeprefix("mailto:")
        # Discord ends the address at the first `)`, so encode parentheses.
        href = url.replace("(", "%28").replace(")", "%29").replace(" ", "%20")
        return f"[{text}]({href})"

    def heading(self, text: str) -> str:
        return f"**{text}**"

    def fence(self, content: str, info: str) -> str:
        language = re.sub(r"[^\w+.#-]", "", info.split(" ", 1)[0]) if info else ""
        # Discord ends a code block at the first ```, whatever the fence length.
        body = re.sub("`(?=``)", "`" + ZWSP, content)
        return f"```{language}\n{body}\n```"


DISCORD_DIALECT: Final = DiscordDialect()


def render_discord(markdown: str, *, max_messages: int = 10) -> Rendered:
    """Render an announcement as Discord Markdown in messages of at most 2,000 characters.

    Args:
        markdown: The announcement in Markdown.
        max_messages: The most messages the announcement may take.

    Returns:
        The messages in order, split between blocks, then lines, sentences and words; a code
        block split across messages is closed and reopened.

    Raises:
        RenderError: If the text is empty or needs more than ``max_messages`` messages.
    """
    require_text(markdown)
    blocks = markdown_blocks(markdown, DISCORD_DIALECT)
    require_text("".join(blocks))
    messages = Packer(DISCORD_MESSAGE_LIMIT, utf16_length, DISCORD_DIALECT, flow=False).pack(blocks)
    if len(messages) > max_messages:
        raise RenderError(
            f"too long for Discord: needs {len(messages)} messages, the limit is {max_messages}"
        )
    return Rendered("discord", tuple(messages))


class DiscordRules:
    """Discord: long announcements as several messages; threads under questions."""

    name = PLATFORM
    limits = Limits(DISCORD_MESSAGE_LIMIT, utf16_length)
    has_threads = True
    rate_limited = True

    def render(self, markdown: str, *, max_parts: int) -> Rendered:
        return render_discord(markdown, max_messages=max_parts)

    def message_link(self, channel: str, message_id: str) -> str | None:
        return None  # needs the guild id, which the log does not keep: adapters store the URL

    def is_staff(self, author: Author, staff: StaffSection) -> bool:
        return bool(author.roles & set(staff.discord_roles))


RULES: Final = DiscordRules()
