"""The typed contracts between the API, the workflow and the activities.

One input and one result model per workflow and activity, so fields can be added without
breaking callers. Everything here crosses the Temporal boundary through the pydantic data
converter, so it must stay plain data: keys and URLs, never media bytes.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from storyreel.catalogue import ModelSpec
from storyreel.keys import GENERATED_PREFIXES
from storyreel.quotes import ClipPricing, Quote

WORKFLOW_NAME = "VideoGenerationWorkflow"
BATCH_WORKFLOW_NAME = "BatchWorkflow"
# Clip activities get ids "clip-<clip_id>-<round>" so heartbeats can be matched to clips.
CLIP_ACTIVITY_PREFIX = "clip-"


class Platform(StrEnum):
    tiktok = "tiktok"
    youtube = "youtube"
    youtube_shorts = "youtube_shorts"
    instagram_reels = "instagram_reels"


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
_VOICE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}$"
# espeak-ng language/voice names ("en", "de", "en-us", "pt-br", "sit/yue"); never an option.
_LANGUAGE_PATTERN = r"^[a-z][a-z0-9/_-]{0,31}$"


class ClipStatus(StrEnum):
    queued = "queued"
    processing = "processing"
    rendering = "rendering"
    complete = "complete"
    failed = "failed"
    cached = "cached"


CLIP_DONE = frozenset({ClipStatus.complete, ClipStatus.cached})
CLIP_ENDED = CLIP_DONE | {ClipStatus.failed}


class GenerationStatus(StrEnum):
    queued = "queued"
    planning = "planning"
    storyboarding = "storyboarding"
    generating = "generating"
    awaiting_approval = "awaiting_approval"
    awaiting_retry = "awaiting_retry"
    assembling = "assembling"
    completed = "completed"
    failed = "failed"
    cancelled = "cancelled"


GENERATION_ENDED = frozenset(
    {GenerationStatus.completed, GenerationStatus.failed, GenerationStatus.cancelled}
)


class RunPriority(StrEnum):
    """Who waits for a run: a person (``interactive``) or nobody in particular (``batch``)."""

    interactive = "interactive"
    batch = "batch"


# Temporal priority keys (1 is dispatched first, 5 last; unset is 3): when a queue has a
# backlog, a person's run goes before batch work.
PRIORITY_KEYS: dict[RunPriority, int] = {RunPriority.interactive: 1, RunPriority.batch: 5}


class BatchStatus(StrEnum):
    running = "running"
    completed = "completed"
    partial = "partial"
    failed = "failed"
    cancelled = "cancelled"


class WebhookEvent(StrEnum):
    """What a run's ``webhook`` is called for: ``status`` is every change of status, the others
    the change to that status."""

    status = "status"
    awaiting_approval = "awaiting_approval"
    awaiting_retry = "awaiting_retry"
    completed = "completed"
    failed = "failed"
    cancelled = "cancelled"


DEFAULT_WEBHOOK_EVENTS = (WebhookEvent.completed, WebhookEvent.failed, WebhookEvent.cancelled)


class Stage(StrEnum):
    plan = "plan"
    storyboard = "storyboard"
    clips = "clips"
    assemble = "assemble"
    publish = "publish"


# ---------------------------------------------------------------------------------------------
# Request


# An asset id from the API; once the API has resolved it, its storage key.
# (A final made from a draft keeps a draft's clip as it is: that clip's storage key.)
ASSET_PATTERN = (
    r"^(ast-[0-9a-f]{24}|assets/[0-9]+/ast-[0-9a-f]{24}"
    r"|generations/[A-Za-z0-9_-]+/clips/[0-9]+\.mp4)$"
)


class SceneIn(BaseModel):
    """A scene given explicitly by the caller."""

    model_config = ConfigDict(extra="forbid")

    description: Annotated[str, Field(min_length=1, max_length=2000)]
    duration: Annotated[float, Field(ge=2.0, le=10.0, description="Seconds, 2-10.")]
    caption: Annotated[str | None, Field(max_length=300)] = None
    narration: Annotated[
        str | None, Field(max_length=2000, description="What is said; default: the description.")
    ] = None
    asset: Annotated[
        str | None,
        Field(
            max_length=300,
            pattern=ASSET_PATTERN,
            description="An uploaded video or image (its id from POST /v1/assets) shown in "
            "this scene instead of a generated clip: a video trimmed or held to the scene, an "
            "image with a gentle pan. Nothing is paid for it; it is captioned and narrated like "
            "any other scene.",
        ),
    ] = None
    voice_asset: Annotated[
        str | None,
        Field(
            max_length=300,
            pattern=ASSET_PATTERN,
            description="Your own recorded narration for this scene (a sound's asset id), said "
            "instead of the TTS voice (cut with a fade where the scene ends).",
        ),
    ] = None


class Character(BaseModel):
    """Someone (or something) who must look the same in every scene that names them."""

    model_config = ConfigDict(extra="forbid")

    name: Annotated[
        str,
        Field(
            min_length=1,
            max_length=60,
            pattern=r"^[^\n]+$",
            description="As the script names them; a scene mentioning it shows them.",
        ),
    ]
    description: Annotated[
        str,
        Field(min_length=1, max_length=500, description="How they look, kept in their scenes."),
    ]
    assets: Annotated[
        list[Annotated[str, Field(max_length=300, pattern=ASSET_PATTERN)]],
        Field(
            max_length=3,
            description="Reference images (asset ids from POST /v1/assets): sent to models that "
            "take reference images, and drawn into the storyboards the others start from.",
        ),
    ] = []


class TaskQueues(BaseModel):
    """Where the workflow sends its activities (from the starter's settings)."""

    media: str = "storyreel-media"
    clip_prefix: str = "storyreel-clips"

    def clips(self, provider: str) -> str:
        return f"{self.clip_prefix}-{provider}"


class ProviderChoice(BaseModel):
    """A clip provider and model, e.g. one entry of a fallback chain."""

    model_config = ConfigDict(extra="forbid")

    provider: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]{0,31}$")]
    model: Annotated[str, Field(min_length=1, max_length=200)]


