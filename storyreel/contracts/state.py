"""Where a run stands (``GenerationState``, what ``get_state`` answers and the record keeps),
the activities that carry it, and the batch workflow's contracts."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, Field

from storyreel.contracts.activities import ClipMedia, PlannedScene, StitchResult
from storyreel.contracts.basics import (
    DEFAULT_WEBHOOK_EVENTS,
    BatchStatus,
    ClipStatus,
    GenerationStatus,
    Platform,
    Quality,
    Stage,
    WebhookEvent,
)
from storyreel.contracts.requests import GenerationInput
from storyreel.quotes import Quote

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
    quality: Quality = "final"
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


PublishInput.model_rebuild()
RecordInput.model_rebuild()
