"""The plan's scenes and their clips: the clips a plan starts with, and the scenes after a
person edits one while reviewing the storyboard. Pure functions: no workflow calls."""

from __future__ import annotations

from storyreel.contracts import ClipState, PlannedScene, SceneEdit
from workflows.summary import clip_prompt, clip_summary


def planned_clips(scenes: list[PlannedScene], context: str, legacy: str = "") -> list[ClipState]:
    """One clip per scene, prompted with the consistency context (``legacy``: what runs
    started before ``PLAIN_PROMPT`` put above a prompt without context)."""
    return [
        ClipState(
            clip_id=scene.index,
            prompt=legacy + clip_prompt(context, scene.description, scene.cast),
            summary=clip_summary(scene.index, len(scenes), scene.description),
        )
        for scene in scenes
    ]


def edited_scenes(
    scenes: list[PlannedScene], edit: SceneEdit
) -> tuple[PlannedScene, list[PlannedScene]] | None:
    """The edited scene (the fields the edit sets, over the old ones; a new description leaves
    what is said and captioned as it was) and the scenes with it,
    later scenes starting where it now ends; None for a scene that does not exist. The edited
    scene is drawn and prompted as edited, before the new starts are counted."""
    if not 1 <= edit.index <= len(scenes):
        return None
    # A signal's payload carries every field (unset ones as null): null means "unchanged".
    changes = edit.model_dump(exclude={"index"}, exclude_none=True)
    old = scenes[edit.index - 1]
    if "description" in changes:
        # What is said and written fell back to the description (the rule planner's sentence):
        # a new picture keeps them as they were unless the edit changes them too.
        changes.setdefault("narration", old.narration or old.description)
        changes.setdefault("caption", old.caption or old.description)
    scene = old.model_copy(update=changes)
    changed = list(scenes)
    changed[edit.index - 1] = scene
    start = 0.0
    for index, each in enumerate(changed):
        changed[index] = each.model_copy(update={"start": round(start, 3)})
        start += each.duration
    return scene, changed


def needs_redraw(old: PlannedScene, new: PlannedScene) -> bool:
    """Only what is drawn (the description, the caption) makes a new storyboard image."""
    return (new.description, new.caption) != (old.description, old.caption)