class GenerationRequest(BaseModel):
    """What a caller asks for: a script (or explicit scenes) and how to render it."""

    model_config = ConfigDict(extra="forbid")

    title: Annotated[str, Field(min_length=1, max_length=200)]
    script: Annotated[str | None, Field(max_length=20000)] = None
    scenes: Annotated[list[SceneIn] | None, Field(min_length=1, max_length=200)] = None
    duration: Annotated[
        float | None, Field(gt=0, le=600, description="Target video length in seconds.")
    ] = None
    platform: Platform = Platform.tiktok
    consistency_context: Annotated[str, Field(max_length=4000)] = ""
    provider: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]{0,31}$")] = "local"
    model: Annotated[str, Field(max_length=200)] = "local/pan-zoom"
    review: Literal["storyboard"] | None = Field(
        default=None,
        description="'storyboard': wait (durably, nothing paid) in awaiting_approval after the "
        "storyboard until approved; scenes may be edited meanwhile.",
    )
    fallback: Annotated[
        list[ProviderChoice],
        Field(
            max_length=5,
            description="Providers to move a clip to, in order, when its provider refuses it, "
            "fails it after its retries or stays throttled.",
        ),
    ] = Field(default_factory=list)
    image_provider: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]{0,31}$")] = "local"
    image_model: Annotated[str, Field(max_length=200)] = "local/gradient"
    max_parallel_clips: Annotated[
        int | None, Field(ge=1, le=64, description="Clips at once; default from settings.")
    ] = None
    seed: Annotated[int, Field(ge=0, le=2**31 - 1)] = 0
    use_cache: bool = Field(
        default=True, description="Reuse identical clips from earlier generations (cost 0)."
    )
    budget: Annotated[
        float | None,
        Field(ge=0, description="Most to spend on clips; clips that would exceed it never start."),
    ] = None
    planner: Literal["rules", "llm"] = Field(
        default="rules",
        description="How a script becomes scenes: 'rules' (sentences, offline) or 'llm' (the "
        "worker's OpenAI-compatible chat model writes what the camera sees, what is said and "
        "the caption of each scene).",
    )
    captions: bool | Literal["words"] = Field(
        default=True,
        description="Burn each scene's caption into its clip (true), highlight each spoken word "
        "of the narration karaoke style ('words'), or none (false).",
    )
    narration: bool = Field(
        default=False,
        description="Speak each scene's narration (its description without one) over it "
        "(the worker's TTS).",
    )
    voice_asset: Annotated[
        str | None,
        Field(
            max_length=300,
            pattern=ASSET_PATTERN,
            description="Your own recorded narration for the whole video (a sound's asset id), "
            "from its start, instead of any TTS voice; cut where the video ends.",
        ),
    ] = None
    quality: Literal["final", "draft"] = Field(
        default="final",
        description="'draft': every clip at the cheapest setting the model offers (its fast "
        "sibling, its lowest resolution, no model sound), to review before paying for finals "
        "with POST /v1/generations/{id}/finalize, which keeps the draft's plan and storyboard.",
    )
    characters: Annotated[
        list[Character],
        Field(
            max_length=8,
            description="Characters kept the same across scenes: each scene naming one keeps "
            "their description in its prompt and storyboard, and gets their reference images.",
        ),
    ] = []
    language: Annotated[
        str | None,
        Field(
            max_length=32,
            pattern=_LANGUAGE_PATTERN,
            description="Narration language: an installed espeak-ng voice such as 'en', 'de' "
            "or 'fr' (checked when the run starts); the LLM planner writes in it too.",
        ),
    ] = None
    voice: Annotated[
        str | None,
        Field(max_length=64, pattern=_VOICE_PATTERN, description="TTS voice; default: worker's."),
    ] = None
    music: Annotated[
        str | None,
        Field(
            max_length=500,
            description="A music bed, ducked under the narration: an uploaded sound's asset "
            "id (ast-..., from POST /v1/assets) or a storage key (e.g. 'music/harbour.mp3'); "
            "none by default.",
        ),
    ] = None
    transition: Annotated[
        str | None,
        Field(
            max_length=32,
            description=f"Between scenes: one of {', '.join(sorted(TRANSITIONS))}; "
            "'none' or null for hard cuts.",
        ),
    ] = "fade"
    transition_seconds: Annotated[
        float, Field(ge=0, le=2, description="How long scenes overlap in a transition.")
    ] = 0.5
    priority: RunPriority | None = Field(
        default=None,
        description="When queues are busy, interactive work is dispatched before batch work. "
        "Default: interactive for POST /v1/generations, batch for the items of a batch.",
    )
    clip_audio: Literal["keep", "duck", "drop"] = Field(
        default="duck",
        description="The sound of models that make their own (Veo 3, ...): kept as made, "
        "ducked under the narration, or dropped.",
    )
    webhook: Annotated[
        str | None,
        Field(
            max_length=2000,
            description="An https URL called (signed, Standard Webhooks) when the run reaches "
            "an event of webhook_events_filter; retried for 24 h until it answers 2xx.",
        ),
    ] = None
    webhook_events_filter: Annotated[
        list[WebhookEvent],
        Field(
            min_length=1,
            max_length=len(WebhookEvent),
            description="Which events call the webhook: 'status' (every change of status), "
            "'awaiting_approval', 'awaiting_retry', 'completed', 'failed', 'cancelled'.",
        ),
    ] = Field(default_factory=lambda: list(DEFAULT_WEBHOOK_EVENTS))

    @field_validator("transition")
    @classmethod
    def _known_transition(cls, value: str | None) -> str | None:
        if value is None or value == NO_TRANSITION:
            return value
        if value not in TRANSITIONS:
            raise ValueError(
                f"unknown transition {value!r}; use one of {', '.join(sorted(TRANSITIONS))}, "
                f"or {NO_TRANSITION!r}"
            )
        return value

    @field_validator("music")
    @classmethod
    def _music_key_shape(cls, value: str | None) -> str | None:
        if value is None:
            return value
        parts = value.split("/")
        if value.startswith("/") or "\\" in value or any(p in ("", ".", "..") for p in parts):
            raise ValueError(
                f"music: {value!r} is not a storage key; give a relative key such as "
                "'music/bed.mp3' (no '..', no leading '/')"
            )
        if parts[0] in GENERATED_PREFIXES:
            # Other generations' media is never a music bed (and may be another user's).
            raise ValueError(f"music: {value!r} is not a music track; give an uploaded track's key")
        return value

    @model_validator(mode="after")
    def _script_or_scenes(self) -> Self:
        if (self.script is None) == (self.scenes is None):
            raise ValueError("give either 'script' or 'scenes', not both and not neither")
        if self.script is not None and not self.script.strip():
            raise ValueError("'script' is empty")
        if self.planner == "llm" and self.script is None:
            raise ValueError(
                "planner 'llm' plans a 'script'; explicit 'scenes' use planner 'rules'"
            )
        return self


