"""Semantic embedder and index: load time, memory, query latency, index build and scoring.

Run from the repository root as a module:
``python -m bench.bench_semantic [--entries 10000] [--no-venv]``. Prints the machine, its load
average, and a Markdown table:

* model load time (import of onnxruntime, checksum, session, warm-up) and the resident memory
  (RSS) it adds, measured in a fresh interpreter that has only imported ``bot``; also the RSS
  after 400 queries;
* per-query ``embed_one`` latency, median / p99, over the dev set's chat questions
  (``tests/data/dev_questions.toml``), with onnxruntime on one intra-op thread (the default)
  and on two;
* :class:`~bot.semantic.SemanticIndex` build time and ``scores()`` latency with the bundled
  pack (question + phrasings per entry) and with ``--entries`` entries: the bundled ones plus
  synthetic ones of 8 passages each, made deterministically from templates and a seeded
  generator. Target: ``scores()`` p99 well under 10 ms at 10,000 entries;
* the size a fresh virtual environment grows by when the semantic dependencies (numpy and
  onnxruntime, as pinned in pyproject.toml; the model is vendored) are installed into it
  (needs the package index; ``--no-venv`` skips it).

Latencies are wall-clock (``time.perf_counter``) with the process's CPU time
(``time.process_time``, all threads) beside them: on a shared machine the wall-clock p99
mostly measures the other processes, the CPU time what the call itself costs.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

import numpy as np

from bench.machine import describe, percentile
from bot.faqfile import builtin_pack
from bot.semantic import Embedder, SemanticIndex

T = TypeVar("T")
ROOT = Path(__file__).resolve().parent.parent
DEV_SET = ROOT / "tests" / "data" / "dev_questions.toml"
SEMANTIC_PACKAGES = ("numpy", "onnxruntime")
PASSAGES_PER_ENTRY = 8

# Runs in a fresh interpreter, so the RSS it reports is what loading the model adds to a
# process that has imported only ``bot`` (numpy and onnxruntime included in the cost).
_LOAD_PROBE = """
import json, sys, time

def rss_mb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")

import bot
before = rss_mb()
started = time.perf_counter()
from bot.semantic import Embedder
embedder = Embedder.load()
load_s = time.perf_counter() - started
loaded = rss_mb()
for text in json.loads(sys.stdin.read()):
    embedder.embed_one(text)
print(json.dumps({"load_s": load_s, "added_mb": loaded - before,
                  "after_queries_mb": rss_mb() - before}))
"""

TEMPLATES = (
    "What is the {a} {b}?",
    "How does the {a} affect {b}?",
    "Who is responsible for the {a} {b}?",
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
VERBS = (
    "release",
    "fund",
    "govern",
    "join",
    "host",
    "move",
    "announce",
    "support",
    "review",
    "publish",
    "archive",
    "vote",
)


def dev_questions() -> list[str]:
    data = tomllib.loads(DEV_SET.read_text(encoding="utf-8"))
    return [q["text"] for q in data["question"]]


def bundled_entries() -> list[tuple[int, list[str]]]:
    return [(i, [r.question, *r.phrasings]) for i, r in enumerate(builtin_pack(), start=1)]


def synthetic_entries(count: int, seed: int = 7) -> list[tuple[int, list[str]]]:
    """The bundled entries plus synthetic ones of 8 passages each, ``count`` in all."""
    rng = random.Random(seed)
    entries = bundled_entries()
    vocabulary = sorted(
        {
            w
            for _, passages in entries
            for p in passages
            for w in re.findall(r"[a-z]{4,}", p.lower())
        }
    )
    for entry_id in range(len(entries) + 1, count + 1):
        topic = rng.sample(vocabulary, 3)
        passages = []
        for template in rng.sample(TEMPLATES, PASSAGES_PER_ENTRY):
            a, b = rng.sample(topic, 2) if rng.random() < 0.7 else rng.sample(vocabulary, 2)
            passages.append(template.format(a=a, b=b, c=rng.choice(VERBS)))
        entries.append((entry_id, passages))
    return entries[:count]


def timed(call: Callable[[T], object], args: Sequence[T]) -> tuple[list[float], list[float]]:
    """Wall-clock and process-CPU milliseconds of ``call(arg)`` for each of ``args``."""
    wall: list[float] = []
    cpu: list[float] = []
    for arg in args:
        w, c = time.perf_counter(), time.process_time()
        call(arg)
        cpu.append((time.process_time() - c) * 1000)
        wall.append((time.perf_counter() - w) * 1000)
    return wall, cpu


def spread(wall: Sequence[float], cpu: Sequence[float], digits: int = 2) -> str:
    """``median / p99 ms (CPU median / p99)``."""

    def pair(values: Sequence[float]) -> str:
        return (
            f"{percentile(list(values), 50):.{digits}f} / {percentile(list(values), 99):.{digits}f}"
        )

    return f"{pair(wall)} ms (CPU {pair(cpu)})"


def load_probe(queries: Sequence[str]) -> dict[str, float]:
    result = subprocess.run(
        [sys.executable, "-c", _LOAD_PROBE],
        input=json.dumps(list(queries)),
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    probe: dict[str, float] = json.loads(result.stdout.strip().splitlines()[-1])
    return probe


def query_latency(embedder: Embedder, queries: Sequence[str]) -> str:
    for text in queries[:20]:
        embedder.embed_one(text)
    return spread(*timed(embedder.embed_one, queries))


def index_rows(
    embedder: Embedder,
    entries: Sequence[tuple[int, Sequence[str]]],
    query_vectors: np.ndarray,
    label: str,
) -> list[tuple[str, str]]:
    started = time.perf_counter()
    index = SemanticIndex.build(embedder, entries)
    build_s = time.perf_counter() - started
    for vector in query_vectors[:20]:
        index.scores(vector)
    wall, cpu = timed(index.scores, list(query_vectors))
    per_passage = build_s / index.passage_count * 1000
    return [
        (
            f"index build, {label} ({index.passage_count:,} passages)",
            f"{build_s:.1f} s ({per_passage:.1f} ms per passage)",
        ),
        (f"scores(), {label}: median / p99", spread(wall, cpu, 3)),
    ]


def _tree_size(path: Path) -> int:
    total = 0
    for folder, _, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(folder, name)).st_blocks * 512
    return total


def semantic_requirements() -> list[str]:
    """The dependency specifiers of :data:`SEMANTIC_PACKAGES` in pyproject.toml (the
    ``semantic`` extra)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    wanted = []
    for spec in project["optional-dependencies"]["semantic"]:
        name = re.split(r"[\s<>=!~;\[]", spec, maxsplit=1)[0].lower().replace("_", "-")
        if name in SEMANTIC_PACKAGES:
            wanted.append(spec)
    return wanted


