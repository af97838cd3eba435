"""Per-platform rendering of one Markdown announcement."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.discord.rules import render_discord
from adapters.registry import SUPPORTED
from adapters.slack.rules import render_slack
from adapters.x.rules import render_x_thread, x_weighted_length
from announcements.render import Rendered, RenderError, render_for

SAMPLE = """# Big news

**PyTorch** joins the *PyTorch Foundation*: read [the post](https://example.org/p).

- open
- neutral

Use `torch.compile` as before:

```python
model = torch.compile(model)
```"""

COUNTER = re.compile(r" \((\d+)/(\d+)\)$")


def render(
    platform: str, markdown: str, *, override: str | None = None, max_parts: int = 25
) -> Rendered:
    """What ``platform`` gets, by its rules in the adapter registry."""
    return render_for(
        SUPPORTED.get(platform), platform, markdown, override=override, max_parts=max_parts
    )


def bodies(parts: tuple[str, ...]) -> list[str]:
    """X posts without their thread counters."""
    return [COUNTER.sub("", p) for p in parts] if len(parts) > 1 else list(parts)


def fence_lines(text: str) -> int:
    return sum(1 for line in text.split("\n") if line.lstrip("> ").startswith("```"))


MORE = """1. First, see https://example.org/a_b?x=1&y=2
2. Second\\
   with a break

> Quoted **words**
> and a second line"""


@pytest.mark.parametrize(
    ("platform", "expected"),
    [
        (
            "slack",
            "1. First, see <https://example.org/a_b?x=1&amp;y=2>\n2. Second\n   with a break\n\n"
            "> Quoted *words*\n> and a second line",
        ),
        (
            "discord",
            "1. First, see https://example.org/a_b?x=1&y=2\n2. Second\n   with a break\n\n"
            "> Quoted **words**\n> and a second line",
        ),
        (
            "x",
            "1. First, see https://example.org/a_b?x=1&y=2\n2. Second\n   with a break\n\n"
            "Quoted words\nand a second line",
        ),
    ],
)
def test_numbered_lists_line_breaks_quotes_and_bare_urls(platform: str, expected: str) -> None:
    assert render(platform, MORE).parts == (expected,)


# --- Slack ---------------------------------------------------------------------------------------


def test_slack_mrkdwn_and_one_section() -> None:
    rendered = render_slack(SAMPLE)
    assert rendered.parts == (
        "*Big news*\n\n"
        "*PyTorch* joins the _PyTorch Foundation_: read <https://example.org/p|the post>.\n\n"
        "• open\n• neutral\n\n"
        "Use `torch.compile` as before:\n\n"
        "```\nmodel = torch.compile(model)\n```",
    )
    assert rendered.blocks == (
        {"type": "section", "text": {"type": "mrkdwn", "text": rendered.parts[0]}},
    )


def test_slack_escapes_its_control_characters() -> None:
    text = render_slack("Tom & Jerry <script>alert(1)</script> `a<b`").parts[0]
    assert text == "Tom &amp; Jerry &lt;script&gt;alert(1)&lt;/script&gt; `a&lt;b`"
    link = render_slack("[Q&A](https://example.org/?a=1&b=2) and https://example.org/x?c=3&d=4")
    assert link.parts[0] == (
        "<https://example.org/?a=1&amp;b=2|Q&amp;A> and <https://example.org/x?c=3&amp;d=4>"
    )


def test_slack_splits_long_text_into_sections_at_paragraphs() -> None:
    paragraphs = [f"Paragraph {i}: " + "word " * 150 for i in range(12)]
    rendered = render_slack("\n\n".join(paragraphs))
    sections = [b["text"]["text"] for b in rendered.blocks]
    assert len(sections) > 1
    assert all(b["type"] == "section" and b["text"]["type"] == "mrkdwn" for b in rendered.blocks)
    assert all(len(s) <= 3000 for s in sections)
    # Whole paragraphs only, and the fallback text is all of them.
    assert [p for s in sections for p in s.split("\n\n")] == [p.strip() for p in paragraphs]
    assert rendered.parts == ("\n\n".join(p.strip() for p in paragraphs),)


def test_slack_refuses_more_than_50_blocks() -> None:
    with pytest.raises(RenderError, match=r"too long for Slack: needs 5[0-9] blocks"):
        render_slack("\n\n".join("word " * 590 for _ in range(55)))


# --- Discord -------------------------------------------------------------------------------------


def test_discord_markdown() -> None:
    assert render_discord(SAMPLE).parts == (
        "**Big news**\n\n"
        "**PyTorch** joins the *PyTorch Foundation*: read [the post](https://example.org/p).\n\n"
        "- open\n- neutral\n\n"
        "Use `torch.compile` as before:\n\n"
        "```python\nmodel = torch.compile(model)\n```",
    )


def test_discord_escapes_markdown_typed_as_text() -> None:
    text = render_discord("1\\. a \\*star\\* and snake_case\n\n\\# not a heading").parts[0]
    assert text == "1\\. a \\*star\\* and snake\\_case\n\n\\# not a heading"


def test_discord_splits_5000_characters_cleanly() -> None:
    url = "https://example.org/a/long/path/" + "x" * 40
    paragraphs = [
        f"Paragraph {i} links {url} and then says a few more words about it. " * 4
        for i in range(10)
    ]
    code = "```python\n" + "\n".join(f"value_{i} = {i}" for i in range(160)) + "\n```"
    source = "\n\n".join([*paragraphs[:5], code, *paragraphs[5:]])
    assert len(source) > 5000
    parts = render_discord(source).parts
    assert len(parts) >= 3
    assert all(len(p) <= 2000 for p in parts)
    assert all(fence_lines(p) % 2 == 0 for p in parts)  # every message closes its code block
    assert sum(p.count(url) for p in parts) == 40  # no URL was cut
    words = [w for p in parts for w in p.split() if not w.startswith("```")]
    assert words == [w for w in source.split() if not w.startswith("```")]


def test_discord_closes_and_reopens_a_split_code_block() -> None:
    code = "\n".join(f"line_{i:03} = {i}" for i in range(200))
    parts = render_discord(f"Intro.\n\n```python\n{code}\n```\n\nOutro.").parts
    # The block is too big for one message, so it starts a message of its own.
    assert len(parts) == 3
    assert parts[0] == "Intro."
    assert parts[1].startswith("```python\nline_000 = 0\n")
    assert parts[1].endswith("\n```")
    assert parts[2].startswith("```python\nline_")
    assert parts[2].endswith("line_199 = 199\n```\n\nOutro.")
    assert all(len(p) <= 2000 for p in parts)
    lines = [line for p in parts for line in p.split("\n") if line.startswith("line_")]
    assert lines == code.split("\n")


def test_discord_prefers_paragraph_then_sentence_boundaries() -> None:
    first, second = "A" * 900, "B" * 900
    sentences = " ".join(f"Sentence {i} is here." for i in range(150))  # about 3,000 chars
    parts = render_discord(f"{first}\n\n{second}\n\n{sentences}").parts
    assert parts[0] == f"{first}\n\n{second}"
    assert all(p.endswith("here.") for p in parts[1:])
    assert " ".join(parts[1:]) == sentences


# --- X -------------------------------------------------------------------------------------------


def test_x_plain_text() -> None:
    assert render("x", SAMPLE).parts == (
        "Big news\n\n"
        "PyTorch joins the PyTorch Foundation: read the post (https://example.org/p).\n\n"
        "• open\n• neutral\n\n"
        "Use torch.compile as before:\n\n"
        "model = torch.compile(model)",
    )
    assert render_x_thread("See [https://example.org](https://example.org)").parts == (
        "See https://example.org",
    )


def test_x_weighting_comes_from_twitter_text() -> None:
    long_url = "https://example.org/" + "a" * 300
    assert x_weighted_length(long_url) == 23
    assert x_weighted_length(f"see {long_url}") == 4 + 23
    assert x_weighted_length("你好") == 4
    assert x_weighted_length("🙂") == 2
    assert render_x_thread(f"A long link still fits one post: {long_url}").parts == (
        f"A long link still fits one post: {long_url}",
    )


def test_x_700_characters_become_a_numbered_thread() -> None:
    text = " ".join(f"Sentence {i} explains the foundation move in detail." for i in range(13))
    assert 650 < len(text) < 750
    parts = render_x_thread(text).parts
    assert [p[-6:] for p in parts] == [" (1/3)", " (2/3)", " (3/3)"]
    assert all(x_weighted_length(p) <= 280 for p in parts)
    assert all(body.endswith("detail.") for body in bodies(parts))  # split at sentences
    assert " ".join(bodies(parts)) == text


def test_wide_characters_count_double_so_they_thread_earlier() -> None:
    assert render_x_thread("a" * 200).parts == ("a" * 200,)
    wide = render_x_thread("你" * 200).parts
    assert len(wide) == 2
    assert all(x_weighted_length(p) <= 280 for p in wide)
    assert "".join(bodies(wide)) == "你" * 200


def test_x_never_splits_urls_mentions_or_hashtags() -> None:
    words = [f"@user{i} #tag{i} https://example.org/{i}/{'x' * 40}" for i in range(40)]
    parts = render_x_thread(" ".join(words)).parts
    assert len(parts) > 1
    assert all(x_weighted_length(p) <= 280 for p in parts)
    assert [w for b in bodies(parts) for w in b.split()] == " ".join(words).split()


def test_x_hard_splits_only_a_word_longer_than_a_post() -> None:
    url = f"https://example.org/{'p' * 50}"
    word = "x" * 400
    parts = render_x_thread(f"Before {url} {word} after").parts
    assert len(parts) == 2
    assert all(x_weighted_length(p) <= 280 for p in parts)
    assert bodies(parts)[0].startswith(f"Before {url} xxx")  # the cut fills the first post
    words = [w for b in bodies(parts) for w in b.split()]
    assert words[:2] == ["Before", url]
    assert "".join(words[2:]) == word + "after"


# --- dispatch, overrides, limits -----------------------------------------------------------------


def test_overrides_win_and_go_through_the_platform_rules() -> None:
    assert render("x", "long text " * 100, override="Short **for** X").parts == ("Short for X",)
    assert render("slack", "main", override="*Slack* only").parts == ("_Slack_ only",)
    assert render("slack", "main", override="  ").parts == ("main",)


def test_limits_raise_render_error_with_a_reason() -> None:
    with pytest.raises(RenderError, match=r"^too long for X: needs \d+ posts, the limit is 5$"):
        render("x", "word " * 3000, max_parts=5)
    with pytest.raises(RenderError, match=r"^too long for Discord: needs \d+ messages, the limit"):
        render("discord", "word " * 3000, max_parts=2)
    assert len(render("x", "word " * 3000, max_parts=100).parts) > 25
    with pytest.raises(RenderError, match=r"^the announcement text is empty$"):
        render("slack", " \n ")
    with pytest.raises(RenderError, match="empty"):
        render("console", "")


def test_console_and_unknown_platforms_get_the_source() -> None:
    assert render("console", SAMPLE) == Rendered("console", (SAMPLE,))
    assert render("memory", SAMPLE).parts == (SAMPLE,)


# --- properties ----------------------------------------------------------------------------------


def assert_valid_thread(parts: tuple[str, ...]) -> None:
    assert parts
    assert all(x_weighted_length(p) <= 280 for p in parts)
    if len(parts) > 1:
        counters = [COUNTER.search(p) for p in parts]
        assert [(m.group(1), m.group(2)) if m else None for m in counters] == [
            (str(i), str(len(parts))) for i in range(1, len(parts) + 1)
        ]


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=2000))
def test_x_thread_property_any_text(text: str) -> None:
    """Whatever is typed: only RenderError, and every post fits with its counter."""
    try:
        parts = render_x_thread(text, max_posts=1000).parts
    except RenderError:
        return
    assert_valid_thread(parts)


prose = st.text(
    alphabet=st.one_of(
        st.characters(categories=["L"]),
        st.sampled_from(" \n.!?,🙂"),
    ),
    max_size=3000,
)


@settings(max_examples=200, deadline=None)
@given(prose)
def test_x_thread_property_prose_keeps_every_word(text: str) -> None:
    """Text without Markdown syntax comes back whole, in order; only a word longer than a post
    is cut."""
    try:
        parts = render_x_thread(text, max_posts=1000).parts
    except RenderError:
        assert not text.strip()
        return
    assert_valid_thread(parts)
    words = [w for b in bodies(parts) for w in b.split()]
    assert "".join(words) == "".join(text.split())
    for word in text.split():
        if x_weighted_length(word) <= 250:
            assert word in words


word = st.one_of(
    st.text(alphabet=st.characters(categories=("L", "N")), min_size=1, max_size=30),
    st.builds(
        lambda path: f"https://example.org/{path}",
        st.from_regex(r"[a-z0-9/]{0,80}", fullmatch=True),
    ),
    st.builds(
        lambda name: f"@{name}", st.from_regex(r"[A-Za-z][A-Za-z0-9_]{0,14}", fullmatch=True)
    ),
    st.builds(lambda name: f"#{name}", st.from_regex(r"[A-Za-z]\w{0,20}", fullmatch=True)),
    st.sampled_from(["end.", "Done!", "Really?", "你好", "🙂", "🇫🇷", "日本語のテキスト。"]),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(word, min_size=1, max_size=200).map(" ".join))
def test_x_thread_property_sentences_keep_words_urls_and_entities(text: str) -> None:
    """Words, URLs, @mentions and #hashtags all come back whole and in order."""
    parts = render_x_thread(text, max_posts=1000).parts
    assert_valid_thread(parts)
    assert [w for b in bodies(parts) for w in b.split()] == text.split()
