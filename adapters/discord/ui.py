"""Discord's message components: answer feedback buttons, suggestion buttons, the announcement
form.

Buttons are *dynamic items*: matched by a ``custom_id`` template rather than by a view kept in
memory, so a click on a message posted before a restart still reaches the bot.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import discord

from bot.events import Choice

#: custom_id of the answer buttons: the vote and the core's feedback token.
FEEDBACK_TEMPLATE = r"fb:(?P<vote>up|down|mod):(?P<token>[0-9A-Za-z_-]{1,80})"
#: custom_id of a suggestion button: ``c:`` and the choice's opaque token.
CHOICE_PREFIX = "c:"
CHOICE_TEMPLATE = CHOICE_PREFIX + r"(?P<token>.+)"
#: Discord's limits: a custom_id, a button label, and the components of one message.
CUSTOM_ID_LIMIT = 100
LABEL_LIMIT = 80
COMPONENTS_LIMIT = 25
#: The most suggestion buttons on one message, leaving room for the two feedback buttons.
MAX_CHOICES = COMPONENTS_LIMIT - 5

Button = discord.ui.DynamicItem[discord.ui.Button[Any]]
Vote = Callable[[discord.Interaction[discord.Client], str, str], Awaitable[None]]
Pick = Callable[[discord.Interaction[discord.Client], str], Awaitable[None]]
Submit = Callable[[discord.Interaction[discord.Client], str], Awaitable[None]]


def shorten(text: str, limit: int = LABEL_LIMIT) -> str:
    """``text`` on one line, at most ``limit`` characters (an ellipsis marks a cut)."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def fits_custom_id(token: str) -> bool:
    """Whether a choice's token fits in a button's custom_id with its prefix."""
    return 0 < len(CHOICE_PREFIX + token) <= CUSTOM_ID_LIMIT


class Buttons:
    """The button classes, bound to the adapter's click handlers, and their constructors.

    Register :attr:`classes` with ``Client.add_dynamic_items`` once per client.
    """

    def __init__(self, on_vote: Vote, on_pick: Pick) -> None:
        class FeedbackButton(
            discord.ui.DynamicItem[discord.ui.Button[Any]], template=FEEDBACK_TEMPLATE
        ):
            def __init__(self, vote: str, token: str) -> None:
                label, emoji, style = {
                    "up": ("Helpful", "👍", discord.ButtonStyle.secondary),
                    "down": ("Not helpful", "👎", discord.ButtonStyle.secondary),
                    "mod": ("Ask a moderator", None, discord.ButtonStyle.primary),
                }[vote]
                super().__init__(
                    discord.ui.Button(
                        label=label, emoji=emoji, style=style, custom_id=f"fb:{vote}:{token}"
                    )
                )
                self.vote = vote
                self.token = token

            @classmethod
            async def from_custom_id(
                cls,
                interaction: discord.Interaction[Any],
                item: discord.ui.Item[Any],
                match: re.Match[str],
                /,
            ) -> FeedbackButton:
                return cls(match["vote"], match["token"])

            async def callback(self, interaction: discord.Interaction[Any]) -> None:
                await on_vote(interaction, self.vote, self.token)

        class ChoiceButton(
            discord.ui.DynamicItem[discord.ui.Button[Any]],
            template=re.compile(CHOICE_TEMPLATE, re.DOTALL),
        ):
            def __init__(self, token: str, label: str = "…") -> None:
                super().__init__(
                    discord.ui.Button(
                        label=shorten(label) or "…",
                        style=discord.ButtonStyle.secondary,
                        custom_id=CHOICE_PREFIX + token,
                    )
                )
                self.token = token

            @classmethod
            async def from_custom_id(
                cls,
                interaction: discord.Interaction[Any],
                item: discord.ui.Item[Any],
                match: re.Match[str],
                /,
            ) -> ChoiceButton:
                return cls(match["token"])

            async def callback(self, interaction: discord.Interaction[Any]) -> None:
                await on_pick(interaction, self.token)

        self.classes: tuple[type[Button], ...] = (FeedbackButton, ChoiceButton)
        self._feedback = FeedbackButton
        self._choice = ChoiceButton

    def feedback(self, vote: str, token: str) -> Button:
        """A 👍 (``up``), 👎 (``down``) or "ask a moderator" (``mod``) button."""
        return self._feedback(vote, token)

    def choice(self, choice: Choice) -> Button:
        """A suggestion's button; its click hands the token back."""
        return self._choice(choice.token, choice.label)

    def view(
        self,
        *,
        feedback_token: str | None = None,
        escalation_token: str | None = None,
        choices: Sequence[Choice] = (),
    ) -> discord.ui.View | None:
        """The buttons a message carries, or None if it has none."""
        if not (feedback_token or escalation_token or choices):
            return None
        view = discord.ui.View(timeout=None)
        for choice in choices[:MAX_CHOICES]:
            view.add_item(self.choice(choice))
        if feedback_token:
            view.add_item(self.feedback("up", feedback_token))
            view.add_item(self.feedback("down", feedback_token))
        if escalation_token:
            view.add_item(self.feedback("mod", escalation_token))
        return view


class AnnounceModal(discord.ui.Modal, title="Announcement"):
    """The announcement text, asked for when ``/announce schedule|now`` has no ``text``."""

    text: discord.ui.TextInput[AnnounceModal] = discord.ui.TextInput(
        label="Announcement (Markdown)",
        style=discord.TextStyle.paragraph,
        placeholder="The PyTorch Foundation is live!",
        max_length=4000,
    )

    def __init__(self, on_text: Submit) -> None:
        super().__init__(timeout=900)
        self._on_text = on_text

    async def on_submit(self, interaction: discord.Interaction[Any]) -> None:
        await self._on_text(interaction, self.text.value)
