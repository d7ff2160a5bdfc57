"""The plan activity a run calls: the LLM planner for runs that ask for it (none before that
code shipped, so it needs no patch), else the rule-based one."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from temporalio import workflow
from temporalio.common import Priority

with workflow.unsafe.imports_passed_through():
    from activities.clips import ClipActivities
    from activities.llm_planner import LLMPlanner
    from activities.planning import plan_generation
    from storyreel.catalogue import ModelSpec
    from storyreel.contracts import DescribeModelInput, GenerationInput, PlannedScene, PlanResult
    from storyreel.quotes import ClipPricing, Quote, quote
    from workflows import policies
    from workflows.inputs import plan_input
    from workflows.media import on_media


@dataclass(frozen=True)
class Planner:
    """One planner activity with its own timeout, retry policy and Web UI summary."""

    activity: Callable[..., Awaitable[PlanResult]]
    policy: policies.Policy
    summary: str


PLANNERS = {
    "rules": Planner(plan_generation, policies.PLAN, "plan: script to scenes"),
    "llm": Planner(
        LLMPlanner.plan_with_llm,
        policies.LLM_PLAN,
        "plan: script to scenes (LLM)",
    ),
}


async def plan(
    request: GenerationInput,
    generation_id: str,
    priority: Priority,
    pricing: ClipPricing | None = None,
) -> PlanResult:
    """The run's scenes from its planner, on the media queue (toward the clip lengths of
    ``pricing``, the run's billing when it differs from the request's)."""
    planner = PLANNERS[request.planner]
    result: PlanResult = await workflow.execute_activity(
        planner.activity,
        plan_input(request, generation_id, pricing),
        **on_media(request, priority, planner.policy, planner.summary),
    )
    return result


async def describe(
    request: GenerationInput, pricing: ClipPricing, priority: Priority
) -> ModelSpec | None:
    """The run's model as its clip worker will take it (``describe_model`` on the provider's
    clip queue): the catalogue's entry, else the provider's published schema; None where the
    provider publishes none."""
    described = await workflow.execute_activity_method(
        ClipActivities.describe_model,
        DescribeModelInput(provider=pricing.provider, model=pricing.model),
        **policies.DESCRIBE.options(
            task_queue=request.queues.clips(pricing.provider),
            priority=priority,
            summary=f"describe {pricing.provider}/{pricing.model}",
        ),
    )
    return described.spec


def quote_scenes(pricing: ClipPricing, scenes: list[PlannedScene]) -> Quote:
    """The planned scenes as ``pricing`` bills them; the caller's own material bills nothing."""
    lengths = [scene.duration for scene in scenes]
    return quote(pricing, lengths, [scene.index for scene in scenes if scene.asset])
