"""Outbound webhooks: ``NotifyWorkflow`` delivers one event, and ``Notifier`` starts one for
each change of a run's status that its ``webhook_events_filter`` selects.

Each event is its own child workflow, id = the event's id, abandoned by its parent: the
delivery outlives the run that caused it (a completed run's last event is still retried for
a day), survives worker and API restarts like any workflow, and the same event is never
started twice. The run waits only for the child to start, never for the delivery.
"""

from __future__ import annotations

import asyncio

from temporalio import workflow
from temporalio.exceptions import WorkflowAlreadyStartedError

with workflow.unsafe.imports_passed_through():
    from activities.notify import NotifyActivities
    from storyreel.contracts import GenerationInput, GenerationState, GenerationStatus
    from storyreel.notify import (
        NOTIFY_WORKFLOW_NAME,
        DeliveryResult,
        NotifyInput,
        event_id,
        generation_data,
        selects,
    )
    from workflows import policies
    from workflows.patches import NOTIFY_WEBHOOK


@workflow.defn(name=NOTIFY_WORKFLOW_NAME)
class NotifyWorkflow:
    """Delivers one event to its webhook, retrying (exponential backoff) for 25 hours."""

    @workflow.run
    async def run(self, notice: NotifyInput) -> DeliveryResult:
        return await workflow.execute_activity_method(
            NotifyActivities.deliver_webhook,
            notice,
            task_queue=workflow.info().task_queue,
            start_to_close_timeout=policies.NOTIFY_TIMEOUT,
            schedule_to_close_timeout=policies.NOTIFY_WINDOW,
            retry_policy=policies.notify_retry(notice.retry_initial_seconds),
            summary=notice.type,
        )


async def start_notice(notice: NotifyInput, summary: str) -> None:
    """Start the event's delivery (once: an event already started is left as it is)."""
    try:
        await workflow.start_child_workflow(
            NOTIFY_WORKFLOW_NAME,
            notice,
            id=notice.event_id,
            result_type=DeliveryResult,
            # The delivery goes on after its run ends; cancelling the run does not stop it.
            parent_close_policy=workflow.ParentClosePolicy.ABANDON,
            static_summary=summary,
        )
    except WorkflowAlreadyStartedError:
        workflow.logger.info("event %s was already started", notice.event_id)


class Notifier:
    """The events of one generation: ``changed`` is told every change of status."""

    def __init__(self, request: GenerationInput, state: GenerationState) -> None:
        self._request = request
        self._state = state
        self._on = False
        self._sent = 0
        self._starts: list[asyncio.Task[None]] = []

    def begin(self) -> None:
        """Whether this run sends events (first thing in the run, for its patch marker)."""
        request = self._request
        self._on = (
            request.webhook is not None
            and request.user_id is not None
            and workflow.patched(NOTIFY_WEBHOOK)
        )

    def changed(self, status: GenerationStatus) -> None:
        """The run's status became ``status``: start its event if the filter selects it."""
        request, state = self._request, self._state
        if not self._on or not selects(request.webhook_events_filter, status.value):
            return
        assert request.webhook is not None and request.user_id is not None
        self._sent += 1
        notice = NotifyInput(
            event_id=event_id(state.generation_id, self._sent),
            type=f"generation.{status.value}",
            url=request.webhook,
            user_id=request.user_id,
            generation_id=state.generation_id,
            timestamp=workflow.now(),
            data=generation_data(state, request.api_base_url),
            retry_initial_seconds=request.webhook_retry_initial_seconds,
        )
        summary = f"{notice.type} of {state.generation_id}"
        self._starts.append(asyncio.create_task(start_notice(notice, summary)))

    async def settle(self) -> None:
        """Wait until every event so far has started (before the run ends: a child start still
        in flight when its parent closes might never happen)."""
        starts, self._starts = self._starts, []
        await asyncio.gather(*starts)
