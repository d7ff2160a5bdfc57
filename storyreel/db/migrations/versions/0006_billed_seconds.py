"""The cost ledger records billed seconds: the clip length each clip's charge paid for.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("cost_ledger") as batch:
        batch.add_column(sa.Column("billed_seconds", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("cost_ledger") as batch:
        batch.drop_column("billed_seconds")
