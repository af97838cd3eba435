"""Rendering one Markdown announcement for a platform: the platform-neutral machinery.

Markdown is parsed once by markdown-it-py (a maintained CommonMark parser, with ``~~strike~~``
enabled and raw HTML treated as text), then written out in a platform's *dialect* (a
:class:`Dialect`: how it spells bold, links, lists, code) and packed into messages or posts
within the platform's limit by a :class:`Packer`. Each platform's own rules (its dialect, its
limits, how it counts characters, whether a long post becomes a thread) live with the platform
in ``adapters/`` as pure functions; :func:`render_for` applies them. A platform without rules
of its own (the console, the in-memory test adapter) gets the Markdown source as is.

Long text is split at the coarsest boundary that fits: between blocks (paragraphs, lists, code
blocks), then lines, then sentences, then words. A word is never cut unless it alone is longer
than a message, and even then never inside a URL, @mention, #hashtag, link or escape sequence
when any other cut point exists. A code block split across messages is closed at the end of
one and reopened at the start of the next.

A line break typed in the source is kept as a line break everywhere (chat authors mean it), so
the rendering matches what the console shows.

Everything here is pure: no I/O and no platform SDK.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Final, Protocol

from markdown_it import MarkdownIt
from markdown_it.tree import SyntaxTreeNode
from twitter_text import extract_urls_with_indices

from bot.errors import FoundationBotError

# Raw HTML is shown as text rather than passed through: no platform here renders it.
_MARKDOWN: Final = MarkdownIt("commonmark", {"html": False}).enable("strikethrough")

ZWSP: Final = "\u200b"
_MENTION_OR_TAG: Final = re.compile(r"[@＠#＃$]\w+")
# Only tried where a scheme can start, so a long run of letters is scanned once, not per letter.
_URL_ATOM: Final = r"(?<![\w+.-])[A-Za-z][\w+.-]*+://\S+"
_QUOTE_PREFIX: Final = re.compile(r"(?:> )+")
_FENCE_LINE: Final = re.compile(r"((?:> |[ \t])*)```")
_SENTENCE_END: Final = re.compile(r"[.!?…。！？][\"'”’)\]*_~」』）]*$")


class RenderError(FoundationBotError):
    """The announcement cannot be rendered for a platform: it is empty, or too long."""


@dataclass(frozen=True, slots=True)
class Rendered:
    """What one platform gets for one announcement."""

    platform: str
    #: The messages/posts to send, in order (thread posts, or messages; a platform with a
    #: structured layout: one part, the fallback text).
    parts: tuple[str, ...]
    #: The structured layout (Slack's Block Kit blocks), if the platform has one.
    blocks: tuple[dict[str, Any], ...] = ()


# --- dialects ----------------------------------------------------------------------------------


def _bare(text: str, url: str) -> bool:
    """Whether a link's text just repeats its address (so the address alone is enough)."""
    return text in ("", url, url.removeprefix("mailto:"), url.split("://", 1)[-1])


class Dialect:
    """How one platform spells Markdown's constructs; this base spells plain text."""

    strong = ""
    em = ""
    strike = ""
    bullet = "• "
    quote = ""
    track_fences = False
    # Spans (beyond URLs) that a line split keeps whole: links, code spans, escapes.
    atoms = ""
    # Spans (beyond URLs, mentions and hashtags) a word split must not cut into.
    guards: tuple[str, ...] = ()

    def text(self, content: str, *, line_start: bool, in_link: bool) -> str:
        return content

    def code(self, content: str) -> str:
        return content

    def link(self, text: str, url: str, *, bare: bool) -> str:
        return url.removeprefix("mailto:") if bare else f"{text} ({url})"

    def heading(self, text: str) -> str:
        return text

    def fence(self, content: str, info: str) -> str:
        return content


class MarkupDialect(Dialect):
    """Chat markup: bare URLs stay untouched while the text around them is escaped."""

    def text(self, content: str, *, line_start: bool, in_link: bool) -> str:
        if in_link or "://" not in content:
            return self.escape(content, line_start=line_start)
        out: list[str] = []
        pos = 0
        for found in extract_urls_with_indices(content, extract_urls_without_protocol=False):
            start, end = found["indices"]
            out.append(self.escape(content[pos:start], line_start=line_start and pos == 0))
            out.append(self.bare_url(content[start:end]))
            pos = end
        out.append(self.escape(content[pos:], line_start=line_start and pos == 0))
        return "".join(out)

    def escape(self, text: str, *, line_start: bool) -> str:
        raise NotImplementedError

    def bare_url(self, url: str) -> str:
        raise NotImplementedError


