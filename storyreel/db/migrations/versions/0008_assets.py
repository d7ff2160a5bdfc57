"""Uploaded assets (a user's own images, videos and sound), and drafts: a generation's
quality, the quote of its final clips, and the draft a final was made from.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from storyreel.db.migrations.shapes import cascade, create_index, primary_key, timestamp

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "assets",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("key", sa.String(length=300), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("duration", sa.Float(), nullable=True),
        sa.Column("width", sa.Integer(), nullable=True),
        sa.Column("height", sa.Integer(), nullable=True),
        sa.Column("format", sa.String(length=64), nullable=False),
        timestamp("created_at"),
        cascade("assets", "user_id", "users"),
        primary_key("assets", "id"),
    )
    create_index("assets", "user_id")
    with op.batch_alter_table("generations") as batch:
        batch.add_column(
            sa.Column("quality", sa.String(length=16), nullable=False, server_default="final")
        )
        batch.add_column(sa.Column("final_quote", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("draft_of", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("generations") as batch:
        batch.drop_column("draft_of")
        batch.drop_column("final_quote")
        batch.drop_column("quality")
    op.drop_index(op.f("ix_assets_user_id"), table_name="assets")
    op.drop_table("assets")
