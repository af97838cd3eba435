"""FAQ answer latency and the bot's idle memory (the core issue's targets).

Run: ``python -m bench.bench_matcher``. Prints a table:

* index build time and per-question latency p50 / p99 / max with the bundled pack and with a
  generated pack of 10,000 entries (5 phrasings each, seeded, so runs are comparable); the
  questions are the dev set's. Target: p99 < 5 ms at 10,000 entries.
* resident memory (RSS) of an idle ``foundation-bot run`` (console adapter, SQLite, bundled
  pack, web server on), read from /proc after start-up. Target < 200 MB.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.eval_matcher import load_dev
from bench.machine import describe, percentile
from bot.faqfile import builtin_pack
from bot.matcher import FaqDoc, Matcher

VOCAB = [
    "pytorch",
    "foundation",
    "board",
    "governance",
    "member",
    "company",
    "cloud",
    "model",
    "training",
    "inference",
    "gpu",
    "release",
    "roadmap",
    "license",
    "community",
    "contributor",
    "maintainer",
    "conference",
    "event",
    "summit",
    "documentation",
    "tutorial",
    "ecosystem",
    "partner",
    "sponsor",
    "budget",
    "election",
    "charter",
    "trademark",
    "security",
    "policy",
    "code",
    "conduct",
    "vote",
    "meeting",
    "committee",
    "working",
    "group",
    "project",
    "library",
    "compiler",
    "kernel",
    "distributed",
    "mobile",
    "edge",
    "quantization",
    "export",
    "runtime",
    "hardware",
    "vendor",
]


def generated_pack(count: int, seed: int = 7) -> list[FaqDoc]:
    """The bundled pack plus synthetic entries up to ``count``."""
    rng = random.Random(seed)
    docs = [FaqDoc(i, r.question, r.phrasings, r.answer) for i, r in enumerate(builtin_pack(), 1)]

    def sentence(entry_id: int) -> str:
        words = [*rng.sample(VOCAB, rng.randint(4, 8)), f"topic{entry_id}"]
        rng.shuffle(words)
        return " ".join(words) + "?"

    for entry_id in range(len(docs) + 1, count + 1):
        phrasings = tuple(sentence(entry_id) for _ in range(5))
        docs.append(FaqDoc(entry_id, sentence(entry_id), phrasings, "answer"))
    return docs


def latency(docs: list[FaqDoc], questions: list[str], rounds: int = 5) -> tuple[float, list[float]]:
    """(build seconds, per-question milliseconds)."""
    started = time.perf_counter()
    matcher = Matcher(docs)
    build = time.perf_counter() - started
    samples = []
    for _ in range(rounds):
        for question in questions:
            began = time.perf_counter()
            matcher.match(question)
            samples.append((time.perf_counter() - began) * 1000)
    return build, samples


def idle_rss_mb() -> float:
    """RSS of ``foundation-bot run --console`` a few seconds after it started."""
    with tempfile.TemporaryDirectory() as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith("FOUNDATION_BOT")}
        env["FOUNDATION_BOT_DATABASE_URL"] = f"sqlite+aiosqlite:///{tmp}/idle.db"
        proc = subprocess.Popen(
            [sys.executable, "-m", "bot", "run", "--console"],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=tmp,
            env=env,
        )
        try:
            time.sleep(8)
            status = Path(f"/proc/{proc.pid}/status").read_text()
            rss_kb = next(
                int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS")
            )
        finally:
            proc.terminate()
            proc.communicate(timeout=30)
    return rss_kb / 1024


def main() -> None:
    questions = [q for q, _ in load_dev()]
    print(f"machine: {describe()}\n")
    print("| pack | entries | build | p50 | p99 | max |")
    print("|---|---|---|---|---|---|")
    for name, docs in (("bundled", generated_pack(0)), ("generated", generated_pack(10_000))):
        build, samples = latency(docs, questions)
        print(
            f"| {name} | {len(docs):,} | {build:.2f} s | {percentile(samples, 50):.2f} ms | "
            f"{percentile(samples, 99):.2f} ms | {max(samples):.2f} ms |"
        )
    print(f"\nidle `foundation-bot run --console` RSS: {idle_rss_mb():.0f} MB (target < 200 MB)")


if __name__ == "__main__":
    main()
