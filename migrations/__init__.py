"""Alembic migrations, shipped inside the package so ``foundation-bot db upgrade`` finds them."""
