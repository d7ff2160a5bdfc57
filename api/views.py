"""What the HTTP API answers: the workflow's state, live clip progress merged in, links."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from storyreel.contracts import (
    DEFAULT_WEBHOOK_EVENTS,
    BatchStatus,
    ClipFields,
    ClipStatus,
    GenerationFields,
    GenerationHeadline,
    GenerationState,
    GenerationStatus,
    PlannedScene,
    Platform,
    SceneChanges,
    SceneCharacters,
    WebhookEvent,
)
from storyreel.db.models import GenerationPublic
from storyreel.quotes import Quote

NextCursor = Annotated[
    str | None, Field(description="Pass as ?cursor= for the next page; null on the last.")
]


class ClipView(ClipFields):
    # Always present in an answer (defaults only in the workflow's own state).
    status: ClipStatus
    progress: float
    url: str | None = None


class Links(BaseModel):
    self: str
    events: str
    video: str
    thumbnail: str
    temporal_ui: str
    page: str


class GenerationView(GenerationFields):
    """A generation as the API shows it."""

    # Always present in an answer (defaults only in the workflow's own state).
    status: GenerationStatus
    platform: Platform
    provider: str
    id: str
    clips: list[ClipView] = Field(default_factory=list)
    video_url: str | None = None
    thumbnail_url: str | None = None
    storyboard_urls: list[str] = Field(
        default_factory=list, description="One image per scene, in scene order, once drawn."
    )
    scenes: list[SceneView] = Field(
        default_factory=list,
        description="The planned scenes (editable while awaiting_approval), with their image.",
    )
    links: Links


class GenerationSummary(GenerationHeadline):
    """A generation in a listing (no clips: fetch the generation for those)."""

    # Always present in a listing (defaults only in the workflow's own state).
    status: GenerationStatus
    platform: Platform
    provider: str
    created_at: datetime
    id: str
    thumbnail_url: str | None = None
    links: Links


class GenerationList(BaseModel):
    items: list[GenerationSummary]
    next_cursor: NextCursor = None


class Accepted(BaseModel):
    id: str
    status: GenerationStatus
    links: Links
    quote: Quote | None = Field(
        default=None,
        description="What the clips will be billed, priced before any is made (a model outside "
        "the catalogue is quoted again, at the lengths it makes, before its first clip).",
    )


class SceneEditBody(SceneChanges):
    """New values for some of a scene's fields (at least one)."""


class SceneView(BaseModel):
    index: int
    description: str
    narration: str
    caption: str
    duration: float
    storyboard_url: str | None = None
    characters: SceneCharacters = Field(default_factory=list)
    references: list[str] = Field(
        default_factory=list, description="Their reference images (asset ids) its clip was given."
    )
    asset: str | None = Field(
        default=None, description="The asset id of your own video or image shown instead."
    )


class FinalizeBody(BaseModel):
    scenes: list[Annotated[int, Field(ge=1, le=10_000)]] | None = Field(
        default=None,
        max_length=200,
        description="The scenes to make final (1-based); the others keep the draft's clip. "
        "Default: every scene.",
    )


class RetryBody(BaseModel):
    prompt: str | None = Field(default=None, max_length=4000, description="A new prompt.")


class ActionAccepted(BaseModel):
    id: str
    action: str
    clip_id: int | None = None


def links_for(generation_id: str, temporal_ui: str, namespace: str) -> Links:
    base = f"/v1/generations/{generation_id}"
    return Links(
        self=base,
        events=f"{base}/ws",
        video=f"{base}/video",
        thumbnail=f"{base}/thumbnail",
        temporal_ui=f"{temporal_ui.rstrip('/')}/namespaces/{namespace}/workflows/{generation_id}",
        page=f"/#run={generation_id}",
    )


