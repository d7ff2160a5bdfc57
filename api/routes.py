"""The ``/v1/generations`` routes."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Annotated

from fastapi import APIRouter, Header, Path, WebSocket, WebSocketDisconnect
from fastapi.responses import FileResponse, RedirectResponse, Response

from activities.keys import clip_key, thumbnail_key, video_key
from api.deps import GenerationsDep, SettingsDep, StorageDep, TemporalDep
from api.events import EventStream
from api.views import (
    Accepted,
    ActionAccepted,
    GenerationView,
    Links,
    RetryBody,
    links_for,
    to_view,
)
from storyreel.contracts import GENERATION_ENDED, GenerationRequest, GenerationStatus
from storyreel.errors import BadInputError, NotFoundError
from storyreel.generations import generation_id, start_generation
from storyreel.settings import Settings

log = logging.getLogger("storyreel.api")
router = APIRouter(prefix="/v1/generations", tags=["generations"])

GenerationId = Annotated[str, Path(description="The generation id from POST.", max_length=200)]
ClipId = Annotated[int, Path(description="1-based scene index.", ge=1, le=10_000)]
EVENT_POLL_SECONDS = 0.5


def _links(settings: Settings, generation: str) -> Links:
    return links_for(generation, settings.temporal_ui_url, settings.temporal_namespace)


@router.post("", status_code=202, response_model=Accepted)
async def create_generation(
    body: GenerationRequest,
    client: TemporalDep,
    settings: SettingsDep,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            max_length=200,
            description="Repeat a POST safely: same key, same generation.",
        ),
    ] = None,
) -> Accepted:
    """Start a generation. Every clip is generated at once; follow it with the links."""
    for field, provider in (("provider", body.provider), ("image_provider", body.image_provider)):
        if provider not in settings.clip_providers:
            raise BadInputError(
                f"{field}: unknown provider {provider!r}; "
                f"use one of {', '.join(settings.clip_providers)}"
            )
    workflow_id = generation_id(idempotency_key)
    handle = await start_generation(client, settings, body, workflow_id=workflow_id)
    log.info("generation %s started: %s", handle.id, body.title)
    return Accepted(id=handle.id, status=GenerationStatus.queued, links=_links(settings, handle.id))


@router.get("/{generation_id}", response_model=GenerationView)
async def get_generation(
    generation_id: GenerationId, generations: GenerationsDep, settings: SettingsDep
) -> GenerationView:
    """Where the generation stands: status, stage, per-clip progress, timings, result links."""
    state = await generations.state(generation_id)
    return to_view(state, _links(settings, generation_id))


@router.post(
    "/{generation_id}/clips/{clip_id}/retry", status_code=202, response_model=ActionAccepted
)
async def retry_clip(
    generation_id: GenerationId,
    clip_id: ClipId,
    generations: GenerationsDep,
    body: RetryBody | None = None,
) -> ActionAccepted:
    """Generate a failed clip again (optionally with a new prompt); 409 if it is not failed."""
    await generations.retry_clip(generation_id, clip_id, body.prompt if body else None)
    return ActionAccepted(id=generation_id, action="retry_clip", clip_id=clip_id)


@router.post("/{generation_id}/cancel", status_code=202, response_model=ActionAccepted)
async def cancel_generation(
    generation_id: GenerationId, generations: GenerationsDep
) -> ActionAccepted:
    """Cancel the run: clip activities, upstream predictions and temp files stop with it."""
    await generations.cancel(generation_id)
    return ActionAccepted(id=generation_id, action="cancel")


async def _file(
    generations: GenerationsDep, storage: StorageDep, generation: str, key: str, kind: str
) -> Response:
    """The file itself from local storage, or a redirect to a presigned URL (S3)."""
    state = await generations.state(generation)
    path = storage.local_path(key)
    ready = path.is_file() if path is not None else await asyncio.to_thread(storage.exists, key)
    if not ready:
        raise NotFoundError(f"the {kind} of {generation} is not ready (status {state.status})")
    if path is None:
        return RedirectResponse(await asyncio.to_thread(storage.url, key), status_code=307)
    media = "image/jpeg" if key.endswith(".jpg") else "video/mp4"
    return FileResponse(path, media_type=media, filename=f"{generation}-{path.name}")


@router.get("/{generation_id}/video", response_class=FileResponse)
async def get_video(
    generation_id: GenerationId, generations: GenerationsDep, storage: StorageDep
) -> Response:
    """The finished MP4."""
    return await _file(generations, storage, generation_id, video_key(generation_id), "video")


@router.get("/{generation_id}/thumbnail", response_class=FileResponse)
async def get_thumbnail(
    generation_id: GenerationId, generations: GenerationsDep, storage: StorageDep
) -> Response:
    """A representative frame of the finished video (JPEG)."""
    key = thumbnail_key(generation_id)
    return await _file(generations, storage, generation_id, key, "thumbnail")


@router.get("/{generation_id}/clips/{clip_id}/video", response_class=FileResponse)
async def get_clip(
    generation_id: GenerationId, clip_id: ClipId, generations: GenerationsDep, storage: StorageDep
) -> Response:
    """One scene's clip, once it is complete."""
    key = clip_key(generation_id, clip_id)
    return await _file(generations, storage, generation_id, key, f"clip {clip_id}")


@router.websocket("/{generation_id}/ws")
async def generation_events(
    websocket: WebSocket, generation_id: str, generations: GenerationsDep, settings: SettingsDep
) -> None:
    """Live events: the current state on connect, then every change until the run ends."""
    await websocket.accept()
    stream = EventStream()
    try:
        while True:
            try:
                state = await generations.state(generation_id)
            except NotFoundError as error:
                await websocket.send_json({"type": "error", "error": str(error)})
                await websocket.close(code=4404)
                return
            view = to_view(state, _links(settings, generation_id))
            for event in stream.events(view, time.monotonic()):
                await websocket.send_json(event)
            if view.status in GENERATION_ENDED:
                await websocket.close(code=1000)
                return
            await asyncio.sleep(EVENT_POLL_SECONDS)
    except WebSocketDisconnect:
        return
