"""Answering latency (read, rank, decide) and index build time, and the bot's idle memory.

Run from the repository root as a module: ``python -m bench.bench_matcher [--no-rss]``.
Prints the machine and a table:

* index build time, and per-question latency p50 / p99 / max, with the bundled pack and with
  a generated pack of 10,000 entries (the bundled ones plus synthetic ones, 5 phrasings and an
  answer each, made deterministically with a seeded generator, so runs are comparable).
  Questions: the dev set, generated entries' phrasings with a typo, off-topic questions,
  and junk (10,000 characters, control characters, emoji), 5 rounds. Target: p99 < 5 ms and
  build < 3 s at 10,000 entries.
* resident memory (RSS) of an idle ``foundation-bot run --console`` (SQLite, bundled pack,
  web server on), read from /proc after start-up; ``--no-rss`` skips it. Target < 200 MB.

The synthetic entries are built to stress the index the way a real pack would: words drawn
from a Zipf-like distribution over the bundled pack's vocabulary plus invented domain words,
so common words ("pytorch", "foundation") sit in thousands of entries and rare ones in few.
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from itertools import accumulate
from pathlib import Path

from bench.eval_matcher import load_dev_texts
from bench.machine import describe, percentile
from bot.deciding import Decider, consider
from bot.faqfile import builtin_pack
from bot.matcher import STOPWORDS, FaqDoc, Matcher, words
from bot.wordlist import load_word_list

_SYLLABLES = (
    "ba be bi bo ca co da de di do fa fe fi ga ge go ka ke ki ko la le li lo ma me mi mo na ne "
    "ni no pa pe pi po ra re ri ro sa se si so ta te ti to va ve vi vo za ze zo tor sor nel lin "
    "mar ter ex on ar in ul"
)
SYLLABLES = _SYLLABLES.split()
TEMPLATES = (
    "What is the {a} {b}?",
    "How does the {a} affect {b}?",
    "Who is responsible for {a} {b}?",
    "When will the {a} {b} be {c}?",
    "Where can I find the {a} {b}?",
    "Why did the foundation {c} the {a}?",
    "Is {a} still part of the {b}?",
    "Can I {c} my {a} with {b}?",
    "Will the {a} {b} change after the move?",
    "{a} {b} {c}?",
    "Tell me about {a} and {b}",
    "Does the {b} support {a} {c}?",
)


def _pseudo_words(rng: random.Random, count: int) -> list[str]:
    made: dict[str, None] = {}
    while len(made) < count:
        made["".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 4)))] = None
    return list(made)


def generated_pack(count: int, seed: int = 7) -> list[FaqDoc]:
    """The bundled pack plus synthetic entries, ``count`` in all (at least the bundled ones)."""
    rng = random.Random(seed)
    pack = builtin_pack()
    docs = [
        FaqDoc(i, r.question, r.phrasings, r.answer, r.tags) for i, r in enumerate(pack, start=1)
    ]
    known = sorted(
        {w for r in pack for t in (r.question, *r.phrasings, r.answer) for w in words(t)}
        - STOPWORDS
    )
    vocabulary = known + _pseudo_words(rng, 6000)
    rng.shuffle(vocabulary)
    # Zipf-like: the k-th word is drawn with weight 1/k.
    cumulative = list(accumulate(1 / (k + 1) for k in range(len(vocabulary))))

    def draw(n: int) -> list[str]:
        return rng.choices(vocabulary, cum_weights=cumulative, k=n)

    for entry_id in range(len(docs) + 1, count + 1):
        topic = draw(3)

        def phrasing(topic: list[str] = topic) -> str:
            a, b, c = rng.sample([*topic, *draw(2)], 3)
            return rng.choice(TEMPLATES).format(a=a, b=b, c=c)

        answer = " ".join([*topic, *draw(rng.randint(15, 30))]).capitalize() + "."
        docs.append(
            FaqDoc(
                entry_id,
                phrasing(),
                tuple(phrasing() for _ in range(5)),
                answer,
                tuple(draw(2)),
            )
        )
    return docs


def _typo(text: str, rng: random.Random) -> str:
    tokens = text.split()
    long = [i for i, t in enumerate(tokens) if len(t) > 4]
    if not long:
        return text
    i = rng.choice(long)
    word = tokens[i]
    j = rng.randrange(1, len(word) - 2)
    tokens[i] = word[:j] + word[j + 1] + word[j] + word[j + 2 :]
    return " ".join(tokens)


def questions_for(docs: Sequence[FaqDoc], seed: int = 11) -> list[str]:
    """Dev questions, typo'd phrasings of random entries, off-topic questions and junk."""
    rng = random.Random(seed)
    picked = rng.sample(list(docs), min(200, len(docs)))
    return [
        *load_dev_texts(),
        *(_typo(rng.choice(doc.phrasings or (doc.question,)), rng) for doc in picked),
        "how do I fix CUDA out of memory in my training loop on windows with python 3.12",
        "x" * 10_000,
        "pytorch foundation board governance " * 300,
        "\x00\x01\x1b[2J" * 50,
        "🙂🎉🔥" * 100,
        "'; DROP TABLE faq; -- SELECT * FROM users WHERE 1=1",
    ]


def latency(
    docs: Sequence[FaqDoc], questions: Sequence[str], rounds: int = 5
) -> tuple[float, list[float]]:
    """(build seconds, per-question milliseconds over ``rounds`` rounds).

    A question is timed the whole way the bot answers it: read the message, rank each
    question in it, decide (:func:`bot.deciding.consider`).
    """
    load_word_list()
    decider = Decider()
    started = time.perf_counter()
    matcher = Matcher(docs)
    build = time.perf_counter() - started
    samples = []
    for _ in range(rounds):
        for question in questions:
            began = time.perf_counter()
            consider(question, matcher, decider)
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


def main(argv: Sequence[str] | None = None) -> None:
    """Print the machine and the latency table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--no-rss", action="store_true", help="skip the idle-memory check")
    parser.add_argument("--entries", type=int, default=10_000, help="size of the generated pack")
    args = parser.parse_args(argv)

    print(f"machine: {describe()}\n")
    print("| pack | entries | questions | index build | p50 | p99 | max |")
    print("|---|---|---|---|---|---|---|")
    for name, docs in (
        ("bundled", generated_pack(0)),
        ("generated", generated_pack(args.entries)),
    ):
        questions = questions_for(docs)
        build, samples = latency(docs, questions)
        print(
            f"| {name} | {len(docs):,} | {len(questions)} x 5 | {build:.2f} s | "
            f"{percentile(samples, 50):.2f} ms | {percentile(samples, 99):.2f} ms | "
            f"{max(samples):.2f} ms |"
        )
    if not args.no_rss:
        print(
            f"\nidle `foundation-bot run --console` RSS: {idle_rss_mb():.0f} MB (target < 200 MB)"
        )


if __name__ == "__main__":
    main()
