"""What others see of a running generation between its records: the stage timings, the
status (also a search attribute, for listing runs by status), a strictly increasing
``updated_at``, and the current details the Temporal Web UI shows."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from storyreel.contracts import GenerationState, GenerationStatus, Stage, StageTiming
    from storyreel.temporal import STATUS_ATTR
    from workflows.summary import run_details

TICK = timedelta(microseconds=1)


class Progress:
    """Marks changes of ``state`` as the workflow makes them."""

    def __init__(
        self,
        state: GenerationState,
        on_status: Callable[[GenerationStatus], None] | None = None,
    ) -> None:
        self._state = state
        self._on_status = on_status

    def enter(self, stage: Stage, status: GenerationStatus) -> None:
        self.close_stage()
        self._state.stage = stage
        self._state.timings.append(StageTiming(stage=stage, started_at=workflow.now()))
        self.set_status(status)

    def close_stage(self) -> None:
        timings = self._state.timings
        if timings and timings[-1].ended_at is None:
            timings[-1].ended_at = workflow.now()

    def set_status(self, status: GenerationStatus) -> None:
        changed = status is not self._state.status
        self._state.status = status
        self.touch()
        if changed and workflow.info().typed_search_attributes.get(STATUS_ATTR) is not None:
            workflow.upsert_search_attributes([STATUS_ATTR.value_set(status.value)])
        if changed and self._on_status is not None:
            self._on_status(status)

    def touch(self) -> None:
        state = self._state
        # Strictly increasing, even within one workflow task: the record keeps the newest state.
        now = workflow.now()
        previous = state.updated_at
        state.updated_at = now if previous is None or now > previous else previous + TICK
        workflow.set_current_details(run_details(state))
