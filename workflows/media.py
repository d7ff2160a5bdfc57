"""The run's activities on the media queue, each with its timeout, retry policy and Web UI
summary: a scene's storyboard, the stitch, the record's publication."""

from __future__ import annotations

from temporalio import workflow
from temporalio.common import Priority

with workflow.unsafe.imports_passed_through():
    from activities.assembly import AssemblyActivities
    from activities.storyboard import StoryboardActivities
    from storyreel.contracts import (
        GenerationInput,
        GenerationState,
        PublishInput,
        StitchInput,
        StitchResult,
        StoryboardInput,
        StoryboardResult,
    )
    from workflows import policies
    from workflows.summary import first_words


async def draw(
    request: GenerationInput, drawing: StoryboardInput, priority: Priority
) -> StoryboardResult:
    """One scene's storyboard image."""
    scene, count = drawing.scene, drawing.scene_count
    result: StoryboardResult = await workflow.execute_activity_method(
        StoryboardActivities.render_storyboard,
        drawing,
        task_queue=request.queues.media,
        start_to_close_timeout=policies.STORYBOARD_TIMEOUT,
        priority=priority,
        retry_policy=policies.STORYBOARD_RETRY,
        summary=f"storyboard {scene.index}/{count}: {first_words(scene.description)}",
    )
    return result


async def stitch(request: GenerationInput, stitch: StitchInput, priority: Priority) -> StitchResult:
    """The finished video from the clips made."""
    result: StitchResult = await workflow.execute_activity_method(
        AssemblyActivities.stitch_video,
        stitch,
        task_queue=request.queues.media,
        start_to_close_timeout=policies.STITCH_TIMEOUT,
        priority=priority,
        heartbeat_timeout=policies.STITCH_HEARTBEAT,
        retry_policy=policies.STITCH_RETRY,
        summary=f"stitch {len(stitch.clips)} clips",
    )
    return result


async def publish(request: GenerationInput, record: GenerationState, priority: Priority) -> None:
    """The run's final record, written where it outlives Temporal's retention."""
    await workflow.execute_activity_method(
        AssemblyActivities.publish_generation,
        PublishInput(state=record),
        task_queue=request.queues.media,
        start_to_close_timeout=policies.PUBLISH_TIMEOUT,
        priority=priority,
        retry_policy=policies.PUBLISH_RETRY,
        summary="publish the record",
    )
