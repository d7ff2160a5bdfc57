"""The names every contract shares: the workflow names, platforms, statuses, stages,
priorities and the patterns request fields are checked by."""

from __future__ import annotations

from enum import StrEnum, auto
from typing import Annotated, Literal

from pydantic import BaseModel, Field

WORKFLOW_NAME = "VideoGenerationWorkflow"
BATCH_WORKFLOW_NAME = "BatchWorkflow"
# Clip activities get ids "clip-<clip_id>-<round>" so heartbeats can be matched to clips.
CLIP_ACTIVITY_PREFIX = "clip-"


# What becomes of the clips' own sound in the mix: kept as it is, ducked under the narration and
# music, or dropped.
ClipAudio = Literal["keep", "duck", "drop"]
# A run's clips: the model's best ('final') or its cheapest setting ('draft').
Quality = Literal["final", "draft"]

# The names of the request's characters a scene names: a planned scene and its view carry them.
SceneCharacters = Annotated[
    list[str], Field(description="The request's characters this scene names.")
]


class Platform(StrEnum):
    tiktok = auto()
    youtube = auto()
    youtube_shorts = auto()
    instagram_reels = auto()


class PlatformSpec(BaseModel):
    width: int
    height: int
    fps: int = 30
    max_duration: float | None = None


PLATFORMS: dict[Platform, PlatformSpec] = {
    Platform.tiktok: PlatformSpec(width=1080, height=1920, max_duration=180),
    Platform.youtube: PlatformSpec(width=1920, height=1080),
    Platform.youtube_shorts: PlatformSpec(width=1080, height=1920, max_duration=60),
    Platform.instagram_reels: PlatformSpec(width=1080, height=1920, max_duration=90),
}

# The xfade transitions a request may name (and the assembly knows); FFmpeg knows more, these
# are the tasteful ones.
TRANSITIONS = frozenset(
    {
        "fade", "fadeblack", "fadewhite", "dissolve", "wipeleft", "wiperight", "wipeup",
        "wipedown", "slideleft", "slideright", "slideup", "slidedown", "smoothleft",
        "smoothright", "circleopen", "circleclose", "radial", "zoomin", "hblur", "pixelize",
    }
)  # fmt: skip
NO_TRANSITION = "none"
# espeak ("en-us+f3"), OpenAI ("alloy") and Kokoro ("af_bella") voice names; never an option.
VOICE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}$"
# espeak-ng language/voice names ("en", "de", "en-us", "pt-br", "sit/yue"); never an option.
LANGUAGE_PATTERN = r"^[a-z][a-z0-9/_-]{0,31}$"


class ClipStatus(StrEnum):
    queued = auto()
    processing = auto()
    rendering = auto()
    complete = auto()
    failed = auto()
    cached = auto()


CLIP_DONE = frozenset({ClipStatus.complete, ClipStatus.cached})
CLIP_ENDED = CLIP_DONE | {ClipStatus.failed}


class GenerationStatus(StrEnum):
    queued = auto()
    planning = auto()
    storyboarding = auto()
    generating = auto()
    awaiting_approval = auto()
    awaiting_retry = auto()
    assembling = auto()
    completed = auto()
    failed = auto()
    cancelled = auto()


GENERATION_ENDED = frozenset(
    {GenerationStatus.completed, GenerationStatus.failed, GenerationStatus.cancelled}
)


class RunPriority(StrEnum):
    """Who waits for a run: a person (``interactive``) or nobody in particular (``batch``)."""

    interactive = auto()
    batch = auto()


# Temporal priority keys (1 is dispatched first, 5 last; unset is 3): when a queue has a
# backlog, a person's run goes before batch work.
PRIORITY_KEYS: dict[RunPriority, int] = {RunPriority.interactive: 1, RunPriority.batch: 5}


class BatchStatus(StrEnum):
    running = auto()
    completed = auto()
    partial = auto()
    failed = auto()
    cancelled = auto()


class WebhookEvent(StrEnum):
    """What a run's ``webhook`` is called for: ``status`` is every change of status, the others
    the change to that status."""

    status = auto()
    awaiting_approval = auto()
    awaiting_retry = auto()
    completed = auto()
    failed = auto()
    cancelled = auto()


DEFAULT_WEBHOOK_EVENTS = (WebhookEvent.completed, WebhookEvent.failed, WebhookEvent.cancelled)


class Stage(StrEnum):
    plan = auto()
    storyboard = auto()
    clips = auto()
    assemble = auto()
    publish = auto()