class GenerationInput(GenerationRequest):
    """Input of ``VideoGenerationWorkflow``: the request plus what the starter decided."""

    model_config = ConfigDict(extra="ignore")

    retry_window_seconds: Annotated[int, Field(ge=1)] = 24 * 3600
    queues: TaskQueues = Field(default_factory=TaskQueues)
    user_id: int | None = Field(
        default=None, description="The owner, for the record; None writes no record."
    )
    clip_timeout_seconds: float | None = Field(
        default=None, gt=0, description="Start-to-close timeout of one clip attempt."
    )
    estimated_cost_per_second: float = Field(
        default=0.0,
        description="Price per scene second for the budget check of runs started before "
        "clip_pricing (it wins when set).",
    )
    clip_pricing: ClipPricing | None = Field(
        default=None,
        description="How the clip provider bills: its clip lengths and price (the budget books "
        "billed seconds).",
    )
    final_pricing: ClipPricing | None = Field(
        default=None, description="A draft's: how its final clips would be billed."
    )
    storyboards: list[str] = Field(
        default_factory=list,
        description="A final's: its draft's storyboard images (storage keys), used as drawn.",
    )
    draft_of: str | None = Field(default=None, description="A final's draft (its id).")
    review_window_seconds: Annotated[int, Field(ge=1)] = 7 * 24 * 3600
    webhook_url: str | None = Field(
        default=None,
        description="Base of the API's webhook routes ('<public url>/v1/webhooks'); set, clips "
        "wait for their provider's call instead of polling it.",
    )
    fallback_poll_seconds: float = Field(
        default=60.0, gt=0, description="With webhooks: read a prediction this often anyway."
    )
    webhook_retry_initial_seconds: float = Field(
        default=5.0, gt=0, description="The caller's webhook: the first wait before a retry."
    )
    api_base_url: str | None = Field(
        default=None, description="Where the API answers, for the links of webhook events."
    )


