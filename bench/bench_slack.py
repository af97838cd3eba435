"""Slack HTTP mode throughput: questions per second end to end on loopback.

A load generator posts signed ``app_mention`` events to the bot's ``/slack/events``; the run
ends when the fake Slack Web API has received an answer for every one. The floor is a bare
slack-bolt app that replies a fixed text to every mention, driven the same way against the
same fake: once as Bolt comes out of the box (slack-sdk opens a new HTTP session per Web API
call) and once given the same pooled session foundation-bot uses, which is the stricter floor.
foundation-bot runs twice: with five questions asked over and over (the FAQ case; the
matcher's verdict is cached) and with the 404 distinct questions of the dev set (every
question matched afresh). Run: ``python -m bench.bench_slack [N] [CONCURRENCY]``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import statistics
import sys
import tempfile
import time
import tomllib
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.app.async_app import AsyncApp
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack import SDK_LOGGERS, SlackAdapter
from bench.machine import describe
from bot.config import Config, Settings
from bot.runtime import Runtime
from bot.store.engagement import LogFilter
from tests.fakes.slack_api import BOT_USER, FakeSlack, fake_slack

SECRET = "bench-secret"
REPEATED = (
    "who is on the pytorch foundation board?",
    "will my code need to change?",
    "is meta still investing in pytorch?",
    "what is the linux foundation?",
    "what's the weather like?",
)
DEV = Path(__file__).resolve().parent.parent / "tests" / "data" / "dev_questions.toml"
DISTINCT = tuple(q["text"] for q in tomllib.loads(DEV.read_text("utf-8"))["question"])


_sequence = iter(range(10**9))


def _event(i: int, questions: tuple[str, ...]) -> str:
    ts = f"1700000000.{i:06d}"
    return json.dumps(
        {
            "token": "t",
            "team_id": "T1",
            "api_app_id": "A1",
            "type": "event_callback",
            "event_id": f"Ev{i}",
            "event_time": 1700000000,
            "authorizations": [{"team_id": "T1", "user_id": BOT_USER, "is_bot": True}],
            "event": {
                "type": "app_mention",
                "user": f"U{i}",
                "channel": "C1",
                "ts": ts,
                "text": f"<@{BOT_USER}> {questions[i % len(questions)]}",
                "event_ts": ts,
            },
        }
    )


async def _drive(
    url: str,
    fake: FakeSlack,
    count: int,
    concurrency: int,
    questions: tuple[str, ...] = REPEATED,
) -> float:
    """Seconds to get ``count`` answers."""
    verifier = SignatureVerifier(SECRET)
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(count):
        queue.put_nowait(i)
    before = fake.count("chat.postMessage")

    async def worker(http: aiohttp.ClientSession) -> None:
        while not queue.empty():
            queue.get_nowait()
            body = _event(next(_sequence), questions)
            stamp = str(int(time.time()))
            headers = {
                "Content-Type": "application/json",
                "X-Slack-Request-Timestamp": stamp,
                "X-Slack-Signature": str(verifier.generate_signature(timestamp=stamp, body=body)),
            }
            async with http.post(url, data=body, headers=headers) as resp:
                assert resp.status == 200, resp.status

    started = time.perf_counter()
    async with aiohttp.ClientSession() as http:
        await asyncio.gather(*(worker(http) for _ in range(concurrency)))
    await fake.wait_for(lambda: fake.count("chat.postMessage") - before >= count, limit=300)
    return time.perf_counter() - started


async def floor(count: int, concurrency: int, pooled: bool = False) -> float:
    """Questions per second of a bare Bolt app replying a fixed text.

    As Bolt ships (a new HTTP session per call, slack-sdk's loggers at their default level),
    or ``pooled``: with the same plumbing foundation-bot's adapter sets up (one pooled
    session, the loggers' levels pinned), the stricter comparison.
    """
    for name in SDK_LOGGERS:  # the adapter, run earlier in this process, may have pinned them
        logger = logging.getLogger(name)
        logger.setLevel(logger.getEffectiveLevel() if pooled else logging.NOTSET)
    async with fake_slack() as fake, aiohttp.ClientSession() as session:
        client = AsyncWebClient(
            token="xoxb-bench", base_url=f"{fake.base}/api/", session=session if pooled else None
        )
        app = AsyncApp(client=client, signing_secret=SECRET)

        async def reply(event: dict[str, Any], say: Any) -> None:
            await say(text="fixed answer", thread_ts=event["ts"])

        app.event("app_mention")(reply)

        async def handler(request: web.Request) -> web.Response:
            return await to_aiohttp_response(
                await app.async_dispatch(await to_bolt_request(request))
            )

        web_app = web.Application()
        web_app.router.add_post("/slack/events", handler)
        runner = web.AppRunner(web_app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        try:
            await _drive(f"http://127.0.0.1:{port}/slack/events", fake, 20, 4)  # warm-up
            seconds = await _drive(
                f"http://127.0.0.1:{port}/slack/events", fake, count, concurrency
            )
        finally:
            await runner.cleanup()
    return count / seconds


async def bot(
    count: int, concurrency: int, questions: tuple[str, ...] = REPEATED
) -> tuple[float, int]:
    """Questions per second of foundation-bot, and how many questions were logged."""
    async with fake_slack() as fake:
        with tempfile.TemporaryDirectory() as tmp:
            settings = Settings.model_validate(
                {
                    "database": {"url": f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"},
                    "web": {"enabled": True, "port": 0},
                    "answering": {"per_user_per_minute": 1000},
                }
            )
            adapter = SlackAdapter(
                bot_token="xoxb-bench",
                signing_secret=SECRET,
                mode="http",
                api_url=f"{fake.base}/api/",
            )
            runtime = Runtime(Config(settings, {}, "bench"), [adapter])
            await runtime.start()
            assert runtime.web is not None
            url = f"http://127.0.0.1:{runtime.web.port}/slack/events"
            try:
                await _drive(url, fake, 20, 4)  # warm-up
                seconds = await _drive(url, fake, count, concurrency, questions)
                for _ in range(200):  # logging happens right after each answer is sent
                    logged = len(await runtime.engagement.list(LogFilter(kind="question")))
                    if logged >= count + 20:
                        break
                    await asyncio.sleep(0.05)
            finally:
                await runtime.stop()
    return count / seconds, logged - 20


async def main(count: int, concurrency: int, rounds: int = 3) -> None:
    # Alternate the apps and keep medians: single runs on a 2-core machine vary a lot.
    runs: dict[str, list[float]] = {"floor": [], "pooled": [], "repeated": [], "distinct": []}
    logged: dict[str, list[int]] = {"repeated": [], "distinct": []}
    for _ in range(rounds):
        runs["floor"].append(await floor(count, concurrency))
        runs["pooled"].append(await floor(count, concurrency, pooled=True))
        for name, questions in (("repeated", REPEATED), ("distinct", DISTINCT)):
            qps, n = await bot(count, concurrency, questions)
            runs[name].append(qps)
            logged[name].append(n)
    med = {name: statistics.median(values) for name, values in runs.items()}
    print(f"machine: {describe()}\n")
    print(
        f"{count} mentions, {concurrency} concurrent senders, HTTP mode on loopback, "
        f"median of {rounds} alternating runs\n"
    )
    print("| app | questions/s | vs floor | vs pooled floor | logged |")
    print("|---|---|---|---|---|")
    rows = (
        ("bare slack-bolt, fixed reply (floor)", "floor", None),
        ("bare slack-bolt, fixed reply, pooled HTTP session", "pooled", None),
        ("foundation-bot, 5 questions repeated", "repeated", "repeated"),
        (f"foundation-bot, {len(DISTINCT)} distinct questions", "distinct", "distinct"),
    )
    for label, name, log_key in rows:
        done = f"{min(logged[log_key])}/{count}" if log_key else "—"
        print(
            f"| {label} | {med[name]:.0f} | {med[name] / med['floor']:.2f} "
            f"| {med[name] / med['pooled']:.2f} | {done} |"
        )
    print("\ntarget: foundation-bot >= 0.8 of the floor, every question logged")
    for name in ("repeated", "distinct"):
        ratio = med[name] / med["floor"]
        all_logged = min(logged[name]) == count
        verdict = "met" if ratio >= 0.8 and all_logged else "NOT met"
        print(f"  {name}: {ratio:.2f} of the floor, all logged: {all_logged} -> {verdict}")


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 400
    c = int(sys.argv[2]) if len(sys.argv) > 2 else 16
    asyncio.run(main(n, c))
