"""Rule-based planner: script (or given scenes) -> ordered beats with durations.

Sentences become scenes read at 2.5 words per second, each clamped to 2-10 s. When a target
duration is given, the beat count is capped at ``ceil(duration / 5)``: extra beats are dropped
and start times recomputed (the plan activity logs the truncation with its counts).

When the run's model makes only some clip lengths (``PlanInput.clip_lengths``, from the model
catalogue; a model outside it has none and plans as above), a script's scenes are shaped
toward them, never cutting narration short:

- *merged*: the next sentence joins the scene when the two still fit, spoken, in the clip the
  scene already pays for (a 3.2 s sentence on a 5-or-10 s model bills 5 s, so a following
  sentence of up to 1.8 s rides along for nothing), and in 10 s;
- *paused*: a scene a little shorter than the clip that covers it is lengthened to that clip,
  a silent pause after its narration, when the pause is at most ``PAUSE_SECONDS`` (1.5 s) and
  the video stays within the platform's limit. A longer gap stays as it is: the clip is
  trimmed to the scene rather than the video holding a long silence.

Scenes the caller wrote (``scenes``) are never reshaped. The LLM planner's scenes get the
pause, not the merge (the model chose them; its prompt names the lengths).

Pure and in the kernel, so the API (checking a request's length before anything starts) and
the plan activity (``activities/planning.py``) plan alike.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace

from storyreel.contracts import PLATFORMS, Character, PlanInput, PlannedScene, PlanResult
from storyreel.errors import BadInputError
from storyreel.quotes import ClipPricing

WORDS_PER_SECOND = 2.5
MIN_SCENE_SECONDS = 2.0
MAX_SCENE_SECONDS = 10.0
SECONDS_PER_BEAT = 5.0
# The longest silent pause added after a scene's narration to make it as long as its clip.
PAUSE_SECONDS = 1.5
# A scene within this of a clip length is covered by it (as in the catalogue).
_COVERED = 1e-3

_SENTENCE_END = re.compile(r"(?<=[.!?…])\s+|\n\s*\n")


def split_sentences(script: str) -> list[str]:
    parts = (" ".join(part.split()) for part in _SENTENCE_END.split(script))
    return [part for part in parts if any(char.isalnum() for char in part)]


@dataclass(frozen=True)
class Beat:
    """A scene before layout: from the caller, the sentence splitter or the LLM planner."""

    description: str
    duration: float
    caption: str | None = None
    narration: str | None = None
    asset: str | None = None  # the caller's own video or image for this scene (storage key)
    voice_asset: str | None = None  # the caller's own narration for it (storage key)


def clip_lengths(pricing: ClipPricing | None) -> list[float] | None:
    """The lengths a run's plan is shaped toward (``PlanInput.clip_lengths``): those its
    billing says the model makes (the catalogue's), None for any length. The API and the
    workflow both take them from here, so they plan alike."""
    if pricing is None or pricing.durations is None:
        return None
    return pricing.durations.lengths()


def spoken_seconds(text: str) -> float:
    """How long ``text`` takes to say at ``WORDS_PER_SECOND`` (not clamped to a scene's)."""
    return len(text.split()) / WORDS_PER_SECOND


def scene_seconds(text: str) -> float:
    seconds = spoken_seconds(text)
    return round(min(MAX_SCENE_SECONDS, max(MIN_SCENE_SECONDS, seconds)), 1)


def covering_length(seconds: float, lengths: Sequence[float]) -> float | None:
    """The shortest of the model's ``lengths`` that covers ``seconds`` (None: none does)."""
    return next((length for length in sorted(lengths) if length + _COVERED >= seconds), None)


def group_sentences(sentences: Sequence[str], lengths: Sequence[float]) -> list[str]:
    """Adjacent sentences joined into one scene while, spoken, they still fit the clip the
    scene's first sentences already need (and 10 s): each join saves a clip and bills nothing
    more. A scene longer than every length takes nothing more."""
    scenes: list[str] = []
    for sentence in sentences:
        if scenes:
            clip = covering_length(scene_seconds(scenes[-1]), lengths)
            joined = f"{scenes[-1]} {sentence}"
            fits = min(clip, MAX_SCENE_SECONDS) if clip is not None else 0.0
            if spoken_seconds(joined) <= fits + _COVERED:
                scenes[-1] = joined
                continue
        scenes.append(sentence)
    return scenes


def with_pauses(beats: Sequence[Beat], lengths: Sequence[float], room: float) -> list[Beat]:
    """Each beat lengthened to the clip that covers it when that adds at most
    ``PAUSE_SECONDS`` after its narration, while the added seconds fit in ``room`` (the
    platform's limit less the plan). Only ever longer: narration is never cut."""
    paused: list[Beat] = []
    for beat in beats:
        duration = round(beat.duration, 1)
        clip = covering_length(duration, lengths)
        # On the plan's 0.1 s grid, never past the clip (a 5.0625 s clip gives 5.0 s).
        target = math.floor(clip * 10 + _COVERED) / 10 if clip is not None else duration
        extra = round(target - duration, 1)
        if 0 < extra <= PAUSE_SECONDS and target <= MAX_SCENE_SECONDS and extra <= room:
            beat = replace(beat, duration=target)
            room -= extra
        paused.append(beat)
    return paused


def max_beats(duration: float) -> int:
    return max(1, math.ceil(duration / SECONDS_PER_BEAT))


def plan_scenes(request: PlanInput) -> PlanResult:
    """The planner as a pure function (the activity below only adds logging)."""
    lengths = request.clip_lengths or None
    if request.scenes:
        given = [
            Beat(
                scene.description,
                scene.duration,
                scene.caption,
                scene.narration,
                scene.asset,
                scene.voice_asset,
            )
            for scene in request.scenes
        ]
        lengths = None  # the caller's own scenes are kept as written
    elif request.script:
        sentences = split_sentences(request.script)
        if lengths:
            sentences = group_sentences(sentences, lengths)
        given = [Beat(text, scene_seconds(text), caption=text) for text in sentences]
    else:
        given = []
    if not given:
        raise BadInputError("the script has no sentences to turn into scenes")
    return lay_out(given, request, lengths=lengths)


def lay_out(
    given: Sequence[Beat],
    request: PlanInput,
    warnings: list[str] | None = None,
    *,
    fit_platform: bool = False,
    lengths: Sequence[float] | None = None,
) -> PlanResult:
    """Cap the beats, give each its start, and hold the platform's length limit: a plan the
    caller wrote is refused when too long; one a model wrote (``fit_platform``) loses its
    last scenes instead, with a warning naming them. With the model's clip ``lengths``, the
    kept beats get their pauses (:func:`with_pauses`) within the limit first."""
    warnings = list(warnings or [])
    kept = list(given)
    if request.duration is not None:
        cap = max_beats(request.duration)
        if len(given) > cap:
            kept = list(given[:cap])
            warnings.append(
                f"beat count truncated from {len(given)} to {cap} "
                f"for a {request.duration:g} s video (at most one beat per {SECONDS_PER_BEAT:g} s)"
            )

    limit = PLATFORMS[request.platform].max_duration
    if lengths:
        planned = sum(round(beat.duration, 1) for beat in kept)
        room = limit - planned if limit is not None else math.inf
        kept = with_pauses(kept, lengths, round(room, 3))
    scenes: list[PlannedScene] = []
    start = 0.0
    for index, scene in enumerate(kept, start=1):
        duration = round(scene.duration, 1)
        if fit_platform and limit is not None and start + duration > limit + 1e-6 and scenes:
            warnings.append(
                f"scenes {index}-{len(kept)} cut: {request.platform.value} allows at most "
                f"{limit:g} s and scenes 1-{index - 1} already last {start:g} s"
            )
            break
        scenes.append(
            PlannedScene(
                index=index,
                description=scene.description,
                caption=scene.caption,
                narration=scene.narration,
                duration=duration,
                start=round(start, 3),
                asset=scene.asset,
                voice_asset=scene.voice_asset,
            )
        )
        start += duration

    scenes = [cast_scene(scene, request.characters) for scene in scenes]
    if limit is not None and start > limit + 1e-6:
        raise BadInputError(
            f"the video would last {start:g} s but {request.platform.value} allows at most "
            f"{limit:g} s; shorten the script or choose another platform"
        )
    return PlanResult(scenes=scenes, planned_count=len(given), warnings=warnings)


def names(scene: PlannedScene, character: Character) -> bool:
    """Whether the scene's text names ``character`` (a whole-word match, any case)."""
    text = " ".join(filter(None, (scene.description, scene.caption, scene.narration)))
    return re.search(rf"(?<!\w){re.escape(character.name)}(?!\w)", text, re.IGNORECASE) is not None


def cast_scene(scene: PlannedScene, characters: Sequence[Character]) -> PlannedScene:
    """The scene with the characters it names: their names, their descriptions (which its
    prompt and storyboard carry) and their reference images' storage keys."""
    present = [character for character in characters if names(scene, character)]
    if not present:
        return scene
    return scene.model_copy(
        update={
            "characters": [character.name for character in present],
            "cast": "; ".join(f"{c.name}: {c.description}" for c in present),
            "references": [key for character in present for key in character.assets],
        }
    )
