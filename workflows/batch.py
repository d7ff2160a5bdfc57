"""``BatchWorkflow``: many generations, each its own child ``VideoGenerationWorkflow``, a
bounded number at a time and never more than their owner may run."""

from __future__ import annotations

import asyncio
from collections import Counter

from temporalio import workflow
from temporalio.exceptions import (
    ChildWorkflowError,
    WorkflowAlreadyStartedError,
    is_cancelled_exception,
)

with workflow.unsafe.imports_passed_through():
    from activities.batches import BatchActivities
    from storyreel.contracts import (
        BATCH_WORKFLOW_NAME,
        WORKFLOW_NAME,
        BatchInput,
        BatchResult,
        BatchStatus,
        ClaimInput,
        ClaimResult,
        CloseBatchInput,
        GenerationState,
        GenerationStatus,
    )
    from storyreel.generations import RUN_TASK_TIMEOUT, memo, search_attributes, summary
    from storyreel.notify import NotifyInput, event_id, selects
    from storyreel.priority import task_priority
    from workflows import policies
    from workflows.notify import start_notice
    from workflows.patches import NOTIFY_WEBHOOK


def batch_status(outcomes: list[GenerationStatus], count: int, cancelled: bool) -> BatchStatus:
    """How a batch ended, from its generations' outcomes."""
    if cancelled:
        return BatchStatus.cancelled
    completed = sum(1 for outcome in outcomes if outcome is GenerationStatus.completed)
    if completed == count:
        return BatchStatus.completed
    return BatchStatus.failed if completed == 0 else BatchStatus.partial


@workflow.defn(name=BATCH_WORKFLOW_NAME)
class BatchWorkflow:
    """Starts the batch's items one after another as child generations, at most
    ``concurrency`` at once, and waits for all of them. Each child has its own id, record and
    priority (``batch`` unless the item said otherwise), so a person's runs started meanwhile
    are dispatched first on every busy queue."""

    @workflow.init
    def __init__(self, batch: BatchInput) -> None:
        self._batch = batch
        self._running = 0
        self._started = 0
        self._outcomes: dict[str, GenerationStatus] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._cancelled = False

    @workflow.query
    def get_state(self) -> BatchResult:
        return BatchResult(
            batch_id=self._batch.batch_id, status=BatchStatus.running, outcomes=self._outcomes
        )

    @workflow.run
    async def run(self, batch: BatchInput) -> BatchResult:
        try:
            position = 0
            while position < batch.count:
                await workflow.wait_condition(lambda: self._running < batch.concurrency)
                claim = await self._claim(position)
                if claim.request is None:
                    await self._await_slot()
                    continue
                self._launch(claim)
                position += 1
            await workflow.wait_condition(lambda: self._running == 0)
        except asyncio.CancelledError:
            self._cancelled = True
            for task in self._tasks:
                task.cancel()
            # Each child writes its own cancelled record before it ends.
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await self._close()
            raise
        return await self._close()

    async def _claim(self, position: int) -> ClaimResult:
        batch = self._batch
        return await workflow.execute_activity_method(
            BatchActivities.claim_batch_item,
            ClaimInput(
                batch_id=batch.batch_id,
                position=position,
                user_id=batch.user_id,
                max_running=batch.max_running,
            ),
            **policies.BATCH_RECORD.options(
                task_queue=workflow.info().task_queue,
                summary=f"claim item {position + 1}/{batch.count}",
            ),
        )

    async def _await_slot(self) -> None:
        """The owner runs all they may: wait until one of ours ends, or look again later
        (their other runs end without telling us)."""
        running = self._running
        try:
            await workflow.wait_condition(
                lambda: self._running < running, timeout=policies.BATCH_SLOT_RECHECK
            )
        except TimeoutError:
            pass

    def _launch(self, claim: ClaimResult) -> None:
        self._running += 1
        self._started += 1
        self._tasks.append(asyncio.create_task(self._child(claim)))
        self._show()

    async def _child(self, claim: ClaimResult) -> None:
        request = claim.request
        assert request is not None
        batch = self._batch
        outcome = GenerationStatus.failed
        # The bookkeeping follows every way out but one: not in a ``finally``, which also runs
        # when an evicted run's coroutines are closed, outside the workflow's event loop.
        try:
            handle = await workflow.start_child_workflow(
                WORKFLOW_NAME,
                request,
                id=claim.generation_id,
                result_type=GenerationState,
                search_attributes=search_attributes(request, batch.user),
                memo={**memo(request, batch.user), "batch": batch.batch_id},
                static_summary=f"{summary(request)} · batch {batch.batch_id}",
                task_timeout=RUN_TASK_TIMEOUT,
                priority=task_priority(request.priority, batch.user_id),
                # A cancelled batch cancels its runs (they record it); it never kills them.
                parent_close_policy=workflow.ParentClosePolicy.REQUEST_CANCEL,
            )
            state = await handle
            outcome = state.status
        except ChildWorkflowError as error:
            cancelled = is_cancelled_exception(error)
            outcome = GenerationStatus.cancelled if cancelled else GenerationStatus.failed
        except WorkflowAlreadyStartedError:
            workflow.logger.warning("generation %s was already started", claim.generation_id)
        except asyncio.CancelledError:
            self._settle(claim.generation_id, GenerationStatus.cancelled)
            raise
        self._settle(claim.generation_id, outcome)

    def _settle(self, generation_id: str, outcome: GenerationStatus) -> None:
        self._running -= 1
        self._outcomes[generation_id] = outcome
        self._show()

    async def _close(self) -> BatchResult:
        outcomes = list(self._outcomes.values())
        status = batch_status(outcomes, self._batch.count, self._cancelled)
        await workflow.execute_activity_method(
            BatchActivities.close_batch,
            CloseBatchInput(batch_id=self._batch.batch_id, status=status),
            **policies.BATCH_RECORD.options(
                task_queue=workflow.info().task_queue,
                summary=f"close: {status.value}",
            ),
        )
        result = BatchResult(batch_id=self._batch.batch_id, status=status, outcomes=self._outcomes)
        await self._notify(result)
        return result

    async def _notify(self, result: BatchResult) -> None:
        """The batch's end to its webhook, when its filter selects it (a partial batch counts
        as completed)."""
        batch = self._batch
        if batch.webhook is None or not workflow.patched(NOTIFY_WEBHOOK):
            return
        selected = "completed" if result.status is BatchStatus.partial else result.status.value
        if not selects(batch.webhook_events_filter, selected):
            return
        counts = Counter(outcome.value for outcome in result.outcomes.values())
        notice = NotifyInput(
            event_id=event_id(batch.batch_id, 1),
            type=f"batch.{result.status.value}",
            url=batch.webhook,
            user_id=batch.user_id,
            batch_id=batch.batch_id,
            timestamp=workflow.now(),
            data={
                "id": batch.batch_id,
                "title": batch.title,
                "status": result.status.value,
                "counts": dict(counts),
                "generations": {gid: status.value for gid, status in result.outcomes.items()},
                "url": f"{(batch.api_base_url or '').rstrip('/')}/v1/batches/{batch.batch_id}",
            },
            retry_initial_seconds=batch.webhook_retry_initial_seconds,
        )
        await start_notice(notice, f"{notice.type} of {batch.batch_id}")

    def _show(self) -> None:
        counts = Counter(outcome.value for outcome in self._outcomes.values())
        done = ", ".join(f"{count} {status}" for status, count in sorted(counts.items()))
        workflow.set_current_details(
            f"**{self._batch.title}**: {self._started}/{self._batch.count} started, "
            f"{self._running} running" + (f"; {done}" if done else "")
        )
