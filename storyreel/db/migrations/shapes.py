"""The shapes revisions spell again and again, named once: timestamps and named constraints.

Each helper writes exactly what the revisions spelled inline before it (the names follow the
models' naming convention, ``op.f`` marks them as final), so the DDL is unchanged. Revisions
import only from here and from SQLAlchemy and Alembic, never from the models: a revision must
keep running after the models have moved on. Change nothing here that a revision already uses.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from alembic import op


def timestamp(name: str, *, nullable: bool = False) -> sa.Column[datetime]:
    """A timezone-aware timestamp column."""
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def primary_key(table: str, *columns: str) -> sa.PrimaryKeyConstraint:
    """``pk_<table>`` over ``columns``."""
    return sa.PrimaryKeyConstraint(*columns, name=op.f(f"pk_{table}"))


def unique(table: str, column: str) -> sa.UniqueConstraint:
    """``uq_<table>_<column>``."""
    return sa.UniqueConstraint(column, name=op.f(f"uq_{table}_{column}"))


def cascade(table: str, column: str, parent: str) -> sa.ForeignKeyConstraint:
    """``fk_<table>_<column>_<parent>``: ``column`` references ``parent.id``, and a row goes
    when the parent row it belongs to is deleted."""
    return sa.ForeignKeyConstraint(
        [column], [f"{parent}.id"], name=op.f(f"fk_{table}_{column}_{parent}"), ondelete="CASCADE"
    )


def create_index(table: str, column: str) -> None:
    """``ix_<table>_<column>``: an index on one column."""
    op.create_index(op.f(f"ix_{table}_{column}"), table, [column])