# ---------------------------------------------------------------------------------------------
# Activities


class PlannedScene(BaseModel):
    index: int = Field(description="1-based; also the clip id.")
    description: str = Field(description="What the camera sees: the clip prompt's scene.")
    caption: str | None = None
    duration: float
    start: float
    narration: str | None = Field(default=None, description="What is said; default: description.")
    asset: str | None = Field(
        default=None, description="Storage key of the caller's own video or image shown here."
    )
    characters: list[str] = Field(
        default_factory=list, description="The request's characters this scene names."
    )
    cast: str | None = Field(
        default=None, description="Their descriptions, as the prompt and storyboard carry them."
    )
    references: list[str] = Field(
        default_factory=list, description="Storage keys of their reference images."
    )
    voice_asset: str | None = Field(
        default=None, description="Storage key of the caller's own narration for this scene."
    )


class SceneChanges(BaseModel):
    """New values for some of a scene's fields (at least one)."""

    model_config = ConfigDict(extra="forbid")

    description: Annotated[str | None, Field(min_length=1, max_length=2000)] = None
    narration: Annotated[str | None, Field(max_length=2000)] = None
    caption: Annotated[str | None, Field(max_length=300)] = None
    duration: Annotated[float | None, Field(ge=2.0, le=10.0, description="Seconds, 2-10.")] = None

    @model_validator(mode="after")
    def _something(self) -> Self:
        if not self.model_fields_set - {"index"}:
            raise ValueError("give at least one of description, narration, caption, duration")
        return self


