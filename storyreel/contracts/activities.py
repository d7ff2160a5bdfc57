"""One input and one result model per activity."""

from __future__ import annotations

from enum import StrEnum, auto
from typing import Annotated, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from storyreel.catalogue import ModelSpec
from storyreel.contracts.basics import ClipAudio, ClipStatus, Platform, SceneCharacters
from storyreel.contracts.requests import Character, SceneIn

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
    characters: SceneCharacters = Field(default_factory=list)
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
    clip_audio: ClipAudio = "duck"
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
    clip_audio: ClipAudio = "duck"


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

    queued = auto()
    running = auto()
    succeeded = auto()
    failed = auto()
    refused = auto()
    canceled = auto()


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
    clip_audio: ClipAudio = "duck"
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


SubmitResult.model_rebuild()
