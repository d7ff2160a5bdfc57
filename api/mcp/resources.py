"""The MCP resources: a finished video (where to fetch it, what it is) and the storyboard
images, read through ``Generations.locate`` (which checks ownership) like the media routes."""

from __future__ import annotations

import asyncio
import json

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ResourceNotFoundError

from api.mcp.identity import base_url, caller
from api.service import Generations
from api.views import to_view
from storyreel.contracts import GenerationState
from storyreel.errors import NotFoundError
from storyreel.keys import video_key


def add_resources(server: MCPServer, generations: Generations) -> None:
    """The resource templates of ``server``."""

    @server.resource(
        "storyreel://generations/{generation_id}/video",
        name="video",
        description="A finished video: where to fetch it (with your key) and what it is.",
        mime_type="application/json",
    )
    async def video(generation_id: str, ctx: Context) -> str:
        who = caller(ctx)
        try:
            state = await generations.state(generation_id, who.id)
            where = await generations.locate(
                generation_id, who.id, "video", lambda _: video_key(generation_id)
            )
        except NotFoundError as error:
            raise ResourceNotFoundError(str(error)) from None
        shown = to_view(state, generations.links(generation_id))
        url = where if isinstance(where, str) else f"{base_url(ctx)}{shown.links.video}"
        return json.dumps(
            {
                "id": generation_id,
                "title": shown.title,
                "url": url,
                "media_type": "video/mp4",
                "duration": shown.duration,
                "platform": shown.platform.value,
                "thumbnail_url": shown.thumbnail_url and f"{base_url(ctx)}{shown.thumbnail_url}",
                "cost": shown.cost,
            }
        )

    @server.resource(
        "storyreel://generations/{generation_id}/storyboard/{index}",
        name="storyboard",
        description="One scene's storyboard image (PNG), 1-based; on S3, a JSON presigned URL.",
        mime_type="image/png",
    )
    async def storyboard(generation_id: str, index: str, ctx: Context) -> bytes | str:
        if not index.isdigit() or int(index) < 1:
            raise ResourceNotFoundError(f"no storyboard image {index!r}")
        scene = int(index)

        def drawn(state: GenerationState) -> str | None:
            keys = state.storyboard_keys
            return keys[scene - 1] if scene <= len(keys) else None

        try:
            where = await generations.locate(
                generation_id, caller(ctx).id, f"storyboard image {scene}", drawn
            )
        except NotFoundError as error:
            raise ResourceNotFoundError(str(error)) from None
        if isinstance(where, str):
            return json.dumps({"url": where})
        try:
            return await asyncio.to_thread(where.read_bytes)
        except OSError as error:
            raise ResourceError(f"storyboard image {scene} cannot be read: {error}") from None