class SceneEdit(SceneChanges):
    """Payload of the ``edit_scene`` signal: new values for some fields of one scene."""

    index: int = Field(ge=1, description="1-based scene index.")


class PlanInput(BaseModel):
    generation_id: str
    script: str | None = None
    scenes: list[SceneIn] | None = None
    duration: float | None = None
    platform: Platform = Platform.tiktok
    language: str | None = None
    consistency_context: str = Field(
        default="", description="The request's own context, for the LLM planner to keep to."
    )
    characters: list[Character] = Field(
        default_factory=list, description="Whose descriptions the scenes naming them keep."
    )
    clip_lengths: list[float] | None = Field(
        default=None,
        description="The clip lengths the run's model makes, shortest first (the catalogue's, "
        "or those read from its provider's schema): a script's scenes are shaped toward them. "
        "None (lengths unknown, or a run started before this field) plans by the narration "
        "alone.",
    )


class PlanResult(BaseModel):
    scenes: list[PlannedScene]
    planned_count: int = Field(description="Beats before the cap was applied.")
    warnings: list[str] = Field(default_factory=list)
    consistency_context: str = Field(
        default="", description="The LLM planner's visual context (the request's wins)."
    )
    planner: str = "rules"
    prompt_version: str | None = Field(
        default=None, description="Which prompt of activities/prompts/ the LLM planner used."
    )


class StoryboardInput(BaseModel):
    generation_id: str
    scene: PlannedScene
    scene_count: int
    platform: Platform
    provider: str = "local"
    model: str = "local/gradient"
    seed: int = 0
    use_cache: bool = True


class StoryboardResult(BaseModel):
    index: int
    key: str
    cached: bool = False
    warnings: list[str] = Field(
        default_factory=list, description="What the image lacks of what was asked."
    )


class ClipInput(BaseModel):
    generation_id: str
    clip_id: int
    clip_count: int
    prompt: str
    scene: PlannedScene
    platform: Platform
    provider: str
    model: str
    seed: int = 0
    image_key: str | None = None
    use_cache: bool = True
    clip_audio: Literal["keep", "duck", "drop"] = "duck"
    draft: bool = Field(default=False, description="At the model's cheapest resolution.")
    webhook_url: str | None = Field(
        default=None, description="Where the provider calls back (submit_clip only)."
    )
    prediction_id: str | None = Field(
        default=None, description="Follow this prediction instead of starting one."
    )


class SubmitResult(BaseModel):
    """What ``submit_clip`` did: started (or resumed) a prediction, or found the clip cached."""

    prediction_id: str | None = None
    calls_back: bool = False
    cached: ClipResult | None = None


class CheckInput(BaseModel):
    provider: str
    model: str
    prediction_id: str


class OwnClipInput(BaseModel):
    """Input of ``use_asset``: the caller's own video or image made into one scene's clip."""

    generation_id: str
    clip_id: int
    asset: str = Field(description="The asset's storage key.")
    duration: float
    platform: Platform
    clip_audio: Literal["keep", "duck", "drop"] = "duck"


class DescribeModelInput(BaseModel):
    """Input of ``describe_model``: a model the starter's catalogue does not list."""

    provider: str
    model: str


