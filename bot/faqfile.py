"""FAQ files: the bundled knowledge pack and ``faq import`` / ``faq export`` in TOML or JSON.

A file is a list of entries (TOML ``[[entry]]`` tables, or JSON ``{"entries": [...]}``), each
with ``slug``, ``question``, ``phrasings``, ``answer``, ``tags``, ``source_url`` and ``as_of``.
Validation reports every problem with its entry number, so one run of ``faq import`` shows all
that needs fixing.
"""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass
from datetime import date
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import tomli_w

from bot.errors import FaqImportError

Format = Literal["toml", "json"]
SLUG_RE = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
KEYS = ("slug", "question", "phrasings", "answer", "tags", "source_url", "as_of")
MAX_TEXT = 10_000


@dataclass(frozen=True, slots=True)
class FaqRecord:
    """One FAQ entry as it appears in a file (no database id)."""

    slug: str
    question: str
    phrasings: tuple[str, ...]
    answer: str
    tags: tuple[str, ...] = ()
    source_url: str | None = None
    as_of: date | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON/TOML, keys in file order, optional keys left out when empty."""
        data: dict[str, Any] = {
            "slug": self.slug,
            "question": self.question,
            "phrasings": list(self.phrasings),
            "answer": self.answer,
            "tags": list(self.tags),
        }
        if self.source_url is not None:
            data["source_url"] = self.source_url
        if self.as_of is not None:
            data["as_of"] = self.as_of
        return data


def slugify(text: str) -> str:
    """A kebab-case slug from free text (``"Who runs it?"`` -> ``"who-runs-it"``)."""
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return slug[:80].rstrip("-") or "entry"


def _text(value: Any, key: str, problems: list[str], where: str, *, required: bool) -> str | None:
    if value is None:
        if required:
            problems.append(f"{where}: '{key}' is missing")
        return None
    if not isinstance(value, str):
        problems.append(f"{where}: '{key}' must be a string")
        return None
    if required and not value.strip():
        problems.append(f"{where}: '{key}' is empty")
        return None
    if len(value) > MAX_TEXT:
        problems.append(f"{where}: '{key}' is longer than {MAX_TEXT} characters")
        return None
    return value


def _strings(value: Any, key: str, problems: list[str], where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        problems.append(f"{where}: '{key}' must be a list of strings")
        return ()
    if any(not v.strip() for v in value):
        problems.append(f"{where}: '{key}' contains an empty string")
    return tuple(value)


def _as_of(value: Any, problems: list[str], where: str) -> date | None:
    if value is None or isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    problems.append(f"{where}: 'as_of' must be a date (YYYY-MM-DD)")
    return None


def validate_records(raw_entries: Any) -> list[FaqRecord]:
    """Turn parsed file data into records, or raise with every problem found.

    Raises:
        FaqImportError: listing each problem as ``entry N: ...`` (N counts from 1).
    """
    if not isinstance(raw_entries, list):
        raise FaqImportError(["the file must contain a list of entries"])
    problems: list[str] = []
    records: list[FaqRecord] = []
    seen: dict[str, int] = {}
    for number, raw in enumerate(raw_entries, start=1):
        where = f"entry {number}"
        if not isinstance(raw, dict):
            problems.append(f"{where}: must be a table/object")
            continue
        before = len(problems)
        for key in raw:
            if key not in KEYS:
                problems.append(f"{where}: unknown key '{key}'")
        question = _text(raw.get("question"), "question", problems, where, required=True)
        answer = _text(raw.get("answer"), "answer", problems, where, required=True)
        slug = _text(raw.get("slug"), "slug", problems, where, required=False)
        if slug is None and question is not None and "slug" not in raw:
            slug = slugify(question)
        if slug is not None and not SLUG_RE.fullmatch(slug):
            problems.append(f"{where}: 'slug' must be lowercase letters, digits and dashes")
        elif slug is not None and slug in seen:
            problems.append(f"{where}: slug '{slug}' repeats entry {seen[slug]}")
        elif slug is not None:
            seen[slug] = number
        phrasings = _strings(raw.get("phrasings"), "phrasings", problems, where)
        tags = _strings(raw.get("tags"), "tags", problems, where)
        source_url = _text(raw.get("source_url"), "source_url", problems, where, required=False)
        if source_url is not None and not re.match(r"^https?://\S+$", source_url):
            problems.append(f"{where}: 'source_url' must be an http(s) URL")
        as_of = _as_of(raw.get("as_of"), problems, where)
        if len(problems) == before and slug and question and answer:
            records.append(FaqRecord(slug, question, phrasings, answer, tags, source_url, as_of))
    if not raw_entries:
        problems.append("the file contains no entries")
    if problems:
        raise FaqImportError(problems)
    return records


def guess_format(path: Path) -> Format:
    """``json`` for ``*.json``, else ``toml``."""
    return "json" if path.suffix.lower() == ".json" else "toml"


def parse(text: str, fmt: Format) -> list[FaqRecord]:
    """Parse and validate FAQ file contents."""
    try:
        if fmt == "json":
            data = json.loads(text)
            entries = data.get("entries") if isinstance(data, dict) else data
        else:
            entries = tomllib.loads(text).get("entry")
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        raise FaqImportError([f"not valid {fmt.upper()}: {exc}"]) from exc
    if entries is None:
        key = "'entries' list" if fmt == "json" else "[[entry]] tables"
        raise FaqImportError([f"the file has no {key}"])
    return validate_records(entries)


def read_file(path: Path, fmt: Format | None = None) -> list[FaqRecord]:
    """Read and validate an FAQ file."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise FaqImportError([f"cannot read {path}: {exc.strerror}"]) from exc
    except UnicodeDecodeError as exc:
        raise FaqImportError([f"{path} is not UTF-8 text"]) from exc
    return parse(text, fmt or guess_format(path))


def dump(records: list[FaqRecord], fmt: Format) -> str:
    """Serialize records; ``parse(dump(r, f), f) == r``."""
    if fmt == "json":
        entries = [
            {**r.to_dict(), **({"as_of": r.as_of.isoformat()} if r.as_of else {})} for r in records
        ]
        return json.dumps({"entries": entries}, indent=2, ensure_ascii=False) + "\n"
    return tomli_w.dumps({"entry": [r.to_dict() for r in records]}, multiline_strings=True)


def builtin_pack() -> list[FaqRecord]:
    """The bundled PyTorch Foundation knowledge pack."""
    text = resources.files("bot.knowledge").joinpath("pytorch_foundation.toml").read_text("utf-8")
    return parse(text, "toml")
