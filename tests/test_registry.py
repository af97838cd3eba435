"""The adapter registry: every platform declares its rules; the core asks for capabilities."""

from __future__ import annotations

import pytest

from adapters import registry
from adapters.base import CommandSync, MentionSource, MetricsSource, Reconciler, WebRoutes
from adapters.memory import MemoryAdapter
from announcements.render import RenderError, render_for
from bot.config import Settings
from bot.events import Author
from bot.platforms import ANNOUNCE_TARGETS, CHAT_PLATFORMS

LONG = " ".join(f"Sentence {i} explains one more detail of the foundation move." for i in range(60))


@pytest.mark.parametrize("name", sorted(registry.SUPPORTED))
def test_every_platform_declares_limits_rendering_links_and_staff(name: str) -> None:
    rules = registry.SUPPORTED[name]
    assert rules.name == name
    limits = rules.limits
    assert limits.post_length > 0 and limits.count("abc") == 3
    rendered = render_for(rules, name, LONG, max_parts=25)
    assert rendered.platform == name
    if limits.threads_long_posts:
        # A thread: every part within the limit as the platform counts it, numbered.
        assert len(rendered.parts) > 1
        assert all(limits.count(p) <= limits.post_length for p in rendered.parts)
        assert rendered.parts[-1].endswith(f"({len(rendered.parts)}/{len(rendered.parts)})")
        with pytest.raises(RenderError, match="too long"):
            render_for(rules, name, LONG, max_parts=1)
    with pytest.raises(RenderError, match="empty"):
        render_for(rules, name, "   ", max_parts=25)
    assert isinstance(rules.is_staff(Author("nobody"), Settings().staff), bool)


def test_a_platform_without_rules_gets_the_source_and_no_link() -> None:
    assert render_for(None, "memory", "**hi**").parts == ("**hi**",)
    assert registry.message_link("memory", "C1", "1") is None
    assert registry.message_link("x", "timeline", "123") == "https://x.com/i/web/status/123"
    assert registry.message_link("slack", "C1", "1700000000.000100") == (
        "https://slack.com/archives/C1/p1700000000000100"
    )


def test_capabilities_are_protocols_not_names() -> None:
    plain = MemoryAdapter("slack")  # a platform's name gives it no capability
    for capability in (WebRoutes, MentionSource, MetricsSource, CommandSync, Reconciler):
        assert not isinstance(plain, capability)


def test_the_configuration_enables_adapters_by_section() -> None:
    settings = Settings.model_validate(
        {"mastodon": {"enabled": True, "api_url": "https://m.example"}, "x": {"enabled": True}}
    )
    assert registry.enabled_platforms(settings) == ["x", "mastodon"]
    plans = registry.polling_plans(settings)
    assert set(plans) >= {"x", "mastodon", "bluesky"}
    assert registry.max_parts(settings)["x"] == settings.announcements.max_x_posts


def test_the_registry_and_the_configuration_know_the_same_platforms() -> None:
    assert set(registry.SUPPORTED) == set(ANNOUNCE_TARGETS)
    assert set(registry.platform_names()) == set(CHAT_PLATFORMS)
