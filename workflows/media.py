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


def on_media(
    request: GenerationInput,
    priority: Priority,
    policy: policies.Policy,
    summary: str,
) -> workflow.ActivityConfig:
    """How an activity of the media queue runs: on the run's media queue at its priority, with
    its own timeouts and retries (workflows/policies.py) and its line in the Web UI."""
    return {
        "task_queue": request.queues.media,
        "priority": priority,
        "summary": summary,
        **policy.options(),
    }


async def draw(
    request: GenerationInput, drawing: StoryboardInput, priority: Priority
) -> StoryboardResult:
    """One scene's storyboard image."""
    scene, count = drawing.scene, drawing.scene_count
    summary = f"storyboard {scene.index}/{count}: {first_words(scene.description)}"
    result: StoryboardResult = await workflow.execute_activity_method(
        StoryboardActivities.render_storyboard,
        drawing,
        **on_media(request, priority, policies.STORYBOARD, summary),
    )
    return result


async def stitch(request: GenerationInput, stitch: StitchInput, priority: Priority) -> StitchResult:
    """The finished video from the clips made."""
    result: StitchResult = await workflow.execute_activity_method(
        AssemblyActivities.stitch_video,
        stitch,
        **on_media(request, priority, policies.STITCH, f"stitch {len(stitch.clips)} clips"),
    )
    return result


async def publish(request: GenerationInput, record: GenerationState, priority: Priority) -> None:
    """The run's final record, written where it outlives Temporal's retention."""
    await workflow.execute_activity_method(
        AssemblyActivities.publish_generation,
        PublishInput(state=record),
        **on_media(request, priority, policies.PUBLISH, "publish the record"),
    )
