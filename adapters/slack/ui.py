"""Block Kit built by the adapter: answer buttons, suggestion buttons, the announcement form.

Pure functions from the core's values to Slack's JSON, and back for a submitted form; nothing
here calls Slack.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from adapters.slack.rules import SLACK_SECTION_LIMIT as SECTION_LIMIT
from bot.events import Choice

MODAL_CALLBACK = "announce_schedule"
#: A button's label is at most 75 characters.
BUTTON_LABEL_LIMIT = 75
#: An actions block holds at most 25 elements.
ACTIONS_LIMIT = 25
FEEDBACK_UP = "feedback_up"
FEEDBACK_DOWN = "feedback_down"
FEEDBACK_ESCALATE = "feedback_escalate"
#: Action ids of suggestion buttons: ``choice_0``, ``choice_1``… (unique within the block,
#: as Slack requires); the button's value is the choice's token.
CHOICE_PREFIX = "choice_"
CHOICES_BLOCK = "choices"


def section(text: str) -> dict[str, Any]:
    """A text section (cut at Slack's limit; the message's ``text`` keeps it whole)."""
    return {"type": "section", "text": {"type": "mrkdwn", "text": text[:SECTION_LIMIT]}}


def button(action_id: str, value: str, label: str, *, emoji: bool = False) -> dict[str, Any]:
    """A button carrying ``value`` back in its click."""
    text: dict[str, Any] = {"type": "plain_text", "text": shorten(label, BUTTON_LABEL_LIMIT)}
    if emoji:
        text["emoji"] = True
    return {"type": "button", "action_id": action_id, "value": value, "text": text}


def shorten(text: str, limit: int) -> str:
    """``text`` on one line, at most ``limit`` characters (an ellipsis marks a cut)."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def feedback_buttons(token: str) -> dict[str, Any]:
    """The 👍/👎 buttons carrying the feedback token."""
    return {
        "type": "actions",
        "block_id": "feedback",
        "elements": [
            button(FEEDBACK_UP, token, "👍 Helpful", emoji=True),
            button(FEEDBACK_DOWN, token, "👎 Not helpful", emoji=True),
        ],
    }


def feedback_blocks(text: str, token: str) -> list[dict[str, Any]]:
    """The answer as a section plus 👍/👎 buttons carrying the feedback token."""
    return [section(text), feedback_buttons(token)]


def escalation_blocks(text: str, token: str) -> list[dict[str, Any]]:
    """The thumbs-down acknowledgement with an "ask a moderator" button."""
    return [
        section(text),
        {
            "type": "actions",
            "block_id": "escalate",
            "elements": [button(FEEDBACK_ESCALATE, token, "Ask a moderator")],
        },
    ]


def choice_buttons(choices: Sequence[Choice]) -> dict[str, Any]:
    """One button per suggestion (at most 25), its value the choice's token."""
    return {
        "type": "actions",
        "block_id": CHOICES_BLOCK,
        "elements": [
            button(f"{CHOICE_PREFIX}{index}", choice.token, choice.label)
            for index, choice in enumerate(choices[:ACTIONS_LIMIT])
        ],
    }


def message_blocks(
    text: str,
    *,
    feedback_token: str | None = None,
    choices: Sequence[Choice] = (),
    blocks: Sequence[dict[str, Any]] = (),
) -> list[dict[str, Any]] | None:
    """The blocks of a message: the given layout or the text, then its buttons; None if the
    message is plain text."""
    if not (feedback_token or choices):
        return list(blocks) or None
    found = list(blocks) or [section(text)]
    if choices:
        found.append(choice_buttons(choices))
    if feedback_token:
        found.append(feedback_buttons(feedback_token))
    return found


def announce_modal(channel: str, response_url: str | None = None) -> dict[str, Any]:
    """The ``/announce schedule`` form: text, time, zone and platforms.

    The command's channel and response URL ride along in ``private_metadata``: the
    confirmation goes back through the response URL, which works in channels the bot is not
    a member of (``chat.postEphemeral`` does not).
    """

    def field(
        block_id: str,
        label: str,
        placeholder: str,
        *,
        multiline: bool = False,
        optional: bool = False,
    ) -> dict[str, Any]:
        return {
            "type": "input",
            "block_id": block_id,
            "optional": optional,
            "label": {"type": "plain_text", "text": label},
            "element": {
                "type": "plain_text_input",
                "action_id": "value",
                "multiline": multiline,
                "placeholder": {"type": "plain_text", "text": placeholder},
            },
        }

    return {
        "type": "modal",
        "callback_id": MODAL_CALLBACK,
        "private_metadata": json.dumps({"channel": channel, "response_url": response_url}),
        "title": {"type": "plain_text", "text": "Schedule announcement"},
        "submit": {"type": "plain_text", "text": "Schedule"},
        "blocks": [
            field(
                "text", "Announcement (Markdown)", "The PyTorch Foundation is live!", multiline=True
            ),
            field("at", "When", "tomorrow 9am, in 2 hours, 2026-12-01T09:00"),
            field("tz", "Time zone", "Europe/Berlin (default: yours)", optional=True),
            field("to", "Platforms", "slack,discord,x (default: all)", optional=True),
        ],
    }


def modal_origin(private_metadata: str) -> tuple[str, str | None]:
    """The command's channel and response URL a submitted modal carries.

    A bare channel id (modals opened before the response URL was kept) has no response URL.
    """
    try:
        data = json.loads(private_metadata)
    except ValueError:
        return private_metadata, None
    if not isinstance(data, dict):
        return private_metadata, None
    return str(data.get("channel") or ""), (str(data.get("response_url") or "") or None)


def modal_command(values: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> str:
    """The ``/announce`` text a submitted modal stands for."""

    def value(block: str) -> str:
        return str((values.get(block, {}).get("value", {}) or {}).get("value") or "").strip()

    parts = ["schedule", "--at", _quote(value("at"))]
    if value("tz"):
        parts += ["--tz", value("tz").split()[0]]
    if value("to"):
        parts += ["--to", value("to").replace(" ", "")]
    parts.append(value("text"))
    return " ".join(parts)


def _quote(text: str) -> str:
    return f'"{text.replace(chr(34), "")}"'
