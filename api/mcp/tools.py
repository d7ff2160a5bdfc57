"""The MCP tools: each calls the service method the matching route calls, so the rules stay
in the services; a domain error is a tool error with the API's message (the session lives on)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import Field, ValidationError

from api.batches import Batches
from api.events import Event, EventStream
from api.mcp.identity import caller
from api.service import MAX_WAIT_SECONDS, Generations, fingerprint
from api.views import (
    Accepted,
    ActionAccepted,
    BatchBody,
    BatchView,
    GenerationList,
    GenerationView,
    SceneEditBody,
    SceneView,
    to_view,
)
from storyreel.contracts import GenerationRequest, GenerationState, GenerationStatus, SceneEdit
from storyreel.errors import StoryreelError


class VideoState(GenerationView):
    """A generation as ``get_video`` answers it: the API's view plus its ETag."""

    etag: str = Field(
        description="Give it back as get_video's 'since' to wait for the next change."
    )


# GenerationView names SceneView before views.py defines it: resolve it for the subclass too.
VideoState.model_rebuild(_types_namespace={"SceneView": SceneView})


@contextmanager
def readable() -> Iterator[None]:
    """The API's message for what it would answer 4xx: a tool error, the session lives on."""
    try:
        yield
    except StoryreelError as error:
        raise ToolError(str(error)) from None
    except ValidationError as error:
        problems = [
            f"{'.'.join(str(part) for part in problem['loc']) or 'input'}: {problem['msg']}"
            for problem in error.errors()[:3]
        ]
        raise ToolError("; ".join(problems)) from None


def progress_message(event: Event) -> str:
    """One live event (``api/events.py``) as a line of progress."""
    kind = event["type"]
    if kind == "generation_status":
        stage = f" ({event['stage']})" if event.get("stage") else ""
        return f"{event['status']}{stage}"
    if kind == "video_progress":
        return f"clip {event['clip_id']}: {event['status']} {event['progress']:.0f}%"
    if kind == "video_complete":
        return f"clip {event['clip_id']} complete"
    if kind == "clip_failed":
        return f"clip {event['clip_id']} failed: {event.get('error') or 'no reason given'}"
    if kind == "generation_failed":
        return f"failed: {event.get('error') or 'no reason given'}"
    return "completed" if kind == "generation_complete" else kind


