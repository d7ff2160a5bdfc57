"""The permanent record: the workflow writes each milestone of a run to the database."""

from __future__ import annotations

from temporalio import activity

from storyreel.contracts import RecordInput
from storyreel.db import Records


class RecordActivities:
    def __init__(self, records: Records) -> None:
        self.records = records

    @activity.defn(name="record_generation")
    def record_generation(self, request: RecordInput) -> bool:
        """Upsert the run's state (and enter a clip's cost once); runs on the executor.

        Idempotent: a retried or late write of an older state is ignored by its ``updated_at``,
        and a charge is entered once per key, so retries never double-count.
        """
        state = request.state
        written = self.records.upsert_generation(
            state, user_id=request.user_id, request=request.request
        )
        if request.charge is not None and request.charge.amount > 0:
            self.records.record_cost(
                request.user_id,
                state.generation_id,
                request.charge.clip_id,
                request.charge.amount,
                request.charge.key,
                billed_seconds=request.charge.billed_seconds,
            )
        return written
