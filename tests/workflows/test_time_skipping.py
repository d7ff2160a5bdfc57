"""The generation workflow on Temporal's time-skipping test server, every activity replaced
by a fake registered under the real activity's name: what the workflow decides (order, ids,
retries, fallbacks, budget, review, cancel), in seconds. Windows of hours or days pass at
once while a test awaits the result. The real activities have their own tests."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta

import pytest
from temporalio import activity
from temporalio.client import WorkflowFailureError, WorkflowHandle
from temporalio.exceptions import ApplicationError, CancelledError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from storyreel.contracts import (
    ClipInput,
    ClipResult,
    ClipStatus,
    GenerationInput,
    GenerationState,
    GenerationStatus,
    PlanInput,
    PlannedScene,
    PlanResult,
    Platform,
    ProviderChoice,
    PublishInput,
    PublishResult,
    RecordInput,
    RetryClipRequest,
    SceneEdit,
    SceneIn,
    StitchInput,
    StitchResult,
    StoryboardInput,
    StoryboardResult,
    TaskQueues,
)
from storyreel.settings import Settings
from workflows.generation import VideoGenerationWorkflow

# worker.py's clip workers send heartbeats at least this often (heartbeat_throttle_seconds).
HEARTBEAT_THROTTLE = timedelta(seconds=Settings.model_fields["heartbeat_throttle_seconds"].default)

ClipRule = Callable[[ClipInput, str], ClipResult | None]


@dataclass
class Fakes:
    """Stand-ins for the media, clip and record activities, keeping what each was asked.

    ``clip_rule`` may raise (a provider's failure) or return None for the default clip.
    """

    clip_rule: ClipRule | None = None
    clip_ids: list[str] = field(default_factory=list)
    storyboards: list[StoryboardInput] = field(default_factory=list)
    stitched: list[StitchInput] = field(default_factory=list)
    published: list[GenerationState] = field(default_factory=list)
    recorded: list[str] = field(default_factory=list)
    clip_started: asyncio.Event = field(default_factory=asyncio.Event)
    hold_clips: bool = False
    clip_cancelled: bool = False

    @activity.defn(name="plan_generation")
    async def plan(self, request: PlanInput) -> PlanResult:
        scenes, start = [], 0.0
        for index, scene in enumerate(request.scenes or [], start=1):
            duration = scene.duration or 2.0
            scenes.append(
                PlannedScene(
                    index=index, description=scene.description, duration=duration, start=start
                )
            )
            start += duration
        return PlanResult(scenes=scenes, planned_count=len(scenes))

    @activity.defn(name="render_storyboard")
    async def storyboard(self, request: StoryboardInput) -> StoryboardResult:
        self.storyboards.append(request)
        drawn = sum(1 for each in self.storyboards if each.scene.index == request.scene.index)
        key = f"{request.generation_id}/storyboard-{request.scene.index}-{drawn}.png"
        return StoryboardResult(index=request.scene.index, key=key)

    @activity.defn(name="generate_clip")
    async def clip(self, request: ClipInput) -> ClipResult:
        activity_id = activity.info().activity_id
        self.clip_ids.append(activity_id)
        self.clip_started.set()
        if self.hold_clips:
            try:
                while True:  # a long render, heartbeating, until the workflow cancels it
                    activity.heartbeat()
                    await asyncio.sleep(0.05)
            except asyncio.CancelledError:
                self.clip_cancelled = True
                raise
        made = self.clip_rule(request, activity_id) if self.clip_rule else None
        return made or ClipResult(
            clip_id=request.clip_id,
            key=f"{request.generation_id}/{request.provider}/clip-{request.clip_id}.mp4",
            duration=request.scene.duration,
            render_seconds=1.0,
            cost=0.1,
        )

    @activity.defn(name="stitch_video")
    async def stitch(self, request: StitchInput) -> StitchResult:
        self.stitched.append(request)
        duration = sum(1.0 for _ in request.clips)
        return StitchResult(
            key=f"{request.generation_id}/video.mp4",
            duration=duration,
            width=1920,
            height=1080,
            stream_copy=True,
            # As a worker whose voice is silent answers a run that asked for narration.
            warnings=["the video has no speech"] if request.narration else [],
        )

    @activity.defn(name="publish_generation")
    async def publish(self, request: PublishInput) -> PublishResult:
        self.published.append(request.state)
        return PublishResult(record_key=f"{request.state.generation_id}/record.json")

    @activity.defn(name="record_generation")
    async def record(self, request: RecordInput) -> bool:
        self.recorded.append(request.state.status.value)
        return True


@asynccontextmanager
async def running(
    env: WorkflowEnvironment,
    fakes: Fakes,
    count: int,
    *,
    providers: tuple[str, ...] = ("fake",),
    **changes: object,
) -> AsyncIterator[WorkflowHandle[VideoGenerationWorkflow, GenerationState]]:
    """A run of ``count`` scenes (``changes`` to its request) on workers of this test's own
    queues: the workflow (with record writes, which run as local activities), the media queue
    and one clip queue per provider. The workers stop when the block ends."""
    unique = uuid.uuid4().hex[:8]
    queues = TaskQueues(media=f"media-{unique}", clip_prefix=f"clips-{unique}")
    workflow_queue = f"wf-{unique}"
    workers = [
        Worker(
            env.client,
            task_queue=workflow_queue,
            workflows=[VideoGenerationWorkflow],
            activities=[fakes.record],
        ),
        Worker(
            env.client,
            task_queue=queues.media,
            activities=[fakes.plan, fakes.storyboard, fakes.stitch, fakes.publish],
        ),
        *(
            Worker(
                env.client,
                task_queue=queues.clips(name),
                activities=[fakes.clip],
                # As worker.py's clip workers: a cancel reaches a heartbeating clip within this,
                # not within 80 % of its heartbeat timeout (16 s of real time).
                max_heartbeat_throttle_interval=HEARTBEAT_THROTTLE,
            )
            for name in providers
        ),
    ]
    async with AsyncExitStack() as stack:
        for worker in workers:
            await stack.enter_async_context(worker)
        yield await start(env, workflow_queue, queues, count, **changes)


async def start(
    env: WorkflowEnvironment, workflow_queue: str, queues: TaskQueues, count: int, **changes: object
) -> WorkflowHandle[VideoGenerationWorkflow, GenerationState]:
    fields: dict[str, object] = {
        "title": "fast",
        "scenes": [
            SceneIn(description=f"Scene {i}: gulls", duration=2.0) for i in range(1, count + 1)
        ],
        "platform": Platform.youtube,
        "provider": "fake",
        "model": "fake/video",
        "queues": queues,
    }
    fields.update(changes)
    request = GenerationInput.model_validate(fields)
    return await env.client.start_workflow(
        VideoGenerationWorkflow.run,
        request,
        id=f"fast-{uuid.uuid4().hex}",
        task_queue=workflow_queue,
    )


async def state_when(
    handle: WorkflowHandle[VideoGenerationWorkflow, GenerationState],
    predicate: Callable[[GenerationState], bool],
    timeout: float = 30.0,
) -> GenerationState:
    """Query until ``predicate`` holds (a condition, not a fixed sleep)."""
    async with asyncio.timeout(timeout):
        while True:
            state = await handle.query(VideoGenerationWorkflow.get_state)
            if predicate(state):
                return state
            await asyncio.sleep(0.05)


def refuse(clip_ids: set[int], provider: str = "fake", rounds: int = 1) -> ClipRule:
    """A provider that refuses some clips in their first ``rounds`` rounds."""

    def rule(request: ClipInput, activity_id: str) -> ClipResult | None:
        round_ = int(activity_id.split("-")[2])
        if request.provider == provider and request.clip_id in clip_ids and round_ <= rounds:
            raise ApplicationError(
                "flagged as sensitive", type="ProviderRefusedError", non_retryable=True
            )
        return None

    return rule


async def test_a_run_plans_draws_makes_every_clip_and_stitches_them(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    fakes = Fakes()
    async with running(time_skipping_env, fakes, 3, user_id=7, narration=True) as handle:
        state = await handle.result()

    assert state.status is GenerationStatus.completed
    assert sorted(fakes.clip_ids) == ["clip-1-1", "clip-2-1", "clip-3-1"]
    assert [clip.status for clip in state.clips] == [ClipStatus.complete] * 3
    assert state.cost == pytest.approx(0.3)
    assert [clip.clip_id for clip in fakes.stitched[0].clips] == [1, 2, 3]
    assert state.video_key is not None and state.video_key.endswith("video.mp4")
    assert state.metrics is not None and state.metrics.clips == 3
    assert fakes.published[-1].status is GenerationStatus.completed
    # What the assembly could not give is the run's warning too (the page shows it).
    assert state.warnings == ["the video has no speech"]
    assert fakes.published[-1].warnings == state.warnings
    # An owned run records at every stage, ending with the completed state.
    assert fakes.recorded[0] == "queued" and fakes.recorded[-1] == "completed"
    assert {"planning", "storyboarding", "generating", "assembling"} <= set(fakes.recorded)


async def test_a_failed_clip_awaits_a_retry_and_the_retry_makes_it(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    fakes = Fakes(clip_rule=refuse({2}))
    async with running(time_skipping_env, fakes, 3) as handle:
        waiting = await state_when(handle, lambda s: s.status is GenerationStatus.awaiting_retry)
        assert waiting.clips[1].status is ClipStatus.failed
        assert waiting.clips[1].error == "flagged as sensitive"
        assert waiting.retry_deadline is not None
        await handle.signal("retry_clip", RetryClipRequest(clip_id=2, prompt="Gulls, kindly"))
        state = await handle.result()

    assert state.status is GenerationStatus.completed
    assert "clip-2-2" in fakes.clip_ids, "the retry is the clip's second round"
    assert state.clips[1].prompt == "Gulls, kindly"
    assert state.clips[1].attempts == 2
    assert [clip.clip_id for clip in fakes.stitched[0].clips] == [1, 2, 3]


async def test_no_retry_within_the_window_fails_the_run(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    fakes = Fakes(clip_rule=refuse({1}))
    async with running(time_skipping_env, fakes, 2) as handle:
        # The 24 h retry window passes at once: the server skips time while we wait.
        with pytest.raises(WorkflowFailureError) as failure:
            await handle.result()

    assert "clip(s) 1 failed and no retry came within 1 day" in str(failure.value.cause)
    assert fakes.published[-1].status is GenerationStatus.failed
    assert not fakes.stitched


async def test_a_refused_clip_moves_to_the_next_provider(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    fakes = Fakes(clip_rule=refuse({1}, provider="first"))
    chain = [ProviderChoice(provider="second", model="second/video")]
    async with running(
        time_skipping_env, fakes, 2, providers=("first", "second"), provider="first", fallback=chain
    ) as handle:
        state = await handle.result()

    assert state.status is GenerationStatus.completed
    moved = state.clips[0]
    assert (moved.provider, moved.model) == ("second", "second/video")
    assert [(t.provider, t.status) for t in moved.tries] == [
        ("first", ClipStatus.failed),
        ("second", ClipStatus.complete),
    ]
    assert "clip-1-1-second" in fakes.clip_ids
    assert state.clips[1].provider == "first"


async def test_a_clip_over_the_budget_does_not_start(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    fakes = Fakes()
    # 0.20 a 2 s clip: two fit, the third does not.
    async with running(
        time_skipping_env, fakes, 3, budget=0.45, estimated_cost_per_second=0.1
    ) as handle:
        waiting = await state_when(handle, lambda s: s.status is GenerationStatus.awaiting_retry)
        await handle.signal("finish_without_failed")
        state = await handle.result()

    refused = waiting.clips[2]
    assert refused.status is ClipStatus.failed and refused.error is not None
    assert refused.error.startswith("budget: this clip would cost about 0.20")
    assert sorted(fakes.clip_ids) == ["clip-1-1", "clip-2-1"], "the third never started"
    assert state.status is GenerationStatus.completed and state.skipped_clips == [3]


async def test_a_reviewed_storyboard_redraws_edits_and_waits_for_approval(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    fakes = Fakes()
    async with running(time_skipping_env, fakes, 2, review="storyboard") as handle:
        await state_when(handle, lambda s: s.status is GenerationStatus.awaiting_approval)
        assert not fakes.clip_ids, "nothing is paid for before approval"
        await handle.signal("edit_scene", SceneEdit(index=2, caption="Dusk"))
        edited = await state_when(handle, lambda s: s.storyboard_keys[1].endswith("-2-2.png"))
        await handle.signal("approve")
        state = await handle.result()

    assert edited.status is GenerationStatus.awaiting_approval
    assert sorted(s.scene.index for s in fakes.storyboards) == [1, 2, 2]
    assert fakes.storyboards[-1].scene.caption == "Dusk", "only the edited scene is redrawn"
    assert state.status is GenerationStatus.completed
    assert [clip.caption for clip in fakes.stitched[0].clips] == ["Scene 1: gulls", "Dusk"]


async def test_an_unapproved_storyboard_fails_when_the_review_window_ends(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    fakes = Fakes()
    async with running(time_skipping_env, fakes, 1, review="storyboard") as handle:
        with pytest.raises(WorkflowFailureError) as failure:
            await handle.result()  # the 7-day window passes at once

    assert "not approved within 7 days" in str(failure.value.cause)
    assert not fakes.clip_ids


async def test_cancelling_a_run_cancels_its_running_clip_and_records_cancelled(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    fakes = Fakes(hold_clips=True)
    async with running(time_skipping_env, fakes, 1) as handle:
        async with asyncio.timeout(30):
            await fakes.clip_started.wait()
        await handle.cancel()
        with pytest.raises(WorkflowFailureError) as failure:
            await handle.result()
        state = await handle.query(VideoGenerationWorkflow.get_state)

    assert isinstance(failure.value.cause, CancelledError)
    assert fakes.clip_cancelled, "the clip activity saw the cancel"
    assert state.status is GenerationStatus.cancelled
    assert fakes.published[-1].status is GenerationStatus.cancelled
