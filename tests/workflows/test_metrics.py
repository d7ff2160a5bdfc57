"""Where a run's time went, without a server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from storyreel.contracts import (
    ClipStageMetrics,
    ClipState,
    GenerationState,
    Stage,
    StageTiming,
)
from workflows.metrics import close_clip_stage, count_clip, generation_metrics

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_clip_times_add_up_and_unstarted_clips_add_none() -> None:
    metrics = ClipStageMetrics()
    count_clip(metrics, at(0), at(2.5))
    count_clip(metrics, at(1), at(4))
    count_clip(metrics, None, at(4))
    assert metrics.sum_clip_seconds == 5.5


def test_the_clip_stage_wall_leaves_out_waiting_and_gives_the_speedup() -> None:
    metrics = ClipStageMetrics(sum_clip_seconds=12.0)
    close_clip_stage(metrics, timedelta(seconds=70), waited=timedelta(seconds=64))
    assert (metrics.wall_seconds, metrics.speedup) == (6.0, 2.0)
    empty = ClipStageMetrics()
    close_clip_stage(empty, timedelta(seconds=3), waited=timedelta(seconds=3))
    assert (empty.wall_seconds, empty.speedup) == (0.0, None)


def test_run_metrics_per_stage_with_the_bottleneck() -> None:
    state = GenerationState(
        generation_id="g",
        title="t",
        created_at=at(0),
        clips=[ClipState(clip_id=1), ClipState(clip_id=2)],
        clip_stage=ClipStageMetrics(
            wall_seconds=10.0, sum_clip_seconds=18.0, speedup=1.8, max_concurrent=2
        ),
        timings=[
            StageTiming(stage=Stage.plan, started_at=at(0), ended_at=at(1)),
            StageTiming(stage=Stage.storyboard, started_at=at(1), ended_at=at(4)),
            StageTiming(stage=Stage.clips, started_at=at(4), ended_at=at(74)),
            StageTiming(stage=Stage.assemble, started_at=at(74), ended_at=at(79)),
            StageTiming(stage=Stage.publish, started_at=at(79)),  # still open: not counted
        ],
    )
    metrics = generation_metrics(state, waited=timedelta(seconds=60), now=at(80))
    assert metrics.stage_seconds == {
        Stage.plan: 1.0,
        Stage.storyboard: 3.0,
        Stage.clips: 10.0,
        Stage.assemble: 5.0,
    }
    assert metrics.bottleneck is Stage.clips
    assert (metrics.total_seconds, metrics.waiting_seconds) == (80.0, 60.0)
    assert (metrics.speedup, metrics.max_concurrent_clips, metrics.clips) == (1.8, 2, 2)


def test_a_run_without_timings_has_no_bottleneck() -> None:
    state = GenerationState(generation_id="g", title="t")
    metrics = generation_metrics(state, waited=timedelta(), now=at(5))
    assert metrics.stage_seconds == {} and metrics.bottleneck is None
    assert metrics.total_seconds == 0.0, "no created_at: counted from now"