def add_tools(server: MCPServer, generations: Generations, batches: Batches) -> None:
    """Every tool of ``server``, bound to the app's services."""

    def view(state: GenerationState) -> GenerationView:
        return to_view(state, generations.links(state.generation_id))

    @server.tool()
    async def create_video(
        request: GenerationRequest, ctx: Context, idempotency_key: str | None = None
    ) -> Accepted:
        """Start a generation (the body of POST /v1/generations): its id and its quote, what
        the clips will be billed. The same idempotency_key again is the same generation."""
        who = caller(ctx)
        with readable():
            started = await generations.start(request, who.id, who.name, idempotency_key)
        return Accepted(
            id=started.id,
            status=GenerationStatus.queued,
            links=generations.links(started.id),
            quote=started.quote,
        )

    @server.tool()
    async def get_video(
        generation_id: str,
        ctx: Context,
        wait_seconds: Annotated[
            float | None,
            Field(
                gt=0,
                le=MAX_WAIT_SECONDS,
                description="Wait up to this many seconds (at most 60) for the status or a "
                "clip's status to change; reports progress meanwhile.",
            ),
        ] = None,
        since: Annotated[
            str | None,
            Field(max_length=200, description="The etag of the last get_video (with wait)."),
        ] = None,
    ) -> VideoState:
        """Where a generation stands: status, stage, each clip's progress, the quote, links.
        With wait_seconds it returns as soon as the run moves on (or after that long, with
        the same etag); a run that has ended returns at once."""
        who = caller(ctx)
        stream = EventStream()
        sent = 0

        async def report(state: GenerationState) -> None:
            nonlocal sent
            for event in stream.events(view(state), time.monotonic()):
                sent += 1
                await ctx.report_progress(sent, message=progress_message(event))

        with readable():
            if wait_seconds is None:
                state = await generations.state(generation_id, who.id)
            else:
                state = await generations.wait_for_change(
                    generation_id, who.id, since, wait_seconds, on_state=report
                )
        return VideoState(**view(state).model_dump(), etag=fingerprint(state))

    @server.tool()
    async def list_videos(
        ctx: Context,
        status: GenerationStatus | None = None,
        limit: Annotated[int, Field(ge=1, le=100)] = 20,
        cursor: Annotated[str | None, Field(max_length=500)] = None,
    ) -> GenerationList:
        """Your generations, newest first, limit at a time (pass next_cursor as cursor)."""
        who = caller(ctx)
        with readable():
            return await generations.list(who.id, status, limit, cursor)

    @server.tool()
    async def approve_storyboard(generation_id: str, ctx: Context) -> ActionAccepted:
        """Approve the storyboard of a run created with review 'storyboard' (it waits in
        awaiting_approval): its clips start, and only now cost anything."""
        with readable():
            await generations.approve(generation_id, caller(ctx).id)
        return ActionAccepted(id=generation_id, action="approve")

    @server.tool()
    async def edit_scene(
        generation_id: str,
        scene: Annotated[int, Field(ge=1, le=10_000, description="1-based scene index.")],
        changes: SceneEditBody,
        ctx: Context,
    ) -> ActionAccepted:
        """Change one scene of a run awaiting approval (description, narration, caption,
        duration); only its storyboard image is redrawn."""
        with readable():
            edit = SceneEdit.model_validate(
                {"index": scene, **changes.model_dump(exclude_unset=True)}
            )
            await generations.edit_scene(generation_id, caller(ctx).id, edit)
        return ActionAccepted(id=generation_id, action="edit_scene", clip_id=scene)

    @server.tool()
    async def retry_clip(
        generation_id: str,
        clip_id: Annotated[int, Field(ge=1, le=10_000, description="1-based scene index.")],
        ctx: Context,
        prompt: Annotated[str | None, Field(max_length=4000)] = None,
    ) -> ActionAccepted:
        """Generate a failed clip again, optionally with a new prompt (the run is in
        awaiting_retry)."""
        with readable():
            await generations.retry_clip(generation_id, caller(ctx).id, clip_id, prompt)
        return ActionAccepted(id=generation_id, action="retry_clip", clip_id=clip_id)

    @server.tool()
    async def finish_without_failed(generation_id: str, ctx: Context) -> ActionAccepted:
        """Assemble the video from the clips that succeeded, leaving the failed ones out (the
        run must be awaiting_retry, with at least one clip made)."""
        with readable():
            await generations.finish(generation_id, caller(ctx).id)
        return ActionAccepted(id=generation_id, action="finish_without_failed")

    @server.tool()
    async def cancel_video(generation_id: str, ctx: Context) -> ActionAccepted:
        """Cancel a run: its clips, upstream predictions and temp files stop with it."""
        with readable():
            await generations.cancel(generation_id, caller(ctx).id)
        return ActionAccepted(id=generation_id, action="cancel")

    @server.tool()
    async def create_batch(
        items: Annotated[list[GenerationRequest], Field(min_length=1, max_length=500)],
        ctx: Context,
        title: Annotated[str | None, Field(min_length=1, max_length=200)] = None,
    ) -> BatchView:
        """Start many generations (each item a create_video request), all validated before
        any starts, run a few at a time at batch priority (items may set 'priority')."""
        who = caller(ctx)
        with readable():
            # The items as the caller wrote them: what they left out takes the batch defaults.
            raw = [item.model_dump(mode="json", exclude_unset=True) for item in items]
            body = BatchBody(items=raw, title=title)
            return await batches.create(body, who.id, who.name)

    @server.tool()
    async def get_batch(batch_id: str, ctx: Context) -> BatchView:
        """A batch: its status, how many of its generations are in each status, their ids."""
        with readable():
            return await batches.view(batch_id, caller(ctx).id)