PLAIN: Final = Dialect()


# --- Markdown to dialect -----------------------------------------------------------------------


def markdown_blocks(markdown: str, dialect: Dialect) -> list[str]:
    """The announcement's top-level blocks (paragraphs, lists, quotes, code) in ``dialect``."""
    root = SyntaxTreeNode(_MARKDOWN.parse(markdown))
    rendered = (_block(node, dialect) for node in root.children)
    return [block for block in rendered if block.strip()]


def _block(node: SyntaxTreeNode, dialect: Dialect) -> str:
    kind = node.type
    if kind == "paragraph":
        return _inline(node.children[0].children, dialect, _Context())
    if kind == "heading":
        text = _inline(node.children[0].children, dialect, _Context(bold=True, nested=True))
        return dialect.heading(text) if text.strip() else ""
    if kind in ("fence", "code_block"):
        code = node.content.rstrip("\n")
        return dialect.fence(code, node.info.strip()) if code.strip() else ""
    if kind in ("bullet_list", "ordered_list"):
        return _list(node, dialect)
    if kind == "blockquote":
        body = _join_blocks(node.children, dialect, "\n\n")
        if not dialect.quote or not body:
            return body
        return "\n".join(dialect.quote + line for line in body.split("\n"))
    if kind == "hr":
        return ""
    return _join_blocks(node.children, dialect, "\n\n")


def _join_blocks(nodes: Sequence[SyntaxTreeNode], dialect: Dialect, joiner: str) -> str:
    return joiner.join(text for text in (_block(n, dialect) for n in nodes) if text.strip())


def _list(node: SyntaxTreeNode, dialect: Dialect) -> str:
    ordered = node.type == "ordered_list"
    first = int(node.attrGet("start") or 1) if ordered else 0
    # A tight list (no blank lines between items) hides its paragraphs; keep it compact.
    tight = all(
        child.hidden
        for item in node.children
        for child in item.children
        if child.type == "paragraph"
    )
    joiner = "\n" if tight else "\n\n"
    items: list[str] = []
    for number, item in enumerate(node.children, start=first):
        marker = f"{number}. " if ordered else dialect.bullet
        indent = " " * len(marker)
        lines = _join_blocks(item.children, dialect, joiner).split("\n")
        rest = "".join(f"\n{indent}{line}" if line else "\n" for line in lines[1:])
        items.append(f"{marker}{lines[0]}".rstrip() + rest)
    return joiner.join(items)


@dataclass(frozen=True, slots=True)
class _Context:
    """Where an inline run sits."""

    bold: bool = False  # inside bold (or a heading, which is rendered bold)
    in_link: bool = False  # inside a link's text, where a URL must stay plain text
    nested: bool = False  # inside emphasis or a link, so never at the start of a line


def _inline(nodes: Sequence[SyntaxTreeNode], dialect: Dialect, context: _Context) -> str:
    out: list[str] = []
    for node in nodes:
        line_start = not context.nested and (not out or out[-1].endswith("\n"))
        out.append(_inline_node(node, dialect, context, line_start=line_start))
    return "".join(out)


def _inline_node(
    node: SyntaxTreeNode, dialect: Dialect, context: _Context, *, line_start: bool
) -> str:
    kind = node.type
    inner = replace(context, nested=True)
    if kind in ("softbreak", "hardbreak"):
        return "\n"
    if kind == "code_inline":
        return dialect.code(node.content)
    if kind == "strong":
        text = _inline(node.children, dialect, replace(inner, bold=True))
        # A bold run inside a bold heading would close the heading's own markers.
        return text if context.bold else f"{dialect.strong}{text}{dialect.strong}"
    if kind == "em":
        return f"{dialect.em}{_inline(node.children, dialect, inner)}{dialect.em}"
    if kind == "s":
        return f"{dialect.strike}{_inline(node.children, dialect, inner)}{dialect.strike}"
    if kind in ("link", "image"):
        url = str(node.attrGet("href" if kind == "link" else "src") or "")
        raw = "".join(n.content for n in node.walk() if n.type == "text")
        text = _inline(node.children, dialect, replace(inner, in_link=True))
        return dialect.link(text, url, bare=_bare(raw, url)) if url else text
    if node.children:
        return _inline(node.children, dialect, inner)
    return dialect.text(node.content, line_start=line_start, in_link=context.in_link)


# --- splitting ---------------------------------------------------------------------------------

_BLOCK, _LINE, _SENTENCE, _WORD = range(4)


