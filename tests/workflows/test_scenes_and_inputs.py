"""The plan's clips, storyboard edits and the activities' inputs, without a server."""

from __future__ import annotations

import json
from pathlib import Path

from google.protobuf import json_format
from temporalio.api.common.v1 import Payload
from temporalio.contrib.pydantic import pydantic_data_converter

from storyreel.catalogue import Durations
from storyreel.contracts import (
    ClipState,
    ClipStatus,
    GenerationInput,
    GenerationState,
    PlannedScene,
    Platform,
    SceneEdit,
    SceneIn,
    StitchInput,
)
from storyreel.quotes import ClipPricing
from workflows.inputs import clip_input, plan_input, stitch_input
from workflows.scenes import edited_scenes, needs_redraw, planned_clips

HISTORIES = Path(__file__).resolve().parent / "histories"


def three_scenes() -> list[PlannedScene]:
    return [
        PlannedScene(index=i, description=f"scene {i}", duration=2.0, start=2.0 * (i - 1))
        for i in (1, 2, 3)
    ]


def request(**changes: object) -> GenerationInput:
    fields: dict[str, object] = {
        "title": "t",
        "scenes": [SceneIn(description="a gull", duration=2.0)],
        "platform": Platform.youtube,
        "provider": "local",
    }
    return GenerationInput.model_validate({**fields, **changes})


def test_planned_clips_carry_the_context_and_a_summary() -> None:
    clips = planned_clips(three_scenes(), "Watercolour")
    assert [c.clip_id for c in clips] == [1, 2, 3]
    assert clips[1].prompt == "Watercolour\n\nSCENE: scene 2"
    assert clips[1].summary == "clip 2/3: scene 2"
    legacy = planned_clips(three_scenes(), "", legacy="\n\n")
    assert legacy[0].prompt == "\n\nSCENE: scene 1"


def test_an_edit_retimes_later_scenes_and_keeps_unset_fields() -> None:
    scenes = three_scenes()
    edited = edited_scenes(scenes, SceneEdit(index=2, duration=5.0))
    assert edited is not None
    scene, changed = edited
    assert scene.description == "scene 2" and scene.duration == 5.0
    assert [s.start for s in changed] == [0.0, 2.0, 7.0]
    assert scenes[2].start == 4.0, "the old list is left as it was"
    assert not needs_redraw(scenes[1], scene), "a new duration draws nothing new"
    assert needs_redraw(scenes[1], scene.model_copy(update={"caption": "Dawn"}))
    assert edited_scenes(scenes, SceneEdit(index=4, caption="x")) is None


def test_a_new_picture_keeps_what_is_said_and_written() -> None:
    # The rule planner's scenes say and caption their sentence through the description.
    scenes = three_scenes()
    edited = edited_scenes(scenes, SceneEdit(index=2, description="gulls dive"))
    assert edited is not None
    scene, _ = edited
    assert (scene.description, scene.narration, scene.caption) == (
        "gulls dive",
        "scene 2",
        "scene 2",
    )
    # Said and written on their own, or changed with the picture: as given.
    own = scenes[1].model_copy(update={"narration": "Out to sea", "caption": "Sea"})
    edited = edited_scenes([scenes[0], own, scenes[2]], SceneEdit(index=2, description="x"))
    assert edited is not None and (edited[0].narration, edited[0].caption) == ("Out to sea", "Sea")
    both = SceneEdit(index=2, description="x", narration="Away they go")
    edited = edited_scenes(scenes, both)
    assert edited is not None and (edited[0].narration, edited[0].caption) == (
        "Away they go",
        "scene 2",
    )


def test_only_the_llm_planner_gets_language_and_context() -> None:
    rules = plan_input(request(language="de", consistency_context="ink"), "g")
    assert (rules.language, rules.consistency_context) == (None, "")
    script = {"scenes": None, "script": "A gull lands. It waits.", "planner": "llm"}
    llm = plan_input(request(language="de", consistency_context="ink", **script), "g")
    assert (llm.language, llm.consistency_context) == ("de", "ink")


def test_both_planners_get_the_clip_lengths_of_the_runs_billing() -> None:
    kling = ClipPricing(provider="replicate", model="m", durations=Durations(values=[10, 5]))
    for planner in ("rules", "llm"):
        script = {"scenes": None, "script": "A gull lands. It waits.", "planner": planner}
        assert plan_input(request(clip_pricing=kling, **script), "g").clip_lengths == [5.0, 10.0]
    # A model billed as long as each scene, or a run started before clip_pricing: none.
    assert (
        plan_input(request(clip_pricing=ClipPricing(provider="x", model="m")), "g").clip_lengths
        is None
    )
    assert plan_input(request(), "g").clip_lengths is None


def test_the_stitch_takes_made_clips_in_order_with_their_scene_text() -> None:
    scenes = three_scenes()
    scenes[0] = scenes[0].model_copy(update={"caption": "Dawn", "narration": "At dawn"})
    state = GenerationState(
        generation_id="g",
        title="t",
        clips=[
            ClipState(clip_id=1, status=ClipStatus.complete, key="c1"),
            ClipState(clip_id=2, status=ClipStatus.failed),
            ClipState(clip_id=3, status=ClipStatus.cached, key="c3"),
        ],
        scenes=scenes,
    )
    stitch = stitch_input(request(transition="none"), state)
    assert [(c.clip_id, c.caption, c.narration_text) for c in stitch.clips] == [
        (1, "Dawn", "At dawn"),
        (3, "scene 3", "scene 3"),
    ]
    assert stitch.transition == "none"


def test_a_clip_input_points_at_its_storyboard_image() -> None:
    scenes = three_scenes()
    state = GenerationState(
        generation_id="g",
        title="t",
        clips=[ClipState(clip_id=i, prompt=f"p{i}") for i in (1, 2, 3)],
        storyboard_keys=["s1", "s2", "s3"],
    )
    made = clip_input(request(seed=7), state, state.clips[1], scenes[1])
    assert (made.clip_id, made.clip_count, made.prompt, made.image_key, made.seed) == (
        2,
        3,
        "p2",
        "s2",
        7,
    )


def test_a_stored_stitch_input_with_clip_keys_still_decodes() -> None:
    """Histories recorded before 'clip_keys' was dropped carry it beside 'clips': the field is
    ignored when they decode, and the clips are all there."""
    path = next(HISTORIES.glob("retry-after-failure@*.json"))
    events = json.loads(path.read_text())["events"]
    scheduled = next(
        event["activityTaskScheduledEventAttributes"]
        for event in events
        if event.get("activityTaskScheduledEventAttributes", {}).get("activityType", {}).get("name")
        == "stitch_video"
    )
    payload = json_format.ParseDict(scheduled["input"]["payloads"][0], Payload())
    assert b"clip_keys" in payload.data, "the stored history no longer shows the old field"
    (decoded,) = pydantic_data_converter.payload_converter.from_payloads([payload], [StitchInput])
    assert isinstance(decoded, StitchInput) and len(decoded.clips) == 3
    assert "clip_keys" not in decoded.model_dump()