class DescribeModelResult(BaseModel):
    """What the clip worker will take the model to be: the catalogue's entry, else the one
    read from its provider's published schema; None where the provider publishes none."""

    spec: ModelSpec | None = None


class PredictionPhase(StrEnum):
    """Where an upstream prediction stands, in every provider's words mapped to one set."""

    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    refused = "refused"
    canceled = "canceled"


PREDICTION_ENDED = frozenset(
    {
        PredictionPhase.succeeded,
        PredictionPhase.failed,
        PredictionPhase.refused,
        PredictionPhase.canceled,
    }
)


class PredictionUpdate(BaseModel):
    """One observation of a prediction: from a verified webhook or from one status read.

    Carries no output URL (signed URLs are credentials): the clip activity that copies the
    output asks the provider for it.
    """

    prediction_id: Annotated[str, Field(min_length=1, max_length=300)]
    phase: PredictionPhase
    progress: Annotated[float | None, Field(ge=0, le=100)] = None
    error: Annotated[str | None, Field(max_length=2000)] = None

    @property
    def ended(self) -> bool:
        return self.phase in PREDICTION_ENDED


class PredictionSignal(BaseModel):
    """Payload of the ``prediction_update`` signal: a verified webhook about one clip."""

    clip_id: int = Field(ge=1)
    update: PredictionUpdate


class ClipProgress(BaseModel):
    """Heartbeat details of a clip activity; what a retried attempt resumes from."""

    status: ClipStatus
    progress: float = 0.0
    prediction_id: str | None = None


class ClipMedia(BaseModel):
    """What stitching needs to know of a stored clip, probed once by the clip stage.

    The field names are those of ``activities.media.export.MediaDetails`` (a subset of it), so
    one converts to the other by ``model_dump``. ``size_bytes`` lets a reader check that it
    holds the very file that was probed before trusting the rest.
    """

    size_bytes: int
    duration: float
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    video_codec: str | None = None
    video_profile: str | None = None
    pix_fmt: str | None = None
    audio_codec: str | None = None
    audio_sample_rate: int | None = None
    audio_channels: str | None = None


class ClipResult(BaseModel):
    clip_id: int
    key: str
    duration: float
    prediction_id: str | None = None
    render_seconds: float
    attempt: int = 1
    cached: bool = False
    cost: float = 0.0
    # None from workers (and histories) older than the field: the assembly then probes.
    media: ClipMedia | None = None
    billed_seconds: float | None = Field(
        default=None, description="The clip length asked of (and billed by) the provider."
    )
    warnings: list[str] = Field(
        default_factory=list,
        description="What the clip lacks of what was asked (a storyboard the model cannot "
        "take, a scene longer than the model makes): the run's warnings too.",
    )


class AssemblyClip(BaseModel):
    """One kept clip as the assembly stage needs it: where it is and what to write and say."""

    key: str
    clip_id: int | None = None
    caption: str | None = None
    narration_text: str | None = None
    media: ClipMedia | None = None
    voice_key: str | None = Field(
        default=None, description="The caller's own narration for this scene (storage key)."
    )


class StitchInput(BaseModel):
    """Input of the assembly activity; the defaults only join the clips (no extras)."""

    # Histories and in-flight tasks from before carry a 'clip_keys' list beside 'clips' (it
    # repeated their keys): ignored, not kept, when they decode.
    model_config = ConfigDict(extra="ignore")

    generation_id: str
    platform: Platform
    clips: list[AssemblyClip] = Field(default_factory=list)
    captions: bool | Literal["words"] = False
    narration: bool = False
    voice: str | None = None
    language: str | None = None
    music: str | None = None
    transition: str | None = None
    transition_seconds: float = 0.5
    clip_audio: Literal["keep", "duck", "drop"] = "duck"
    voice_key: str | None = Field(
        default=None, description="The caller's own narration for the whole video (storage key)."
    )