def utf16_length(text: str) -> int:
    """The length in UTF-16 code units: never less than in code points, so a limit that
    counts either is kept."""
    return len(text.encode("utf-16-le")) // 2


@dataclass(frozen=True, slots=True)
class _Fence:
    prefix: str  # quote markers or list indentation before the backticks
    opener: str  # the whole opening line, repeated to reopen the block in the next message


class Packer:
    """Greedy chunking of blocks into messages, each within ``limit`` by ``measure``.

    A piece that fits in the current message joins it; one that fits a message of its own
    starts the next message; one too big even for that is split one level finer (block, line,
    sentence, word) and its pieces flow on, so a message break falls at the coarsest boundary
    available. With ``flow`` off, a block too big for one message starts a new message rather
    than filling the end of the current one (chat reads better; X posts are better full).

    With ``additive`` on, the size of text joined at whitespace (or after CJK full stops) is
    taken as the sum of the sizes of its sides. That holds for X's weighting too (URLs, emoji
    and normalization never span those) and saves re-measuring the message for every word.
    """

    def __init__(
        self,
        limit: int,
        measure: Callable[[str], int],
        dialect: Dialect,
        *,
        flow: bool,
        additive: bool = True,
    ) -> None:
        self._limit = limit
        self._measure = measure
        self._fences = dialect.track_fences
        self._flow = flow
        self._additive = additive
        atoms = f"{dialect.atoms}|" if dialect.atoms else ""
        self._unit = re.compile(rf"(?:{_URL_ATOM}|{atoms}[^\s。！？])+[。！？]*[」』）]*|[。！？]+")
        self._guard = re.compile("|".join([_MENTION_OR_TAG.pattern, *dialect.guards]))
        self._sizes: dict[str, int] = {}
        self._chunks: list[str] = []
        self._text = ""
        self._size = 0
        self._has_content = False  # beyond a code fence reopened at the top
        self._fence: _Fence | None = None

    def pack(self, blocks: Sequence[str]) -> list[str]:
        for block in blocks:
            self._add(block, "\n\n", _BLOCK, "", "")
        self._flush()
        return self._chunks

    def _add(self, piece: str, sep: str, level: int, cont_prefix: str, line_prefix: str) -> None:
        """Add ``piece``, preceded by ``sep`` if it joins the current message, or by
        ``cont_prefix`` (a quote's ``> ``) if it starts a message in the middle of a line."""
        fence = self._fence_after(piece) if level == _LINE else self._fence
        if not self._has_content:
            if self._fence is not None and fence is None:
                # The fence closes right after being reopened: drop the empty block.
                self._text, self._size, self._fence = "", 0, None
                return
            if self._fence is None and not piece.strip():
                return  # no blank lines at the top of a message
        candidate = self._candidate(piece, sep, cont_prefix)
        if self._fits(candidate, fence):
            self._set(candidate, fence)
            return
        if self._has_content and self._fits(self._fresh(piece, cont_prefix), fence):
            self._flush()
            self._set(self._candidate(piece, sep, cont_prefix), fence)
            return
        if level == _WORD:
            self._cut(piece, sep, cont_prefix, line_prefix)
            return
        if level == _BLOCK and not self._flow:
            # A message should start at a paragraph, not end with the head of a long one.
            self._flush()
        if level == _LINE:
            quoted = _QUOTE_PREFIX.match(piece)
            line_prefix = self._fence.prefix if self._fence else quoted.group() if quoted else ""
        for index, (sub, sub_sep) in enumerate(self._split(piece, level)):
            if index == 0:
                self._add(sub, sep, level + 1, cont_prefix, line_prefix)
            else:
                self._add(sub, sub_sep, level + 1, line_prefix, line_prefix)

    def _split(self, piece: str, level: int) -> list[tuple[str, str]]:
        """``piece`` one level finer, each part with the whitespace that preceded it."""
        if level == _BLOCK:
            return [(line, "\n") for line in piece.split("\n")]
        spans = [[m.start(), m.end()] for m in self._unit.finditer(piece)]
        if not spans:
            return []
        spans[0][0] = 0  # keep indentation with the first part
        if level == _LINE:
            sentences = [spans[0]]
            for (start, end), (last_start, last_end) in zip(spans[1:], spans, strict=False):
                if _SENTENCE_END.search(piece, last_start, last_end):
                    sentences.append([start, end])
                else:
                    sentences[-1][1] = end
            spans = sentences
        parts: list[tuple[str, str]] = []
        previous = 0
        for start, end in spans:
            parts.append((piece[start:end], piece[previous:start]))
            previous = end
        return parts

    def _cut(self, word: str, sep: str, cont_prefix: str, line_prefix: str) -> None:
        """Hard-split a word longer than a message, preferring cuts outside entities."""
        allowed, longest_url = self._cut_points(word)
        start = 0
        while start < len(word):
            # A fitting prefix is at most `limit` long, plus whatever a URL saves on X.
            rest = word[start : start + self._limit + longest_url]
            size = self._longest_fit(rest, allowed[start:], sep, cont_prefix)
            if size == 0 and self._has_content:
                self._flush()
                continue
            if size == 0:
                # Nothing allowed fits even alone (say, a URL longer than a message): cut anyway.
                size = self._longest_fit(rest, None, sep, cont_prefix)
            if size == 0:
                raise RenderError(f"a message limit of {self._limit} cannot fit any text")
            self._set(self._candidate(word[start : start + size], sep, cont_prefix), self._fence)
            start += size
            sep, cont_prefix = "", line_prefix

    def _longest_fit(
        self, rest: str, allowed: list[bool] | None, sep: str, cont_prefix: str
    ) -> int:
        def fits(size: int) -> bool:
            return self._fits(self._candidate(rest[:size], sep, cont_prefix), self._fence)

        low, high = 0, len(rest)
        while low < high:
            middle = (low + high + 1) // 2
            if fits(middle):
                low = middle
            else:
                high = middle - 1
        # X's weighting is not monotonic (a prefix of a URL may not be a URL), so re-check.
        for size in range(low, 0, -1):
            if (allowed is None or allowed[size]) and fits(size):
                return size
        return 0

    def _cut_points(self, word: str) -> tuple[list[bool], int]:
        """Whether ``word`` may be cut before each index, and its longest URL's length."""
        allowed = [True] * (len(word) + 1)
        urls = [tuple(found["indices"]) for found in extract_urls_with_indices(word)]
        for start, end in urls + [m.span() for m in self._guard.finditer(word)]:
            for index in range(start + 1, end):
                allowed[index] = False
        for index in range(1, len(word)):
            if _joined(word[index - 1], word[index]):
                allowed[index] = False
        return allowed, max((end - start for start, end in urls), default=0)

    def _fence_after(self, line: str) -> _Fence | None:
        """The code fence open after ``line`` is added."""
        if not self._fences:
            return None
        match = _FENCE_LINE.match(line)
        if match is None:
            return self._fence
        return _Fence(match.group(1), line) if self._fence is None else None

    def _candidate(self, piece: str, sep: str, cont_prefix: str) -> tuple[str, int]:
        if self._has_content:
            return self._join((self._text, self._size), sep, piece)
        head = f"{self._text}\n" if self._text else ""
        return self._join(("", 0), head, cont_prefix, piece)

    def _fresh(self, piece: str, cont_prefix: str) -> tuple[str, int]:
        head = f"{self._fence.opener}\n" if self._fence else ""
        return self._join(("", 0), head, cont_prefix, piece)

    def _join(self, sized: tuple[str, int], *parts: str) -> tuple[str, int]:
        """``sized`` (a text and its size) with ``parts`` appended, and the result's size."""
        text, size = sized
        for part in parts:
            if not part:
                continue
            if text and not (self._additive and (_parts_apart(text[-1]) or _parts_apart(part[0]))):
                text += part
                size = self._measure(text)
            else:
                text += part
                size += self._size_of(part)
        return text, size

    def _size_of(self, text: str) -> int:
        if text not in self._sizes:
            self._sizes[text] = self._measure(text)
        return self._sizes[text]

    def _fits(self, sized: tuple[str, int], fence: _Fence | None) -> bool:
        if fence is not None:
            sized = self._join(sized, f"\n{fence.prefix}```")
        return sized[1] <= self._limit

    def _set(self, sized: tuple[str, int], fence: _Fence | None) -> None:
        (self._text, self._size), self._fence, self._has_content = sized, fence, True

    def _flush(self) -> None:
        if not self._has_content:
            return
        text = self._text
        if self._fence is not None:
            head, _, last = text.rpartition("\n")
            # A fence opened as the message's last line: leave it whole for the next message.
            text = head if last == self._fence.opener else f"{text}\n{self._fence.prefix}```"
        if text.strip():
            self._chunks.append(text.rstrip())
        self._text = self._fence.opener if self._fence else ""
        self._size = self._size_of(self._text) if self._text else 0
        self._has_content = False


