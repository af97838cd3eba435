"""The platforms the bot knows, named once.

Config tables keyed by platform (``announcements.daily_quota``, ``default_targets``,
``discussion``), ``/announce --to``, the per-platform ``--x-text`` options and the filters of
``foundation-bot logs`` all take their lists from here, so a new adapter is one line here
(and its rules and builder in ``adapters/registry.py``, which a test keeps in step).
"""

from __future__ import annotations

#: Chat platforms with an adapter of their own: announcement targets and config keys.
CHAT_PLATFORMS = ("slack", "discord", "x", "mastodon", "bluesky")
#: The terminal chat (an announcement target while it runs) and the command line (``ask``).
LOCAL_PLATFORMS = ("console", "cli")
#: Where announcements can be sent.
ANNOUNCE_TARGETS = (*CHAT_PLATFORMS, "console")
#: Every value of the engagement log's platform column.
LOGGED_PLATFORMS = CHAT_PLATFORMS + LOCAL_PLATFORMS
