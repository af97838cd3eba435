"""One bot process of the reliability suite: the real Runtime with the real Slack (HTTP mode),
Discord and X adapters, pointed at fake platforms (through chaos proxies) on 127.0.0.1.

Usage: python -m tests.reliability.worker '<json settings>'
The JSON holds ``database``, ``slack_api``, ``x_api``, ``discord_api``, ``discord_gateway``,
``shard`` / ``shards`` (this process's Discord shard of how many) and optional
``announcements`` / ``answering`` overrides. Prints ``ready PORT`` (the web server's port,
where Slack events go) once started, then serves until SIGTERM or SIGKILL.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from typing import Any

from adapters.discord import DiscordAdapter
from adapters.slack import SlackAdapter
from adapters.x import XAdapter
from bot.config import Config, Settings
from bot.runtime import Runtime
from tests.fakes.discord_api import NEWS
from tests.fakes.x_api import ACCESS_TOKEN, ACCESS_TOKEN_SECRET, API_KEY, API_SECRET

SIGNING_SECRET = "reliability-secret"
SLACK_CHANNEL = "C-news"
X_TIMELINE = "timeline"
DISCORD_CHANNEL = NEWS
DISCORD_TOKEN = "discord-reliability-token"
#: The Slack user who types staff commands (``/announce retry``) in the tests.
STAFF_USER = "U-reliability-staff"


def build(spec: dict[str, Any]) -> Runtime:
    settings = Settings.model_validate(
        {
            "database": {"url": spec["database"]},
            "web": {"enabled": True, "port": 0},
            "staff": {"slack_users": [STAFF_USER]},
            "answering": {"per_user_per_minute": 1000, **spec.get("answering", {})},
            "announcements": {
                "claim_lease_seconds": 5.0,
                "sync_seconds": 1.0,
                "grace_minutes": 5.0,
                **spec.get("announcements", {}),
            },
        }
    )
    adapters: list[Any] = [
        SlackAdapter(
            bot_token="xoxb-reliability",
            signing_secret=SIGNING_SECRET,
            mode="http",
            api_url=f"{spec['slack_api']}/api/",
            announce_channels=(SLACK_CHANNEL,),
            timeout=float(spec.get("client_timeout", 30.0)),
        ),
        XAdapter(
            api_key=API_KEY,
            api_secret=API_SECRET,
            access_token=ACCESS_TOKEN,
            access_token_secret=ACCESS_TOKEN_SECRET,
            api_url=spec["x_api"],
            announce_channels=(X_TIMELINE,),
            timeout=float(spec.get("client_timeout", 30.0)),
        ),
        DiscordAdapter(
            token=DISCORD_TOKEN,
            api_url=spec["discord_api"],
            gateway_url=spec["discord_gateway"],
            announce_channels=(DISCORD_CHANNEL,),
            shard_count=int(spec.get("shards", 1)),
            shard_ids=[int(spec.get("shard", 0))],
            guild_ready_timeout=0.5,
        ),
    ]
    return Runtime(Config(settings, {}, "reliability"), adapters)


async def main(spec: dict[str, Any]) -> None:
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s worker %(levelname)s %(name)s %(message)s"
    )
    runtime = build(spec)

    def ready() -> None:
        assert runtime.web is not None
        print(f"ready {runtime.web.port}", flush=True)

    await runtime.run(on_started=ready)


if __name__ == "__main__":
    asyncio.run(main(json.loads(sys.argv[1])))