def _parts_apart(char: str) -> bool:
    """Whether nothing a weighted count treats as one entity (URL, emoji) can span ``char``."""
    return char.isspace() or char in "。！？」』）"


def _joined(previous: str, char: str) -> bool:
    """Whether ``previous`` and ``char`` belong to one visible character (a rough grapheme
    test: combining marks, zero-width joiners, variation selectors, skin tones, flags)."""
    code = ord(char)
    return (
        unicodedata.category(char) in ("Mn", "Me", "Mc")
        or previous == "\u200d"
        or char == "\u200d"
        or 0xFE00 <= code <= 0xFE0F
        or 0x1F3FB <= code <= 0x1F3FF
        or 0xE0020 <= code <= 0xE007F
        or (0x1F1E6 <= code <= 0x1F1FF and 0x1F1E6 <= ord(previous) <= 0x1F1FF)
    )


# --- public API --------------------------------------------------------------------------------


def require_text(markdown: str) -> None:
    """Raise :class:`RenderError` if there is nothing to announce."""
    if not markdown.strip():
        raise RenderError("the announcement text is empty")


def render_thread(
    platform: str,
    label: str,
    markdown: str,
    *,
    limit: int,
    measure: Callable[[str], int],
    max_posts: int,
    clean: Callable[[str], str] = lambda block: block,
) -> Rendered:
    """Render an announcement as plain text posts, threaded when longer than one post.

    Args:
        platform: The platform's name (what the result is labelled with).
        label: The platform's name as staff read it in an error ("X", "Mastodon").
        markdown: The announcement in Markdown.
        limit: The most one post may count.
        measure: How the platform counts a post (its weighting, graphemes, ...); it must be
            additive across whitespace, as every platform's count here is.
        max_posts: The most posts the thread may take.
        clean: Applied to each block (e.g. removing characters the platform refuses).

    Returns:
        One post if the text fits; otherwise posts ending `` (i/n)``, each within ``limit``
        with its counter, split between paragraphs, lines, sentences, then words.

    Raises:
        RenderError: If the text is empty or needs more than ``max_posts`` posts.
    """
    require_text(markdown)
    blocks = [clean(block) for block in markdown_blocks(markdown, PLAIN)]
    text = "\n\n".join(blocks).strip()
    require_text(text)
    if measure(text) <= limit:
        return Rendered(platform, (text,))
    # Every post holds at most limit - 6 of the count, so start from the fewest digits.
    digits = len(str(-(-measure(text) // (limit - 6))))
    while True:
        # Leave room for the widest counter of this many digits, e.g. " (99/99)"; being ASCII
        # after a space, it adds exactly its length to the count.
        room = limit - len(f" ({'9' * digits}/{'9' * digits})")
        bodies = _thread_bodies(blocks, room, measure, additive=True)
        if any(measure(body) > room for body in bodies):
            bodies = _thread_bodies(blocks, room, measure, additive=False)  # a safety net
        if len(bodies) < 10**digits:
            break
        digits += 1
    if len(bodies) > max_posts:
        raise RenderError(
            f"too long for {label}: needs {len(bodies)} posts, the limit is {max_posts}"
        )
    total = len(bodies)
    posts = tuple(f"{body} ({i}/{total})" for i, body in enumerate(bodies, start=1))
    return Rendered(platform, posts)


def _thread_bodies(
    blocks: Sequence[str], room: int, measure: Callable[[str], int], *, additive: bool
) -> list[str]:
    packer = Packer(room, measure, PLAIN, flow=True, additive=additive)
    return [body.strip() for body in packer.pack(blocks)]


class Renderer(Protocol):
    """A platform's rendering rule (see ``adapters.base.PlatformRules``)."""

    name: str

    def render(self, markdown: str, *, max_parts: int) -> Rendered:
        """What the platform posts for ``markdown``; raises RenderError if it cannot."""
        ...


def render_for(
    rules: Renderer | None,
    platform: str,
    markdown: str,
    *,
    override: str | None = None,
    max_parts: int = 25,
) -> Rendered:
    """Render an announcement for one platform.

    Args:
        rules: The platform's rules; None for a platform without any (the console, the
            in-memory adapter), which gets the Markdown source as is, in one part.
        platform: The platform's name (what the result is labelled with).
        markdown: The announcement in Markdown.
        override: Text written for this platform only; when given (and not blank) it is
            rendered instead of ``markdown``, by the same rules.
        max_parts: The most messages or posts the announcement may take.

    Raises:
        RenderError: If the text is empty or too long for the platform.
    """
    source = override if override is not None and override.strip() else markdown
    if rules is None:
        require_text(source)
        return Rendered(platform, (source,))
    require_text(source)
    return rules.render(source, max_parts=max_parts)
