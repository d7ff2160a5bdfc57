"""Live progress of clips whose provider calls back (webhooks), shown while a run is going."""

from __future__ import annotations

from sqlalchemy import and_, case
from sqlmodel import col, select

from storyreel.contracts import ClipStatus
from storyreel.db.base import Excluded, RecordsBase, upsert
from storyreel.db.models import ClipProgress, utcnow


class ProgressRecords(RecordsBase):
    """Clip progress from provider webhooks."""

    def set_clip_progress(
        self,
        generation_id: str,
        clip_id: int,
        prediction_id: str,
        status: ClipStatus,
        progress: float,
    ) -> None:
        """Note a clip's progress from a webhook; a prediction's progress never goes back."""
        values = {
            "generation_id": generation_id,
            "clip_id": clip_id,
            "prediction_id": prediction_id,
            "status": status.value,
            "progress": progress,
            "updated_at": utcnow(),
        }
        table = ClipProgress.__table__  # type: ignore[attr-defined]

        def forward(excluded: Excluded) -> dict[str, object]:
            same = table.c.prediction_id == excluded.prediction_id
            return {
                "prediction_id": excluded.prediction_id,
                "status": excluded.status,
                # A new prediction starts over; the same one only moves forward.
                "progress": case(
                    (and_(same, table.c.progress > excluded.progress), table.c.progress),
                    else_=excluded.progress,
                ),
                "updated_at": excluded.updated_at,
            }

        with self._writing() as session:
            upsert(
                session.connection(),
                ClipProgress,
                values,
                keys=["generation_id", "clip_id"],
                on_conflict=forward,
            )

    def clip_progress(self, generation_id: str) -> list[ClipProgress]:
        with self._reading() as session:
            query = select(ClipProgress).where(col(ClipProgress.generation_id) == generation_id)
            return list(session.exec(query).all())
