"""A bot process for the SIGKILL restart test: three platforms that append every post to a
file, one of them slow, so the test can kill the process in the middle of a fan-out.

Usage: python -m tests.fakes.announce_worker DB_URL POSTS_FILE (announce|restart)
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from adapters.memory import MemoryAdapter
from bot.events import Author, Conversation, OutgoingMessage, SentMessage, SlashCommand
from bot.runtime import Runtime
from tests.conftest import make_config


class FileRecordingAdapter(MemoryAdapter):
    """Appends ``platform<TAB>text`` to a file, durably, before returning the message id."""

    def __init__(self, platform: str, path: Path, latency: float) -> None:
        super().__init__(platform, latency=latency, announce_channels=("news",))
        self._path = path

    async def send(self, message: OutgoingMessage) -> SentMessage:
        sent = await super().send(message)
        if message.where.channel_id == "news":
            with self._path.open("a", encoding="utf-8") as handle:
                handle.write(f"{self.platform}\t{message.text}\n")
                handle.flush()
                os.fsync(handle.fileno())
        return sent


async def main(db_url: str, posts: Path, mode: str) -> None:
    adapters = [
        FileRecordingAdapter("slack", posts, 0.0),
        FileRecordingAdapter("discord", posts, 0.0),
        FileRecordingAdapter("x", posts, 3600.0),  # still "posting" when the test kills us
    ]
    config = make_config(
        database={"url": db_url},
        web={"enabled": False},
        staff={"console_users": ["ops"]},
        announcements={"claim_lease_seconds": 2.0},
    )
    runtime = Runtime(config, adapters)
    await runtime.start()
    print("started", flush=True)
    if mode == "announce":
        command = SlashCommand(
            Conversation("console", "ops"),
            Author("ops"),
            "announce",
            "now The PyTorch Foundation is live.",
        )
        asyncio.get_running_loop().create_task(runtime.handle(command))
        await asyncio.sleep(3600)
    else:
        await runtime.stop()
        print("stopped", flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], Path(sys.argv[2]), sys.argv[3]))
