"""Initial schema: users, API keys, generations, clips and the cost ledger.

Revision ID: 0001
Revises:
Create Date: 2026-11-21
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from storyreel.db.migrations.shapes import cascade, create_index, primary_key, timestamp, unique

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        timestamp("created_at"),
        primary_key("users", "id"),
        unique("users", "name"),
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        timestamp("created_at"),
        timestamp("revoked_at", nullable=True),
        cascade("api_keys", "user_id", "users"),
        primary_key("api_keys", "id"),
        unique("api_keys", "key_hash"),
    )
    create_index("api_keys", "user_id")

    op.create_table(
        "generations",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("stage", sa.String(length=32), nullable=True),
        sa.Column("platform", sa.String(length=32), nullable=False),
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("request", sa.JSON(), nullable=False),
        sa.Column("video_key", sa.Text(), nullable=True),
        sa.Column("thumbnail_key", sa.Text(), nullable=True),
        sa.Column("duration", sa.Float(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("cost", sa.Float(), nullable=False),
        sa.Column("budget", sa.Float(), nullable=True),
        sa.Column("storyboard_keys", sa.JSON(), nullable=False),
        sa.Column("warnings", sa.JSON(), nullable=False),
        sa.Column("timings", sa.JSON(), nullable=False),
        sa.Column("clip_stage", sa.JSON(), nullable=False),
        sa.Column("skipped_clips", sa.JSON(), nullable=False),
        timestamp("retry_deadline", nullable=True),
        timestamp("created_at"),
        timestamp("updated_at", nullable=True),
        timestamp("recorded_at"),
        cascade("generations", "user_id", "users"),
        primary_key("generations", "id"),
    )
    op.create_index("ix_generations_user_created", "generations", ["user_id", "created_at", "id"])
    op.create_index("ix_generations_user_status", "generations", ["user_id", "status"])

    op.create_table(
        "clips",
        sa.Column("generation_id", sa.String(length=64), nullable=False),
        sa.Column("clip_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("progress", sa.Float(), nullable=False),
        sa.Column("key", sa.Text(), nullable=True),
        sa.Column("duration", sa.Float(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("prompt", sa.Text(), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("prediction_id", sa.String(length=128), nullable=True),
        timestamp("started_at", nullable=True),
        timestamp("ended_at", nullable=True),
        sa.Column("render_seconds", sa.Float(), nullable=True),
        sa.Column("cost", sa.Float(), nullable=False),
        sa.Column("cached", sa.Boolean(), nullable=False),
        cascade("clips", "generation_id", "generations"),
        primary_key("clips", "generation_id", "clip_id"),
    )

    op.create_table(
        "cost_ledger",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("idempotency_key", sa.String(length=200), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("generation_id", sa.String(length=64), nullable=False),
        sa.Column("clip_id", sa.Integer(), nullable=True),
        sa.Column("amount_micros", sa.BigInteger(), nullable=False),
        timestamp("created_at"),
        cascade("cost_ledger", "user_id", "users"),
        primary_key("cost_ledger", "id"),
        unique("cost_ledger", "idempotency_key"),
    )
    create_index("cost_ledger", "user_id")
    create_index("cost_ledger", "generation_id")

    op.create_table(
        "cost_totals",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("total_micros", sa.BigInteger(), nullable=False),
        sa.Column("entries", sa.Integer(), nullable=False),
        timestamp("updated_at"),
        cascade("cost_totals", "user_id", "users"),
        primary_key("cost_totals", "user_id"),
    )


def downgrade() -> None:
    # Dropping a table drops its indexes with it.
    op.drop_table("cost_totals")
    op.drop_table("cost_ledger")
    op.drop_table("clips")
    op.drop_table("generations")
    op.drop_table("api_keys")
    op.drop_table("users")
