"""The rule-based planner and its activity."""

from __future__ import annotations

import logging

import pytest
from temporalio.testing import ActivityEnvironment

from activities.planning import plan_generation
from api.validation import check_billing
from storyreel.catalogue import catalogue
from storyreel.contracts import GenerationRequest, PlanInput, Platform, SceneIn
from storyreel.errors import BadInputError
from storyreel.planning import (
    PAUSE_SECONDS,
    clip_lengths,
    covering_length,
    plan_scenes,
    split_sentences,
    spoken_seconds,
)
from storyreel.quotes import ClipPricing, pricing_for
from storyreel.settings import Settings


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
    # The worker's ErrorMapper makes it the ApplicationError (tests/activities/test_error_mapper).
    with pytest.raises(BadInputError) as error:
        await ActivityEnvironment().run(plan_generation, request)
    assert not error.value.retryable
    assert "youtube_shorts allows at most 60 s" in str(error.value)


def test_a_script_without_words_is_refused() -> None:
    with pytest.raises(BadInputError, match="no sentences"):
        plan_scenes(PlanInput(generation_id="g", script="... !!! ..."))


def words(count: int, end: str = ".") -> str:
    return " ".join(["gull"] * count) + end


# Sentences of 8, 4, 11, 10, 3 and 23 words: 3.2, 1.6, 4.4, 4.0, 1.2 and 9.2 s spoken.
SHAPED_SCRIPT = " ".join(words(n) for n in (8, 4, 11, 10, 3, 23))
KLING = [5.0, 10.0]


def test_a_script_is_shaped_toward_the_lengths_the_model_makes() -> None:
    """Kling makes 5 or 10 s: the 1.6 s sentence joins the 3.2 s one (4.8 s, inside the 5 s
    clip the first already needs), scenes up to 1.5 s short of a length get a pause to it, and
    the rest stay as spoken (the 1.2 s sentence would need 3 s of silence: its clip is cut)."""
    plain = plan_scenes(PlanInput(generation_id="g", script=SHAPED_SCRIPT))
    assert [scene.duration for scene in plain.scenes] == [3.2, 2.0, 4.4, 4.0, 2.0, 9.2]

    shaped = plan_scenes(PlanInput(generation_id="g", script=SHAPED_SCRIPT, clip_lengths=KLING))
    assert [scene.duration for scene in shaped.scenes] == [5.0, 5.0, 5.0, 2.0, 10.0]
    assert [scene.start for scene in shaped.scenes] == [0.0, 5.0, 10.0, 15.0, 17.0]
    assert shaped.scenes[0].description == f"{words(8)} {words(4)}"
    assert shaped.scenes[0].caption == shaped.scenes[0].description
    assert shaped.warnings == []
    # Billed: six clips of 35 s before, five of 30 s now.
    kling = ClipPricing(provider="replicate", model="kwaivgi/kling-v2.1")
    kling = kling.model_copy(
        update={"durations": catalogue()["replicate/kwaivgi/kling-v2.1"].durations}
    )
    assert sum(kling.billed_seconds(s.duration) for s in plain.scenes) == 35
    assert sum(kling.billed_seconds(s.duration) for s in shaped.scenes) == 30


@pytest.mark.parametrize("key", sorted(catalogue()))
def test_on_every_catalogued_model_narration_is_whole_and_scenes_land_where_they_can(
    key: str,
) -> None:
    """Whatever the model: every sentence is said, in order, in a scene long enough to say
    it; a scene off the model's lengths is one its narration cannot reach with a short pause;
    and the clips bill no more than the plan by narration alone did."""
    lengths = catalogue()[key].durations.lengths()
    request = PlanInput(generation_id="g", script=SHAPED_SCRIPT, clip_lengths=lengths)
    shaped = plan_scenes(request).scenes
    plain = plan_scenes(request.model_copy(update={"clip_lengths": None})).scenes
    assert " ".join(scene.description for scene in shaped) == " ".join(
        split_sentences(SHAPED_SCRIPT)
    )
    for scene in shaped:
        assert scene.duration >= min(10.0, spoken_seconds(scene.description)) - 1e-9
        clip = covering_length(scene.duration, lengths)
        if clip is not None and clip <= 10.0:
            on_grid = int(clip * 10 + 1e-3) / 10  # the plan's 0.1 s grid (5.0625 s: 5.0)
            assert scene.duration == on_grid or on_grid - scene.duration > PAUSE_SECONDS, (
                f"scene {scene.index} of {scene.duration} s could reach {clip} s"
            )

    def billed(scenes: list[float]) -> float:
        return sum(covering_length(d, lengths) or max(lengths) for d in scenes)

    assert billed([s.duration for s in shaped]) <= billed([s.duration for s in plain])


def test_pauses_stop_at_the_platform_limit() -> None:
    """Sixteen 3.6 s scenes on Veo (4, 6 or 8 s) last 57.6 s: Shorts' 60 s leave room for six
    0.4 s pauses, so the first six scenes reach 4 s and the rest stay as spoken."""
    script = " ".join(words(9) for _ in range(16))
    request = PlanInput(
        generation_id="g",
        script=script,
        platform=Platform.youtube_shorts,
        clip_lengths=[4.0, 6.0, 8.0],
    )
    durations = [scene.duration for scene in plan_scenes(request).scenes]
    assert durations == [4.0] * 6 + [3.6] * 10
    assert sum(durations) == pytest.approx(60.0)


def test_a_model_outside_the_catalogue_and_explicit_scenes_plan_as_before() -> None:
    unlisted = pricing_for(Settings(), "replicate", "acme/unlisted-video-model")
    assert clip_lengths(unlisted) is None
    assert clip_lengths(pricing_for(Settings(), "local", "local/pan-zoom")) is None
    request = PlanInput(generation_id="g", script=SHAPED_SCRIPT)
    before = plan_scenes(request)
    assert (
        plan_scenes(request.model_copy(update={"clip_lengths": clip_lengths(unlisted)})) == before
    )
    assert plan_scenes(request.model_copy(update={"clip_lengths": []})) == before
    # A caller's own scenes are kept as written, whatever the model makes.
    given = [SceneIn(description="a", duration=3.2), SceneIn(description="b", duration=4.6)]
    kept = plan_scenes(PlanInput(generation_id="g", scenes=given, clip_lengths=KLING))
    assert [scene.duration for scene in kept.scenes] == [3.2, 4.6]


def test_the_api_quotes_a_script_as_the_planner_shapes_it() -> None:
    """The API's up-front check plans with the model's lengths too, so its quote is the
    workflow's: five Kling clips of 30 s, not six of 35 s."""
    request = GenerationRequest(
        title="t",
        script=SHAPED_SCRIPT,
        platform=Platform.youtube,
        provider="replicate",
        model="kwaivgi/kling-v2.1",
    )
    quoted = check_billing(request, Settings())
    assert [scene.seconds for scene in quoted.scenes] == [5.0, 5.0, 5.0, 2.0, 10.0]
    assert quoted.billed_seconds == 30
