"""The rule-based planner and its activity."""

from __future__ import annotations

import logging

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.planning import plan_generation
from storyreel.contracts import PlanInput, Platform, SceneIn
from storyreel.errors import BadInputError
from storyreel.planning import plan_scenes, split_sentences

pytestmark = pytest.mark.fast


def test_sentences_become_scenes_at_two_and_a_half_words_per_second() -> None:
    script = (
        "Short one. "
        "This sentence has exactly ten words in it, count them! " + "word " * 40 + "ends here."
    )
    result = plan_scenes(PlanInput(generation_id="g", script=script))
    assert [scene.duration for scene in result.scenes] == [2.0, 4.0, 10.0]
    assert [scene.start for scene in result.scenes] == [0.0, 2.0, 6.0]
    assert [scene.index for scene in result.scenes] == [1, 2, 3]
    assert result.scenes[0].description == "Short one."


def test_sentence_splitting_ignores_empty_fragments() -> None:
    assert split_sentences("One.   Two!\n\nThree?  ...  ") == ["One.", "Two!", "Three?"]


async def test_ten_beats_for_fifteen_seconds_are_truncated_to_three(
    caplog: pytest.LogCaptureFixture,
) -> None:
    beats = [SceneIn(description=f"beat {n}", duration=3) for n in range(1, 11)]
    request = PlanInput(generation_id="gen-trunc", scenes=beats, duration=15)
    with caplog.at_level(logging.WARNING):
        result = await ActivityEnvironment().run(plan_generation, request)
    assert [scene.description for scene in result.scenes] == ["beat 1", "beat 2", "beat 3"]
    assert [scene.start for scene in result.scenes] == [0.0, 3.0, 6.0]
    assert result.planned_count == 10
    assert result.warnings == [
        "beat count truncated from 10 to 3 for a 15 s video (at most one beat per 5 s)"
    ]
    (record,) = [r for r in caplog.records if "truncated" in r.getMessage()]
    assert "10 planned, 3 kept" in record.getMessage()
    assert (record.beats_before, record.beats_after) == (10, 3)  # type: ignore[attr-defined]


def test_scenes_without_a_target_duration_are_kept() -> None:
    beats = [SceneIn(description=f"beat {n}", duration=2) for n in range(1, 8)]
    assert len(plan_scenes(PlanInput(generation_id="g", scenes=beats)).scenes) == 7


async def test_too_long_for_the_platform_is_a_non_retryable_bad_input() -> None:
    beats = [SceneIn(description="long", duration=10) for _ in range(7)]
    request = PlanInput(generation_id="g", scenes=beats, platform=Platform.youtube_shorts)
    with pytest.raises(ApplicationError) as error:
        await ActivityEnvironment().run(plan_generation, request)
    assert error.value.non_retryable and error.value.type == "BadInputError"
    assert "youtube_shorts allows at most 60 s" in error.value.message


def test_a_script_without_words_is_refused() -> None:
    with pytest.raises(BadInputError, match="no sentences"):
        plan_scenes(PlanInput(generation_id="g", script="... !!! ..."))
