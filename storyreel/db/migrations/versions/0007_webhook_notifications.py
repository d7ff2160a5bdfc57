"""Outbound webhooks: each user's signing secret, the events sent and every delivery attempt.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from storyreel.db.migrations.shapes import cascade, create_index, primary_key, timestamp

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "webhook_secrets",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        timestamp("created_at"),
        cascade("webhook_secrets", "user_id", "users"),
        primary_key("webhook_secrets", "user_id"),
    )
    op.create_table(
        "webhook_events",
        sa.Column("id", sa.String(length=200), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("generation_id", sa.String(length=64), nullable=True),
        sa.Column("batch_id", sa.String(length=64), nullable=True),
        sa.Column("type", sa.String(length=64), nullable=False),
        sa.Column("notice", sa.JSON(), nullable=False),
        timestamp("created_at"),
        cascade("webhook_events", "user_id", "users"),
        primary_key("webhook_events", "id"),
    )
    create_index("webhook_events", "user_id")
    create_index("webhook_events", "generation_id")
    create_index("webhook_events", "batch_id")
    op.create_table(
        "webhook_attempts",
        sa.Column("delivery_id", sa.String(length=64), nullable=False),
        sa.Column("event_id", sa.String(length=200), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        timestamp("created_at"),
        cascade("webhook_attempts", "event_id", "webhook_events"),
        primary_key("webhook_attempts", "delivery_id"),
    )
    create_index("webhook_attempts", "event_id")


def downgrade() -> None:
    op.drop_index("ix_webhook_attempts_event_id", table_name="webhook_attempts")
    op.drop_table("webhook_attempts")
    op.drop_index("ix_webhook_events_batch_id", table_name="webhook_events")
    op.drop_index("ix_webhook_events_generation_id", table_name="webhook_events")
    op.drop_index("ix_webhook_events_user_id", table_name="webhook_events")
    op.drop_table("webhook_events")
    op.drop_table("webhook_secrets")
