"""B2's two sides, both on no-op activities so only orchestration is measured.

- ``BareFanout``: a bare Temporal fan-out shaped like a generation: stages of 1, N, N, 1 and 1
  activities, each stage fanned out at once, nothing else. Given a ``clip_queue``, the third
  stage goes there, as a generation's clips go to their provider's queue (same topology, so the
  comparison is orchestration alone); without one, everything stays on the workflow's queue,
  where the server may hand activities to the worker eagerly.
- no-op implementations of our activity names, so ``VideoGenerationWorkflow`` itself (state,
  semaphore, queries, search attributes, details) runs against the same instant activities.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from temporalio import activity, workflow

with workflow.unsafe.imports_passed_through():
    from storyreel.contracts import (
        ClipInput,
        ClipResult,
        PlanInput,
        PlannedScene,
        PlanResult,
        PublishInput,
        PublishResult,
        StitchInput,
        StitchResult,
        StoryboardInput,
        StoryboardResult,
    )


@activity.defn(name="bench_noop")
async def noop(index: int) -> int:
    return index


@workflow.defn(name="BenchBareFanout")
class BareFanout:
    @workflow.run
    async def run(self, width: int, clip_queue: str | None = None) -> int:
        done = 0
        for stage, size in enumerate((1, width, width, 1, 1)):
            queue = clip_queue if stage == 2 and clip_queue else workflow.info().task_queue
            results = await asyncio.gather(
                *(
                    workflow.execute_activity(
                        noop,
                        index,
                        task_queue=queue,
                        start_to_close_timeout=timedelta(seconds=30),
                    )
                    for index in range(size)
                )
            )
            done += len(results)
        return done


@activity.defn(name="plan_generation")
async def plan(request: PlanInput) -> PlanResult:
    scenes = request.scenes or []
    return PlanResult(
        scenes=[
            PlannedScene(index=n, description=s.description, duration=s.duration, start=0.0)
            for n, s in enumerate(scenes, start=1)
        ],
        planned_count=len(scenes),
    )


@activity.defn(name="render_storyboard")
async def storyboard(request: StoryboardInput) -> StoryboardResult:
    return StoryboardResult(index=request.scene.index, key="noop.png", url="noop")


@activity.defn(name="generate_clip")
async def clip(request: ClipInput) -> ClipResult:
    return ClipResult(
        clip_id=request.clip_id,
        key="noop.mp4",
        url="noop",
        duration=request.scene.duration,
        render_seconds=0.0,
    )


@activity.defn(name="stitch_video")
async def stitch(_request: StitchInput) -> StitchResult:
    return StitchResult(
        key="noop.mp4", url="noop", duration=1.0, width=1, height=1, stream_copy=True
    )


@activity.defn(name="publish_generation")
async def publish(_request: PublishInput) -> PublishResult:
    return PublishResult(record_key="noop.json")


NOOP_ACTIVITIES: list[Callable[..., Any]] = [plan, storyboard, clip, stitch, publish]
