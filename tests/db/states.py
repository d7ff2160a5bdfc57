"""Realistic generation states, as the workflow would hold them at each recorded milestone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from storyreel.contracts import (
    ClipStageMetrics,
    ClipState,
    ClipStatus,
    GenerationState,
    GenerationStatus,
    Platform,
    Stage,
    StageTiming,
)

T0 = datetime(2025, 3, 14, 9, 26, 53, 589793, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def request_for(title: str) -> dict[str, object]:
    return {
        "title": title,
        "script": "A lighthouse at dawn. Waves on rocks. A gull takes off.",
        "platform": "youtube_shorts",
        "provider": "simulator",
        "model": "sim/video-1",
        "seed": 7,
        "budget": 5.0,
    }


def milestones(generation_id: str = "gen-ocean", *, start: float = 0.0) -> list[GenerationState]:
    """Start, each clip's end, a failure and its retry, assembly, end: each a full snapshot."""
    t = start
    state = GenerationState(
        generation_id=generation_id,
        title="Ocean at dawn",
        status=GenerationStatus.generating,
        stage=Stage.clips,
        platform=Platform.youtube_shorts,
        provider="simulator",
        budget=5.0,
        storyboard_keys=[f"generations/{generation_id}/storyboard/{i:03d}.png" for i in (1, 2, 3)],
        warnings=["script capped at 3 scenes"],
        timings=[
            StageTiming(stage=Stage.plan, started_at=at(t), ended_at=at(t + 0.25)),
            StageTiming(stage=Stage.storyboard, started_at=at(t + 0.25), ended_at=at(t + 1.5)),
            StageTiming(stage=Stage.clips, started_at=at(t + 1.5)),
        ],
        clips=[
            ClipState(
                clip_id=i,
                status=ClipStatus.processing,
                progress=0.1,
                prompt=f"scene {i}: the lighthouse, consistent palette",
                summary=f"scene {i}",
                attempts=1,
                started_at=at(t + 1.5),
                prediction_id=f"pred-{i}",
            )
            for i in (1, 2, 3)
        ],
        created_at=at(t),
        updated_at=at(t + 1.5),
    )
    states = [state.model_copy(deep=True)]

    def finish(clip: ClipState, when: float, *, cached: bool = False, cost: float = 0.0) -> None:
        clip.status = ClipStatus.cached if cached else ClipStatus.complete
        clip.progress = 1.0
        clip.key = f"generations/{generation_id}/clips/{clip.clip_id:03d}.mp4"
        clip.duration = 4.0
        clip.ended_at = at(t + when)
        clip.render_seconds = when - 1.5
        clip.cost = cost

    finish(state.clips[1], 9.75, cost=0.4)
    state.cost = 0.4
    state.updated_at = at(t + 9.75)
    states.append(state.model_copy(deep=True))

    finish(state.clips[0], 10.5, cached=True)
    state.updated_at = at(t + 10.5)
    states.append(state.model_copy(deep=True))

    failed = state.clips[2]
    failed.status = ClipStatus.failed
    failed.error = "prediction failed: CUDA out of memory"
    failed.attempts = 3
    failed.ended_at = at(t + 12.0)
    state.status = GenerationStatus.awaiting_retry
    state.retry_deadline = at(t + 12.0 + 86400)
    state.updated_at = at(t + 12.0)
    states.append(state.model_copy(deep=True))

    failed.error = None
    failed.prompt = "scene 3: a gull takes off, wide shot"
    failed.attempts = 4
    finish(failed, 30.0, cost=0.35)
    state.cost = 0.75
    state.status = GenerationStatus.assembling
    state.stage = Stage.assemble
    state.retry_deadline = None
    state.timings[-1].ended_at = at(t + 30.0)
    state.timings.append(StageTiming(stage=Stage.assemble, started_at=at(t + 30.0)))
    state.clip_stage = ClipStageMetrics(
        wall_seconds=28.5, sum_clip_seconds=45.75, speedup=45.75 / 28.5, max_concurrent=3
    )
    state.updated_at = at(t + 30.0)
    states.append(state.model_copy(deep=True))

    state.status = GenerationStatus.completed
    state.stage = Stage.publish
    state.timings[-1].ended_at = at(t + 33.25)
    state.timings.append(
        StageTiming(stage=Stage.publish, started_at=at(t + 33.25), ended_at=at(t + 33.5))
    )
    state.video_key = f"generations/{generation_id}/video.mp4"
    state.thumbnail_key = f"generations/{generation_id}/thumbnail.jpg"
    state.duration = 12.0
    state.updated_at = at(t + 33.5)
    states.append(state.model_copy(deep=True))
    return states


def simple(
    generation_id: str, created: float, status: GenerationStatus = GenerationStatus.completed
) -> GenerationState:
    """A small state for listings."""
    return GenerationState(
        generation_id=generation_id,
        title=f"title of {generation_id}",
        status=status,
        clips=[ClipState(clip_id=1, status=ClipStatus.complete, duration=3.0)],
        created_at=at(created),
        updated_at=at(created + 1),
    )
