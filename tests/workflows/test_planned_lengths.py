"""A script planned through the workflow toward the lengths its model makes: the real rules
planner on the time-skipping server, every other activity faked by name."""

from __future__ import annotations

from dataclasses import dataclass, field

from temporalio import activity
from temporalio.testing import WorkflowEnvironment

from activities.planning import plan_generation
from storyreel.catalogue import Durations
from storyreel.contracts import GenerationStatus, PlanInput, PlanResult
from storyreel.quotes import ClipPricing
from tests.workflows.test_time_skipping import Fakes, running

# Sentences of 8, 4, 11, 10, 3 and 23 words: 3.2, 1.6, 4.4, 4.0, 1.2 and 9.2 s spoken.
SCRIPT = " ".join(" ".join(["gull"] * n) + "." for n in (8, 4, 11, 10, 3, 23))


@dataclass
class RulesPlanner(Fakes):
    """The fakes, with the real plan activity in place of the fake one."""

    plans: list[PlanInput] = field(default_factory=list)

    @activity.defn(name="plan_generation")
    async def plan(self, request: PlanInput) -> PlanResult:
        self.plans.append(request)
        return await plan_generation(request)


async def test_the_workflow_plans_a_script_on_the_lengths_of_its_model(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    """The run's billing (Kling-like: 5 or 10 s) reaches the planner, which makes five
    scenes where the narration alone made six; the run's quote bills them 30 s."""
    fakes = RulesPlanner()
    pricing = ClipPricing(provider="fake", model="fake/video", durations=Durations(values=[5, 10]))
    async with running(
        time_skipping_env, fakes, 0, scenes=None, script=SCRIPT, clip_pricing=pricing
    ) as handle:
        state = await handle.result()

    assert state.status is GenerationStatus.completed
    assert [plan.clip_lengths for plan in fakes.plans] == [[5.0, 10.0]]
    assert [scene.duration for scene in state.scenes] == [5.0, 5.0, 5.0, 2.0, 10.0]
    assert len(state.clips) == 5
    assert state.quote is not None and state.quote.billed_seconds == 30
