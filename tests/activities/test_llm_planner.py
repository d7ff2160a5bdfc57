"""The LLM planner against a real local OpenAI-compatible server."""

from __future__ import annotations

import json

import pytest
from temporalio.testing import ActivityEnvironment

from activities.llm_planner import (
    PROMPT_VERSION,
    LLMPlan,
    LLMPlanner,
    PlannerAnswerError,
    parse_plan,
    plan_schema,
    system_prompt,
    to_result,
)
from storyreel.contracts import PlanInput, Platform
from storyreel.errors import BadInputError
from tests.fake_llm import plan_json, serve_llm

SCRIPT = "A keeper climbs the lighthouse. She lights the lamp. Ships pass safely."
KEY = "sk-test-planner-0123456789"


def plan_input(**changes: object) -> PlanInput:
    fields: dict[str, object] = {"generation_id": "gen-llm", "script": SCRIPT}
    fields.update(changes)
    return PlanInput.model_validate(fields)


async def test_a_malformed_answer_fails_the_attempt_and_the_next_one_plans() -> None:
    async with serve_llm("{not json", plan_json(3)) as llm:
        planner = LLMPlanner(llm.url, "test-model", KEY)
        env = ActivityEnvironment()
        # Retried: the worker's ErrorMapper keeps PlannerAnswerError retryable.
        with pytest.raises(PlannerAnswerError, match="not JSON") as failed:
            await env.run(planner.plan_with_llm, plan_input())
        assert failed.value.retryable
        result = await env.run(planner.plan_with_llm, plan_input())
    labels = [scene.description.split(":")[0] for scene in result.scenes]
    assert labels == ["CAMERA-1", "CAMERA-2", "CAMERA-3"]
    assert result.scenes[0].narration == "She climbs the stairs, step 1."
    assert result.scenes[0].caption == "Step 1"
    assert [s.start for s in result.scenes] == [0.0, 2.5, 5.0]
    assert result.consistency_context == "Ink wash, grey dawn light"
    assert (result.planner, result.prompt_version) == ("llm", PROMPT_VERSION)
    # What was asked: structured output with the plan's schema, the key only in the header.
    sent = llm.requests[0]
    assert sent["model"] == "test-model"
    assert sent["response_format"]["type"] == "json_schema"
    assert sent["response_format"]["json_schema"]["schema"] == plan_schema()
    assert sent["messages"][1] == {"role": "user", "content": SCRIPT}
    assert llm.authorizations == [f"Bearer {KEY}"] * 2
    assert KEY not in json.dumps(llm.requests)
    assert KEY not in repr(planner)


def test_schema_invalid_answers_say_what_is_wrong() -> None:
    with pytest.raises(PlannerAnswerError, match=r"scenes\.0\.narration: Field required"):
        scene = {"description": "x", "caption": "c", "duration": 3}
        parse_plan(json.dumps({"consistency_context": "", "scenes": [scene]}))
    with pytest.raises(PlannerAnswerError, match="no content"):
        parse_plan("")


def test_the_plan_keeps_the_planner_rules_and_says_what_it_cut() -> None:
    scenes = [
        {"description": f"shot {n}", "narration": f"line {n}", "caption": "", "duration": d}
        for n, d in enumerate([1.0, 30.0, 4.0, 4.0, 4.0], start=1)
    ]
    plan = LLMPlan.model_validate({"consistency_context": " ", "scenes": scenes})
    result = to_result(plan, plan_input(duration=15))
    assert [s.duration for s in result.scenes] == [2.0, 10.0, 4.0]
    assert result.scenes[0].caption is None
    assert any("scene 1: planned 1 s, kept to 2 s" in w for w in result.warnings)
    assert any("scene 2: planned 30 s, kept to 10 s" in w for w in result.warnings)
    assert any("beat count truncated from 5 to 3" in w for w in result.warnings)
    # A platform's limit cuts the last scenes (a model's plan is trimmed, not refused).
    long = [
        {"description": f"s{n}", "narration": "", "caption": "", "duration": 10} for n in range(8)
    ]
    shorts = to_result(
        LLMPlan.model_validate({"consistency_context": "", "scenes": long}),
        plan_input(platform=Platform.youtube_shorts),
    )
    assert len(shorts.scenes) == 6
    assert any("scenes 7-8 cut: youtube_shorts allows at most 60 s" in w for w in shorts.warnings)


def test_the_prompt_is_the_versioned_file_with_the_limits_filled_in() -> None:
    text = system_prompt(plan_input(duration=20, language="de", consistency_context="Noir"))
    assert "At most 4 scenes, together at most 20 seconds." in text
    assert "language with code 'de'" in text
    assert "Noir" in text
    assert "$" not in text


async def test_without_an_endpoint_the_planner_says_what_to_set() -> None:
    with pytest.raises(BadInputError, match="STORYREEL_LLM_BASE_URL") as failed:
        await ActivityEnvironment().run(LLMPlanner(None, None).plan_with_llm, plan_input())
    assert not failed.value.retryable


def answer(*durations: float) -> str:
    scenes = [
        {"description": f"shot {n}", "narration": f"line {n}", "caption": "", "duration": d}
        for n, d in enumerate(durations, start=1)
    ]
    return json.dumps({"consistency_context": "", "scenes": scenes})


async def test_the_prompt_names_the_clip_lengths_and_the_answer_is_held_to_them() -> None:
    """The model is told the lengths the clip model makes (Kling's 5 or 10 s) and asked to
    prefer them; its answer still goes through the planner's rules: 4.2 s gets a 0.8 s pause
    to 5 s, 6 s (4 short of 10 s) stays, 12 s is kept to 10 s."""
    async with serve_llm(answer(4.2, 6.0, 12.0), plan_json(1)) as llm:
        planner = LLMPlanner(llm.url, "test-model", KEY)
        env = ActivityEnvironment()
        result = await env.run(planner.plan_with_llm, plan_input(clip_lengths=[5.0, 10.0]))
        await env.run(planner.plan_with_llm, plan_input())
    shaped, unknown = (sent["messages"][0]["content"] for sent in llm.requests)
    assert "The video model makes clips of 5 or 10 seconds only" in shaped
    assert "Prefer scene durations of exactly those lengths" in shaped
    assert "Never shorten or drop narration" in shaped
    # A model outside the catalogue: any length, and nothing about 5 or 10 s.
    assert "makes clips of any length" in unknown and "5 or 10" not in unknown
    assert [scene.duration for scene in result.scenes] == [5.0, 6.0, 10.0]
    assert any("scene 3: planned 12 s, kept to 10 s" in w for w in result.warnings)
    assert result.prompt_version == PROMPT_VERSION == "plan_v2"


def test_the_lengths_rule_spells_each_kind_of_model() -> None:
    assert "clips of 8 seconds only" in system_prompt(plan_input(clip_lengths=[8.0]))
    assert "clips of 4, 6 or 8 seconds only" in system_prompt(
        plan_input(clip_lengths=[4.0, 6.0, 8.0])
    )
    # Lengths past a scene's 10 s are left out (Seedance makes 2-12 s).
    seedance = system_prompt(plan_input(clip_lengths=[float(n) for n in range(2, 13)]))
    assert "clips of 2, 3, 4, 5, 6, 7, 8, 9 or 10 seconds only" in seedance
