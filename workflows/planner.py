"""The plan activity a run calls: the LLM planner for runs that ask for it (none before that
code shipped, so it needs no patch), else the rule-based one."""

from __future__ import annotations

from temporalio import workflow
from temporalio.common import Priority

with workflow.unsafe.imports_passed_through():
    from activities.llm_planner import LLMPlanner
    from activities.planning import plan_generation
    from storyreel.contracts import GenerationInput, PlanResult
    from workflows import policies
    from workflows.inputs import plan_input


async def plan(request: GenerationInput, generation_id: str, priority: Priority) -> PlanResult:
    """The run's scenes from its planner, on the media queue."""
    planned = plan_input(request, generation_id)
    if request.planner == "llm":
        return await workflow.execute_activity_method(
            LLMPlanner.plan_with_llm,
            planned,
            task_queue=request.queues.media,
            start_to_close_timeout=policies.LLM_PLAN_TIMEOUT,
            priority=priority,
            retry_policy=policies.LLM_PLAN_RETRY,
            summary="plan: script to scenes (LLM)",
        )
    return await workflow.execute_activity(
        plan_generation,
        planned,
        task_queue=request.queues.media,
        start_to_close_timeout=policies.PLAN_TIMEOUT,
        priority=priority,
        retry_policy=policies.PLAN_RETRY,
        summary="plan: script to scenes",
    )
