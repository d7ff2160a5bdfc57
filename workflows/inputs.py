"""What each activity of a generation is given, built from the request and the run's state.
Pure functions: no workflow calls."""

from __future__ import annotations

from typing import Any

from storyreel.contracts import (
    CLIP_DONE,
    AssemblyClip,
    ClipInput,
    ClipState,
    GenerationInput,
    GenerationState,
    PlanInput,
    PlannedScene,
    StitchInput,
    StoryboardInput,
)
from storyreel.planning import clip_lengths
from storyreel.quotes import ClipPricing

# What the assembly takes from the request as it is, under the request's own names.
_FINISHING = (
    "platform",
    "captions",
    "narration",
    "voice",
    "language",
    "music",
    "transition",
    "transition_seconds",
    "clip_audio",
)


def _carried(request: GenerationInput, *names: str) -> dict[str, Any]:
    """The request's own values of ``names``, for the input fields of the same names (the
    objects themselves: nothing is copied or converted)."""
    return {name: getattr(request, name) for name in names}


def plan_input(
    request: GenerationInput, generation_id: str, pricing: ClipPricing | None = None
) -> PlanInput:
    """The planner's input; the LLM planner also takes the language and the context. Both
    take the clip lengths the model makes, from the run's billing (the API planned the same
    way when it quoted the run; ``pricing``, when the run read a model outside the catalogue
    from its provider); a run started before ``clip_pricing`` plans without them."""
    plan = PlanInput(
        generation_id=generation_id,
        clip_lengths=clip_lengths(pricing or request.clip_pricing),
        **_carried(request, "script", "scenes", "duration", "platform", "characters"),
    )
    if request.planner != "llm":
        return plan
    return plan.model_copy(update=_carried(request, "language", "consistency_context"))


def storyboard_input(
    request: GenerationInput, generation_id: str, scene: PlannedScene, scene_count: int
) -> StoryboardInput:
    return StoryboardInput(
        generation_id=generation_id,
        scene=scene,
        scene_count=scene_count,
        provider=request.image_provider,
        model=request.image_model,
        **_carried(request, "platform", "seed", "use_cache"),
    )


def clip_input(
    request: GenerationInput, state: GenerationState, clip: ClipState, scene: PlannedScene
) -> ClipInput:
    """The input of the clip's first provider (a fallback's go changes provider and model)."""
    return ClipInput(
        generation_id=state.generation_id,
        clip_id=clip.clip_id,
        clip_count=len(state.clips),
        prompt=clip.prompt,
        scene=scene,
        image_key=state.storyboard_keys[clip.clip_id - 1],
        draft=request.quality == "draft",
        **_carried(request, "platform", "provider", "model", "seed", "use_cache", "clip_audio"),
    )


def stitch_input(request: GenerationInput, state: GenerationState) -> StitchInput:
    """The assembly of the clips made (skipped ones are left out), each with its scene's
    caption and narration (the description when the scene has none)."""
    clips = []
    for clip in state.clips:
        if clip.status not in CLIP_DONE or not clip.key:
            continue
        scene = state.scenes[clip.clip_id - 1]
        clips.append(
            AssemblyClip(
                key=clip.key,
                clip_id=clip.clip_id,
                caption=scene.caption or scene.description,
                narration_text=scene.narration or scene.description,
                media=clip.media,
                voice_key=scene.voice_asset,
            )
        )
    return StitchInput(
        generation_id=state.generation_id,
        clips=clips,
        voice_key=request.voice_asset,
        **_carried(request, *_FINISHING),
    )
