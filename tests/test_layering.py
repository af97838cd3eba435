"""The layers stay apart: the core loads no platform SDK, and adapters never touch the store."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parent.parent
SDKS = {"slack_bolt", "slack_sdk", "discord", "tweepy"}
CORE = [
    "bot.runtime",
    "bot.cli",
    "bot.dispatch",
    "bot.chain",
    "bot.web",
    "bot.dashboard",
    "bot.polling",
    "announcements.delivery",
    "announcements.schedule",
    "announcements.commands",
    "announcements.render",
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
