"""Where a run's time went: the clip stage's fan-out figures as clips end, and the run's
metrics when it ends. Pure functions of the state and the times given: no workflow calls."""

from __future__ import annotations

from datetime import datetime, timedelta

from storyreel.contracts import ClipStageMetrics, GenerationMetrics, GenerationState, Stage


def count_clip(metrics: ClipStageMetrics, started: datetime | None, ended: datetime) -> None:
    """Add one ended clip's time to the sum of clip times (a clip never started adds none)."""
    if started is not None:
        seconds = (ended - started).total_seconds()
        metrics.sum_clip_seconds = round(metrics.sum_clip_seconds + seconds, 3)


def close_clip_stage(metrics: ClipStageMetrics, elapsed: timedelta, waited: timedelta) -> None:
    """The clip stage's wall time (without the time spent awaiting a retry) and the speedup
    of the fan-out over making the clips one after another."""
    metrics.wall_seconds = round((elapsed - waited).total_seconds(), 3)
    if metrics.wall_seconds > 0:
        metrics.speedup = round(metrics.sum_clip_seconds / metrics.wall_seconds, 2)


def generation_metrics(
    state: GenerationState, waited: timedelta, now: datetime
) -> GenerationMetrics:
    """Seconds per stage (the clip stage without the time spent awaiting a retry, which is a
    person's time, not the pipeline's), the fan-out's speedup, and the longest stage."""
    waited_seconds = waited.total_seconds()
    stages: dict[Stage, float] = {}
    for timing in state.timings:
        seconds = timing.seconds
        if seconds is None:
            continue
        if timing.stage is Stage.clips:
            seconds = max(0.0, seconds - waited_seconds)
        stages[timing.stage] = round(stages.get(timing.stage, 0.0) + seconds, 3)
    clip_stage = state.clip_stage
    began = state.created_at or now
    return GenerationMetrics(
        stage_seconds=stages,
        total_seconds=round((now - began).total_seconds(), 3),
        waiting_seconds=round(waited_seconds, 3),
        clip_wall_seconds=clip_stage.wall_seconds,
        sum_clip_seconds=clip_stage.sum_clip_seconds,
        speedup=clip_stage.speedup,
        max_concurrent_clips=clip_stage.max_concurrent,
        clips=len(state.clips),
        bottleneck=max(stages, key=stages.__getitem__) if stages else None,
    )
