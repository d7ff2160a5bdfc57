"""Clips say who made them (provider, model, each provider's try); live webhook progress.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from storyreel.db.migrations.shapes import primary_key, timestamp

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("clips") as batch:
        batch.add_column(sa.Column("provider", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column("model", sa.String(length=200), nullable=True))
        batch.add_column(
            sa.Column("tries", sa.JSON(), nullable=False, server_default=sa.text("'[]'"))
        )
    op.create_table(
        "clip_progress",
        sa.Column("generation_id", sa.String(length=64), nullable=False),
        sa.Column("clip_id", sa.Integer(), nullable=False),
        sa.Column("prediction_id", sa.String(length=300), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("progress", sa.Float(), nullable=False),
        timestamp("updated_at"),
        primary_key("clip_progress", "generation_id", "clip_id"),
    )


def downgrade() -> None:
    op.drop_table("clip_progress")
    with op.batch_alter_table("clips") as batch:
        batch.drop_column("tries")
        batch.drop_column("model")
        batch.drop_column("provider")
