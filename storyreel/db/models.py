"""The permanent record's tables, and the public shapes read from them.

Table models stay inside ``storyreel.db``: the workflow and the API exchange contracts
(``GenerationState``) or the ``*Public`` models below, never a table row.

Money in the ledger is an integer number of micro-units: additions are exact on every
backend, so a running total equals the sum of its entries to the last digit.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import JSON, BigInteger, DateTime, Dialect, Index, String, Text
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel

from storyreel.contracts import BatchStatus, ClipStatus, GenerationStatus, Platform, Stage

MICROS = 1_000_000

# Named constraints, so a later migration can drop or alter them by name on every backend
# (SQLite would otherwise leave them anonymous).
SQLModel.metadata.naming_convention = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timestamps in UTC, aware in Python whatever the backend.

    SQLite has no time zones: it stores naive UTC text, which also keeps its string
    comparisons (the listing cursor) in time order. PostgreSQL stores ``timestamptz``.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, _dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


# ---------------------------------------------------------------------------------------------
# Users and API keys


class UserBase(SQLModel):
    name: str = Field(max_length=100, unique=True)


class User(UserBase, table=True):
    """Someone who may call the API; known by name, authenticated by API keys."""

    __tablename__: ClassVar[str] = "users"

    id: int | None = Field(default=None, primary_key=True)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class ApiKeyBase(SQLModel):
    # The first characters of the key: enough to tell keys apart in a listing, far too few
    # to guess the rest.
    prefix: str = Field(max_length=16)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class ApiKey(ApiKeyBase, table=True):
    """An API key, stored only as a keyed hash: a stolen database yields no usable key."""

    __tablename__: ClassVar[str] = "api_keys"

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="users.id", ondelete="CASCADE", index=True)
    key_hash: str = Field(max_length=64, unique=True)


# ---------------------------------------------------------------------------------------------
# Generations and clips


class GenerationBase(SQLModel):
    title: str = Field(max_length=200)
    status: GenerationStatus = Field(sa_type=String(32))
    stage: Stage | None = Field(default=None, sa_type=String(32))
    platform: Platform = Field(sa_type=String(32))
    provider: str = Field(max_length=32)
    # Storage keys, not URLs: URLs are made from keys when read (presigned ones expire).
    video_key: str | None = Field(default=None, sa_type=Text)
    thumbnail_key: str | None = Field(default=None, sa_type=Text)
    duration: float | None = None
    error: str | None = Field(default=None, sa_type=Text)
    cost: float = 0.0
    budget: float | None = None
    created_at: datetime = Field(sa_type=UTCDateTime)
    updated_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class Generation(GenerationBase, table=True):
    """One generation as last written by its workflow (see ``Records.upsert_generation``)."""

    __tablename__: ClassVar[str] = "generations"
    __table_args__ = (
        # The listing: one user's rows, newest first, optionally of one status.
        Index("ix_generations_user_created", "user_id", "created_at", "id"),
        Index("ix_generations_user_status", "user_id", "status"),
    )

    id: str = Field(primary_key=True, max_length=64)
    user_id: int = Field(foreign_key="users.id", ondelete="CASCADE")
    request: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    storyboard_keys: list[str] = Field(default_factory=list, sa_type=JSON)
    scenes: list[dict[str, Any]] = Field(default_factory=list, sa_type=JSON)
    warnings: list[str] = Field(default_factory=list, sa_type=JSON)
    timings: list[dict[str, Any]] = Field(default_factory=list, sa_type=JSON)
    clip_stage: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    skipped_clips: list[int] = Field(default_factory=list, sa_type=JSON)
    quote: dict[str, Any] | None = Field(default=None, sa_type=JSON)
    quality: str = Field(default="final", max_length=16)
    final_quote: dict[str, Any] | None = Field(default=None, sa_type=JSON)
    draft_of: str | None = Field(default=None, max_length=64)
    retry_deadline: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # When this process last wrote the row, as opposed to the run's own ``updated_at``.
    recorded_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class GenerationPublic(GenerationBase):
    """A generation in a listing: the summary, without clips."""

    id: str


class Clip(SQLModel, table=True):
    """One scene's clip of a generation, keyed by the generation and the 1-based clip id."""

    __tablename__: ClassVar[str] = "clips"

    generation_id: str = Field(
        primary_key=True, max_length=64, foreign_key="generations.id", ondelete="CASCADE"
    )
    clip_id: int = Field(primary_key=True)
    status: ClipStatus = Field(sa_type=String(16))
    progress: float = 0.0
    key: str | None = Field(default=None, sa_type=Text)
    duration: float | None = None
    error: str | None = Field(default=None, sa_type=Text)
    attempts: int = 0
    prompt: str = Field(default="", sa_type=Text)
    summary: str = Field(default="", sa_type=Text)
    prediction_id: str | None = Field(default=None, max_length=128)
    started_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    ended_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    render_seconds: float | None = None
    cost: float = 0.0
    # Redundant with status == cached, kept as a column so cache hit rates are one query.
    cached: bool = False
    provider: str | None = Field(default=None, max_length=32)
    model: str | None = Field(default=None, max_length=200)
    tries: list[dict[str, Any]] = Field(default_factory=list, sa_type=JSON)


