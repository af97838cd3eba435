"""Per-platform rendering of one Markdown announcement."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from announcements.render import (
    RenderError,
    render,
    render_discord,
    render_slack,
    render_x_thread,
    x_weighted_length,
)

SAMPLE = (
    "**PyTorch** joins the *PyTorch Foundation*: read [the post](https://example.org/p).\n\n"
    "- open\n- neutral\n\nUse `torch.compile` as before."
)


def test_slack_mrkdwn_and_blocks() -> None:
    rendered = render_slack(SAMPLE)
    assert rendered.parts == (
        "*PyTorch* joins the _PyTorch Foundation_: read <https://example.org/p|the post>.\n\n"
        "• open\n• neutral\n\nUse `torch.compile` as before.",
    )
    assert rendered.blocks == (
        {"type": "section", "text": {"type": "mrkdwn", "text": rendered.parts[0]}},
    )


def test_slack_escapes_markup() -> None:
    text = render_slack("Tom & Jerry <script>alert(1)</script>").parts[0]
    assert text == "Tom &amp; Jerry &lt;script&gt;alert(1)&lt;/script&gt;"


def test_discord_markdown() -> None:
    assert render_discord(SAMPLE).parts == (
        "**PyTorch** joins the *PyTorch Foundation*: read [the post](https://example.org/p).\n\n"
        "- open\n- neutral\n\nUse `torch.compile` as before.",
    )


def test_discord_splits_long_text_cleanly() -> None:
    url = "https://example.org/" + "a" * 60
    paragraphs = [f"Paragraph {i} mentions {url} and more words here." * 6 for i in range(12)]
    code = "```python\n" + "\n".join(f"x_{i} = {i}" for i in range(250)) + "\n```"
    rendered = render_discord("\n\n".join(paragraphs) + "\n\n" + code)
    assert len(rendered.parts) > 2
    assert all(len(p) <= 2000 for p in rendered.parts)
    for part in rendered.parts:
        assert part.count("```") % 2 == 0  # no fence left open
    joined = " ".join(rendered.parts)
    assert joined.count(url) == 12 * 6  # no URL was cut
    assert "x_249 = 249" in joined


def test_x_plain_text_counts_urls_as_23_and_wide_chars_as_2() -> None:
    assert x_weighted_length("see https://example.org/" + "a" * 200) == 4 + 23
    assert x_weighted_length("你好") == 4
    assert render("x", SAMPLE).parts == (
        "PyTorch joins the PyTorch Foundation: read the post (https://example.org/p).\n\n"
        "• open\n• neutral\n\nUse torch.compile as before.",
    )


def test_x_long_text_becomes_numbered_thread() -> None:
    text = " ".join(f"Sentence {i} explains the foundation move in some detail." for i in range(12))
    parts = render_x_thread(text).parts
    assert len(parts) == 3
    assert [p[-5:] for p in parts] == ["(1/3)", "(2/3)", "(3/3)"]
    assert all(x_weighted_length(p) <= 280 for p in parts)
    assert all(re.search(r"detail\. \(\d/3\)$", p) for p in parts)  # split at sentences


def test_wide_characters_thread_earlier() -> None:
    latin = render_x_thread("a" * 200).parts
    wide = render_x_thread("你" * 200).parts
    assert len(latin) == 1 and len(wide) == 2


def test_x_never_splits_urls_mentions_or_hashtags() -> None:
    words = [f"@user{i} #tag{i} https://example.org/{i}/{'x' * 40}" for i in range(40)]
    parts = render_x_thread(" ".join(words)).parts
    tokens = [t for p in parts for t in re.sub(r" \(\d+/\d+\)$", "", p).split()]
    assert tokens == " ".join(words).split()


def test_overrides_win_and_limits_raise() -> None:
    assert render("x", "long text", override="Short for X").parts == ("Short for X",)
    assert render("slack", "main", override="  ").parts == ("main",)
    with pytest.raises(RenderError, match="too long for X: needs"):
        render("x", "word " * 3000, max_x_posts=5)
    with pytest.raises(RenderError, match="too long for Discord"):
        render("discord", "word " * 3000, max_discord_messages=2)
    with pytest.raises(RenderError, match="empty"):
        render("slack", " \n ")


def test_console_gets_the_source() -> None:
    assert render("console", SAMPLE).parts == (SAMPLE,)


word = st.one_of(
    st.text(alphabet=st.characters(categories=("L", "N")), min_size=1, max_size=30),
    st.sampled_from(
        [
            "https://example.org/some/long/path",
            "@pytorch",
            "#PyTorchFoundation",
            "end.",
            "你好",
            "🙂",
            "Done!",
        ]
    ),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(word, min_size=1, max_size=150).map(" ".join))
def test_x_thread_property(text: str) -> None:
    """Every post fits, and the words come back whole and in order, counters aside."""
    try:
        parts = render_x_thread(text).parts
    except RenderError:
        return
    assert all(x_weighted_length(p) <= 280 for p in parts)
    bodies = [re.sub(r" \(\d+/\d+\)$", "", p) if len(parts) > 1 else p for p in parts]
    words = [w for body in bodies for w in body.split()]
    if words == text.split():
        return
    # Only a single word longer than a post may be cut, and then it is re-joinable.
    assert "".join(words) == "".join(text.split())
