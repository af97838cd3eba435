"""Rendering one Markdown announcement for each platform.

Markdown is parsed by markdown-it-py (a maintained CommonMark parser), then written out in each
platform's dialect:

* **Slack**: mrkdwn (``*bold*``, ``_italic_``, ``<url|text>``; ``&``, ``<``, ``>`` escaped) and
  Block Kit section blocks of at most 3,000 characters each.
* **Discord**: Discord Markdown, split into messages of at most 2,000 characters at paragraph,
  line, sentence, then word boundaries; a code block that must be split is closed and reopened.
* **X**: plain text counted with X's own weighting through twitter-text-parser (URLs count 23,
  wide characters 2); longer than 280 becomes a numbered thread split at sentence, then word
  boundaries, so a URL, @mention or #hashtag is never cut.

Everything here is pure: no I/O, no platform SDK.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from markdown_it import MarkdownIt
from markdown_it.token import Token
from twitter_text import parse_tweet

from bot.errors import FoundationBotError

X_LIMIT = 280
DISCORD_LIMIT = 2000
SLACK_SECTION_LIMIT = 3000
SLACK_MAX_BLOCKS = 50

_md = MarkdownIt("commonmark")
_SENTENCE = re.compile(r"(?<=[.!?…])\s+(?=\S)")


class RenderError(FoundationBotError):
    """The announcement cannot be rendered for a platform (empty, or too long)."""


@dataclass(frozen=True, slots=True)
class Rendered:
    """What one platform gets."""

    platform: str
    #: The messages/posts to send, in order (Slack: one part, the fallback text).
    parts: tuple[str, ...]
    #: Slack Block Kit blocks (empty elsewhere).
    blocks: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True, slots=True)
class _Style:
    strong: str
    em: str
    code: str
    bullet: str
    quote: str
    escape: Callable[[str], str]
    link: Callable[[str, str], str]
    heading: Callable[[str], str]
    fence: Callable[[str, str], str]


def _slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _slack_link(text: str, url: str) -> str:
    return f"<{url}>" if text in ("", url) else f"<{url}|{text}>"


def _discord_link(text: str, url: str) -> str:
    return url if text in ("", url) else f"[{text}]({url})"


def _plain_link(text: str, url: str) -> str:
    return url if text in ("", url) else f"{text} ({url})"


SLACK = _Style(
    "*",
    "_",
    "`",
    "• ",
    "> ",
    _slack_escape,
    _slack_link,
    lambda t: f"*{t}*",
    lambda code, _lang: f"```\n{code}\n```",
)
DISCORD = _Style(
    "**",
    "*",
    "`",
    "- ",
    "> ",
    lambda t: t,
    _discord_link,
    lambda t: f"**{t}**",
    lambda code, lang: f"```{lang}\n{code}\n```",
)
PLAIN = _Style(
    "", "", "", "• ", "", lambda t: t, _plain_link, lambda t: t, lambda code, _lang: code
)


def _inline(children: list[Token] | None, style: _Style) -> str:
    out: list[str] = []
    link_stack: list[tuple[str, int]] = []
    for tok in children or []:
        if tok.type == "text":
            out.append(style.escape(tok.content))
        elif tok.type == "code_inline":
            out.append(f"{style.code}{style.escape(tok.content)}{style.code}")
        elif tok.type in ("strong_open", "strong_close"):
            out.append(style.strong)
        elif tok.type in ("em_open", "em_close"):
            out.append(style.em)
        elif tok.type == "softbreak":
            out.append(" " if style is PLAIN else "\n")
        elif tok.type == "hardbreak":
            out.append("\n")
        elif tok.type == "link_open":
            link_stack.append((str(tok.attrGet("href") or ""), len(out)))
        elif tok.type == "link_close" and link_stack:
            url, start = link_stack.pop()
            text = "".join(out[start:])
            del out[start:]
            out.append(style.link(text, url))
        elif tok.type == "image":
            out.append(style.link(tok.content, str(tok.attrGet("src") or "")))
        elif tok.type in ("html_inline",):
            out.append(style.escape(tok.content))
    return "".join(out)


def _blocks(markdown: str, style: _Style) -> list[str]:
    """Rendered top-level blocks (paragraphs, lists, code, quotes) in order."""
    tokens = _md.parse(markdown)
    blocks: list[str] = []
    lists: list[list[Any]] = []  # per open list: [ordered, counter, lines]
    quote = 0
    for index, tok in enumerate(tokens):
        if tok.type in ("bullet_list_open", "ordered_list_open"):
            start = int(tok.attrGet("start") or 1)
            lists.append([tok.type == "ordered_list_open", start, []])
        elif tok.type in ("bullet_list_close", "ordered_list_close"):
            _, _, lines = lists.pop()
            if lists:
                lists[-1][2].extend("   " + line for line in lines)
            else:
                blocks.append("\n".join(lines))
        elif tok.type == "blockquote_open":
            quote += 1
        elif tok.type == "blockquote_close":
            quote -= 1
        elif tok.type == "inline":
            text = _inline(tok.children, style)
            opener = tokens[index - 1].type if index else ""
            if opener == "heading_open":
                text = style.heading(text)
            if quote and style.quote:
                text = "\n".join(style.quote + line for line in text.split("\n"))
            if lists and opener == "paragraph_open":
                current = lists[-1]
                marker = f"{current[1]}. " if current[0] else style.bullet
                item_start = tokens[index - 2].type == "list_item_open" if index > 1 else False
                if item_start:
                    current[2].append(marker + text)
                    if current[0]:
                        current[1] += 1
                else:
                    current[2].append("   " + text)
            else:
                blocks.append(text)
        elif tok.type in ("fence", "code_block"):
            blocks.append(style.fence(tok.content.rstrip("\n"), tok.info.strip()))
        elif tok.type == "html_block":
            blocks.append(style.escape(tok.content.strip()))
    return [b for b in blocks if b.strip()]


def _require_text(markdown: str) -> None:
    if not markdown.strip():
        raise RenderError("the announcement text is empty")


def render_slack(markdown: str) -> Rendered:
    """Slack mrkdwn plus Block Kit sections."""
    _require_text(markdown)
    blocks = _blocks(markdown, SLACK)
    text = "\n\n".join(blocks)
    sections = _pack(blocks, SLACK_SECTION_LIMIT, "\n\n", len)
    if len(sections) > SLACK_MAX_BLOCKS:
        raise RenderError(
            f"too long for Slack: needs {len(sections)} blocks, the limit is {SLACK_MAX_BLOCKS}"
        )
    kit = tuple({"type": "section", "text": {"type": "mrkdwn", "text": s}} for s in sections)
    return Rendered("slack", (text,), kit)


def render_discord(markdown: str, *, max_messages: int = 10) -> Rendered:
    """Discord Markdown in messages of at most 2,000 characters."""
    _require_text(markdown)
    messages = _pack(_blocks(markdown, DISCORD), DISCORD_LIMIT, "\n\n", len)
    if len(messages) > max_messages:
        raise RenderError(
            f"too long for Discord: needs {len(messages)} messages, the limit is {max_messages}"
        )
    return Rendered("discord", tuple(messages))


def x_weighted_length(text: str) -> int:
    """X's weighted length of ``text`` (URLs 23, wide characters 2)."""
    return int(parse_tweet(text).weightedLength)


