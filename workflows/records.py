"""The run's record in the database: written at its milestones, and (runs started since
``RECORD_STAGES``) at every stage, so the API reads a running generation from the record.
A failed write never fails the run (the record is an idempotent upsert: the next one heals)."""

from __future__ import annotations

from temporalio import workflow
from temporalio.common import Priority
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.records import RecordActivities
    from storyreel.contracts import (
        Charge,
        GenerationInput,
        GenerationRequest,
        GenerationState,
        RecordInput,
    )
    from workflows import policies
    from workflows.patches import LIGHT_RECORDS, RECORD_STAGES


class Recorder:
    """Writes ``state`` for the request's owner (a run without one writes no record)."""

    def __init__(
        self, request: GenerationInput, state: GenerationState, priority: Priority
    ) -> None:
        self._request = request
        self._state = state
        self._priority = priority
        self._public_request = request.model_dump(
            mode="json", include=set(GenerationRequest.model_fields)
        )
        self._every_stage = False
        self._local = False
        self._busy = False
        self._again = False

    def begin(self) -> None:
        """Take the run's way of recording from its patches (first thing in the run)."""
        self._every_stage = self._request.user_id is not None and workflow.patched(RECORD_STAGES)
        self._local = self._every_stage and workflow.patched(LIGHT_RECORDS)

    async def milestone(self, charge: Charge | None = None) -> None:
        """Write this milestone to the database; a failed write never fails the run."""
        user_id = self._request.user_id
        if user_id is None:
            return
        state = self._state
        record = RecordInput(
            state=state, user_id=user_id, request=self._public_request, charge=charge
        )
        try:
            if self._local:
                await workflow.execute_local_activity_method(
                    RecordActivities.record_generation,
                    record,
                    **policies.RECORD.local_options(
                        summary=f"record: {state.status.value}",
                    ),
                )
                return
            await workflow.execute_activity_method(
                RecordActivities.record_generation,
                record,
                **policies.RECORD.options(
                    # The workflow's own queue: its worker takes the write at once (eagerly),
                    # not behind the media queue's FFmpeg work. Earlier runs keep the media queue.
                    task_queue=(
                        workflow.info().task_queue
                        if self._every_stage
                        else self._request.queues.media
                    ),
                    priority=self._priority,
                    summary=f"record: {state.status.value}",
                ),
            )
        except ActivityError as error:
            workflow.logger.warning("could not record %s: %s", state.status.value, error)

    async def stage(self) -> None:
        """Record a change between milestones (a stage entered, retries taken), so readers of
        the record see it; runs started before RECORD_STAGES record milestones only."""
        if self._every_stage:
            await self.milestone()

    async def soon(self) -> None:
        """Write the record now, or (when a write is under way) once more right after it:
        a burst of clip submissions becomes two writes, not one per clip."""
        if self._busy:
            self._again = True
            return
        self._busy = True
        try:
            self._again = True
            while self._again:
                self._again = False
                await self.milestone()
        finally:
            self._busy = False
