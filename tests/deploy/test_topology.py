"""The topology docker-compose.yml describes, run natively: stateless workers split by queue.

Temporal (the session's dev server), the simulator as its own process, TWO worker processes
polling only the simulator clip queue (``worker-clips-simulator`` scaled to 2), ONE worker for
``workflows,media``, and the API. Twelve generations go in through the API; both clip workers
take clips (counted from the histories: each attempt's ``ActivityTaskStarted`` names the
worker, ``<pid>@<host>`` by default); then one clip worker is SIGKILLed with clips in flight and
the other finishes them, resuming each heartbeated prediction instead of paying for a new one.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from temporalio.api.enums.v1 import EventType, PendingActivityState, TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client, WorkflowHistory

from storyreel.contracts import CLIP_ACTIVITY_PREFIX, GenerationState, GenerationStatus
from storyreel.db import open_records
from storyreel.settings import Settings
from storyreel.stack import free_port
from tests.api.conftest import serve_api
from tests.workflows.test_simulator_runs import process_env

GENERATIONS = 12
CLIPS = 3
SIM_LATENCY = 3.0
# Few slots per clip worker: the 36 clips come in waves, so there is a "mid-run" to kill in,
# and a backlog on the queue (what KEDA scales on) while both workers are busy.
CLIP_SLOTS = 4
HOST = socket.gethostname()
log = logging.getLogger(__name__)
TASK_QUEUE_WORKFLOW = TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW
TASK_QUEUE_ACTIVITY = TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY


@dataclass
class Proc:
    name: str
    process: subprocess.Popen[bytes]

    @property
    def identity(self) -> str:
        """The worker's Temporal identity: the SDK's default, ``<pid>@<hostname>``."""
        return f"{self.process.pid}@{HOST}"


def role_env(settings: Settings, **extra: str) -> dict[str, str]:
    """What compose's env_file would give each role, pointing at this test's server."""
    return {**process_env(settings), **extra}


@contextmanager
def processes() -> Iterator[list[Proc]]:
    """Whatever is started here is stopped on the way out, killed if it will not stop."""
    started: list[Proc] = []
    try:
        yield started
    finally:
        for proc in reversed(started):
            if proc.process.poll() is None:
                proc.process.send_signal(signal.SIGTERM)
        for proc in started:
            try:
                proc.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.process.kill()
                proc.process.wait()


def spawn(started: list[Proc], name: str, args: list[str], env: dict[str, str]) -> Proc:
    process = subprocess.Popen(
        [sys.executable, "-m", *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    proc = Proc(name, process)
    started.append(proc)
    return proc


async def wait_until_listening(proc: Proc, port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        assert proc.process.poll() is None, f"{proc.name} exited with {proc.process.returncode}"
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            assert time.monotonic() < deadline, f"{proc.name} never listened on {port}"
            await asyncio.sleep(0.2)


async def pollers(client: Client, queue: str, kind: TaskQueueType.ValueType) -> set[str]:
    answer = await client.workflow_service.describe_task_queue(
        DescribeTaskQueueRequest(
            namespace=client.namespace, task_queue=TaskQueue(name=queue), task_queue_type=kind
        )
    )
    return {poller.identity for poller in answer.pollers}


async def backlog(client: Client, queue: str) -> int:
    """The activity backlog of ``queue``: the number KEDA's Temporal scaler reads."""
    answer = await client.workflow_service.describe_task_queue(
        DescribeTaskQueueRequest(
            namespace=client.namespace,
            task_queue=TaskQueue(name=queue),
            task_queue_type=TASK_QUEUE_ACTIVITY,
            report_stats=True,
        )
    )
    return int(answer.stats.approximate_backlog_count)


async def sample_backlog(client: Client, queue: str, into: list[int]) -> None:
    while True:
        into.append(await backlog(client, queue))
        await asyncio.sleep(0.5)


async def wait_for_pollers(
    client: Client, expected: dict[str, tuple[TaskQueueType.ValueType, set[str]]]
) -> None:
    """Every worker polls its queues (the server lists it) before any run starts."""
    deadline = time.monotonic() + 90
    for queue, (kind, identities) in expected.items():
        while not identities <= await pollers(client, queue, kind):
            assert time.monotonic() < deadline, f"workers {identities} never polled {queue}"
            await asyncio.sleep(0.3)