def render_x_thread(markdown: str, *, max_posts: int = 25) -> Rendered:
    """Plain text; a numbered thread when longer than 280 weighted characters."""
    _require_text(markdown)
    text = "\n\n".join(_blocks(markdown, PLAIN)).strip()
    if x_weighted_length(text) <= X_LIMIT:
        return Rendered("x", (text,))
    # Reserve room for the widest counter the thread could need, e.g. " (12/25)".
    width = len(str(max_posts))
    reserve = len(f" ({'9' * width}/{'9' * width})")
    posts = _pack([text], X_LIMIT - reserve, "\n\n", x_weighted_length)
    if len(posts) > max_posts:
        raise RenderError(f"too long for X: needs {len(posts)} posts, the limit is {max_posts}")
    total = len(posts)
    return Rendered("x", tuple(f"{post} ({i}/{total})" for i, post in enumerate(posts, 1)))


def render(
    platform: str,
    markdown: str,
    *,
    override: str | None = None,
    max_x_posts: int = 25,
    max_discord_messages: int = 10,
) -> Rendered:
    """What ``platform`` gets for this announcement (``override`` replaces the text)."""
    source = override if override is not None and override.strip() else markdown
    if platform == "slack":
        return render_slack(source)
    if platform == "discord":
        return render_discord(source, max_messages=max_discord_messages)
    if platform == "x":
        return render_x_thread(source, max_posts=max_x_posts)
    _require_text(source)
    return Rendered(platform, (source.strip(),))


# --- splitting -------------------------------------------------------------------------------


def _pack(pieces: list[str], limit: int, joiner: str, measure: Callable[[str], int]) -> list[str]:
    """Greedily join pieces into chunks within ``limit``, splitting oversized pieces finer:
    paragraphs, then lines, then sentences, then words (so URLs, mentions and hashtags stay
    whole), then characters as a last resort for a single giant word."""
    chunks: list[str] = []
    current = ""
    for piece in pieces:
        for part in _fit(piece, limit, measure):
            candidate = f"{current}{joiner}{part}" if current else part
            if measure(candidate) <= limit:
                current = candidate
            else:
                if current:
                    chunks.append(current)
                current = part
    if current:
        chunks.append(current)
    return chunks


def _fit(piece: str, limit: int, measure: Callable[[str], int]) -> list[str]:
    """``piece`` cut into parts that each fit ``limit``."""
    if measure(piece) <= limit:
        return [piece]
    fence = re.match(r"^(```[^\n]*)\n(.*)\n```$", piece, re.DOTALL)
    if fence:
        opener, body = fence.group(1), fence.group(2)
        inner = limit - len(opener) - 5
        return [f"{opener}\n{part}\n```" for part in _pack(body.split("\n"), inner, "\n", measure)]
    for splitter, joiner in (
        (re.compile(r"\n\s*\n"), "\n\n"),
        (re.compile(r"\n"), "\n"),
        (_SENTENCE, " "),
        (re.compile(r"[ \t]+"), " "),
    ):
        parts = [p for p in splitter.split(piece) if p.strip()]
        if len(parts) > 1:
            return _pack(parts, limit, joiner, measure)
    # One word longer than a whole post: cut it (never a URL, which always measures 23 on X).
    out, rest = [], piece
    while rest:
        size = limit
        while size > 1 and measure(rest[:size]) > limit:
            size -= max(1, size // 10)
        out.append(rest[:size])
        rest = rest[size:]
    return out