def scene_view(scene: PlannedScene, state: GenerationState, base: str) -> SceneView:
    url = None
    if scene.index <= len(state.storyboard_keys):
        # Redrawn images keep their key: the version makes browsers fetch an edited one again.
        drawn = f"{scene.description}\x00{scene.caption}".encode()
        url = f"{base}/storyboard/{scene.index}?v={hashlib.sha256(drawn).hexdigest()[:10]}"
    return SceneView(
        index=scene.index,
        description=scene.description,
        narration=scene.narration or scene.description,
        caption=scene.caption or scene.description,
        duration=scene.duration,
        storyboard_url=url,
        characters=scene.characters,
        references=[key.rsplit("/", 1)[-1] for key in scene.references],
        asset=scene.asset.rsplit("/", 1)[-1] if scene.asset else None,
    )


def summary_view(item: GenerationPublic, links: Links) -> GenerationSummary:
    thumbnail = links.thumbnail if item.thumbnail_key else None
    return GenerationSummary.model_validate(
        {**item.model_dump(), "thumbnail_url": thumbnail, "links": links}
    )


def to_view(state: GenerationState, links: Links) -> GenerationView:
    base = links.self
    return GenerationView.model_validate(
        {
            **_shared(state, GenerationFields),
            "id": state.generation_id,
            "clips": [
                ClipView.model_validate(
                    {
                        **_shared(clip, ClipFields),
                        "url": f"{base}/clips/{clip.clip_id}/video" if clip.key else None,
                    }
                )
                for clip in state.clips
            ],
            "video_url": links.video if state.video_key else None,
            "thumbnail_url": links.thumbnail if state.thumbnail_key else None,
            "storyboard_urls": [
                f"{base}/storyboard/{index}" for index in range(1, len(state.storyboard_keys) + 1)
            ],
            "scenes": [scene_view(scene, state, base) for scene in state.scenes],
            "links": links,
        }
    )


def _shared(model: BaseModel, fields: type[BaseModel]) -> dict[str, Any]:
    """The values of ``model`` that ``fields`` declares, as they are (no copy, no dump)."""
    return {name: getattr(model, name) for name in fields.model_fields}


# ---------------------------------------------------------------------------------------------
# Batches


class BatchBody(BaseModel):
    """Many generations at once; each item is a generation request, validated like one."""

    model_config = ConfigDict(extra="forbid")

    items: list[dict[str, Any]] = Field(
        min_length=1,
        max_length=500,
        description="1-500 generation requests (each as the body of POST /v1/generations); "
        "items run as batch priority unless they set 'priority'.",
        json_schema_extra={"items": {"$ref": "#/components/schemas/GenerationRequest"}},
    )
    title: str | None = Field(default=None, min_length=1, max_length=200)
    webhook: str | None = Field(
        default=None,
        max_length=2000,
        description="An https URL called once when the batch ends (batch.completed, "
        "batch.partial, batch.failed, batch.cancelled); its items may carry their own.",
    )
    webhook_events_filter: list[WebhookEvent] = Field(
        default_factory=lambda: list(DEFAULT_WEBHOOK_EVENTS),
        min_length=1,
        description="Which ends call it: 'completed' (also a partial batch), 'failed', "
        "'cancelled', or 'status' (any).",
    )


class BatchLinks(BaseModel):
    self: str
    cancel: str


class BatchView(BaseModel):
    """A batch: its status, how many of its generations are in each status, and their ids."""

    id: str
    title: str
    status: BatchStatus
    total: int
    counts: dict[GenerationStatus, int] = Field(
        description="Generations per status (from their own records; not started yet = queued)."
    )
    generations: list[str] = Field(description="The items' generation ids, in item order.")
    created_at: datetime
    updated_at: datetime
    links: BatchLinks


class BatchSummary(BaseModel):
    id: str
    title: str
    status: BatchStatus
    total: int
    created_at: datetime
    updated_at: datetime
    links: BatchLinks


class BatchList(BaseModel):
    items: list[BatchSummary]
    next_cursor: NextCursor = None


def batch_links(batch_id: str) -> BatchLinks:
    return BatchLinks(self=f"/v1/batches/{batch_id}", cancel=f"/v1/batches/{batch_id}/cancel")