def venv_growth() -> tuple[float, list[str]]:
    """MB a fresh venv grows by with the semantic dependencies, and what pip installed."""
    requirements = semantic_requirements()
    with tempfile.TemporaryDirectory(prefix="bench-semantic-venv-") as tmp:
        venv = Path(tmp) / "v"
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        before = _tree_size(venv)
        pip = [str(venv / "bin" / "python"), "-m", "pip", "--disable-pip-version-check"]
        subprocess.run([*pip, "install", "--quiet", *requirements], check=True)
        grown = (_tree_size(venv) - before) / 1024 / 1024
        listed = subprocess.run(
            [*pip, "list", "--format=freeze"], check=True, capture_output=True, text=True
        ).stdout.split()
    installed = [p for p in listed if not p.lower().startswith(("pip==", "setuptools=="))]
    return grown, installed


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=10_000, help="large index size")
    parser.add_argument("--no-venv", action="store_true", help="skip the venv size")
    args = parser.parse_args(argv)

    print(f"Machine: {describe()}; load average {os.getloadavg()[0]:.1f} at start")
    queries = dev_questions()
    rows: list[tuple[str, str]] = []

    probes = [load_probe(queries[:400]) for _ in range(3)]
    rows.append(
        (
            "model load (import onnxruntime, sha256, session, warm-up), median of 3",
            f"{1000 * float(np.median([p['load_s'] for p in probes])):.0f} ms",
        )
    )
    rows.append(
        (
            "RSS added: after load / after 400 queries",
            f"{np.median([p['added_mb'] for p in probes]):.0f} MB / "
            f"{np.median([p['after_queries_mb'] for p in probes]):.0f} MB",
        )
    )

    embedders: dict[int, Embedder] = {}
    for threads in (1, 2):
        embedder = Embedder.load(threads=threads)
        if embedder is None:
            sys.exit("the embedder does not load here; see the warning above")
        embedders[threads] = embedder
        rows.append(
            (
                f"embed_one, {len(queries)} chat questions, intra_op threads={threads}: "
                "median / p99",
                query_latency(embedder, queries),
            )
        )
    embedder = embedders[1]
    query_vectors = embedder.embed(queries)

    rows += index_rows(embedder, bundled_entries(), query_vectors, "bundled pack")
    large = synthetic_entries(args.entries)
    rows += index_rows(embedder, large, query_vectors, f"{len(large):,} entries")

    if not args.no_venv:
        grown, installed = venv_growth()
        rows.append(
            (
                "fresh venv grows by (" + ", ".join(semantic_requirements()) + ")",
                f"{grown:.0f} MB: {', '.join(installed)}",
            )
        )
    print(f"Load average {os.getloadavg()[0]:.1f} at end\n")
    print("| measure | value |\n| --- | --- |")
    for name, value in rows:
        print(f"| {name} | {value} |")


if __name__ == "__main__":
    main()