class ClipProgress(SQLModel, table=True):
    """Live progress of a clip whose provider calls back (written by the API on a verified
    webhook; the run's own record has no activity heartbeats to read it from)."""

    __tablename__: ClassVar[str] = "clip_progress"

    generation_id: str = Field(primary_key=True, max_length=64)
    clip_id: int = Field(primary_key=True)
    prediction_id: str = Field(max_length=300)
    status: ClipStatus = Field(sa_type=String(16))
    progress: float = 0.0
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


# ---------------------------------------------------------------------------------------------
# Batches


class BatchBase(SQLModel):
    title: str = Field(max_length=200)
    status: BatchStatus = Field(sa_type=String(16))
    total: int
    created_at: datetime = Field(sa_type=UTCDateTime)
    updated_at: datetime = Field(sa_type=UTCDateTime)


class Batch(BatchBase, table=True):
    """Many generations started together; its status is written by ``BatchWorkflow`` at the end
    (its counts are read from its generations' own records)."""

    __tablename__: ClassVar[str] = "batches"
    __table_args__ = (Index("ix_batches_user_created", "user_id", "created_at", "id"),)

    id: str = Field(primary_key=True, max_length=64)
    user_id: int = Field(foreign_key="users.id", ondelete="CASCADE")


class BatchPublic(BatchBase):
    id: str


class BatchItem(SQLModel, table=True):
    """One item of a batch: its generation's id (fixed at POST) and the prepared workflow input,
    read by the batch workflow when the item's turn comes."""

    __tablename__: ClassVar[str] = "batch_items"

    batch_id: str = Field(
        primary_key=True, max_length=64, foreign_key="batches.id", ondelete="CASCADE"
    )
    position: int = Field(primary_key=True)
    generation_id: str = Field(max_length=64, unique=True)
    input: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)


# ---------------------------------------------------------------------------------------------
# Cost ledger


class CostEntry(SQLModel, table=True):
    """One charge, entered once: a repeated call with the same idempotency key is a no-op."""

    __tablename__: ClassVar[str] = "cost_ledger"

    id: int | None = Field(default=None, primary_key=True)
    idempotency_key: str = Field(max_length=200, unique=True)
    user_id: int = Field(foreign_key="users.id", ondelete="CASCADE", index=True)
    # Not a foreign key: a charge is a fact about money spent, recorded even if the
    # generation's own record is written later (or never, if the run was lost).
    generation_id: str = Field(max_length=64, index=True)
    clip_id: int | None = None
    amount_micros: int = Field(sa_type=BigInteger)
    # The clip length the provider billed, for a clip's charge (None: another kind of charge,
    # or one entered before billed seconds were recorded).
    billed_seconds: float | None = None
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class CostTotal(SQLModel, table=True):
    """A user's running total, moved in the same transaction as each ledger entry."""

    __tablename__: ClassVar[str] = "cost_totals"

    user_id: int = Field(primary_key=True, foreign_key="users.id", ondelete="CASCADE")
    total_micros: int = Field(default=0, sa_type=BigInteger)
    entries: int = 0
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
