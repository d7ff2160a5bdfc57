"""The plan activity: the rule-based planner of :mod:`storyreel.planning`, with logging."""

from __future__ import annotations

from temporalio import activity

from storyreel.contracts import PlanInput, PlanResult
from storyreel.planning import plan_scenes


@activity.defn(name="plan_generation")
async def plan_generation(request: PlanInput) -> PlanResult:
    """Turn the request into beats (cheap, pure CPU: fine on the event loop)."""
    result = plan_scenes(request)
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