class StitchResult(BaseModel):
    """The finished video and its metadata, plus how each step of assembly went."""

    key: str
    duration: float
    width: int
    height: int
    stream_copy: bool
    thumbnail_key: str | None = None
    mode: str | None = Field(default=None, description="How clips were joined: copy/reencode/xfade")
    overlay_mode: str | None = Field(
        default=None,
        description="How captions were drawn: inline (in the join's own pass, when it "
        "crossfades), else parallel, sequential or fallback; None without captions.",
    )
    overlay_seconds: float = 0.0
    fps: float | None = None
    video_codec: str | None = None
    audio_codec: str | None = None
    size_bytes: int = 0
    bit_rate: int | None = None
    transition: str | None = None
    transition_seconds: float = 0.0
    narration: bool = False
    music: bool = False
    step_seconds: dict[str, float] = Field(
        default_factory=dict, description="Seconds per assembly step (fetch, overlay, stitch...)."
    )
    warnings: list[str] = Field(
        default_factory=list, description="What the video lacks of what was asked (the run's too)."
    )


class PublishInput(BaseModel):
    state: GenerationState


class PublishResult(BaseModel):
    record_key: str


class Charge(BaseModel):
    """One clip attempt's cost, entered in the ledger once under ``key``."""

    clip_id: int
    amount: float
    key: str
    billed_seconds: float | None = Field(
        default=None,
        description="The clip length the provider billed (None: a worker older than the field).",
    )


class RecordInput(BaseModel):
    """A milestone of the run, written to the database (idempotent: stale states are ignored)."""

    state: GenerationState
    user_id: int
    request: dict[str, Any] = Field(default_factory=dict)
    charge: Charge | None = None


# ---------------------------------------------------------------------------------------------
# State


class RetryClipRequest(BaseModel):
    """Payload of the ``retry_clip`` signal."""

    clip_id: int = Field(ge=1)
    prompt: Annotated[str | None, Field(max_length=4000)] = None


class ClipTry(BaseModel):
    """One provider's go at a clip (a fallback chain makes several)."""

    provider: str
    model: str
    status: ClipStatus
    cost: float = 0.0
    error: str | None = None
    prediction_id: str | None = None


class ClipFields(BaseModel):
    """What a clip's state and the API's view of it share: spelled here once."""

    clip_id: int
    status: ClipStatus = ClipStatus.queued
    progress: float = 0.0
    duration: float | None = None
    error: str | None = None
    attempts: int = 0
    cost: float = 0.0
    prompt: str = ""
    provider: str | None = Field(default=None, description="Who made (or is making) the clip.")
    model: str | None = None
    tries: list[ClipTry] = Field(
        default_factory=list,
        description="With a fallback chain: each provider's go at the clip and what it cost.",
    )


class ClipState(ClipFields):
    key: str | None = None
    summary: str = ""
    prediction_id: str | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    render_seconds: float | None = None
    # Kept by the workflow for its assembly step only: left out of every dump, so queries,
    # results and the record (which equals the final state) stay as they were.
    media: ClipMedia | None = Field(default=None, exclude=True)


class StageTiming(BaseModel):
    stage: Stage
    started_at: datetime
    ended_at: datetime | None = None

    @property
    def seconds(self) -> float | None:
        if self.ended_at is None:
            return None
        return (self.ended_at - self.started_at).total_seconds()


class ClipStageMetrics(BaseModel):
    """How much the fan-out saved: wall time of the clip stage vs the sum of clip times."""

    wall_seconds: float = 0.0
    sum_clip_seconds: float = 0.0
    speedup: float | None = None
    max_concurrent: int = 0


class GenerationMetrics(BaseModel):
    """Where a run's time went; filled in when the run ends (also logged and exported)."""

    stage_seconds: dict[Stage, float] = Field(
        default_factory=dict,
        description="Wall seconds per stage; the clip stage without time spent awaiting a retry.",
    )
    total_seconds: float = 0.0
    waiting_seconds: float = Field(default=0.0, description="Time spent in awaiting_retry.")
    clip_wall_seconds: float = 0.0
    sum_clip_seconds: float = 0.0
    speedup: float | None = Field(default=None, description="Sum of clip times / clip wall.")
    max_concurrent_clips: int = 0
    clips: int = 0
    bottleneck: Stage | None = Field(default=None, description="The stage that took longest.")


