"""Batches: many generations started together, each item's prepared input kept until its turn.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from storyreel.db.migrations.shapes import cascade, primary_key, timestamp, unique

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "batches",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        timestamp("created_at"),
        timestamp("updated_at"),
        cascade("batches", "user_id", "users"),
        primary_key("batches", "id"),
    )
    op.create_index("ix_batches_user_created", "batches", ["user_id", "created_at", "id"])
    op.create_table(
        "batch_items",
        sa.Column("batch_id", sa.String(length=64), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("generation_id", sa.String(length=64), nullable=False),
        sa.Column("input", sa.JSON(), nullable=False),
        cascade("batch_items", "batch_id", "batches"),
        primary_key("batch_items", "batch_id", "position"),
        unique("batch_items", "generation_id"),
    )


def downgrade() -> None:
    op.drop_table("batch_items")
    op.drop_index("ix_batches_user_created", table_name="batches")
    op.drop_table("batches")
