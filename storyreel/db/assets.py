"""Uploaded assets in the record: whose, what kind, how long, where stored. Reached as
``Records.assets``. Every read takes the owner: someone else's asset does not exist."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar

from pydantic import BaseModel
from sqlalchemy import BigInteger
from sqlmodel import Field, SQLModel, col, select

from storyreel.assets import AssetKind
from storyreel.db.base import Sessions
from storyreel.db.models import UTCDateTime, utcnow


class AssetRow(SQLModel, table=True):
    """One upload."""

    __tablename__: ClassVar[str] = "assets"

    id: str = Field(primary_key=True, max_length=40)
    user_id: int = Field(foreign_key="users.id", ondelete="CASCADE", index=True)
    kind: str = Field(max_length=16)
    name: str = Field(max_length=255)
    key: str = Field(max_length=300)
    size_bytes: int = Field(sa_type=BigInteger)
    duration: float | None = None
    width: int | None = None
    height: int | None = None
    format: str = Field(max_length=64)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class AssetPublic(BaseModel):
    """An asset as the API shows it."""

    id: str
    kind: AssetKind
    name: str
    size_bytes: int
    duration: float | None = None
    width: int | None = None
    height: int | None = None
    format: str
    created_at: datetime


def public(row: AssetRow) -> AssetPublic:
    return AssetPublic.model_validate(row.model_dump())


class Assets(Sessions):
    """The asset table, over the record's engine."""

    def add(self, row: AssetRow) -> AssetPublic:
        with self._writing() as session:
            session.add(row)
        return public(row)

    def get(self, asset_id: str, user_id: int) -> AssetRow | None:
        """The caller's asset, or None (also for another user's)."""
        with self._reading() as session:
            row = session.get(AssetRow, asset_id)
            return row if row is not None and row.user_id == user_id else None

    def list(self, user_id: int, limit: int = 100) -> list[AssetPublic]:
        """The caller's assets, newest first."""
        with self._reading() as session:
            rows = session.exec(
                select(AssetRow)
                .where(AssetRow.user_id == user_id)
                .order_by(col(AssetRow.created_at).desc(), col(AssetRow.id).desc())
                .limit(limit)
            ).all()
        return [public(row) for row in rows]

    def delete(self, asset_id: str, user_id: int) -> AssetRow | None:
        """Forget the caller's asset; the row it was (its key, to delete the bytes), or None."""
        with self._writing() as session:
            row = session.get(AssetRow, asset_id)
            if row is None or row.user_id != user_id:
                return None
            session.delete(row)
            return row