@asynccontextmanager
async def api_for(client: Client, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    records = open_records(settings)
    key = records.create_api_key(records.create_user("ops"))
    records.dispose()
    server, task, url = await serve_api(settings, client)
    try:
        headers = {"Authorization": f"Bearer {key}"}
        async with httpx.AsyncClient(base_url=url, timeout=30, headers=headers) as http:
            yield http
    finally:
        server.should_exit = True
        await task


async def post_generation(http: httpx.AsyncClient, index: int) -> str:
    body = {
        "title": f"topology {index}",
        # Distinct prompts: the simulator's log then shows one prediction per clip chain.
        "scenes": [
            {"description": f"run {index} scene {scene}: gulls over the pier", "duration": 2}
            for scene in range(1, CLIPS + 1)
        ],
        "platform": "youtube",
        "provider": "simulator",
        "captions": False,
        "transition": "none",
        "use_cache": False,
    }
    answer = await http.post(
        "/v1/generations", json=body, headers={"Idempotency-Key": uuid.uuid4().hex}
    )
    assert answer.status_code == 202, answer.text
    generation: str = answer.json()["id"]
    return generation


def clip_starts(history: WorkflowHistory) -> list[tuple[str, str, int]]:
    """(activity id, worker identity, attempt) of every finished clip activity attempt."""
    scheduled: dict[int, str] = {}
    starts = []
    for event in history.events:
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            scheduled[event.event_id] = event.activity_task_scheduled_event_attributes.activity_id
        elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            started = event.activity_task_started_event_attributes
            activity_id = scheduled[started.scheduled_event_id]
            if activity_id.startswith(CLIP_ACTIVITY_PREFIX):
                starts.append((activity_id, started.identity, started.attempt))
    return starts


def workflow_task_identities(history: WorkflowHistory) -> set[str]:
    return {
        event.workflow_task_started_event_attributes.identity
        for event in history.events
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED
    }


async def clips_on(
    client: Client, ids: list[str], identity: str
) -> tuple[set[tuple[str, str]], int]:
    """Clip activities running on ``identity``: those that heartbeated their prediction id,
    and how many have not (yet)."""
    beating: set[tuple[str, str]] = set()
    silent = 0
    for generation in ids:
        description = await client.get_workflow_handle(generation).describe()
        for pending in description.raw_description.pending_activities:
            if (
                not pending.activity_id.startswith(CLIP_ACTIVITY_PREFIX)
                or pending.last_worker_identity != identity
                or pending.state != PendingActivityState.PENDING_ACTIVITY_STATE_STARTED
            ):
                continue
            if pending.heartbeat_details.payloads:
                beating.add((generation, pending.activity_id))
            else:
                silent += 1
    return beating, silent


async def finished_clips_by(client: Client, ids: list[str], identity: str) -> int:
    count = 0
    for generation in ids:
        history = await client.get_workflow_handle(generation).fetch_history()
        count += sum(1 for _, who, _ in clip_starts(history) if who == identity)
    return count


async def test_two_clip_workers_share_the_queue_and_one_survives_the_others_death(
    client: Client, settings: Settings
) -> None:
    settings.max_running_generations = GENERATIONS + 5
    sim_port = free_port()
    settings.simulator_url = f"http://127.0.0.1:{sim_port}"
    clip_queue = settings.clip_task_queue("simulator")
    started_at = time.monotonic()
    with processes() as started:
        simulator = spawn(
            started,
            "simulator",
            [
                "activities.simulator", "--port", str(sim_port), "--latency", str(SIM_LATENCY),
                "--no-render", "--seed", "7", "--log-level", "warning",
            ],
            role_env(settings),
        )  # fmt: skip
        limits = f'{{"simulator": {{"max_concurrent": {CLIP_SLOTS}}}}}'
        clip_env = role_env(settings, STORYREEL_PROVIDER_LIMITS=limits)
        rest = spawn(started, "rest", ["worker", "--queues", "workflows,media"], role_env(settings))
        doomed = spawn(started, "clips-a", ["worker", "--queues", "clips:simulator"], clip_env)
        survivor = spawn(started, "clips-b", ["worker", "--queues", "clips:simulator"], clip_env)
        await wait_until_listening(simulator, sim_port)
        workflow, activity = TASK_QUEUE_WORKFLOW, TASK_QUEUE_ACTIVITY
        await wait_for_pollers(
            client,
            {
                settings.workflow_task_queue: (workflow, {rest.identity}),
                settings.media_task_queue: (activity, {rest.identity}),
                clip_queue: (activity, {doomed.identity, survivor.identity}),
            },
        )

        async with api_for(client, settings) as http:
            ids = await asyncio.gather(*(post_generation(http, i) for i in range(GENERATIONS)))

            # KEDA's signal, sampled all along: clips waiting for a free slot on the queue.
            backlogs: list[int] = []
            sampler = asyncio.create_task(sample_backlog(client, clip_queue, backlogs))

            # Mid-run: the doomed worker has finished two waves of clips and has more in flight.
            # A crash between a prediction's create and the heartbeat that records its id would
            # make the next attempt create another, whatever the code does: so the worker is
            # frozen (SIGSTOP) and killed only when each clip it runs has heartbeated its id.
            deadline = time.monotonic() + 90
            while True:
                done_by_doomed = await finished_clips_by(client, ids, doomed.identity)
                if done_by_doomed >= 2 * CLIP_SLOTS:
                    doomed.process.send_signal(signal.SIGSTOP)
                    in_flight, silent = await clips_on(client, ids, doomed.identity)
                    if in_flight and not silent:
                        break
                    doomed.process.send_signal(signal.SIGCONT)
                assert time.monotonic() < deadline, (
                    f"never mid-run: {done_by_doomed} clips done on the doomed worker"
                )
                await asyncio.sleep(0.3)
            doomed.process.send_signal(signal.SIGKILL)
            doomed.process.wait(timeout=30)

            handles = [client.get_workflow_handle(i, result_type=GenerationState) for i in ids]
            try:
                states = await asyncio.wait_for(
                    asyncio.gather(*(handle.result() for handle in handles)), timeout=180
                )
            finally:
                sampler.cancel()
            views = [(await http.get(f"/v1/generations/{i}")).json() for i in ids]
            histories = [await handle.fetch_history() for handle in handles]
        sim_log: dict[str, Any] = httpx.get(f"{settings.simulator_url}/_sim/log", timeout=30).json()
    elapsed = time.monotonic() - started_at

    # Every generation completed, and the API (which only ever talked to Temporal) says so.
    assert [state.status for state in states] == [GenerationStatus.completed] * GENERATIONS
    assert {view["status"] for view in views} == {"completed"}

    # Both clip workers did work, counted from the histories.
    finished = Counter(who for history in histories for _, who, _ in clip_starts(history))
    log.info(
        "clips finished: %d by the killed worker, %d by the survivor; %d in flight at the kill; "
        "largest backlog %d; %.0f s",
        finished[doomed.identity],
        finished[survivor.identity],
        len(in_flight),
        max(backlogs, default=0),
        elapsed,
    )
    assert set(finished) <= {doomed.identity, survivor.identity}, finished
    assert finished[doomed.identity] >= 2 * CLIP_SLOTS, finished
    assert finished[survivor.identity] >= 2 * CLIP_SLOTS, finished
    assert sum(finished.values()) == GENERATIONS * CLIPS

    # The clips in flight on the killed worker were finished by the survivor, on a new attempt.
    final = {
        (generation, activity_id): (who, attempt)
        for generation, history in zip(ids, histories, strict=True)
        for activity_id, who, attempt in clip_starts(history)
    }
    for chain in in_flight:
        who, attempt = final[chain]
        assert who == survivor.identity and attempt >= 2, (chain, who, attempt)

    # The workflow worker alone ran every workflow task; the queue had a backlog to scale on.
    assert set().union(*map(workflow_task_identities, histories)) == {rest.identity}
    assert max(backlogs) > 0

    # No prediction was created twice for one clip's attempt chain, crash included.
    prompts = Counter(prediction["prompt"] for prediction in sim_log["predictions"])
    assert sim_log["counts"]["creates"] == GENERATIONS * CLIPS
    assert len(prompts) == GENERATIONS * CLIPS and set(prompts.values()) == {1}
    assert elapsed < 170, f"the topology run took {elapsed:.0f} s"
