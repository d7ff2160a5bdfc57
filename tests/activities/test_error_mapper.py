"""Every activity's ``StoryreelError`` reaches the workflow as the ``ApplicationError`` its class
names, through the one mapper (``activities.errors.ErrorMapper``) on the workers ``worker.py``
builds: a real worker on the time-skipping server, a provider that raises each error, and a
workflow that reads what arrived. ``cancel_prediction`` had no mapping of its own before."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from pydantic import BaseModel
from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from activities.llm_planner import PlannerAnswerError, PlannerThrottledError
from activities.media.conform import ConformStopped
from activities.providers.base import ClipJob, ClipOutput, Report
from activities.providers.local import Stopped
from storyreel import errors
from storyreel.contracts import CheckInput, PredictionUpdate
from storyreel.db import Records, default_url
from storyreel.settings import Settings
from worker import running_workers

# Each error an activity may raise, as it is made, and what must arrive: (type, non_retryable).
RAISED: dict[str, tuple[Callable[[], errors.StoryreelError], tuple[str, bool]]] = {
    "BadInputError": (lambda: errors.BadInputError("m"), ("BadInputError", True)),
    "StorageKeyError": (lambda: errors.StorageKeyError("m"), ("StorageKeyError", True)),
    "NotFoundError": (lambda: errors.NotFoundError("m"), ("NotFoundError", True)),
    "ConflictError": (lambda: errors.ConflictError("m"), ("ConflictError", True)),
    "UnauthorizedError": (lambda: errors.UnauthorizedError("m"), ("UnauthorizedError", True)),
    "RateLimitedError": (lambda: errors.RateLimitedError("m", 5), ("RateLimitedError", True)),
    "MediaError": (lambda: errors.MediaError("m"), ("MediaError", False)),
    "Stopped": (lambda: Stopped("m"), ("Stopped", False)),
    "ConformStopped": (lambda: ConformStopped("m"), ("ConformStopped", False)),
    "ProviderError": (lambda: errors.ProviderError("m"), ("ProviderError", False)),
    "PredictionFailedError": (
        lambda: errors.PredictionFailedError("m"),
        ("PredictionFailedError", False),
    ),
    "ProviderRefusedError": (
        lambda: errors.ProviderRefusedError("m"),
        ("ProviderRefusedError", True),
    ),
    "ProviderRejectedError": (
        lambda: errors.ProviderRejectedError("m", status_code=422),
        ("ProviderRejectedError", True),
    ),
    "ProviderThrottledError": (
        lambda: errors.ProviderThrottledError("m"),
        ("ProviderThrottledError", False),
    ),
    "PlannerAnswerError": (lambda: PlannerAnswerError("m"), ("PlannerAnswerError", False)),
    # The planner's 429 is retried as any throttling, after the endpoint's own Retry-After.
    "PlannerThrottledError": (
        lambda: PlannerThrottledError("m", retry_after=7),
        ("ProviderThrottledError", False),
    ),
}


class Arrived(BaseModel):
    """What the workflow saw of a failed activity (all None: it did not fail)."""

    type: str | None = None
    non_retryable: bool | None = None
    message: str | None = None
    attempt: int | None = None


class Probe(BaseModel):
    activity: str
    queue: str
    error: str


@workflow.defn(sandboxed=False)
class ProbeWorkflow:
    """Runs one clip activity once and reports the failure that reached the workflow."""

    @workflow.run
    async def run(self, probe: Probe) -> Arrived:
        try:
            await workflow.execute_activity(
                probe.activity,
                CheckInput(provider="raising", model="m", prediction_id=probe.error),
                task_queue=probe.queue,
                start_to_close_timeout=timedelta(seconds=30),
                retry_policy=RetryPolicy(maximum_attempts=1),
            )
        except ActivityError as error:
            cause = error.cause
            if not isinstance(cause, ApplicationError):
                return Arrived(message=f"not an ApplicationError: {cause!r}")
            details = [d for d in cause.details if isinstance(d, dict)]
            return Arrived(
                type=cause.type,
                non_retryable=cause.non_retryable,
                message=cause.message,
                attempt=details[-1].get("attempt") if details else None,
            )
        return Arrived()


@dataclass(frozen=True)
class Queues:
    clips: str
    probe: str


class RaisingProvider:
    """A clip provider whose every read and cancel raises the error its prediction id names."""

    calls_back = False

    async def submit(self, job: ClipJob, webhook_url: str | None = None) -> str:
        raise NotImplementedError

    async def check(self, prediction_id: str, model: str) -> PredictionUpdate:  # noqa: ARG002
        raise RAISED[prediction_id][0]()

    async def wait(self, prediction_id: str, job: ClipJob, report: Report) -> ClipOutput:
        raise NotImplementedError

    async def cancel(self, prediction_id: str, model: str) -> None:  # noqa: ARG002
        raise RAISED[prediction_id][0]()


@asynccontextmanager
async def clip_worker(env: WorkflowEnvironment, tmp_path: Path) -> AsyncIterator[Queues]:
    """worker.py's clip worker for the raising provider, and a worker for the probe."""
    unique = uuid.uuid4().hex[:10]
    settings = Settings(
        data_dir=tmp_path / "data", clip_task_queue_prefix=f"clips-{unique}", _env_file=None
    )
    # The clip queue never writes records: an engine that is never connected will do.
    records = Records.from_url(default_url(tmp_path / "records"))
    probe_queue = f"probe-{unique}"
    async with AsyncExitStack() as stack:
        stack.callback(records.dispose)
        executor = stack.enter_context(ThreadPoolExecutor(max_workers=4))
        await stack.enter_async_context(
            running_workers(
                env.client,
                settings,
                ["clips:raising"],
                executor,
                clip_providers={"raising": RaisingProvider()},
                records=records,
            )
        )
        await stack.enter_async_context(
            Worker(
                env.client,
                task_queue=probe_queue,
                workflows=[ProbeWorkflow],
                workflow_runner=UnsandboxedWorkflowRunner(),
            )
        )
        yield Queues(clips=settings.clip_task_queue("raising"), probe=probe_queue)


