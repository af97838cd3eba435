"""announcement targets, origin and bot state

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 19:21:57.276745
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "bot_state",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_bot_state")),
    )
    with op.batch_alter_table("announcements", schema=None) as batch_op:
        batch_op.add_column(sa.Column("targets", sa.JSON(), nullable=False, server_default="[]"))
        batch_op.add_column(sa.Column("origin_platform", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("origin_channel", sa.String(length=200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("announcements", schema=None) as batch_op:
        batch_op.drop_column("origin_channel")
        batch_op.drop_column("origin_platform")
        batch_op.drop_column("targets")

    op.drop_table("bot_state")
