"""Batches: many generations submitted at once, started as the user's running quota allows."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from storyreel.contracts import (
    BatchStatus,
    ClaimResult,
    GenerationInput,
    GenerationRequest,
    GenerationStatus,
)
from storyreel.db.base import RecordsBase, running_count, upsert
from storyreel.db.models import Batch, BatchItem, BatchPublic, Generation, utcnow
from storyreel.db.rows import generation_values, is_placeholder, placeholder_state
from storyreel.errors import ConflictError, NotFoundError

BATCH_ENDED_FIRST = "the batch ended before this generation started"


class BatchPage(BaseModel):
    """One page of a user's batches, newest first."""

    items: list[BatchPublic]
    next_cursor: str | None = None


class BatchRecords(RecordsBase):
    """Batches and their items."""

    def create_batch(
        self,
        batch_id: str,
        user_id: int,
        title: str,
        items: Sequence[GenerationInput],
        generation_ids: Sequence[str],
    ) -> BatchPublic:
        """Record a new batch (status running) with each item's prepared input."""
        now = utcnow()
        row = Batch(
            id=batch_id,
            user_id=user_id,
            title=title,
            status=BatchStatus.running,
            total=len(items),
            created_at=now,
            updated_at=now,
        )
        try:
            with self._writing() as session:
                session.add(row)
                session.flush()
                session.add_all(
                    BatchItem(
                        batch_id=batch_id,
                        position=position,
                        generation_id=generation_id,
                        input=item.model_dump(mode="json"),
                    )
                    for position, (item, generation_id) in enumerate(
                        zip(items, generation_ids, strict=True)
                    )
                )
        except IntegrityError as exc:
            raise ConflictError(f"batch {batch_id} or one of its generation ids exists") from exc
        return BatchPublic.model_validate(row)

    def get_batch(self, batch_id: str, user_id: int) -> BatchPublic | None:
        """The batch; None if there is none or it is another user's."""
        with self._reading() as session:
            row = session.get(Batch, batch_id)
            if row is None or row.user_id != user_id:
                return None
            return BatchPublic.model_validate(row)

    def batch_generations(self, batch_id: str) -> list[tuple[str, GenerationStatus | None]]:
        """Each item's generation id, in order, with its recorded status (None: no record yet)."""
        query = (
            select(col(BatchItem.generation_id), col(Generation.status))
            .select_from(BatchItem)
            .outerjoin(Generation, col(Generation.id) == col(BatchItem.generation_id))
            .where(col(BatchItem.batch_id) == batch_id)
            .order_by(col(BatchItem.position))
        )
        with self._reading() as session:
            rows = session.exec(query).all()
        return [(gid, GenerationStatus(status) if status else None) for gid, status in rows]

    def list_batches(
        self, user_id: int, *, limit: int = 20, cursor: str | None = None
    ) -> BatchPage:
        """The user's batches, newest first, paged like generations."""
        query = select(Batch).where(col(Batch.user_id) == user_id)
        rows, next_cursor = self._newest_first(query, Batch, limit, cursor)
        return BatchPage(
            items=[BatchPublic.model_validate(row) for row in rows], next_cursor=next_cursor
        )

    def claim_batch_item(
        self, batch_id: str, position: int, user_id: int, max_running: int
    ) -> ClaimResult:
        """The item's prepared input, its placeholder record written, if the user may start one
        more generation now; else a result without ``request``. One write transaction, so two
        claimers never both take the user's last slot. Idempotent: an item already claimed is
        handed out again without being counted twice."""
        with self._writing() as session:
            item = session.get(BatchItem, (batch_id, position))
            if item is None:
                raise NotFoundError(f"batch {batch_id} has no item {position}")
            request = GenerationInput.model_validate(item.input)
            claimed = ClaimResult(generation_id=item.generation_id, request=request)
            if session.get(Generation, item.generation_id) is not None:
                return claimed
            if session.exec(running_count(user_id)).one() >= max_running:
                return ClaimResult(generation_id=item.generation_id)
            _write_placeholder(session, item, request, user_id, GenerationStatus.queued)
            return claimed

    def close_batch(self, batch_id: str, status: BatchStatus) -> None:
        """Write the batch's final status. Items that never started (none, or only a
        placeholder, when the batch was cancelled) are recorded as cancelled generations, so
        every id the batch listed answers and none counts as running."""
        with self._writing() as session:
            batch = session.get(Batch, batch_id)
            if batch is None:
                raise NotFoundError(f"no batch {batch_id}")
            items = session.exec(select(BatchItem).where(col(BatchItem.batch_id) == batch_id))
            for item in items:
                row = session.get(Generation, item.generation_id)
                if row is not None and not is_placeholder(row):
                    continue
                request = GenerationInput.model_validate(item.input)
                if row is not None:
                    row.status, row.updated_at = GenerationStatus.cancelled, utcnow()
                    row.error = BATCH_ENDED_FIRST
                    session.add(row)
                    continue
                _write_placeholder(
                    session, item, request, batch.user_id, GenerationStatus.cancelled
                )
            batch.status, batch.updated_at = status, utcnow()
            session.add(batch)


def _write_placeholder(
    session: Session,
    item: BatchItem,
    request: GenerationInput,
    user_id: int,
    status: GenerationStatus,
) -> None:
    error = None if status is GenerationStatus.queued else BATCH_ENDED_FIRST
    state = placeholder_state(item.generation_id, request, status=status, error=error)
    public = request.model_dump(mode="json", include=set(GenerationRequest.model_fields))
    values = {"id": item.generation_id, "user_id": user_id, "request": public}
    upsert(session.connection(), Generation, {**values, **generation_values(state)}, keys=["id"])
