"""Generations and their clips: the state each run records as it goes, kept after Temporal's
retention has expired."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from pydantic import BaseModel
from sqlalchemy import Connection, delete, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from storyreel.contracts import GenerationInput, GenerationState, GenerationStatus
from storyreel.db.base import RecordsBase, running_count, upsert
from storyreel.db.models import Batch, BatchItem, Clip, Generation, GenerationPublic
from storyreel.db.rows import (
    CLIP_UPDATED,
    clip_values,
    generation_values,
    is_stale,
    placeholder_state,
    state_from_rows,
)
from storyreel.errors import ConflictError, NotFoundError


class GenerationPage(BaseModel):
    """One page of a user's generations, newest first; ``next_cursor`` asks for the next."""

    items: list[GenerationPublic]
    next_cursor: str | None = None


class GenerationRecords(RecordsBase):
    """Generations and clips."""

    def upsert_generation(
        self, state: GenerationState, *, user_id: int, request: Mapping[str, Any]
    ) -> bool:
        """Record ``state``; False if the row already holds a newer one.

        ``request`` (the caller's GenerationRequest as JSON) is kept from the first write.
        Idempotent: the same state twice writes the same row twice. Out of order: a state whose
        ``updated_at`` is older than the stored one is ignored, so a late retry of an earlier
        milestone cannot undo a later one. Clips are rewritten with the generation, so the
        clip rows are always those of the state the generation row holds.
        """
        values = generation_values(state)
        try:
            with self._writing() as session:
                connection = session.connection()
                first = {"id": state.generation_id, "user_id": user_id, "request": dict(request)}
                inserted = upsert(connection, Generation, {**first, **values}, keys=["id"])
                if not inserted:
                    # FOR UPDATE: on PostgreSQL, concurrent writers of one generation compare
                    # and write one after the other (SQLite already holds the write lock).
                    stored = connection.execute(
                        select(col(Generation.user_id), col(Generation.updated_at))
                        .where(col(Generation.id) == state.generation_id)
                        .with_for_update()
                    ).one()
                    if stored.user_id != user_id:
                        raise ConflictError(
                            f"generation {state.generation_id} belongs to another user"
                        )
                    if is_stale(state.updated_at, stored.updated_at):
                        return False
                    if state.created_at is None:
                        values.pop("created_at")
                    connection.execute(
                        update(Generation)
                        .where(col(Generation.id) == state.generation_id)
                        .values(values)
                    )
                _write_clips(connection, state)
        except IntegrityError as exc:
            raise NotFoundError(f"no user with id {user_id}") from exc
        return True

    def get_generation(self, generation_id: str, user_id: int) -> GenerationState | None:
        """The recorded state; None if there is none or it is another user's."""
        with self._reading() as session:
            row = session.get(Generation, generation_id)
            if row is None:
                return _waiting_batch_item(session, generation_id, user_id)
            if row.user_id != user_id:
                return None
            clips = session.exec(
                select(Clip)
                .where(col(Clip.generation_id) == generation_id)
                .order_by(col(Clip.clip_id))
            ).all()
            return state_from_rows(row, clips)

    def generation_request(self, generation_id: str, user_id: int) -> dict[str, Any] | None:
        """The request the caller started the run with (JSON), or None (another user's too)."""
        with self._reading() as session:
            row = session.get(Generation, generation_id)
            return dict(row.request) if row is not None and row.user_id == user_id else None

    def list_generations(
        self,
        user_id: int,
        *,
        status: GenerationStatus | Collection[GenerationStatus] | None = None,
        limit: int = 20,
        cursor: str | None = None,
    ) -> GenerationPage:
        """The user's generations, newest first, ``limit`` at a time."""
        query = select(Generation).where(col(Generation.user_id) == user_id)
        if status is not None:
            wanted = [status] if isinstance(status, GenerationStatus) else list(status)
            query = query.where(col(Generation.status).in_([s.value for s in wanted]))
        rows, next_cursor = self._newest_first(query, Generation, limit, cursor)
        items = [GenerationPublic.model_validate(row) for row in rows]
        return GenerationPage(items=items, next_cursor=next_cursor)

    def count_running(self, user_id: int) -> int:
        """How many of the user's generations have not ended (for per-user quotas)."""
        with self._reading() as session:
            return int(session.exec(running_count(user_id)).one())


def _write_clips(connection: Connection, state: GenerationState) -> None:
    rows = [clip_values(state.generation_id, clip) for clip in state.clips]
    if rows:
        upsert(
            connection,
            Clip,
            rows,
            keys=["generation_id", "clip_id"],
            on_conflict=lambda excluded: {name: excluded[name] for name in CLIP_UPDATED},
        )
    # A state never loses clips in practice; if one did, the record follows it exactly.
    connection.execute(
        delete(Clip).where(
            col(Clip.generation_id) == state.generation_id,
            col(Clip.clip_id).not_in([clip.clip_id for clip in state.clips]),
        )
    )


def _waiting_batch_item(
    session: Session, generation_id: str, user_id: int
) -> GenerationState | None:
    """A batch lists every generation id at once, but an item's record is written when its turn
    comes: until then the id answers as the user's queued generation (or as nothing)."""
    item = session.exec(
        select(BatchItem)
        .join(Batch, col(Batch.id) == col(BatchItem.batch_id))
        .where(col(BatchItem.generation_id) == generation_id, col(Batch.user_id) == user_id)
    ).first()
    if item is None:
        return None
    return placeholder_state(generation_id, GenerationInput.model_validate(item.input))
