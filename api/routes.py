"""The ``/v1/generations`` routes. Every one needs an API key and sees only its owner's runs."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Header, Path, Query, WebSocket, WebSocketDisconnect
from fastapi.responses import FileResponse, RedirectResponse, Response

from api.auth import UserDep, authenticate, bearer_key, has_session, identify, owner_id
from api.deps import GenerationsDep, RecordsDep, SettingsDep
from api.events import EventStream
from api.responses import answers
from api.service import MAX_WAIT_SECONDS, Generations, fingerprint
from api.views import (
    Accepted,
    ActionAccepted,
    FinalizeBody,
    GenerationList,
    GenerationView,
    Links,
    RetryBody,
    SceneEditBody,
    links_for,
    to_view,
)
from storyreel.contracts import (
    GENERATION_ENDED,
    GenerationRequest,
    GenerationState,
    GenerationStatus,
    SceneEdit,
)
from storyreel.errors import NotFoundError, StoryreelError
from storyreel.keys import clip_key, thumbnail_key, video_key
from storyreel.settings import Settings

router = APIRouter(prefix="/v1/generations", tags=["generations"])

GenerationId = Annotated[str, Path(description="The generation id from POST.", max_length=200)]
ClipId = Annotated[int, Path(description="1-based scene index.", ge=1, le=10_000)]
SceneIndex = Annotated[int, Path(description="1-based scene index.", ge=1, le=10_000)]
EVENT_POLL_SECONDS = 0.5
MEDIA_TYPES = {".mp4": "video/mp4", ".jpg": "image/jpeg", ".png": "image/png"}
WS_AUTH_SECONDS = 10.0
Route = TypeVar("Route", bound=Callable[..., object])


def _links(settings: Settings, generation: str) -> Links:
    return links_for(generation, settings.temporal_ui_url, settings.temporal_namespace)


@router.post("", status_code=202, response_model=Accepted)
async def create_generation(
    body: GenerationRequest,
    user: UserDep,
    settings: SettingsDep,
    generations: GenerationsDep,
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
    started = await generations.start(body, owner_id(user), user.name, idempotency_key)
    return Accepted(
        id=started.id,
        status=GenerationStatus.queued,
        links=_links(settings, started.id),
        quote=started.quote,
    )


@router.get("", response_model=GenerationList)
async def list_generations(
    user: UserDep,
    generations: GenerationsDep,
    status: Annotated[GenerationStatus | None, Query(description="Only this status.")] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=500, description="From next_cursor.")] = None,
) -> GenerationList:
    """Your generations, newest first, ``limit`` at a time (follow ``next_cursor``)."""
    return await generations.list(owner_id(user), status, limit, cursor)


@router.get(
    "/{generation_id}",
    response_model=GenerationView,
    responses={
        200: {
            "description": "The generation. With ``wait``: as soon as it changed, or unchanged "
            "after ``wait`` seconds (compare the ETag).",
            "headers": {
                "ETag": {
                    "description": "A weak tag of the status, the stage and each clip's status "
                    "(not progress percents): send it back as If-None-Match or ?since= to wait "
                    "for the next change.",
                    "schema": {"type": "string"},
                }
            },
        },
        **answers(
            {404: "No such generation (or another user's).", 422: "``wait`` is not in (0, 60]."}
        ),
    },
)
async def get_generation(
    generation_id: GenerationId,
    user: UserDep,
    generations: GenerationsDep,
    settings: SettingsDep,
    response: Response,
    wait: Annotated[
        float | None,
        Query(
            gt=0,
            le=MAX_WAIT_SECONDS,
            description="Hold the answer up to this many seconds (at most 60) until the status "
            "or a clip's status differs from the ETag given (If-None-Match or since), or from "
            "the state at the time of the call. A run that has ended answers at once.",
        ),
    ] = None,
    since: Annotated[
        str | None,
        Query(max_length=200, description="The ETag last seen (instead of If-None-Match)."),
    ] = None,
    if_none_match: Annotated[
        str | None,
        Header(alias="If-None-Match", max_length=200, description="The ETag last seen."),
    ] = None,
) -> GenerationView:
    """Where the generation stands: status, stage, per-clip progress, timings, result links.

    A waiting read (``?wait=N``) replaces a polling loop: one call answers when the run moves
    on, or after N seconds with the same ETag.
    """
    seen = since or if_none_match
    if wait is None:
        state = await generations.state(generation_id, owner_id(user))
    else:
        state = await generations.wait_for_change(generation_id, owner_id(user), seen, wait)
    response.headers["ETag"] = fingerprint(state)
    return to_view(state, _links(settings, generation_id))


def _action(
    path: str,
    conflict: str,
    missing: str = "No such generation.",
    response_model: type[Accepted | ActionAccepted] = ActionAccepted,
    **route: Any,
) -> Callable[[Route], Route]:
    """A POST that asks a run to do something: 202 once the workflow has been told (or the
    run it starts has been), 404 for no such run (or another user's), 409 when the run is in
    no state to do it."""
    return router.post(
        f"/{{generation_id}}{path}",
        status_code=202,
        response_model=response_model,
        responses=answers({404: missing, 409: conflict}),
        **route,
    )


@_action("/clips/{clip_id}/retry", "The clip is not failed.")
async def retry_clip(
    generation_id: GenerationId,
    clip_id: ClipId,
    user: UserDep,
    generations: GenerationsDep,
    body: RetryBody | None = None,
) -> ActionAccepted:
    """Generate a failed clip again (optionally with a new prompt); 409 if it is not failed."""
    prompt = body.prompt if body else None
    await generations.retry_clip(generation_id, owner_id(user), clip_id, prompt)
    return ActionAccepted(id=generation_id, action="retry_clip", clip_id=clip_id)


def _run_action(
    action: str,
    path: str,
    act: Callable[[Generations, str, int], Awaitable[None]],
    conflict: str,
    description: str,
) -> None:
    """``POST /{generation_id}<path>``: tell the caller's run to do ``action`` (no body)."""

    @_action(path, conflict, name=f"{path.strip('/')}_generation", description=description)
    async def run_action(
        generation_id: GenerationId, user: UserDep, generations: GenerationsDep
    ) -> ActionAccepted:
        await act(generations, generation_id, owner_id(user))
        return ActionAccepted(id=generation_id, action=action)


_run_action(
    "cancel",
    "/cancel",
    Generations.cancel,
    "The run has already ended.",
    "Cancel the run: clip activities, upstream predictions and temp files stop with it.",
)
_run_action(
    "finish_without_failed",
    "/finish",
    Generations.finish,
    "The run is not awaiting_retry, or every clip failed.",
    "Assemble the video from the clips that succeeded, leaving the failed ones out.\n\n"
    "Only a run in ``awaiting_retry`` can be finished (else 409); it sends the workflow the "
    "``finish_without_failed`` signal.",
)
_run_action(
    "approve",
    "/approve",
    Generations.approve,
    "The run is not awaiting_approval.",
    'Approve the storyboard of a run started with ``review: "storyboard"``: its clips start '
    "(and only now cost anything). Sends the workflow the ``approve`` signal.",
)


@_action("/scenes/{scene}", "The run is not awaiting_approval.", "No such generation or scene.")
async def edit_scene(
    generation_id: GenerationId,
    scene: SceneIndex,
    body: SceneEditBody,
    user: UserDep,
    generations: GenerationsDep,
) -> ActionAccepted:
    """Edit one scene of a run awaiting approval; only its storyboard image is redrawn (when
    its description or caption changed). Sends the workflow the ``edit_scene`` signal."""
    edit = SceneEdit.model_validate({"index": scene, **body.model_dump(exclude_unset=True)})
    await generations.edit_scene(generation_id, owner_id(user), edit)
    return ActionAccepted(id=generation_id, action="edit_scene", clip_id=scene)


@_action(
    "/finalize",
    "The run is not a completed draft.",
    "No such generation, or no such scene in it.",
    response_model=Accepted,
)
async def finalize_generation(
    generation_id: GenerationId,
    user: UserDep,
    settings: SettingsDep,
    generations: GenerationsDep,
    body: FinalizeBody | None = None,
) -> Accepted:
    """Make the final of a completed draft (``quality: "draft"``): a new run (its id is the
    draft's with ``-final``) on the draft's plan, storyboard and seed. The scenes listed in
    ``scenes`` (default: all) get final clips; the others keep the draft's clip, paid nothing
    more. The draft's ``final_quote`` said what this costs. Finalizing again is the same run."""
    remake = body.scenes if body else None
    started = await generations.finalize(generation_id, owner_id(user), user.name, remake)
    return Accepted(id=started, status=GenerationStatus.queued, links=_links(settings, started))


async def _file(
    generations: GenerationsDep,
    generation: str,
    user_id: int,
    kind: str,
    key_of: Callable[[GenerationState], str | None],
) -> Response:
    """The file itself from local storage, or a redirect to a presigned URL (S3)."""
    where = await generations.locate(generation, user_id, kind, key_of)
    if isinstance(where, str):
        return RedirectResponse(where, status_code=307)
    media = MEDIA_TYPES.get(where.suffix, "application/octet-stream")
    return FileResponse(where, media_type=media, filename=f"{generation}-{where.name}")


MEDIA_RESPONSES = answers(
    {
        307: "Stored on S3: a presigned URL to fetch it from.",
        404: "No such generation, or the file is not there yet.",
    }
)


def _media(path: str, **route: Any) -> Callable[[Route], Route]:
    """A GET of one stored file of the caller's run: the file itself (local storage) or a 307
    to a presigned URL (S3); 404 until it is there."""
    return router.get(
        f"/{{generation_id}}{path}",
        response_class=FileResponse,
        responses=MEDIA_RESPONSES,
        **route,
    )


def _output(name: str, key_of: Callable[[str], str], description: str) -> None:
    """``GET /{generation_id}/<name>``: one output of the finished run, by its storage key."""

    @_media(f"/{name}", name=f"get_{name}", description=description)
    async def get_output(
        generation_id: GenerationId, user: UserDep, generations: GenerationsDep
    ) -> Response:
        key = key_of(generation_id)
        return await _file(generations, generation_id, owner_id(user), name, lambda _: key)


_output("video", video_key, "The finished MP4 (or a redirect to a presigned URL).")
_output("thumbnail", thumbnail_key, "A representative frame of the finished video (JPEG).")


@_media("/clips/{clip_id}/video")
async def get_clip(
    generation_id: GenerationId, clip_id: ClipId, user: UserDep, generations: GenerationsDep
) -> Response:
    """One scene's clip, once it is complete."""
    key = clip_key(generation_id, clip_id)
    return await _file(generations, generation_id, owner_id(user), f"clip {clip_id}", lambda _: key)


@_media("/storyboard/{index}")
async def get_storyboard_image(
    generation_id: GenerationId, index: SceneIndex, user: UserDep, generations: GenerationsDep
) -> Response:
    """One scene's storyboard image (the clip's first frame / reference)."""

    def drawn(state: GenerationState) -> str | None:
        keys = state.storyboard_keys
        return keys[index - 1] if index <= len(keys) else None

    kind = f"storyboard image {index}"
    return await _file(generations, generation_id, owner_id(user), kind, drawn)


async def _websocket_user(websocket: WebSocket, records: RecordsDep) -> int:
    """The header when the client can send one, else the page's session cookie, else a first
    message ``{"type": "auth"}``.

    Browsers cannot set headers on a WebSocket, and a key in the URL would land in logs.
    """
    key = bearer_key(websocket)
    if key is None and has_session(websocket):
        user = await identify(websocket)
        assert user.id is not None
        return user.id
    if key is None:
        try:
            message = json.loads(
                await asyncio.wait_for(websocket.receive_text(), timeout=WS_AUTH_SECONDS)
            )
        except (TimeoutError, ValueError):
            message = {}
        if isinstance(message, dict) and message.get("type") == "auth":
            key = str(message.get("key") or "") or None
    user = await authenticate(records, key)
    assert user.id is not None
    return user.id


@router.websocket("/{generation_id}/ws")
async def generation_events(
    websocket: WebSocket,
    generation_id: str,
    generations: GenerationsDep,
    records: RecordsDep,
    settings: SettingsDep,
) -> None:
    """Live events: the current state on connect, then every change until the run ends.

    Authenticate with ``Authorization: Bearer <key>`` or, from a browser, by sending
    ``{"type": "auth", "key": "<key>"}`` as the first message.
    """
    await websocket.accept()
    stream = EventStream()
    try:
        try:
            user_id = await _websocket_user(websocket, records)
        except StoryreelError as error:
            await websocket.send_json({"type": "error", "error": str(error)})
            await websocket.close(code=4401)
            return
        while True:
            try:
                state = await generations.state(generation_id, user_id)
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
