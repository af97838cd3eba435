"""Persistence: the schema, the async database and one small repository per noun."""

from bot.store.db import Database, safe_url

__all__ = ["Database", "safe_url"]