class GenerationHeadline(BaseModel):
    """What a listing shows of a generation (its state, record and view have all of it)."""

    title: str
    status: GenerationStatus = GenerationStatus.queued
    stage: Stage | None = None
    platform: Platform = Platform.tiktok
    provider: str = "local"
    duration: float | None = None
    error: str | None = None
    cost: float = 0.0
    created_at: datetime | None = None
    updated_at: datetime | None = None


class GenerationFields(GenerationHeadline):
    """What a generation's state, its record and the API's view of it share: a new field of a
    generation is added here, or to the headline when listings show it too (plus its column and
    migration, when the record keeps it)."""

    warnings: list[str] = Field(default_factory=list)
    timings: list[StageTiming] = Field(default_factory=list)
    clip_stage: ClipStageMetrics = Field(default_factory=ClipStageMetrics)
    skipped_clips: list[int] = Field(default_factory=list)
    budget: float | None = None
    retry_deadline: datetime | None = None
    quote: Quote | None = Field(
        default=None,
        description="The clips as the provider bills them (each scene at the length the model "
        "makes), priced before any clip is made.",
    )
    quality: Literal["final", "draft"] = "final"
    final_quote: Quote | None = Field(
        default=None, description="A draft's: what its final clips will cost (finalize)."
    )
    draft_of: str | None = Field(default=None, description="A final's draft.")


class GenerationState(GenerationFields):
    """What ``get_state`` answers: where a run stands, per clip."""

    generation_id: str
    scenes: list[PlannedScene] = Field(default_factory=list)
    clips: list[ClipState] = Field(default_factory=list)
    storyboard_keys: list[str] = Field(default_factory=list)
    video_key: str | None = None
    thumbnail_key: str | None = None
    metrics: GenerationMetrics | None = None
    assembly: StitchResult | None = None

    def clip(self, clip_id: int) -> ClipState | None:
        if 1 <= clip_id <= len(self.clips):
            return self.clips[clip_id - 1]
        return None


# ---------------------------------------------------------------------------------------------
# Batches


class BatchInput(BaseModel):
    """Input of ``BatchWorkflow``: which batch, whose, how many at once. The items themselves
    stay in the record database (500 requests would not fit in one payload); each is read
    when its turn comes."""

    batch_id: str
    title: str
    user_id: int
    user: str = Field(description="The owner's name, for the children's search attributes.")
    count: int = Field(ge=1)
    concurrency: int = Field(ge=1, description="Most of this batch's generations at once.")
    max_running: int = Field(
        ge=1, description="The owner's limit of running generations, batch runs included."
    )
    webhook: str | None = Field(default=None, description="Called when the batch ends.")
    webhook_events_filter: list[WebhookEvent] = Field(
        default_factory=lambda: list(DEFAULT_WEBHOOK_EVENTS)
    )
    webhook_retry_initial_seconds: float = 5.0
    api_base_url: str | None = None


class ClaimInput(BaseModel):
    batch_id: str
    position: int = Field(ge=0)
    user_id: int
    max_running: int


class ClaimResult(BaseModel):
    """The item to start now, or ``request`` None when the owner is at their running limit."""

    generation_id: str
    request: GenerationInput | None = None


class CloseBatchInput(BaseModel):
    batch_id: str
    status: BatchStatus


class BatchResult(BaseModel):
    batch_id: str
    status: BatchStatus
    outcomes: dict[str, GenerationStatus] = Field(
        default_factory=dict, description="Each started generation's final status, by id."
    )


PublishInput.model_rebuild()
RecordInput.model_rebuild()
SubmitResult.model_rebuild()