async def probe(env: WorkflowEnvironment, activity: str, queues: Queues, error: str) -> Arrived:
    return await env.client.execute_workflow(
        ProbeWorkflow.run,
        Probe(activity=activity, queue=queues.clips, error=error),
        id=f"probe-{uuid.uuid4().hex}",
        task_queue=queues.probe,
    )


async def test_each_storyreel_error_arrives_as_its_application_error(
    time_skipping_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    async with clip_worker(time_skipping_env, tmp_path) as queues:
        arrived = {
            name: await probe(time_skipping_env, "check_prediction", queues, name)
            for name in RAISED
        }
    assert {name: (a.type, a.non_retryable) for name, a in arrived.items()} == {
        name: expected for name, (_, expected) in RAISED.items()
    }
    assert {a.message for a in arrived.values()} == {"m"}
    # The attempt rides along: a workflow counts a clip's attempts by it.
    assert {a.attempt for a in arrived.values()} == {1}


async def test_a_cancel_that_fails_arrives_mapped_too(
    time_skipping_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    async with clip_worker(time_skipping_env, tmp_path) as queues:
        arrived = await probe(
            time_skipping_env, "cancel_prediction", queues, "ProviderRejectedError"
        )
    assert (arrived.type, arrived.non_retryable) == ("ProviderRejectedError", True)


def test_every_storyreel_error_is_in_the_table() -> None:
    def every(cls: type[errors.StoryreelError]) -> set[str]:
        # The product's own errors (a test module may define others of its own).
        own = cls.__module__.partition(".")[0] in {"storyreel", "activities", "api", "workflows"}
        below = set().union(*(every(sub) for sub in cls.__subclasses__()))
        return below | {cls.__name__} if own else below

    assert every(errors.StoryreelError) - {"StoryreelError"} == set(RAISED)


def test_the_planners_throttle_asks_for_its_retry_after() -> None:
    mapped = PlannerThrottledError("slow down", retry_after=7).to_application_error(attempt=2)
    assert mapped.next_retry_delay == timedelta(seconds=7)
    assert (mapped.type, mapped.non_retryable, mapped.details) == (
        "ProviderThrottledError",
        False,
        ({"attempt": 2},),
    )
