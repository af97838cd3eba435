"""The layers stay apart: the core loads no platform SDK, and adapters never touch the store."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parent.parent
SDKS = {"slack_bolt", "slack_sdk", "discord", "tweepy", "mastodon", "atproto", "atproto_client"}
CORE = [
    "bot.runtime",
    "bot.cli",
    "bot.dispatch",
    "bot.chain",
    "bot.web",
    "bot.dashboard",
    "bot.polling",
    "announcements.engine",
    "announcements.schedule",
    "announcements.commands",
    "announcements.render",
    # The registry: every platform's rules are read without loading its SDK.
    "adapters.registry",
]


def test_the_core_loads_no_platform_sdk() -> None:
    script = (
        "import importlib, json, sys\n"
        f"for name in {CORE!r}: importlib.import_module(name)\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert SDKS.isdisjoint(json.loads(out.stdout))


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_adapters_never_touch_the_database() -> None:
    forbidden = (
        "sqlalchemy",
        "alembic",
        "asyncpg",
        "aiosqlite",
        "bot.store",
        "announcements.store",
    )
    modules = sorted((ROOT / "adapters").rglob("*.py"))
    assert len(modules) >= 15  # base, console, memory, x, and the slack and discord packages
    for module in modules:
        bad = {n for n in _imports(module) if n.startswith(forbidden)}
        assert not bad, f"{module.name} imports {sorted(bad)}"


#: Every platform the bot has an adapter for (the ``--to`` names).
PLATFORM_NAMES = ("slack", "discord", "x", "mastodon", "bluesky", "console")
#: Names distinctive enough to look for inside identifiers.
DISTINCT = ("slack", "discord", "mastodon", "bluesky")
#: A platform's address built in the core (a link) is a platform rule out of place; prose
#: that merely mentions a platform (help texts, log lines) is not.
DOMAINS = ("slack.com", "x.com", "twitter.com", "discord.com", "bsky.app", "bsky.social")
#: Where platform names belong in the core: the configuration (sections per platform) and
#: the list of names it validates against.
CONFIGURATION = {"bot/config.py", "bot/platforms.py"}
#: Files, or functions in them, still being rewritten elsewhere: empty, keep it so.
NOT_YET: dict[str, set[str] | None] = {}
SHIMS: dict[str, set[str]] = {}


def _platform_words(path: Path, skip_functions: set[str] | None) -> list[str]:
    """Platform names in ``path``'s code: string literals (not docstrings) and identifiers."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped: set[int] = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        first = body[0] if isinstance(body, list) and body else None
        if (
            isinstance(first, ast.Expr)
            and isinstance(first.value, ast.Constant)
            and isinstance(first.value.value, str)
        ):
            skipped.add(id(first.value))  # a docstring
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name in (
            skip_functions or set()
        ):
            skipped.update(id(inner) for inner in ast.walk(node))
    found: list[str] = []

    def check(word: str, line: int, *, literal: bool) -> None:
        lowered = word.lower()
        parts = set(lowered.replace("-", "_").split("_"))
        if literal:
            named = (
                lowered.strip() in PLATFORM_NAMES
                or lowered.startswith(tuple(f"{n}:" for n in PLATFORM_NAMES))
                or any(domain in lowered for domain in DOMAINS)
            )
        else:
            named = any(name in lowered for name in DISTINCT) or bool(
                parts & {"x", "console"} and len(parts) > 1
            )
        if named:
            found.append(f"{path.relative_to(ROOT)}:{line}: {word!r}")

    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            check(node.value, node.lineno, literal=True)
        elif isinstance(node, ast.Name):
            check(node.id, node.lineno, literal=False)
        elif isinstance(node, ast.Attribute):
            check(node.attr, node.lineno, literal=False)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            check(node.name, node.lineno, literal=False)
        elif isinstance(node, ast.arg):
            check(node.arg, node.lineno, literal=False)
        elif isinstance(node, ast.keyword) and node.arg:
            check(node.arg, node.value.lineno, literal=False)
        elif isinstance(node, ast.alias):
            check(node.asname or node.name.rsplit(".", 1)[-1], node.lineno, literal=False)
    return found


def test_the_core_names_no_platform_outside_configuration() -> None:
    found: list[str] = []
    for folder in ("bot", "announcements"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            relative = str(path.relative_to(ROOT))
            if relative in CONFIGURATION or (relative in NOT_YET and NOT_YET[relative] is None):
                continue
            skip = (NOT_YET.get(relative) or set()) | SHIMS.get(relative, set())
            found += _platform_words(path, skip)
    assert not found, "platform names in the core:\n" + "\n".join(found)
