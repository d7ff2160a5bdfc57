"""What a caller asks for (``GenerationRequest``) and what the workflow is started with
(``GenerationInput``): the request plus what the starter fills in."""

from __future__ import annotations

from typing import Annotated, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from storyreel.contracts.basics import (
    DEFAULT_WEBHOOK_EVENTS,
    LANGUAGE_PATTERN,
    NO_TRANSITION,
    TRANSITIONS,
    VOICE_PATTERN,
    ClipAudio,
    Platform,
    Quality,
    RunPriority,
    WebhookEvent,
)
from storyreel.keys import GENERATED_PREFIXES
from storyreel.quotes import ClipPricing

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
    quality: Quality = Field(
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
            pattern=LANGUAGE_PATTERN,
            description="Narration language: an installed espeak-ng voice such as 'en', 'de' "
            "or 'fr' (checked when the run starts); the LLM planner writes in it too.",
        ),
    ] = None
    voice: Annotated[
        str | None,
        Field(max_length=64, pattern=VOICE_PATTERN, description="TTS voice; default: worker's."),
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
    clip_audio: ClipAudio = Field(
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
