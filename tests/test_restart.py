"""Kill the bot (SIGKILL) in the middle of a fan-out, start it again: no platform gets the
announcement twice and every delivery row is in a state a person can act on."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from announcements.store import AnnouncementStore
from bot.events import utcnow
from bot.store.db import Database
from bot.store.models import Delivery
from tests.waiting import PATIENCE, eventually

ROOT = Path(__file__).resolve().parent.parent


def _start(db_url: str, posts: Path, mode: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.announce_worker", db_url, str(posts), mode],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


def _wait_for(predicate, timeout: float = PATIENCE) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.05)


async def _deliveries(db_url: str) -> list[Delivery]:
    db = Database(db_url)
    try:
        return list(await AnnouncementStore(db).deliveries(1))
    finally:
        await db.close()


async def test_sigkill_mid_fan_out_then_restart(db_url: str, tmp_path: Path) -> None:
    posts = tmp_path / "posts.tsv"
    posts.touch()
    worker = _start(db_url, posts, "announce")
    try:
        # Slack and Discord are fast; X never finishes, so it is mid-post when we kill.
        def two_posts() -> bool:
            if worker.poll() is not None:
                raise AssertionError(
                    f"worker died: {worker.stderr.read() if worker.stderr else ''}"
                )
            return len(posts.read_text().splitlines()) >= 2

        await asyncio.to_thread(_wait_for, two_posts)

        async def fast_rows_sent() -> bool:
            states = {d.platform: d.state for d in await _deliveries(db_url)}
            return states.get("slack") == states.get("discord") == "sent"

        await eventually(fast_rows_sent, "slack and discord recorded as sent")
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.communicate(timeout=30)  # reaps it and closes its pipes

    # PostgreSQL deployments wait for the dead process's claim to expire.
    async def claims_expired() -> bool:
        leases = [d.claimed_until for d in await _deliveries(db_url) if d.claimed_until]
        return all(lease < utcnow() for lease in leases)

    await eventually(claims_expired, "the dead process's claims expired", every=0.2)
    restarted = _start(db_url, posts, "restart")
    out, err = restarted.communicate(timeout=120)
    assert restarted.returncode == 0, err
    assert "stopped" in out

    lines = posts.read_text().splitlines()
    platforms = [line.split("\t")[0] for line in lines]
    assert sorted(platforms) == ["discord", "slack"]  # nobody got it twice; X never finished
    deliveries = await _deliveries(db_url)
    states = {d.platform: d.state for d in deliveries}
    assert states == {"slack": "sent", "discord": "sent", "x": "unknown"}
    x_row = next(d for d in deliveries if d.platform == "x")
    assert x_row.error is not None and "interrupted" in x_row.error
