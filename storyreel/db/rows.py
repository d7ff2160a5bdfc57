"""Rows <-> contracts: a column holds the contract's field of the same name, so the mapping is
derived from the table and the contract (tests/db checks that no field goes unrecorded)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from storyreel.contracts import (
    ClipState,
    ClipStatus,
    GenerationRequest,
    GenerationState,
    GenerationStatus,
)
from storyreel.db.base import as_utc
from storyreel.db.models import Clip, Generation, UTCDateTime, utcnow

# The updated_at of a placeholder record (written before its run starts): older than any state
# the run will record, so the run's first write replaces it.
PLACEHOLDER_TIME = datetime(1970, 1, 1, tzinfo=UTC)

_GENERATION_COLUMNS = Generation.__table__.columns  # type: ignore[attr-defined]
_CLIP_COLUMNS = Clip.__table__.columns  # type: ignore[attr-defined]
_GENERATION_FIELDS = frozenset(GenerationState.model_fields) & set(_GENERATION_COLUMNS.keys())
_CLIP_FIELDS = frozenset(ClipState.model_fields) & set(_CLIP_COLUMNS.keys())
# Timestamps are bound as datetimes (UTCDateTime), not as the JSON dump's strings.
_GENERATION_MOMENTS = _GENERATION_FIELDS & {
    column.name for column in _GENERATION_COLUMNS if isinstance(column.type, UTCDateTime)
}
_CLIP_MOMENTS = _CLIP_FIELDS & {
    column.name for column in _CLIP_COLUMNS if isinstance(column.type, UTCDateTime)
}
# What a clip's upsert rewrites: every column but the key.
CLIP_UPDATED = tuple(column.name for column in _CLIP_COLUMNS if not column.primary_key)


def placeholder_state(
    generation_id: str,
    request: GenerationRequest,
    *,
    status: GenerationStatus = GenerationStatus.queued,
    error: str | None = None,
) -> GenerationState:
    """The record of a run not started yet: written before its workflow starts, so the run is
    listed and owned from the start; a queued one is replaced by the run's first write."""
    now = utcnow()
    return GenerationState(
        generation_id=generation_id,
        title=request.title,
        status=status,
        platform=request.platform,
        provider=request.provider,
        budget=request.budget,
        created_at=now,
        updated_at=PLACEHOLDER_TIME if status is GenerationStatus.queued else now,
        error=error,
    )


def is_placeholder(row: Generation) -> bool:
    """A queued record that no run has written yet."""
    return (
        row.status == GenerationStatus.queued
        and row.updated_at is not None
        and as_utc(row.updated_at) == PLACEHOLDER_TIME
    )


def is_stale(incoming: datetime | None, stored: datetime | None) -> bool:
    # A state without a timestamp cannot prove it is newer than one with a timestamp.
    if incoming is None:
        return stored is not None
    return stored is not None and as_utc(incoming) < as_utc(stored)


def generation_values(state: GenerationState) -> dict[str, Any]:
    values = state.model_dump(mode="json", include=set(_GENERATION_FIELDS))
    values.update({name: getattr(state, name) for name in _GENERATION_MOMENTS})
    values["created_at"] = state.created_at or utcnow()
    values["recorded_at"] = utcnow()
    return values


def clip_values(generation_id: str, clip: ClipState) -> dict[str, Any]:
    values = clip.model_dump(mode="json", include=set(_CLIP_FIELDS))
    values.update({name: getattr(clip, name) for name in _CLIP_MOMENTS})
    values["generation_id"] = generation_id
    values["cached"] = clip.status is ClipStatus.cached
    return values


def state_from_rows(row: Generation, clips: Sequence[Clip]) -> GenerationState:
    return GenerationState.model_validate(
        {
            **{name: getattr(row, name) for name in _GENERATION_FIELDS},
            "generation_id": row.id,
            "clips": [ClipState.model_validate(clip, from_attributes=True) for clip in clips],
        }
    )
