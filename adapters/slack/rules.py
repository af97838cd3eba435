"""Slack's rules, as pure functions: mrkdwn and Block Kit rendering, limits, message links,
staff. No Slack SDK here: the core reads these whether or not Slack is connected.

Rendering: mrkdwn (``*bold*``, ``_italic_``, ``<url|text>``, ``•`` bullets; ``&``, ``<``,
``>`` escaped) and Block Kit section blocks of at most 3,000 characters, at most 50 of them.
"""

from __future__ import annotations

import re
from typing import Final
from urllib.parse import quote

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

PLATFORM: Final = "slack"
SLACK_SECTION_LIMIT: Final = 3000
SLACK_MAX_BLOCKS: Final = 50
_TS = re.compile(r"\d+\.\d+")


class SlackDialect(MarkupDialect):
    """Slack's mrkdwn."""

    strong = "*"
    em = "_"
    strike = "~"
    quote = "> "
    track_fences = True
    atoms = r"<[^<>\n]*>|`[^`\n]+`"
    guards = (atoms, "&(?:amp|lt|gt);")

    def escape(self, text: str, *, line_start: bool) -> str:
        return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")

    def bare_url(self, url: str) -> str:
        # An explicit link keeps Slack from reading `_` or `*` in the address as formatting.
        return f"<{self._href(url)}>"

    def _href(self, url: str) -> str:
        return self.escape(url, line_start=False).replace("|", "%7C")

    def code(self, content: str) -> str:
        return f"`{self.escape(content, line_start=False)}`"

    def link(self, text: str, url: str, *, bare: bool) -> str:
        if bare and url.startswith("mailto:"):
            text = self.escape(url.removeprefix("mailto:"), line_start=False)
        elif bare:
            return f"<{self._href(url)}>"
        return f"<{self._href(url)}|{text}>"

    def heading(self, text: str) -> str:
        return f"*{text}*"

    def fence(self, content: str, info: str) -> str:
        # Slack ends a code block at the first ``` whatever the fence length; break such runs.
        body = re.sub("`(?=``)", "`" + ZWSP, self.escape(content, line_start=False))
        return f"```\n{body}\n```"


SLACK_DIALECT: Final = SlackDialect()


def render_slack(markdown: str) -> Rendered:
    """Render an announcement as Slack mrkdwn plus Block Kit section blocks.

    Args:
        markdown: The announcement in Markdown.

    Returns:
        One part, the whole mrkdwn text (Slack's notification fallback), and section blocks of
        at most 3,000 characters each, split between blocks, lines, sentences or words.

    Raises:
        RenderError: If the text is empty or needs more than 50 blocks.
    """
    require_text(markdown)
    blocks = markdown_blocks(markdown, SLACK_DIALECT)
    require_text("".join(blocks))
    sections = Packer(SLACK_SECTION_LIMIT, utf16_length, SLACK_DIALECT, flow=False).pack(blocks)
    if len(sections) > SLACK_MAX_BLOCKS:
        raise RenderError(
            f"too long for Slack: needs {len(sections)} blocks, the limit is {SLACK_MAX_BLOCKS}"
        )
    kit = tuple({"type": "section", "text": {"type": "mrkdwn", "text": s}} for s in sections)
    return Rendered("slack", ("\n\n".join(blocks),), kit)


class SlackRules:
    """Slack: one message per announcement (Block Kit sections), threads under questions."""

    name = PLATFORM
    limits = Limits(SLACK_SECTION_LIMIT, utf16_length)
    has_threads = True
    rate_limited = True

    def render(self, markdown: str, *, max_parts: int) -> Rendered:
        return render_slack(markdown)

    def message_link(self, channel: str, message_id: str) -> str | None:
        if not channel or not _TS.fullmatch(message_id):
            return None
        return f"https://slack.com/archives/{quote(channel)}/p{message_id.replace('.', '')}"

    def is_staff(self, author: Author, staff: StaffSection) -> bool:
        return author.id in staff.slack_users or bool(author.roles & set(staff.slack_usergroups))


RULES: Final = SlackRules()
