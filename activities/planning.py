"""Rule-based planner: script (or given scenes) -> ordered beats with durations.

Sentences become scenes read at 2.5 words per second, each clamped to 2-10 s. When a target
duration is given, the beat count is capped at ``ceil(duration / 5)``: extra beats are dropped,
start times recomputed and the truncation logged with its counts.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from temporalio import activity

from storyreel.contracts import PLATFORMS, PlanInput, PlannedScene, PlanResult
from storyreel.errors import BadInputError

WORDS_PER_SECOND = 2.5
MIN_SCENE_SECONDS = 2.0
MAX_SCENE_SECONDS = 10.0
SECONDS_PER_BEAT = 5.0

_SENTENCE_END = re.compile(r"(?<=[.!?…])\s+|\n\s*\n")


def split_sentences(script: str) -> list[str]:
    parts = (" ".join(part.split()) for part in _SENTENCE_END.split(script))
    return [part for part in parts if any(char.isalnum() for char in part)]


def scene_seconds(text: str) -> float:
    words = len(text.split())
    seconds = words / WORDS_PER_SECOND
    return round(min(MAX_SCENE_SECONDS, max(MIN_SCENE_SECONDS, seconds)), 1)


def max_beats(duration: float) -> int:
    return max(1, math.ceil(duration / SECONDS_PER_BEAT))


@dataclass(frozen=True)
class Beat:
    """A scene before layout: from the caller, the sentence splitter or the LLM planner."""

    description: str
    duration: float
    caption: str | None = None
    narration: str | None = None


def plan_scenes(request: PlanInput) -> PlanResult:
    """The planner as a pure function (the activity below only adds logging)."""
    if request.scenes:
        given = [Beat(scene.description, scene.duration, scene.caption) for scene in request.scenes]
    elif request.script:
        given = [
            Beat(text, scene_seconds(text), caption=text)
            for text in split_sentences(request.script)
        ]
    else:
        given = []
    if not given:
        raise BadInputError("the script has no sentences to turn into scenes")
    return lay_out(given, request)


def lay_out(
    given: Sequence[Beat],
    request: PlanInput,
    warnings: list[str] | None = None,
    *,
    fit_platform: bool = False,
) -> PlanResult:
    """Cap the beats, give each its start, and hold the platform's length limit: a plan the
    caller wrote is refused when too long; one a model wrote (``fit_platform``) loses its
    last scenes instead, with a warning naming them."""
    warnings = list(warnings or [])
    kept = list(given)
    if request.duration is not None:
        cap = max_beats(request.duration)
        if len(given) > cap:
            kept = list(given[:cap])
            warnings.append(
                f"beat count truncated from {len(given)} to {cap} "
                f"for a {request.duration:g} s video (at most one beat per {SECONDS_PER_BEAT:g} s)"
            )

    limit = PLATFORMS[request.platform].max_duration
    scenes: list[PlannedScene] = []
    start = 0.0
    for index, scene in enumerate(kept, start=1):
        duration = round(scene.duration, 1)
        if fit_platform and limit is not None and start + duration > limit + 1e-6 and scenes:
            warnings.append(
                f"scenes {index}-{len(kept)} cut: {request.platform.value} allows at most "
                f"{limit:g} s and scenes 1-{index - 1} already last {start:g} s"
            )
            break
        scenes.append(
            PlannedScene(
                index=index,
                description=scene.description,
                caption=scene.caption,
                narration=scene.narration,
                duration=duration,
                start=round(start, 3),
            )
        )
        start += duration

    if limit is not None and start > limit + 1e-6:
        raise BadInputError(
            f"the video would last {start:g} s but {request.platform.value} allows at most "
            f"{limit:g} s; shorten the script or choose another platform"
        )
    return PlanResult(scenes=scenes, planned_count=len(given), warnings=warnings)


@activity.defn(name="plan_generation")
async def plan_generation(request: PlanInput) -> PlanResult:
    """Turn the request into beats (cheap, pure CPU: fine on the event loop)."""
    try:
        result = plan_scenes(request)
    except BadInputError as error:
        raise error.to_application_error() from error
    if len(result.scenes) < result.planned_count:
        activity.logger.warning(
            "beat count truncated for %s: %d planned, %d kept (duration %s s)",
            request.generation_id,
            result.planned_count,
            len(result.scenes),
            request.duration,
            extra={
                "generation_id": request.generation_id,
                "beats_before": result.planned_count,
                "beats_after": len(result.scenes),
            },
        )
    return result
